//! Command-line options shared by several commands: the model, and the training settings that change a recipe.

use encoder::Pooling;
use heads::FreezeStrategy;
use std::path::PathBuf;
use trainer::{Mode, Overrides, Recipe};

/// Options shared by every command that loads a model.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// A Hugging Face BERT directory (config.json, model.safetensors or pytorch_model.bin, tokenizer.json or vocab.txt).
    #[arg(long, env = "BERTMT_MODEL", default_value = "data/models/all-MiniLM-L6-v2")]
    pub model: PathBuf,
    /// `cpu`, `cuda`, `cuda:N`, or `auto` (CUDA when available).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Compute precision: `auto` (bf16 where the device computes it natively: CUDA, or a CPU with avx512_bf16;
    /// f32 elsewhere), `f32` or `bf16`. Weights stay f32.
    #[arg(long, default_value = "auto")]
    pub precision: encoder::Precision,
}

/// Options of the commands that run a trained checkpoint.
#[derive(clap::Args, Debug, Clone)]
pub struct CheckpointArgs {
    /// A checkpoint directory (with checkpoint.json), or a run directory holding `checkpoint/`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// `cpu`, `cuda`, `cuda:N`, or `auto` (CUDA when available).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Compute precision: `auto` (bf16 where the device computes it natively), `f32` or `bf16`.
    #[arg(long, default_value = "auto")]
    pub precision: encoder::Precision,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
}

/// Where runs go and what this one is called.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Where run directories are created.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Name of this run's directory under --runs-dir (default: <command>-<UTC time>); it must not exist yet.
    #[arg(long)]
    pub name: Option<String>,
    /// Replace an existing run of the same --name (refused while that run is still running).
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// The training settings: a recipe's, each flag given changing its one setting.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TrainingArgs {
    /// Training settings: `notebook` (heads only, separate mode, 3 epochs, Adam 5e-4, batch 8) or `finetune`
    /// (the whole model, AdamW with warm-up and decay, a validation split, best epoch kept, early stopping).
    #[arg(long)]
    pub recipe: Option<Recipe>,
    /// Fraction of the (sampled) training examples held out for validation when no validation file is given, in
    /// [0, 1) [recipe].
    #[arg(long)]
    pub validation_fraction: Option<f64>,
    /// Freezing strategy: none, heads_only, output_layers[:N], all, all_adaptive[:IN_LR:OUT_LR] [recipe].
    #[arg(long)]
    pub strategy: Option<FreezeStrategy>,
    /// separate (one task's epochs after the other's) or combined (a batch of each task per step) [recipe].
    #[arg(long)]
    pub mode: Option<Mode>,
    /// Epochs (per task in separate mode; the most, with early stopping) [recipe].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Learning rate of the heads, and of the encoder unless --encoder-lr is given [recipe].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning rate of the encoder (its top layer under --layer-decay) [recipe].
    #[arg(long)]
    pub encoder_lr: Option<f64>,
    /// Layer-wise learning-rate decay in (0, 1]: each encoder layer down from the top trains at this times the rate
    /// of the layer above [recipe].
    #[arg(long)]
    pub layer_decay: Option<f64>,
    /// Examples per training batch (per process) [recipe].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Optimizer: adam or adamw [recipe].
    #[arg(long, value_parser = ["adam", "adamw"])]
    pub optimizer: Option<String>,
    /// Weight decay (L2 for adam, decoupled for adamw; never on biases and LayerNorms) [recipe].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Linear warm-up over this fraction of the steps, then linear decay (0: constant learning rate) [recipe].
    #[arg(long)]
    pub warmup_ratio: Option<f64>,
    /// Clip the gradient norm to this value (0: no clipping) [recipe].
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    /// Stop a task's training after this many epochs without a better validation score (0: never) [recipe].
    #[arg(long)]
    pub patience: Option<usize>,
    /// Dropout on the attention probabilities, replacing the model's (0 keeps the fast fused attention kernel in
    /// training) [recipe].
    #[arg(long)]
    pub attention_dropout: Option<f64>,
    /// Batches whose gradients are summed before each optimizer step [default 1].
    #[arg(long)]
    pub gradient_accumulation: Option<usize>,
    /// Combined mode: weight of the classification loss (NER gets 1 - w) [default 0.5].
    #[arg(long)]
    pub classification_weight: Option<f64>,
    /// Sentence pooling of the classification head: cls or mean [default mean].
    #[arg(long)]
    pub pooling: Option<Pooling>,
    /// NER: mark the sub-tokens of capitalized words with token type 1, so that a model whose vocabulary lowercases
    /// still sees capitals (the checkpoint remembers it for predict, evaluate and serve): true or false [recipe:
    /// true for finetune, false for notebook].
    #[arg(long)]
    pub ner_case_types: Option<bool>,
    /// Seed of the splits, the sampling, head initialisation, dropout and batch order [default 42].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run the frozen encoder on every batch instead of caching its outputs once.
    #[arg(long)]
    pub no_feature_cache: bool,
    /// Keep cached encoder outputs in half precision (half the memory).
    #[arg(long)]
    pub half_features: bool,
}

impl TrainingArgs {
    /// The settings these flags change.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            strategy: self.strategy,
            mode: self.mode,
            epochs: self.epochs,
            learning_rate: self.lr,
            encoder_learning_rate: self.encoder_lr,
            layer_decay: self.layer_decay,
            batch_size: self.batch_size,
            decoupled_weight_decay: self.optimizer.as_deref().map(|name| name == "adamw"),
            weight_decay: self.weight_decay,
            warmup_ratio: self.warmup_ratio,
            max_grad_norm: self.max_grad_norm,
            gradient_accumulation: self.gradient_accumulation,
            classification_weight: self.classification_weight,
            patience: self.patience,
            seed: self.seed,
            feature_cache: self.no_feature_cache.then_some(false),
            feature_cache_half: self.half_features.then_some(true),
            validation_fraction: self.validation_fraction,
            attention_dropout: self.attention_dropout,
            pooling: self.pooling,
            ner_case_types: self.ner_case_types,
        }
    }
}

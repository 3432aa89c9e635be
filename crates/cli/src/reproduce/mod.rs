//! `bertmt reproduce`: the notebook's tasks in order, printed and written to a run directory.

mod data;
mod tasks;

use crate::embed::load_encoder;
use crate::report::run_dir::{self};
use crate::report::transcript::Transcript;
use crate::{device, ModelArgs};
use anyhow::{bail, Context, Result};
use data::{build_model, load_data};
use distributed::{GroupConfig, ProcessGroup};
use encoder::{Pooling, ResolvedPrecision};
use heads::{format_parameter_table, parameter_table, FreezeStrategy, ParameterCount};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tasks::{task1, task2, task4, Task1, Task2, Task4};
use trainer::{Mode, OptimizerKind, Recipe, RecipeSettings, Schedule, TaskData, TrainConfig};

/// How long a rank of a data-parallel run waits for the others (at the rendezvous, and at each gradient sum) before
/// it gives up: PyTorch's default. A rank that exits is noticed at once.
const COLLECTIVE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The sentences of the notebook's Task 1 demonstration.
pub const NOTEBOOK_SENTENCES: [&str; 3] =
    ["Fetch Rewards is a great app!", "I love eating apples.", "I do enjoy oranges!"];

/// Arguments of `reproduce`. The training settings default to those of `--recipe`; each flag overrides its one.
#[derive(clap::Args, Debug)]
pub struct ReproduceArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Where run directories are created.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Name of this run's directory under --runs-dir (default: reproduce-<UTC time>); it must not exist yet.
    #[arg(long)]
    pub name: Option<String>,
    /// Replace an existing run of the same --name (its directory is deleted when this run starts).
    #[arg(long)]
    pub overwrite: bool,
    /// Classification data (XLSX or CSV with `review`,`sentiment`). Default: data/raw/classification_dataset.xlsx,
    /// else the embedded Rotten Tomatoes snippets.
    #[arg(long, value_name = "FILE")]
    pub classification: Option<PathBuf>,
    /// NER data (Kaggle XLSX/CSV with `Sentence #`,`Word`,`Tag`, or CoNLL `token<TAB>tag`). Default:
    /// data/raw/ner_dataset.xlsx, else the embedded WNUT-16 corpus.
    #[arg(long, value_name = "FILE")]
    pub ner: Option<PathBuf>,
    /// Fraction of the training examples to train on (the notebook used 0.1); test sets stay whole.
    #[arg(long, default_value_t = 1.0)]
    pub sample_ratio: f64,
    /// Held-out test examples per task.
    #[arg(long, default_value_t = 1000)]
    pub test_size: usize,
    /// Training settings: `notebook` (heads only, separate mode, 3 epochs, Adam 5e-4, batch 8) or `finetune`
    /// (the whole model, AdamW with warm-up and decay, a validation split, best epoch kept, early stopping).
    #[arg(long, default_value = "notebook")]
    pub recipe: Recipe,
    /// Fraction of the (sampled) training examples held out for validation, in [0, 1) [recipe].
    #[arg(long)]
    pub validation_fraction: Option<f64>,
    /// Freezing strategy: none, heads_only, output_layers[:N], all, all_adaptive[:IN_LR:OUT_LR] [recipe].
    #[arg(long)]
    pub strategy: Option<FreezeStrategy>,
    /// separate (classification epochs, then NER epochs) or combined (one batch of each per step) [recipe].
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
    /// Examples per training batch [recipe].
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
    /// Batches whose gradients are summed before each optimizer step.
    #[arg(long, default_value_t = 1)]
    pub gradient_accumulation: usize,
    /// Combined mode: weight of the classification loss (NER gets 1 - w).
    #[arg(long, default_value_t = 0.5)]
    pub classification_weight: f64,
    /// Sentence pooling of the classification head: cls or mean.
    #[arg(long, default_value = "mean")]
    pub pooling: Pooling,
    /// Seed of the split, the sampling, head initialisation, dropout and batch order.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Run the frozen encoder on every batch instead of caching its outputs once.
    #[arg(long)]
    pub no_feature_cache: bool,
    /// Keep cached encoder outputs in half precision (half the memory).
    #[arg(long)]
    pub half_features: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// The settings Task 4 trained with: the recipe's, with the flags given applied.
#[derive(Debug, Clone, Serialize)]
struct Settings {
    recipe: Recipe,
    strategy: FreezeStrategy,
    validation_fraction: f64,
    attention_dropout: Option<f64>,
    pooling: Pooling,
    precision: ResolvedPrecision,
    /// Processes training together (`WORLD_SIZE`); `train.batch_size` is per process.
    processes: usize,
    train: TrainConfig,
}

#[derive(Debug, Serialize)]
struct Metrics {
    device: String,
    task1: Task1,
    task2: Task2,
    task3: Vec<ParameterCount>,
    task4: Task4,
}

pub fn run(args: &ReproduceArgs) -> Result<()> {
    let device = device::parse(&args.model.device)?;
    if !(args.sample_ratio > 0.0 && args.sample_ratio <= 1.0) {
        bail!("--sample-ratio must be in (0, 1], got {}", args.sample_ratio);
    }
    if args.test_size == 0 {
        bail!("--test-size must be at least 1");
    }
    let mut settings = settings(args, device)?;
    // Under torchrun (or its variables set by hand), every rank runs the same tasks and trains its share of each
    // batch; only rank 0 claims the run directory, shows the transcript and writes.
    let group_config = GroupConfig::from_vars(|name| std::env::var(name).ok(), COLLECTIVE_TIMEOUT)?;
    if group_config.is_some() && device != tch::Device::Cpu {
        bail!(
            "training across processes runs on CPU only (the Gloo backend; NCCL for GPUs is not supported yet): \
             pass --device cpu, or unset WORLD_SIZE to train on {} in one process",
            device::describe(device)
        );
    }
    let group =
        group_config.as_ref().map(ProcessGroup::connect).transpose().context("cannot join the data-parallel group")?;
    settings.processes = group.as_ref().map_or(1, ProcessGroup::world_size);
    // Every log line of this process names its rank.
    let _rank_span = group.as_ref().map(|g| tracing::info_span!("rank", rank = g.rank()).entered());
    if let Some(group) = &group {
        tracing::info!(rank = group.rank(), processes = group.world_size(), "data-parallel reproduce");
        eprintln!(
            "rank {} of {}: batch {} per process, {} per step{}",
            group.rank(),
            group.world_size(),
            settings.train.batch_size,
            settings.train.batch_size * group.world_size(),
            if group.rank() == 0 { "" } else { "; rank 0 shows the run and writes its directory" }
        );
        if group.rank() != 0 {
            return run_in(args, device, settings, None, Some(group))
                .with_context(|| format!("rank {} of {}", group.rank(), group.world_size()));
        }
    }
    let name = args.name.clone().unwrap_or_else(|| format!("reproduce-{}", utc_stamp()));
    let run_dir = run_dir::claim(&args.runs_dir, &name, args.overwrite)?;
    let config = serde_json::json!({ "model": args.model.model, "settings": &settings });
    let written = atomic_files::write(&run_dir.join("config.json"), &serde_json::to_vec_pretty(&config)?)
        .map_err(anyhow::Error::from);
    let result = written.and_then(|()| run_in(args, device, settings, Some(&run_dir), group.as_ref()));
    if result.is_err() {
        run_dir::remove_unstarted(&run_dir);
    }
    result
}

/// The four tasks, in the run directory claimed for them (none on the other ranks of a data-parallel run, which
/// show and write nothing).
fn run_in(
    args: &ReproduceArgs,
    device: tch::Device,
    settings: Settings,
    run_dir: Option<&Path>,
    group: Option<&ProcessGroup>,
) -> Result<()> {
    let title = "Reproduction of the notebook";
    let mut transcript = if run_dir.is_some() { Transcript::new(title) } else { Transcript::unshown(title) };

    transcript.heading("Task 1: a BERT sentence encoder, checked against the reference");
    let started = Instant::now();
    let encoder = load_encoder(&args.model.model, device)?;
    let task1 = task1(&encoder, &args.model.model, started, &mut transcript)?;

    transcript.heading("Task 2: one encoder, two heads (sentence classification and NER)");
    let started = Instant::now();
    let (classification, ner) = load_data(args, &encoder, settings.validation_fraction)?;
    tch::manual_seed(args.seed as i64);
    let model = build_model(args, &settings, &classification.dataset, &ner.dataset, device)?;
    transcript.line(&format!("Precision: {} ({})", settings.precision.precision, settings.precision.reason));
    let (task2, cache) = task2(args, &settings, &model, [&classification, &ner], started, &mut transcript)?;
    let data = TaskData { classification: Some(&classification.dataset), ner: Some(&ner.dataset) };

    transcript.heading("Task 3: freezing strategies");
    let table = parameter_table(&model);
    transcript.block(&format_parameter_table(&table));

    let train = &settings.train;
    let batch = if settings.processes > 1 {
        format!("{} per process x {} processes", train.batch_size, settings.processes)
    } else {
        train.batch_size.to_string()
    };
    transcript.heading(&format!(
        "Task 4: training ({} recipe: {}, {} mode, at most {} epochs, lr {} (encoder {}), batch {batch}, {} pooling, \
         precision {})",
        settings.recipe,
        settings.strategy,
        train.mode,
        train.epochs,
        train.learning_rate,
        train.encoder_learning_rate.map_or_else(|| "the same".to_string(), |lr| lr.to_string()),
        settings.pooling,
        settings.precision.precision
    ));
    let task4 = task4(args, settings, &model, data, cache, run_dir, group, &mut transcript)?;

    let Some(run_dir) = run_dir else { return Ok(()) };
    let metrics = Metrics { device: device::describe(device), task1, task2, task3: table, task4 };
    atomic_files::write(&run_dir.join("metrics.json"), serde_json::to_string_pretty(&metrics)?.as_bytes())?;
    atomic_files::write(&run_dir.join("report.md"), transcript.report().as_bytes())?;
    println!("\nwrote {} and {}", run_dir.join("report.md").display(), run_dir.join("metrics.json").display());
    Ok(())
}

/// The recipe's settings with the flags given applied, checked before anything is loaded.
fn settings(args: &ReproduceArgs, device: tch::Device) -> Result<Settings> {
    let RecipeSettings { recipe, strategy, train, validation_fraction, attention_dropout } = args.recipe.settings();
    let weight_decay = args.weight_decay.unwrap_or(train.optimizer.weight_decay());
    let optimizer = match args.optimizer.as_deref() {
        Some("adam") => OptimizerKind::Adam { weight_decay },
        Some("adamw") => OptimizerKind::AdamW { weight_decay },
        _ => match train.optimizer {
            OptimizerKind::Adam { .. } => OptimizerKind::Adam { weight_decay },
            OptimizerKind::AdamW { .. } => OptimizerKind::AdamW { weight_decay },
        },
    };
    let schedule = match args.warmup_ratio {
        Some(0.0) => Schedule::Constant,
        Some(warmup_ratio) => Schedule::LinearWarmupDecay { warmup_ratio },
        None => train.schedule,
    };
    let strategy = args.strategy.unwrap_or(strategy);
    let adaptive = matches!(strategy, FreezeStrategy::AllAdaptive { .. });
    let train = TrainConfig {
        mode: args.mode.unwrap_or(train.mode),
        epochs: args.epochs.unwrap_or(train.epochs),
        batch_size: args.batch_size.unwrap_or(train.batch_size),
        learning_rate: args.lr.unwrap_or(train.learning_rate),
        // all_adaptive carries its own rates: the recipe's encoder rate and decay do not apply to it.
        encoder_learning_rate: args.encoder_lr.or(if adaptive { None } else { train.encoder_learning_rate }),
        layer_decay: args.layer_decay.or(if adaptive { None } else { train.layer_decay }),
        optimizer,
        schedule,
        max_grad_norm: match args.max_grad_norm {
            Some(0.0) => None,
            Some(norm) => Some(norm),
            None => train.max_grad_norm,
        },
        gradient_accumulation: args.gradient_accumulation,
        classification_weight: args.classification_weight,
        patience: match args.patience {
            Some(0) => None,
            Some(patience) => Some(patience),
            None => train.patience,
        },
        seed: args.seed,
        feature_cache: !args.no_feature_cache,
        feature_cache_half: args.half_features,
    };
    train.validate().map_err(|message| anyhow::anyhow!("invalid training settings: {message}"))?;
    let validation_fraction = args.validation_fraction.unwrap_or(validation_fraction);
    if !(0.0..1.0).contains(&validation_fraction) {
        bail!("--validation-fraction must be in [0, 1), got {validation_fraction}");
    }
    if train.patience.is_some() && validation_fraction == 0.0 {
        bail!("early stopping (--patience) needs validation examples: give --validation-fraction or --patience 0");
    }
    let attention_dropout = args.attention_dropout.or(attention_dropout);
    if let Some(p) = attention_dropout {
        if !(0.0..1.0).contains(&p) {
            bail!("--attention-dropout must be in [0, 1), got {p}");
        }
    }
    Ok(Settings {
        recipe,
        strategy,
        validation_fraction,
        attention_dropout,
        pooling: args.pooling,
        precision: args.model.precision.resolve(device),
        processes: 1,
        train,
    })
}

/// `YYYYMMDD-HHMMSS` in UTC.
fn utc_stamp() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!("{:04}{:02}{:02}-{:02}{:02}{:02}", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
}

//! Training cost per epoch on real IMDB reviews (classification only), one configuration per process, one JSON line.
//!
//! ```text
//! cargo bench -p trainer --bench epoch_cost -- --strategy heads_only|output_layers:3|all --cache on|off
//!     --batch 8 [--epochs 3] [--reviews 2000] [--test 32] [--max-length 512] [--data-dir ../shared/data]
//!     [--model DIR] [--threads N] [--precision f32|bf16|auto] [--attention-dropout P] [--optimizer adam|adamw]
//!     [--dump-batches FILE]
//! ```
//!
//! The data: the first `--reviews` reviews of `classification_dataset.xlsx` (or `imdb_50k.csv.gz`), cleaned with
//! the notebook's `clean_text` and tokenized with the model's tokenizer at `--max-length`, are the training split;
//! the next `--test` reviews the test split (scored before and after training, not timed as epochs). The model is
//! `heads::MultiTaskModel::from_pretrained` and the loop `trainer::train_and_evaluate` in separate mode (only the
//! classification task has data); epoch seconds come from `TrainOutcome::epochs`, the one-off encoder pass that
//! fills the feature cache from `TrainOutcome::feature_cache`.
//!
//! The model: `--model`, else `BERTMT_MODEL`, else `data/models/all-MiniLM-L6-v2` under the workspace.
//!
//! `--dump-batches FILE` writes the first epoch's work as JSON for the PyTorch training peer
//! (`xtask/peer/hf_train_peer.py`): every training example's token ids and label, the epoch's batches in the order
//! the loop runs them, and the settings (learning rate, weight decay, dropouts, classes), so the peer trains on the
//! same batches.

use anyhow::{bail, Context, Result};
use datasets::{
    encode_classification, load_classification, pad_id, ClassificationOptions, EncodeOptions, PreparedDataset,
    ProcessedDataset, Target,
};
use heads::{FreezeStrategy, MultiTaskConfig, MultiTaskModel};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Device;
use trainer::{separate_epoch_batches, train_and_evaluate, NoObserver, OptimizerKind, TaskData, TrainConfig};

struct Args {
    strategy: String,
    cache: bool,
    batch: usize,
    epochs: usize,
    reviews: usize,
    test: usize,
    max_length: usize,
    data_dir: PathBuf,
    model: PathBuf,
    threads: Option<i32>,
    precision: encoder::Precision,
    attention_dropout: Option<f64>,
    adamw: bool,
    dump_batches: Option<PathBuf>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn parse_args() -> Result<Args> {
    let root = workspace_root();
    let mut args = Args {
        strategy: "heads_only".into(),
        cache: false,
        batch: 8,
        epochs: 3,
        reviews: 2000,
        test: 32,
        max_length: 512,
        data_dir: root.join("../shared/data"),
        model: std::env::var_os("BERTMT_MODEL")
            .map_or_else(|| root.join("data/models/all-MiniLM-L6-v2"), PathBuf::from),
        threads: None,
        precision: encoder::Precision::F32,
        attention_dropout: None,
        adamw: false,
        dump_batches: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--strategy" => args.strategy = value()?,
            "--cache" => {
                args.cache = match value()?.as_str() {
                    "on" => true,
                    "off" => false,
                    other => bail!("--cache takes on or off, not {other}"),
                }
            }
            "--batch" => args.batch = value()?.parse().context("--batch")?,
            "--epochs" => args.epochs = value()?.parse().context("--epochs")?,
            "--reviews" => args.reviews = value()?.parse().context("--reviews")?,
            "--test" => args.test = value()?.parse().context("--test")?,
            "--max-length" => args.max_length = value()?.parse().context("--max-length")?,
            "--data-dir" => args.data_dir = value()?.into(),
            "--model" => args.model = value()?.into(),
            "--threads" => args.threads = Some(value()?.parse().context("--threads")?),
            "--precision" => args.precision = value()?.parse().map_err(anyhow::Error::msg)?,
            "--attention-dropout" => args.attention_dropout = Some(value()?.parse().context("--attention-dropout")?),
            "--optimizer" => {
                args.adamw = match value()?.as_str() {
                    "adam" => false,
                    "adamw" => true,
                    other => bail!("--optimizer takes adam or adamw, not {other}"),
                }
            }
            "--dump-batches" => args.dump_batches = Some(value()?.into()),
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    if args.reviews == 0 || args.test == 0 || args.epochs == 0 {
        bail!("--reviews, --test and --epochs must be at least 1");
    }
    Ok(args)
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(xs[n / 2]),
        _ => Some((xs[n / 2 - 1] + xs[n / 2]) / 2.0),
    }
}

fn round(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The first `reviews + test` reviews, tokenized, split into the first `reviews` (train) and the rest (test).
fn dataset(args: &Args, tokenizer: &tokenizers::Tokenizer) -> Result<(PreparedDataset, PathBuf)> {
    if !args.data_dir.is_dir() {
        bail!("the data directory {} does not exist (pass --data-dir)", args.data_dir.display());
    }
    let file = ["classification_dataset.xlsx", "imdb_50k.csv.gz"]
        .iter()
        .map(|name| args.data_dir.join(name))
        .find(|path| path.is_file())
        .with_context(|| {
            format!("{} has no classification_dataset.xlsx or imdb_50k.csv.gz", args.data_dir.display())
        })?;
    let loaded = load_classification(&file, &ClassificationOptions::default())
        .with_context(|| format!("cannot read {}", file.display()))?;
    let wanted = args.reviews + args.test;
    if loaded.examples.len() < wanted {
        bail!("{} has {} reviews, fewer than the {wanted} asked for", file.display(), loaded.examples.len());
    }
    let options = EncodeOptions { max_length: args.max_length, ..EncodeOptions::default() };
    let (examples, stats) = encode_classification(tokenizer, &loaded.examples[..wanted], &options)?;
    let data = ProcessedDataset::new(examples, loaded.label_names, pad_id(tokenizer)?).with_stats(stats);
    let prepared =
        PreparedDataset::from_split(data, (0..args.reviews).collect(), Vec::new(), (args.reviews..wanted).collect())?;
    Ok((prepared, file))
}

/// The first epoch's batches, examples and settings, for the PyTorch peer.
fn dump_batches(
    path: &Path,
    dataset: &PreparedDataset,
    config: &TrainConfig,
    model: &MultiTaskModel,
    optimizer: OptimizerKind,
) -> Result<()> {
    let batches = separate_epoch_batches(config, trainer::Task::Classification, dataset, 1)?;
    let mut examples = Vec::with_capacity(dataset.train().len());
    let mut labels = Vec::with_capacity(dataset.train().len());
    // Indices into the dump's own example list.
    let mut position = std::collections::HashMap::with_capacity(dataset.train().len());
    for &index in dataset.train() {
        let example = &dataset.examples()[index];
        let Target::Class(label) = example.target else { bail!("example {index} is not a classification example") };
        position.insert(index, examples.len());
        examples.push(&example.input_ids);
        labels.push(label);
    }
    let batches: Vec<Vec<usize>> = batches.iter().map(|batch| batch.iter().map(|i| position[i]).collect()).collect();
    let encoder = &model.config().encoder;
    let weight_decay = match optimizer {
        OptimizerKind::Adam { weight_decay } | OptimizerKind::AdamW { weight_decay } => weight_decay,
    };
    let dump = json!({
        "examples": examples,
        "labels": labels,
        "batches": batches,
        "pad_id": dataset.data().pad_id(),
        "classes": dataset.label_names().len(),
        "learning_rate": config.learning_rate,
        "optimizer": if matches!(optimizer, OptimizerKind::AdamW { .. }) { "adamw" } else { "adam" },
        "weight_decay": weight_decay,
        "attention_dropout": encoder.attention_probs_dropout_prob,
        "hidden_dropout": encoder.hidden_dropout_prob,
        "head_dropout": model.config().head_dropout,
        "pooling": model.config().pooling.to_string(),
        "max_grad_norm": config.max_grad_norm,
    });
    std::fs::write(path, serde_json::to_vec(&dump)?).with_context(|| format!("cannot write {}", path.display()))
}

fn main() {
    if let Err(error) = run() {
        eprintln!("trainer epoch_cost bench: {error:#}");
        std::process::exit(2);
    }
}

fn run() -> Result<()> {
    let args = parse_args()?;
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads);
    }
    let strategy: FreezeStrategy = args.strategy.parse().context("--strategy")?;
    if !args.model.join("config.json").is_file() {
        bail!(
            "no model at {}: run `cargo xtask setup`, or pass --model / set BERTMT_MODEL to a BERT directory",
            args.model.display()
        );
    }
    let tokenizer_file = args.model.join("tokenizer.json");
    let tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", tokenizer_file.display()))?;
    let (dataset, file) = dataset(&args, &tokenizer)?;
    let mut config = MultiTaskConfig::for_pretrained(
        &args.model,
        dataset.label_names().to_vec(),
        // No NER data: the NER head exists but never trains.
        vec!["O".into(), "B-per".into(), "I-per".into()],
        encoder::Pooling::Mean,
    )?;
    if let Some(dropout) = args.attention_dropout {
        config.encoder.attention_probs_dropout_prob = dropout;
    }
    let attention_dropout = config.encoder.attention_probs_dropout_prob;
    let mut model = MultiTaskModel::from_pretrained_config(&args.model, config, Device::Cpu)?;
    let precision = args.precision.resolve(Device::Cpu);
    model.set_precision(precision.precision)?;
    let optimizer = if args.adamw { OptimizerKind::AdamW { weight_decay: 0.01 } } else { OptimizerKind::default() };
    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch,
        feature_cache: args.cache,
        optimizer,
        ..TrainConfig::default()
    };
    if let Some(path) = &args.dump_batches {
        dump_batches(path, &dataset, &config, &model, optimizer)?;
    }
    let started = Instant::now();
    let data = TaskData { classification: Some(&dataset), ner: None };
    let outcome = train_and_evaluate(&model, &strategy, data, &config, None, &mut NoObserver)?;
    let total = started.elapsed().as_secs_f64();
    let epoch_seconds: Vec<f64> = outcome.epochs.iter().map(|e| e.seconds).collect();
    let later = median(epoch_seconds.iter().skip(1).copied().collect());
    let first = epoch_seconds.first().copied();
    let per_epoch = later.or(first);
    let train_tokens: usize = dataset.train().iter().map(|&i| dataset.examples()[i].len()).sum();
    let accuracy = |e: &trainer::Evaluation| e.classification.as_ref().map(|c| c.report.accuracy);
    println!(
        "{}",
        json!({
            "bench": "trainer.epoch",
            "strategy": strategy.to_string(),
            "strategy_arg": args.strategy,
            "feature_cache": args.cache,
            "batch": args.batch,
            "reviews": args.reviews,
            "test": args.test,
            "max_length": args.max_length,
            "train_tokens": train_tokens,
            "truncated_reviews": dataset.data().stats().truncated_examples,
            "file": file.display().to_string(),
            "threads": tch::get_num_threads(),
            "precision": precision.precision.to_string(),
            "precision_reason": precision.reason,
            "attention_dropout": attention_dropout,
            "optimizer": if args.adamw { "adamw" } else { "adam" },
            "trainable_parameters": outcome.trainable_parameters,
            "epochs": outcome.epochs.iter().map(|e| json!({
                "epoch": e.epoch, "seconds": round(e.seconds), "examples": e.examples, "steps": e.steps,
                "cached": e.cached, "mean_loss": round(e.mean_loss),
                "forward_seconds": round(e.timing.forward), "backward_seconds": round(e.timing.backward),
                "optimizer_seconds": round(e.timing.optimizer),
            })).collect::<Vec<_>>(),
            "cache_fill_seconds": outcome.feature_cache.as_ref().map(|c| round(c.seconds)),
            "first_epoch_seconds": first.map(round),
            "later_epochs_median_seconds": later.map(round),
            "epoch_seconds": per_epoch.map(round),
            "examples_per_s": per_epoch.map(|s| (args.reviews as f64 / s * 100.0).round() / 100.0),
            "eval_before_seconds": round(outcome.before.seconds),
            "eval_after_seconds": round(outcome.after.seconds),
            "accuracy_before": accuracy(&outcome.before),
            "accuracy_after": accuracy(&outcome.after),
            "total_seconds": round(total),
        })
    );
    Ok(())
}

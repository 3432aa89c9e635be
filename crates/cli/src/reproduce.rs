//! `bertmt reproduce`: the notebook's tasks in order, printed and written to a run directory.

use crate::embed::{embed, load_encoder, render};
use crate::{device, ModelArgs};
use anyhow::{bail, Context, Result};
use datasets::{
    prepare_classification, prepare_ner, sample_indices, ClassificationOptions, NerOptions, PrepareOptions,
    PreparedDataset, TestSize,
};
use encoder::reference::{compare, ParityReport, ReferenceOutputs};
use encoder::{Pooling, SentenceEncoder};
use heads::{format_parameter_table, parameter_table, FreezeStrategy, MultiTaskModel, ParameterCount};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;
use trainer::run_dir::evaluation_text;
use trainer::{
    evaluate, freezes_encoder, train_and_evaluate, Evaluation, FeatureCache, FeatureCacheReport, Mode, OptimizerKind,
    RunDirectory, Schedule, TaskData, TrainConfig, TrainOutcome,
};

/// The sentences of the notebook's Task 1 demonstration.
pub const NOTEBOOK_SENTENCES: [&str; 3] =
    ["Fetch Rewards is a great app!", "I love eating apples.", "I do enjoy oranges!"];

/// The reference outputs committed with the encoder crate (made by `transformers` on the default model).
const REFERENCE_FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../encoder/tests/fixtures/parity.safetensors");

/// Arguments of `reproduce`.
#[derive(clap::Args, Debug)]
pub struct ReproduceArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Where run directories are created.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Name of this run's directory (default: reproduce-<UTC time>).
    #[arg(long)]
    pub name: Option<String>,
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
    /// Held-out examples per task.
    #[arg(long, default_value_t = 1000)]
    pub test_size: usize,
    /// Freezing strategy: none, heads_only, output_layers[:N], all, all_adaptive[:IN_LR:OUT_LR].
    #[arg(long, default_value = "heads_only")]
    pub strategy: FreezeStrategy,
    /// separate (classification epochs, then NER epochs) or combined (one batch of each per step).
    #[arg(long, default_value = "separate")]
    pub mode: Mode,
    /// Epochs (per task in separate mode).
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    /// Examples per training batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Sentence pooling of the classification head: cls or mean.
    #[arg(long, default_value = "mean")]
    pub pooling: Pooling,
    /// Seed of the split, the sampling, head initialisation, dropout and batch order.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Optimizer: adam or adamw.
    #[arg(long, default_value = "adam", value_parser = ["adam", "adamw"])]
    pub optimizer: String,
    /// Weight decay (L2 for adam, decoupled for adamw).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Linear warm-up over this fraction of the steps, then linear decay (0: constant learning rate).
    #[arg(long, default_value_t = 0.0)]
    pub warmup_ratio: f64,
    /// Clip the gradient norm to this value.
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    /// Batches whose gradients are summed before each optimizer step.
    #[arg(long, default_value_t = 1)]
    pub gradient_accumulation: usize,
    /// Combined mode: weight of the classification loss (NER gets 1 - w).
    #[arg(long, default_value_t = 0.5)]
    pub classification_weight: f64,
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

/// What Task 1 measured.
#[derive(Debug, Serialize)]
struct Task1 {
    model: String,
    config: encoder::BertConfig,
    tensors_copied: usize,
    parameters_copied: i64,
    tensors_skipped: Vec<String>,
    parity: Option<ParityReport>,
    sentences: Vec<String>,
    cosine_similarity: Vec<SimilarityTable>,
    seconds: f64,
}

#[derive(Debug, Serialize)]
struct SimilarityTable {
    pooling: Pooling,
    first_values: Vec<Vec<f64>>,
    matrix: Vec<Vec<f64>>,
}

/// What Task 2 loaded.
#[derive(Debug, Serialize)]
struct TaskDataSummary {
    file: String,
    source: &'static str,
    rows_read: u64,
    examples: usize,
    dropped: Vec<String>,
    labels: Vec<String>,
    train: usize,
    test: usize,
    truncated_examples: u64,
    cache: String,
    batch_shapes: Vec<(String, Vec<i64>)>,
}

#[derive(Debug, Serialize)]
struct Task2 {
    classification: TaskDataSummary,
    ner: TaskDataSummary,
    /// The frozen encoder's outputs, computed here once for the untrained scores and Task 4's training.
    feature_cache: Option<FeatureCacheReport>,
    untrained: Evaluation,
    seconds: f64,
}

#[derive(Debug, Serialize)]
struct Task4 {
    strategy: FreezeStrategy,
    config: TrainConfig,
    outcome: TrainOutcome,
    checkpoint: String,
    seconds: f64,
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
    let run_dir = args.runs_dir.join(args.name.clone().unwrap_or_else(|| format!("reproduce-{}", utc_stamp())));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("cannot create {}", run_dir.display()))?;
    let mut report = String::from("# Reproduction of the notebook\n\n");

    if !(args.sample_ratio > 0.0 && args.sample_ratio <= 1.0) {
        bail!("--sample-ratio must be in (0, 1], got {}", args.sample_ratio);
    }

    println!("== Task 1: a BERT sentence encoder, checked against the reference ==");
    let started = Instant::now();
    let encoder = load_encoder(&args.model.model, device)?;
    let task1 = task1(&encoder, &args.model.model, started, &mut report)?;

    println!("\n== Task 2: one encoder, two heads (sentence classification and NER) ==");
    let started = Instant::now();
    let (classification, ner) = load_data(args, &encoder)?;
    tch::manual_seed(args.seed as i64);
    let model = MultiTaskModel::from_pretrained(
        &args.model.model,
        classification.dataset.data.label_names.clone(),
        ner.dataset.data.label_names.clone(),
        args.pooling,
        device,
    )?;
    let config = train_config(args);
    let (task2, cache) = task2(args, &config, &model, [&classification, &ner], started, &mut report)?;
    let data = TaskData { classification: Some(&classification.dataset), ner: Some(&ner.dataset) };

    println!("\n== Task 3: freezing strategies ==");
    let table = parameter_table(&model);
    let rendered = format_parameter_table(&table);
    println!("{rendered}");
    let _ = writeln!(report, "## Task 3: freezing strategies\n\n```\n{rendered}\n```\n");

    println!("\n== Task 4: training ({}, {} mode) ==", args.strategy, mode_name(args.mode));
    let task4 = task4(args, config, &model, data, cache, &run_dir, &mut report)?;

    let metrics = Metrics { device: device::describe(device), task1, task2, task3: table, task4 };
    write_atomic(&run_dir.join("metrics.json"), &serde_json::to_string_pretty(&metrics)?)?;
    write_atomic(&run_dir.join("report.md"), &report)?;
    println!("\nwrote {} and {}", run_dir.join("report.md").display(), run_dir.join("metrics.json").display());
    Ok(())
}

fn task1(encoder: &SentenceEncoder, model_dir: &Path, started: Instant, report: &mut String) -> Result<Task1> {
    let load = encoder.load_report();
    println!("Model: {}", model_dir.display());
    println!("{}", encoder.config());
    println!(
        "Weights copied: {} tensors, {} values from {} (skipped: {})",
        load.copied,
        load.parameters,
        load.file.display(),
        if load.skipped.is_empty() { "none".to_string() } else { load.skipped.join(", ") }
    );

    let parity = parity(encoder, model_dir)?;
    match &parity {
        Some(p) => println!(
            "Parity with Hugging Face transformers ({} texts, {} tokens, ids match: {}): max |difference| \
             token states {:.2e}, CLS {:.2e}, mean {:.2e}",
            p.texts, p.tokens, p.token_ids_match, p.token_states_max_abs_diff, p.cls_max_abs_diff, p.mean_max_abs_diff
        ),
        None => println!("Parity: no reference outputs for this model (they exist for the default model)"),
    }

    let results = embed(encoder, &NOTEBOOK_SENTENCES, &[Pooling::Cls, Pooling::Mean], false, 8)?;
    let rendered = render(&NOTEBOOK_SENTENCES, &results);
    println!("\n{rendered}");
    let tables = results
        .iter()
        .map(|r| -> Result<SimilarityTable> {
            Ok(SimilarityTable {
                pooling: r.pooling,
                first_values: Vec::<Vec<f64>>::try_from(r.vectors.narrow(1, 0, 5).to_kind(tch::Kind::Double))?,
                matrix: Vec::<Vec<f64>>::try_from(r.similarity.to_kind(tch::Kind::Double))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;

    let _ = writeln!(report, "## Task 1: sentence encoder\n");
    let _ = writeln!(report, "Model `{}`:\n\n```\n{}\n```\n", model_dir.display(), encoder.config());
    if let Some(p) = &parity {
        let _ = writeln!(
            report,
            "Parity with Hugging Face `transformers` on {} texts ({} tokens): max absolute difference {:.2e} \
             (token states {:.2e}, CLS {:.2e}, mean {:.2e}).\n",
            p.texts,
            p.tokens,
            p.max_abs_diff(),
            p.token_states_max_abs_diff,
            p.cls_max_abs_diff,
            p.mean_max_abs_diff
        );
    }
    let _ = writeln!(report, "```\n{rendered}```\n");
    Ok(Task1 {
        model: model_dir.display().to_string(),
        config: encoder.config().clone(),
        tensors_copied: load.copied,
        parameters_copied: load.parameters,
        tensors_skipped: load.skipped.clone(),
        parity,
        sentences: NOTEBOOK_SENTENCES.iter().map(|s| s.to_string()).collect(),
        cosine_similarity: tables,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Separate => "separate",
        Mode::Combined => "combined",
    }
}

/// Where a task's data comes from: the user's file, the notebook's Kaggle file in data/raw, or the embedded corpus.
fn resolve(given: &Option<PathBuf>, kaggle: &str, embedded: &str) -> Result<(PathBuf, &'static str)> {
    if let Some(path) = given {
        return Ok((path.clone(), "given"));
    }
    let kaggle = PathBuf::from(kaggle);
    if kaggle.is_file() {
        return Ok((kaggle, "notebook's Kaggle file"));
    }
    let default_dir =
        std::env::var_os("BERTMT_DEFAULT_DATA").map(PathBuf::from).unwrap_or_else(|| "data/default".into());
    let embedded = default_dir.join(embedded);
    if !embedded.is_file() {
        bail!(
            "no data: {} is missing and so is the embedded default {} (run `cargo xtask setup`, or pass the file)",
            kaggle.display(),
            embedded.display()
        );
    }
    Ok((embedded, "embedded default"))
}

/// A prepared dataset with the file it came from and what kind of source that was.
struct LoadedData {
    dataset: PreparedDataset,
    source: (PathBuf, &'static str),
}

fn load_data(args: &ReproduceArgs, encoder: &SentenceEncoder) -> Result<(LoadedData, LoadedData)> {
    let tokenizer = encoder.tokenizer().inner();
    let prepare = PrepareOptions {
        test_size: TestSize::Count(args.test_size),
        seed: args.seed,
        sample_ratio: 1.0,
        ..PrepareOptions::default()
    };
    let (path, source) = resolve(&args.classification, "data/raw/classification_dataset.xlsx", "rotten_tomatoes.csv")?;
    let options = if source == "embedded default" {
        ClassificationOptions::rotten_tomatoes()
    } else {
        ClassificationOptions::default()
    };
    let mut classification = prepare_classification(&path, &options, tokenizer, &prepare)
        .with_context(|| format!("cannot load the classification data {}", path.display()))?;
    classification.train = sample_indices(&classification.train, args.sample_ratio, args.seed, 1)?;
    let classification = LoadedData { dataset: classification, source: (path, source) };

    let (path, source) = resolve(&args.ner, "data/raw/ner_dataset.xlsx", "wnut16_train.conll")?;
    let mut ner = prepare_ner(&path, &NerOptions::default(), tokenizer, &prepare)
        .with_context(|| format!("cannot load the NER data {}", path.display()))?;
    ner.train = sample_indices(&ner.train, args.sample_ratio, args.seed, 2)?;
    Ok((classification, LoadedData { dataset: ner, source: (path, source) }))
}

fn summarize(loaded: &LoadedData, batch_size: usize) -> Result<TaskDataSummary> {
    let (dataset, source) = (&loaded.dataset, loaded.source.clone());
    let batch = dataset.batch(&dataset.train[..batch_size.min(dataset.train.len())])?.to_tensors(tch::Device::Cpu)?;
    Ok(TaskDataSummary {
        file: source.0.display().to_string(),
        source: source.1,
        rows_read: dataset.data.rows_read,
        examples: dataset.data.examples.len(),
        dropped: dataset.data.dropped.iter().map(ToString::to_string).collect(),
        labels: dataset.data.label_names.clone(),
        train: dataset.train.len(),
        test: dataset.test.len(),
        truncated_examples: dataset.data.stats.truncated_examples,
        cache: dataset.cache.to_string(),
        batch_shapes: vec![
            ("input_ids".into(), batch.input_ids.size()),
            ("attention_mask".into(), batch.attention_mask.size()),
            ("labels".into(), batch.labels.size()),
        ],
    })
}

fn task2(
    args: &ReproduceArgs,
    config: &TrainConfig,
    model: &MultiTaskModel,
    loaded: [&LoadedData; 2],
    started: Instant,
    report: &mut String,
) -> Result<(Task2, Option<FeatureCache>)> {
    let mut summaries = Vec::new();
    let _ = writeln!(report, "## Task 2: data and the untrained multi-task model\n");
    for (name, loaded) in ["Classification", "NER"].into_iter().zip(loaded) {
        let summary = summarize(loaded, args.batch_size)?;
        let text = format!(
            "{name}: {} ({}), {} rows read, {} examples kept; {}\n  labels: {}\n  train {} / test {}; \
             {} examples truncated at 512 tokens; cache: {}\n  one training batch: {}",
            summary.file,
            summary.source,
            summary.rows_read,
            summary.examples,
            if summary.dropped.is_empty() { "nothing dropped".to_string() } else { summary.dropped.join("; ") },
            summary.labels.join(", "),
            summary.train,
            summary.test,
            summary.truncated_examples,
            summary.cache,
            summary.batch_shapes.iter().map(|(n, s)| format!("{n} {s:?}")).collect::<Vec<_>>().join(", ")
        );
        println!("{text}");
        let _ = writeln!(report, "```\n{text}\n```\n");
        summaries.push(summary);
    }
    let data = TaskData { classification: Some(&loaded[0].dataset), ner: Some(&loaded[1].dataset) };
    // With a frozen encoder its outputs are computed once, here: the untrained scores and Task 4 both use them.
    let cache = if freezes_encoder(&args.strategy) && config.feature_cache {
        let cache = FeatureCache::build(model, data, config)?;
        let built = cache.report();
        let text = format!(
            "Encoder features of every train and test example computed once in {:.1} s (classification {}, NER {}); \
             the scores below and Task 4's {} training use them",
            built.seconds,
            trainer::features::describe(built.classification),
            trainer::features::describe(built.ner),
            args.strategy
        );
        println!("\n{text}");
        let _ = writeln!(report, "{text}.\n");
        Some(cache)
    } else {
        None
    };
    println!("\nThe untrained model (pretrained encoder, random heads) on the test sets:");
    let untrained = evaluate(model, data, 32, cache.as_ref())?;
    let text = evaluation_text(&untrained);
    println!("{text}");
    let _ = writeln!(report, "Untrained model on the test sets:\n\n```\n{text}```\n");
    let mut summaries = summaries.into_iter();
    let (Some(classification), Some(ner)) = (summaries.next(), summaries.next()) else { bail!("missing summary") };
    let feature_cache = cache.as_ref().map(|c| c.report().clone());
    let seconds = started.elapsed().as_secs_f64();
    Ok((Task2 { classification, ner, feature_cache, untrained, seconds }, cache))
}

/// The training settings of the command line.
fn train_config(args: &ReproduceArgs) -> TrainConfig {
    let optimizer = match args.optimizer.as_str() {
        "adamw" => OptimizerKind::AdamW { weight_decay: args.weight_decay },
        _ => OptimizerKind::Adam { weight_decay: args.weight_decay },
    };
    let schedule = if args.warmup_ratio > 0.0 {
        Schedule::LinearWarmupDecay { warmup_ratio: args.warmup_ratio }
    } else {
        Schedule::Constant
    };
    TrainConfig {
        mode: args.mode,
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        optimizer,
        schedule,
        max_grad_norm: args.max_grad_norm,
        gradient_accumulation: args.gradient_accumulation,
        classification_weight: args.classification_weight,
        seed: args.seed,
        feature_cache: !args.no_feature_cache,
        feature_cache_half: args.half_features,
        progress: !args.quiet,
    }
}

fn task4(
    args: &ReproduceArgs,
    config: TrainConfig,
    model: &MultiTaskModel,
    data: TaskData<'_>,
    cache: Option<FeatureCache>,
    run_dir: &Path,
    report: &mut String,
) -> Result<Task4> {
    let started = Instant::now();
    let mut run = RunDirectory::create(run_dir)?;
    run.write_json("config.json", &serde_json::json!({ "strategy": args.strategy, "train": &config, "model": args.model.model, "pooling": args.pooling }))?;
    let outcome = train_and_evaluate(model, &args.strategy, data, &config, cache, &mut run)?;
    if let Some(cache) = &outcome.feature_cache {
        println!(
            "Heads trained on the encoder features cached in Task 2 ({:.1} s; classification {}, NER {})",
            cache.seconds,
            trainer::features::describe(cache.classification),
            trainer::features::describe(cache.ner)
        );
    }
    for epoch in &outcome.epochs {
        println!(
            "{} epoch {}: mean loss {:.4}, {} batches, {:.1} s{}",
            epoch.task,
            epoch.epoch,
            epoch.mean_loss,
            epoch.steps,
            epoch.seconds,
            if epoch.cached { " (cached features)" } else { "" }
        );
    }
    let before = evaluation_text(&outcome.before);
    let after = evaluation_text(&outcome.after);
    println!("\nMetrics before training:\n{before}\nMetrics after training:\n{after}");
    let checkpoint = run_dir.join("checkpoint");
    model.save(&checkpoint, &args.model.model, Some(args.strategy))?;
    run.finish(&outcome)?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "Training took {:.1} s ({} values trained); evaluation {:.1} s before, {:.1} s after. Checkpoint: {}",
        outcome.training_seconds,
        outcome.trainable_parameters,
        outcome.before.seconds,
        outcome.after.seconds,
        checkpoint.display()
    );
    let _ = writeln!(
        report,
        "## Task 4: training ({}, {} mode, {} epochs, Adam lr {}, batch {}, {} pooling)\n",
        args.strategy,
        mode_name(args.mode),
        args.epochs,
        args.lr,
        args.batch_size,
        args.pooling
    );
    for epoch in &outcome.epochs {
        let _ = writeln!(
            report,
            "- {} epoch {}: mean loss {:.4} ({:.1} s)",
            epoch.task, epoch.epoch, epoch.mean_loss, epoch.seconds
        );
    }
    let _ = writeln!(
        report,
        "\nTraining took {:.1} s.\n\nBefore training:\n\n```\n{before}```\n\nAfter training:\n\n```\n{after}```\n\n\
         Plots: `loss.svg`, `scores.svg`, `confusion_matrix.svg`. Checkpoint: `checkpoint/`.\n",
        outcome.training_seconds
    );
    Ok(Task4 { strategy: args.strategy, config, outcome, checkpoint: checkpoint.display().to_string(), seconds })
}

/// Compares with the committed reference when it was made by this model (same directory name and texts).
fn parity(encoder: &SentenceEncoder, model_dir: &Path) -> Result<Option<ParityReport>> {
    let fixture = Path::new(REFERENCE_FIXTURE);
    if !fixture.is_file() {
        return Ok(None);
    }
    let reference = ReferenceOutputs::read(fixture)?;
    let same_model = model_dir.file_name().and_then(|n| n.to_str()) == Some(reference.model.as_str());
    if !same_model {
        return Ok(None);
    }
    Ok(Some(compare(encoder, &reference)?))
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
pub fn write_atomic(path: &Path, content: &str) -> Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, content).with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))
}

/// `YYYYMMDD-HHMMSS` in UTC.
fn utc_stamp() -> String {
    let seconds =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}-{:02}{:02}{:02}", rest / 3600, rest % 3600 / 60, rest % 60)
}

//! `bertmt reproduce`: the notebook's tasks in order, printed and written to a run directory.

use crate::embed::{embed, load_encoder, render};
use crate::report::progress::{Fanout, ProgressBars};
use crate::report::run_dir::{self, RunDirectory};
use crate::report::{epoch_line, evaluation_text};
use crate::{device, ModelArgs};
use anyhow::{bail, Context, Result};
use datasets::{
    prepare_classification, prepare_ner, ClassificationOptions, NerOptions, PrepareOptions, PreparedDataset, TestSize,
};
use encoder::reference::{compare, ParityReport, ReferenceOutputs};
use encoder::{Pooling, ResolvedPrecision, SentenceEncoder};
use heads::{format_parameter_table, parameter_table, FreezeStrategy, MultiTaskConfig, MultiTaskModel, ParameterCount};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;
use trainer::{
    evaluate, freezes_encoder, train_and_evaluate, Evaluation, FeatureCache, FeatureCacheReport, Mode, OptimizerKind,
    Recipe, RecipeSettings, Schedule, Split, TaskData, TrainConfig, TrainOutcome,
};

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
    validation: usize,
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

/// The settings Task 4 trained with: the recipe's, with the flags given applied.
#[derive(Debug, Clone, Serialize)]
struct Settings {
    recipe: Recipe,
    strategy: FreezeStrategy,
    validation_fraction: f64,
    attention_dropout: Option<f64>,
    pooling: Pooling,
    precision: ResolvedPrecision,
    train: TrainConfig,
}

#[derive(Debug, Serialize)]
struct Task4 {
    settings: Settings,
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
    if !(args.sample_ratio > 0.0 && args.sample_ratio <= 1.0) {
        bail!("--sample-ratio must be in (0, 1], got {}", args.sample_ratio);
    }
    if args.test_size == 0 {
        bail!("--test-size must be at least 1");
    }
    let settings = settings(args, device)?;
    let name = args.name.clone().unwrap_or_else(|| format!("reproduce-{}", utc_stamp()));
    let run_dir = run_dir::claim(&args.runs_dir, &name, args.overwrite)?;
    let config = serde_json::json!({ "model": args.model.model, "settings": &settings });
    let written = atomic_files::write(&run_dir.join("config.json"), &serde_json::to_vec_pretty(&config)?)
        .map_err(anyhow::Error::from);
    let result = written.and_then(|()| run_in(args, device, settings, &run_dir));
    if result.is_err() {
        run_dir::remove_unstarted(&run_dir);
    }
    result
}

/// The four tasks, in the run directory claimed for them.
fn run_in(args: &ReproduceArgs, device: tch::Device, settings: Settings, run_dir: &Path) -> Result<()> {
    let mut report = String::from("# Reproduction of the notebook\n\n");

    println!("== Task 1: a BERT sentence encoder, checked against the reference ==");
    let started = Instant::now();
    let encoder = load_encoder(&args.model.model, device)?;
    let task1 = task1(&encoder, &args.model.model, started, &mut report)?;

    println!("\n== Task 2: one encoder, two heads (sentence classification and NER) ==");
    let started = Instant::now();
    let (classification, ner) = load_data(args, &encoder, settings.validation_fraction)?;
    tch::manual_seed(args.seed as i64);
    let model = build_model(args, &settings, &classification.dataset, &ner.dataset, device)?;
    println!("Precision: {} ({})", settings.precision.precision, settings.precision.reason);
    let (task2, cache) = task2(args, &settings, &model, [&classification, &ner], started, &mut report)?;
    let data = TaskData { classification: Some(&classification.dataset), ner: Some(&ner.dataset) };

    println!("\n== Task 3: freezing strategies ==");
    let table = parameter_table(&model);
    let rendered = format_parameter_table(&table);
    println!("{rendered}");
    let _ = writeln!(report, "## Task 3: freezing strategies\n\n```\n{rendered}\n```\n");

    println!(
        "\n== Task 4: training ({} recipe: {}, {} mode) ==",
        settings.recipe, settings.strategy, settings.train.mode
    );
    let task4 = task4(args, settings, &model, data, cache, run_dir, &mut report)?;

    let metrics = Metrics { device: device::describe(device), task1, task2, task3: table, task4 };
    atomic_files::write(&run_dir.join("metrics.json"), serde_json::to_string_pretty(&metrics)?.as_bytes())?;
    atomic_files::write(&run_dir.join("report.md"), report.as_bytes())?;
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
        train,
    })
}

/// The multi-task model on the pretrained encoder, with the settings' attention dropout and precision.
fn build_model(
    args: &ReproduceArgs,
    settings: &Settings,
    classification: &PreparedDataset,
    ner: &PreparedDataset,
    device: tch::Device,
) -> Result<MultiTaskModel> {
    let mut config = MultiTaskConfig::for_pretrained(
        &args.model.model,
        classification.label_names().to_vec(),
        ner.label_names().to_vec(),
        args.pooling,
    )?;
    if let Some(dropout) = settings.attention_dropout {
        config.encoder.attention_probs_dropout_prob = dropout;
    }
    let mut model = MultiTaskModel::from_pretrained_config(&args.model.model, config, device)?;
    model.set_precision(settings.precision.precision)?;
    Ok(model)
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
                first_values: Vec::<Vec<f64>>::try_from(
                    r.vectors.narrow(1, 0, r.vectors.size()[1].min(5)).to_kind(tch::Kind::Double),
                )?,
                matrix: match &r.similarity {
                    Some(similarity) => Vec::<Vec<f64>>::try_from(similarity.to_kind(tch::Kind::Double))?,
                    None => Vec::new(),
                },
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

fn load_data(
    args: &ReproduceArgs,
    encoder: &SentenceEncoder,
    validation_fraction: f64,
) -> Result<(LoadedData, LoadedData)> {
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
    classification.sample_train(args.sample_ratio, args.seed, 1)?;
    classification.hold_out_validation(validation_fraction, args.seed).context("classification data")?;
    let classification = LoadedData { dataset: classification, source: (path, source) };

    let (path, source) = resolve(&args.ner, "data/raw/ner_dataset.xlsx", "wnut16_train.conll")?;
    let mut ner = prepare_ner(&path, &NerOptions::default(), tokenizer, &prepare)
        .with_context(|| format!("cannot load the NER data {}", path.display()))?;
    ner.sample_train(args.sample_ratio, args.seed, 2)?;
    ner.hold_out_validation(validation_fraction, args.seed).context("NER data")?;
    Ok((classification, LoadedData { dataset: ner, source: (path, source) }))
}

fn summarize(loaded: &LoadedData, batch_size: usize) -> Result<TaskDataSummary> {
    let (dataset, source) = (&loaded.dataset, loaded.source.clone());
    let batch =
        dataset.batch(&dataset.train()[..batch_size.min(dataset.train().len())])?.to_tensors(tch::Device::Cpu)?;
    Ok(TaskDataSummary {
        file: source.0.display().to_string(),
        source: source.1,
        rows_read: dataset.data().rows_read(),
        examples: dataset.examples().len(),
        dropped: dataset.data().dropped().iter().map(ToString::to_string).collect(),
        labels: dataset.label_names().to_vec(),
        train: dataset.train().len(),
        validation: dataset.validation().len(),
        test: dataset.test().len(),
        truncated_examples: dataset.data().stats().truncated_examples,
        cache: dataset.cache().to_string(),
        batch_shapes: vec![
            ("input_ids".into(), batch.input_ids.size()),
            ("attention_mask".into(), batch.attention_mask.size()),
            ("labels".into(), batch.labels.size()),
        ],
    })
}

fn task2(
    args: &ReproduceArgs,
    settings: &Settings,
    model: &MultiTaskModel,
    loaded: [&LoadedData; 2],
    started: Instant,
    report: &mut String,
) -> Result<(Task2, Option<FeatureCache>)> {
    let mut summaries = Vec::new();
    let _ = writeln!(report, "## Task 2: data and the untrained multi-task model\n");
    for (name, loaded) in ["Classification", "NER"].into_iter().zip(loaded) {
        let summary = summarize(loaded, settings.train.batch_size)?;
        let text = format!(
            "{name}: {} ({}), {} rows read, {} examples kept; {}\n  labels: {}\n  train {} / validation {} / test {}; \
             {} examples truncated at 512 tokens; cache: {}\n  one training batch: {}",
            summary.file,
            summary.source,
            summary.rows_read,
            summary.examples,
            if summary.dropped.is_empty() { "nothing dropped".to_string() } else { summary.dropped.join("; ") },
            summary.labels.join(", "),
            summary.train,
            summary.validation,
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
    let config = &settings.train;
    let cache = if freezes_encoder(&settings.strategy) && config.feature_cache {
        let mut spinner = ProgressBars::new(!args.quiet);
        spinner.spinner("running the frozen encoder once over every example");
        let cache = FeatureCache::build(model, data, config.batch_size.max(32), config.feature_cache_half)?;
        spinner.clear();
        let built = cache.report();
        let text = format!(
            "Encoder features of every train, validation and test example computed once in {:.1} s (classification {}, NER {}); \
             the scores below and Task 4's {} training use them",
            built.seconds,
            trainer::features::describe(built.classification),
            trainer::features::describe(built.ner),
            settings.strategy
        );
        println!("\n{text}");
        let _ = writeln!(report, "{text}.\n");
        Some(cache)
    } else {
        None
    };
    println!("\nThe untrained model (pretrained encoder, random heads) on the test sets:");
    let untrained = evaluate(model, data, Split::Test, 32, cache.as_ref())?;
    let text = evaluation_text(&untrained);
    println!("{text}");
    let _ = writeln!(report, "Untrained model on the test sets:\n\n```\n{text}```\n");
    let mut summaries = summaries.into_iter();
    let (Some(classification), Some(ner)) = (summaries.next(), summaries.next()) else { bail!("missing summary") };
    let feature_cache = cache.as_ref().map(|c| c.report().clone());
    let seconds = started.elapsed().as_secs_f64();
    Ok((Task2 { classification, ner, feature_cache, untrained, seconds }, cache))
}

fn task4(
    args: &ReproduceArgs,
    settings: Settings,
    model: &MultiTaskModel,
    data: TaskData<'_>,
    cache: Option<FeatureCache>,
    run_dir: &Path,
    report: &mut String,
) -> Result<Task4> {
    let started = Instant::now();
    let mut run = RunDirectory::create(run_dir)?;
    let mut progress = ProgressBars::new(!args.quiet);
    let outcome = {
        let mut observers = Fanout(vec![&mut progress, &mut run]);
        train_and_evaluate(model, &settings.strategy, data, &settings.train, cache, &mut observers)?
    };
    progress.clear();
    if let Some(cache) = &outcome.feature_cache {
        println!(
            "Heads trained on the encoder features cached in Task 2 ({:.1} s; classification {}, NER {})",
            cache.seconds,
            trainer::features::describe(cache.classification),
            trainer::features::describe(cache.ner)
        );
    }
    let epochs = epoch_lines(&outcome);
    println!("{epochs}");
    let phases = phase_lines(&outcome);
    if !phases.is_empty() {
        println!("{phases}");
    }
    let before = evaluation_text(&outcome.before);
    let after = evaluation_text(&outcome.after);
    println!("\nMetrics before training:\n{before}\nMetrics after training:\n{after}");
    let checkpoint = run_dir.join("checkpoint");
    model.save(&checkpoint, &args.model.model, Some(settings.strategy))?;
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
    let train = &settings.train;
    let _ = writeln!(
        report,
        "## Task 4: training ({} recipe: {}, {} mode, at most {} epochs, lr {} (encoder {}), batch {}, {} pooling, \
         precision {})\n",
        settings.recipe,
        settings.strategy,
        train.mode,
        train.epochs,
        train.learning_rate,
        train.encoder_learning_rate.map_or_else(|| "the same".to_string(), |lr| lr.to_string()),
        train.batch_size,
        settings.pooling,
        settings.precision.precision
    );
    let _ = writeln!(report, "```\n{epochs}\n```\n");
    if !phases.is_empty() {
        let _ = writeln!(report, "{phases}\n\nSelection: {}.\n", outcome.selection);
    }
    let _ = writeln!(
        report,
        "Training took {:.1} s.\n\nBefore training:\n\n```\n{before}```\n\nAfter training:\n\n```\n{after}```\n\n\
         Intervals are 95% percentile-bootstrap intervals over the test examples (sentences for NER).\n\n\
         Plots: `loss.svg`, `scores.svg`, `confusion_matrix.svg`. Checkpoint: `checkpoint/`.\n",
        outcome.training_seconds
    );
    Ok(Task4 { settings, outcome, checkpoint: checkpoint.display().to_string(), seconds })
}

/// One line per epoch: loss, time, validation scores.
fn epoch_lines(outcome: &TrainOutcome) -> String {
    outcome.epochs.iter().map(epoch_line).collect::<Vec<_>>().join("\n")
}

/// Which epoch each phase kept, when there was validation.
fn phase_lines(outcome: &TrainOutcome) -> String {
    outcome
        .phases
        .iter()
        .filter_map(|phase| {
            phase.best_metric.map(|metric| {
                format!(
                    "{}: kept epoch {} of {} (validation metric {:.4}){}",
                    phase.phase,
                    phase.kept_epoch,
                    phase.epochs_run,
                    metric,
                    if phase.stopped_early { ", stopped early" } else { "" }
                )
            })
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Compares with the built-in reference outputs when they were made by this model (same directory name).
fn parity(encoder: &SentenceEncoder, model_dir: &Path) -> Result<Option<ParityReport>> {
    let reference = ReferenceOutputs::default_model()?;
    let same_model = model_dir.file_name().and_then(|n| n.to_str()) == Some(reference.model.as_str());
    if !same_model {
        return Ok(None);
    }
    Ok(Some(compare(encoder, &reference)?))
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

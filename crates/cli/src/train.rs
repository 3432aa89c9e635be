//! `bertmt train`: train on your own data, one task or two, with your own train/validation/test files; resumable.

use crate::args::{RunArgs, TrainingArgs};
use crate::device;
use crate::report::run_dir::{self, ClaimedRun};
use crate::report::transcript::Transcript;
use crate::run::{
    describe_training, fit, join_group, remove_state, DataConfig, Fit, Resolved, RunConfig, TaskFiles, TestSize,
    CHECKPOINT_DIR, STATE_DIR,
};
use anyhow::{bail, Context, Result};
use datasets::{
    prepare_classification_files, prepare_ner_files, ClassificationOptions, NerOptions, PrepareOptions,
    PreparedDataset, SplitFiles, SplitSource,
};
use encoder::{BertTokenizer, Precision};
use serde::Serialize;
use std::path::{Path, PathBuf};
use trainer::{PerTask, Recipe, ResumeState, Session, Settings, Task, TaskData, TrainOutcome};

/// The model a run trains from when neither the flags nor its configuration name one.
const DEFAULT_MODEL: &str = "data/models/all-MiniLM-L6-v2";

/// Arguments of `train`. Settings come from `--resume`'s run, else `--config`, else `--recipe` (default
/// `finetune`); each flag given changes its one setting.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Classification training data: CSV, TSV, XLSX or JSON lines with a text and a label column.
    #[arg(long, value_name = "FILE")]
    pub classification: Option<PathBuf>,
    /// Classification validation data (default: --validation-fraction of the training file).
    #[arg(long, value_name = "FILE")]
    pub classification_validation: Option<PathBuf>,
    /// Classification test data (default: --test-size examples drawn from the training file).
    #[arg(long, value_name = "FILE")]
    pub classification_test: Option<PathBuf>,
    /// The text column (JSON lines: field) of the classification files (default `text`, then `review`).
    #[arg(long)]
    pub text_column: Option<String>,
    /// The label column (JSON lines: field) of the classification files (default `label`, then `sentiment`).
    #[arg(long)]
    pub label_column: Option<String>,
    /// NER training data: CoNLL (tag in the last column), the Kaggle layout (`Sentence #`,`Word`,`Tag`), or JSON
    /// lines with `tokens` and `ner_tags`.
    #[arg(long, value_name = "FILE")]
    pub ner: Option<PathBuf>,
    /// NER validation data (default: --validation-fraction of the training file).
    #[arg(long, value_name = "FILE")]
    pub ner_validation: Option<PathBuf>,
    /// NER test data (default: --test-size sentences drawn from the training file).
    #[arg(long, value_name = "FILE")]
    pub ner_test: Option<PathBuf>,
    /// The tag of each integer id in JSON-lines NER files (`ner_tags` as ids), comma-separated:
    /// `O,B-PER,I-PER,...`.
    #[arg(long, value_delimiter = ',')]
    pub label_names: Option<Vec<String>>,
    /// Fraction of the training examples to train on [default 1]; validation and test examples stay whole.
    #[arg(long)]
    pub sample_ratio: Option<f64>,
    /// Test examples drawn from a training file given without a test file: a count (1000) or a fraction (0.1)
    /// [default 0.1].
    #[arg(long)]
    pub test_size: Option<TestSize>,
    /// A Hugging Face BERT directory to fine-tune [default: the run's (with --config or --resume), else
    /// $BERTMT_MODEL, else data/models/all-MiniLM-L6-v2].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// `cpu`, `cuda`, `cuda:N`, or `auto` (CUDA when available).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Compute precision: `auto` (bf16 where the device computes it natively), `f32` or `bf16` [default auto].
    #[arg(long)]
    pub precision: Option<Precision>,
    /// Also score the test examples before training (the untrained heads: a full extra pass over the test files).
    #[arg(long)]
    pub scores_before: bool,
    /// Rerun the run described by this configuration (a run's `config.json`, or its directory); flags still
    /// change it.
    #[arg(long, value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    /// Continue the run in this directory from its last saved state (after a kill or a Ctrl-C); it must be given
    /// the same settings and data.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "name", "overwrite"])]
    pub resume: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub training: TrainingArgs,
}

/// What a task's data held, for the report and `metrics.json`.
#[derive(Debug, Serialize)]
pub struct DataSummary {
    /// Each file read: rows, examples, drops, IOB1 conversions.
    pub files: Vec<datasets::FileReport>,
    /// The labels, in the model's output order.
    pub labels: Vec<String>,
    /// Examples per split.
    pub train: usize,
    /// Validation examples.
    pub validation: usize,
    /// Test examples.
    pub test: usize,
    /// Where each split came from.
    pub sources: datasets::SplitSources,
    /// Validation and test examples whose text is also in the training split.
    pub leakage: datasets::Leakage,
    /// Classification examples cut at the model's length.
    pub truncated_examples: u64,
    /// NER sentences longer than the model, read in overlapping windows.
    pub windowed_examples: u64,
}

#[derive(Debug, Serialize)]
struct Metrics<'a> {
    device: String,
    data: PerTask<DataSummary>,
    settings: &'a Settings,
    outcome: &'a TrainOutcome,
    checkpoint: String,
}

pub fn run(args: &TrainArgs) -> Result<()> {
    let resume_dir = args.resume.as_deref();
    let base = match (resume_dir, &args.config) {
        (Some(dir), _) => Some(RunConfig::read(dir).with_context(|| format!("cannot resume {}", dir.display()))?),
        (None, Some(config)) => Some(RunConfig::read(config)?),
        (None, None) => None,
    };
    if let Some(base) = &base {
        if base.command != "train" && resume_dir.is_some() {
            bail!(
                "{} is a `{}` run: only `train` runs resume",
                args.resume.as_deref().unwrap_or(Path::new("")).display(),
                base.command
            );
        }
    }
    let config = merge(args, base.as_ref())?;
    let device = device::parse(&args.device)?;
    let precision = config.precision.resolve(device);
    let group = join_group(device)?;
    let config = RunConfig {
        resolved: Some(Resolved {
            precision: precision.clone(),
            device: device::describe(device),
            processes: group.as_ref().map_or(1, distributed::ProcessGroup::world_size),
        }),
        ..config
    };
    let _rank_span = group.as_ref().map(|g| tracing::info_span!("rank", rank = g.rank()).entered());
    let rank = group.as_ref().map_or(0, distributed::ProcessGroup::rank);

    // The run's directory: a new one, or the resumed one (with its state, if it saved one).
    let (claimed, state) = match resume_dir {
        Some(dir) => {
            // The lock first: a run that is still running is neither finished nor to be started over.
            let claimed = if rank == 0 { Some(run_dir::reopen(dir)?) } else { None };
            let state_dir = dir.join(STATE_DIR);
            if !state_dir.exists() {
                // A run removes its state only once its checkpoint and reports are written.
                if dir.join("metrics.json").is_file() && dir.join(CHECKPOINT_DIR).is_dir() {
                    println!(
                        "{} has finished already: nothing to resume (its scores are in {})",
                        dir.display(),
                        dir.join("report.md").display()
                    );
                    return Ok(());
                }
                eprintln!(
                    "{} saved no state yet (it stopped before its first epoch ended): starting it over",
                    dir.display()
                );
                // Nothing was trained: the flags given now describe the run, as for a new one.
                if let Some(claimed) = &claimed {
                    config.write(claimed.path())?;
                }
            }
            let state = state_dir.exists().then(|| ResumeState::read(&state_dir)).transpose()?;
            (claimed, state)
        }
        None if rank == 0 => {
            let name = args.run.name.clone().unwrap_or_else(|| format!("train-{}", crate::run::utc_stamp()));
            let claimed = run_dir::claim(&args.run.runs_dir, &name, args.run.overwrite)?;
            if let Err(error) = config.write(claimed.path()) {
                run_dir::remove_unstarted(claimed);
                return Err(error);
            }
            (Some(claimed), None)
        }
        None => (None, None),
    };
    let result = train_in(args, &config, device, group.as_ref(), claimed.as_ref(), state.as_ref());
    if let (Err(_), Some(claimed), None) = (&result, claimed, resume_dir) {
        run_dir::remove_unstarted(claimed);
    }
    result
}

/// The run's configuration: the base's (resumed run or `--config`) with the flags applied, or the flags alone.
fn merge(args: &TrainArgs, base: Option<&RunConfig>) -> Result<RunConfig> {
    let settings = match (args.training.recipe, base) {
        (Some(recipe), _) => recipe.settings(),
        (None, Some(base)) => base.settings.clone(),
        (None, None) => Recipe::Finetune.settings(),
    }
    .with(&args.training.overrides());
    settings.validate().map_err(|message| anyhow::anyhow!("invalid training settings: {message}"))?;
    let task = |task: Task, train: &Option<PathBuf>, validation: &Option<PathBuf>, test: &Option<PathBuf>| {
        let from_base = base.and_then(|b| match task {
            Task::Classification => b.data.classification.clone(),
            Task::Ner => b.data.ner.clone(),
        });
        // Each flag changes its one setting: a new training file keeps the base's other files and columns.
        let mut files = match (train, from_base) {
            (Some(train), Some(files)) => TaskFiles { train: absolute(train), ..files },
            (Some(train), None) => TaskFiles {
                train: absolute(train),
                validation: None,
                test: None,
                text_column: None,
                label_column: None,
                label_names: None,
            },
            (None, Some(files)) => files,
            (None, None) => {
                if let Some(other) = validation.as_ref().or(test.as_ref()) {
                    bail!("{} was given without {}'s training file: pass --{}", other.display(), task.title(), task);
                }
                return Ok(None);
            }
        };
        if let Some(validation) = validation {
            files.validation = Some(absolute(validation));
        }
        if let Some(test) = test {
            files.test = Some(absolute(test));
        }
        match task {
            Task::Classification => {
                if args.text_column.is_some() {
                    files.text_column.clone_from(&args.text_column);
                }
                if args.label_column.is_some() {
                    files.label_column.clone_from(&args.label_column);
                }
            }
            Task::Ner => {
                if args.label_names.is_some() {
                    files.label_names.clone_from(&args.label_names);
                }
            }
        }
        Ok(Some(files))
    };
    let classification =
        task(Task::Classification, &args.classification, &args.classification_validation, &args.classification_test)?;
    let ner = task(Task::Ner, &args.ner, &args.ner_validation, &args.ner_test)?;
    if classification.is_none() && ner.is_none() {
        bail!(
            "no training data: pass --classification FILE, --ner FILE or both (or --config / --resume of a run); \
             `bertmt train --help` lists the formats"
        );
    }
    let sample_ratio = args.sample_ratio.or(base.map(|b| b.data.sample_ratio)).unwrap_or(1.0);
    if !(sample_ratio > 0.0 && sample_ratio <= 1.0) {
        bail!("--sample-ratio must be in (0, 1], got {sample_ratio}");
    }
    Ok(RunConfig {
        command: "train".into(),
        model: absolute(
            &args
                .model
                .clone()
                .or(base.map(|b| b.model.clone()))
                .or_else(|| std::env::var_os("BERTMT_MODEL").map(PathBuf::from))
                .unwrap_or_else(|| DEFAULT_MODEL.into()),
        ),
        precision: args.precision.or(base.map(|b| b.precision)).unwrap_or_default(),
        data: DataConfig {
            classification,
            ner,
            sample_ratio,
            test_size: args.test_size.or(base.map(|b| b.data.test_size)).unwrap_or(TestSize::Fraction(0.1)),
        },
        settings,
        resolved: None,
    })
}

/// `path` made absolute (as the run records it, so `--config` and `--resume` find it from any directory); as given
/// when it does not exist (loading it then says so).
fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Loads the data and the model, trains, and writes the run's reports (on rank 0).
fn train_in(
    args: &TrainArgs,
    config: &RunConfig,
    device: tch::Device,
    group: Option<&distributed::ProcessGroup>,
    claimed: Option<&ClaimedRun>,
    state: Option<&ResumeState>,
) -> Result<()> {
    let settings = &config.settings;
    let mut transcript =
        if claimed.is_some() { Transcript::new("Training run") } else { Transcript::unshown("Training run") };
    let model_config = encoder::BertConfig::from_file(&encoder::ModelFiles::locate(&config.model)?.config)
        .with_context(|| format!("cannot read the model at {}", config.model.display()))?;
    let max_length = usize::try_from(model_config.max_position_embeddings).unwrap_or(512);
    let tokenizer = BertTokenizer::from_dir(&config.model, max_length)
        .with_context(|| format!("cannot load the tokenizer of {}", config.model.display()))?;

    transcript.heading("Data");
    let data = load(config, &tokenizer)?;
    let summaries = data.map(summary);
    for (task, summary) in summaries.iter() {
        transcript.block(&summary_text(task, summary));
    }
    let tasks: TaskData<'_> = data.iter().collect();

    transcript.heading("Model");
    tch::manual_seed(settings.train.seed as i64);
    let precision = config.precision.resolve(device);
    let model = crate::run::build_model(&config.model, settings, &tasks, precision.precision, device)?;
    transcript.line(&format!(
        "`{}` with a head for {}; precision {} ({}); on {}.",
        config.model.display(),
        tasks.tasks().iter().map(|t| t.title()).collect::<Vec<_>>().join(" and "),
        precision.precision,
        precision.reason,
        device::describe(device)
    ));

    let processes = group.map_or(1, distributed::ProcessGroup::world_size);
    transcript.heading(&format!("Training ({})", describe_training(settings, processes, &precision)));
    let mut session = Session::new(&model, tasks, settings.strategy, settings.train.clone())?;
    if let Some(group) = group {
        session = session.in_group(group);
    }
    let resume_command =
        claimed.map_or_else(String::new, |run| format!("bertmt train --resume {}", run.path().display()));
    let (outcome, checkpoint) = fit(
        &mut session,
        &model,
        Fit {
            model_dir: &config.model,
            settings,
            run: claimed,
            resume: state,
            fingerprint: config.fingerprint(&precision)?,
            quiet: args.run.quiet,
            save_state: true,
            resume_command,
            scores_before: args.scores_before,
        },
        &mut transcript,
    )?;
    let Some(run) = claimed else { return Ok(()) };
    let metrics = Metrics {
        device: device::describe(device),
        data: summaries,
        settings,
        outcome: &outcome,
        checkpoint: checkpoint.map(|path| path.display().to_string()).unwrap_or_default(),
    };
    atomic_files::write(&run.path().join("metrics.json"), serde_json::to_string_pretty(&metrics)?.as_bytes())?;
    atomic_files::write(&run.path().join("report.md"), transcript.report().as_bytes())?;
    remove_state(run)?;
    println!(
        "\nwrote {} and {}; the model is in {}",
        run.path().join("report.md").display(),
        run.path().join("metrics.json").display(),
        run.path().join(CHECKPOINT_DIR).display()
    );
    Ok(())
}

/// Each task's files, read, tokenized and split; validation held out of the training examples when no validation
/// file is given.
fn load(config: &RunConfig, tokenizer: &BertTokenizer) -> Result<PerTask<PreparedDataset>> {
    let settings = &config.settings;
    let prepare = PrepareOptions {
        encode: datasets::EncodeOptions {
            max_length: tokenizer.max_length(),
            case_types: settings.ner_case_types,
            ..datasets::EncodeOptions::default()
        },
        test_size: config.data.test_size.into(),
        seed: settings.train.seed,
        sample_ratio: config.data.sample_ratio,
        ..PrepareOptions::default()
    };
    let split_files = |files: &TaskFiles| SplitFiles {
        train: files.train.clone(),
        validation: files.validation.clone(),
        test: files.test.clone(),
    };
    let mut data = PerTask::new();
    if let Some(files) = &config.data.classification {
        let options = ClassificationOptions {
            text_column: files.text_column.clone(),
            label_column: files.label_column.clone(),
            ..ClassificationOptions::default()
        };
        let dataset = prepare_classification_files(&split_files(files), &options, tokenizer.inner(), &prepare)
            .with_context(|| format!("cannot load the classification data {}", files.train.display()))?;
        data.insert(Task::Classification, dataset);
    }
    if let Some(files) = &config.data.ner {
        let options = NerOptions { label_names: files.label_names.clone(), ..NerOptions::default() };
        let dataset = prepare_ner_files(&split_files(files), &options, tokenizer.inner(), &prepare)
            .with_context(|| format!("cannot load the NER data {}", files.train.display()))?;
        data.insert(Task::Ner, dataset);
    }
    for task in data.tasks() {
        let given_validation = match task {
            Task::Classification => config.data.classification.as_ref(),
            Task::Ner => config.data.ner.as_ref(),
        }
        .is_some_and(|files| files.validation.is_some());
        if let Some(dataset) = data.get_mut(task) {
            if !given_validation {
                dataset
                    .hold_out_validation(settings.validation_fraction, settings.train.seed)
                    .with_context(|| format!("the {} data", task.title()))?;
            }
        }
    }
    Ok(data)
}

fn summary(_task: Task, dataset: &PreparedDataset) -> DataSummary {
    DataSummary {
        files: dataset.data().files().to_vec(),
        labels: dataset.label_names().to_vec(),
        train: dataset.train().len(),
        validation: dataset.validation().len(),
        test: dataset.test().len(),
        sources: dataset.sources().clone(),
        leakage: dataset.leakage(),
        truncated_examples: dataset.data().stats().truncated_examples,
        windowed_examples: dataset.data().stats().windowed_examples,
    }
}

/// The summary as the report shows it.
fn summary_text(task: Task, summary: &DataSummary) -> String {
    let mut lines = vec![format!("{}:", capitalized(task.title()))];
    for file in &summary.files {
        let dropped: Vec<String> = file.dropped.iter().filter(|d| !d.is_empty()).map(ToString::to_string).collect();
        lines.push(format!(
            "  {} ({}): {} rows read, {} examples kept; {}{}",
            file.path.display(),
            file.split,
            file.rows_read,
            file.examples,
            if dropped.is_empty() { "nothing dropped".to_string() } else { dropped.join("; ") },
            if file.iob1_tags_converted > 0 {
                format!("; {} IOB1 tags converted to IOB2", file.iob1_tags_converted)
            } else {
                String::new()
            }
        ));
    }
    lines.push(format!("  labels ({}): {}", summary.labels.len(), summary.labels.join(", ")));
    let source = |source: &SplitSource| match source {
        SplitSource::Given(_) => "given".to_string(),
        other => other.to_string(),
    };
    let length = match task {
        Task::Classification => format!("{} texts truncated at the model's length", summary.truncated_examples),
        Task::Ner => format!("{} sentences longer than the model, read in windows", summary.windowed_examples),
    };
    lines.push(format!(
        "  train {} / validation {} ({}) / test {} ({}); {length}",
        summary.train,
        summary.validation,
        source(&summary.sources.validation),
        summary.test,
        source(&summary.sources.test),
    ));
    if summary.leakage.validation + summary.leakage.test > 0 {
        lines.push(format!(
            "  warning: {} validation and {} test examples also occur in the training split (leakage)",
            summary.leakage.validation, summary.leakage.test
        ));
    }
    lines.join("\n")
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

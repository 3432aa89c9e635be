//! `bertmt reproduce`: the notebook's tasks in order, printed and written to a run directory.

mod data;
mod tasks;

use crate::args::{ModelArgs, RunArgs, TrainingArgs};
use crate::device;
use crate::embed::load_encoder;
use crate::report::run_dir::{self, ClaimedRun};
use crate::report::transcript::Transcript;
use crate::run::{build_model, DataConfig, Resolved, RunConfig, TaskFiles, TestSize};
use anyhow::{bail, Context, Result};
use data::{load_data, resolve_sources};
use distributed::ProcessGroup;
use heads::{parameter_table, ParameterCount};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use tasks::{task1, task2, task4, Task1, Task2, Task4};
use trainer::{Recipe, Settings};

/// The sentences of the notebook's Task 1 demonstration.
pub const NOTEBOOK_SENTENCES: [&str; 3] =
    ["Fetch Rewards is a great app!", "I love eating apples.", "I do enjoy oranges!"];

/// Arguments of `reproduce`. The training settings default to those of `--recipe` (default `notebook`); each flag
/// overrides its one.
#[derive(clap::Args, Debug)]
pub struct ReproduceArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub run: RunArgs,
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
    #[command(flatten)]
    pub training: TrainingArgs,
}

#[derive(Debug, Serialize)]
struct Metrics {
    device: String,
    task1: Task1,
    task2: Task2,
    task3: Vec<ParameterCount>,
    task4: Task4,
}

/// A reproduction about to run: its configuration, where it runs, and as which rank.
pub(crate) struct Plan<'a> {
    pub(crate) args: &'a ReproduceArgs,
    pub(crate) config: RunConfig,
    pub(crate) device: tch::Device,
    pub(crate) group: Option<&'a ProcessGroup>,
}

pub fn run(args: &ReproduceArgs) -> Result<()> {
    let device = device::parse(&args.model.device)?;
    if !(args.sample_ratio > 0.0 && args.sample_ratio <= 1.0) {
        bail!("--sample-ratio must be in (0, 1], got {}", args.sample_ratio);
    }
    if args.test_size == 0 {
        bail!("--test-size must be at least 1");
    }
    let settings: Settings =
        args.training.recipe.unwrap_or(Recipe::Notebook).settings().with(&args.training.overrides());
    settings.validate().map_err(|message| anyhow::anyhow!("invalid training settings: {message}"))?;
    if settings.train.patience.is_some() && settings.validation_fraction == 0.0 {
        bail!("early stopping (--patience) needs validation examples: give --validation-fraction or --patience 0");
    }
    let sources = resolve_sources(args)?;
    let task_files = |path: &PathBuf| TaskFiles {
        train: path.clone(),
        validation: None,
        test: None,
        text_column: None,
        label_column: None,
        label_names: None,
    };
    let precision = args.model.precision.resolve(device);
    let mut config = RunConfig {
        command: "reproduce".into(),
        model: args.model.model.clone(),
        precision: args.model.precision,
        data: DataConfig {
            classification: Some(task_files(&sources.classification.0)),
            ner: Some(task_files(&sources.ner.0)),
            sample_ratio: args.sample_ratio,
            test_size: TestSize::Count(args.test_size),
        },
        settings,
        resolved: Some(Resolved { precision, device: device::describe(device), processes: 1 }),
    };
    // Under torchrun (or its variables set by hand), every rank runs the same tasks and trains its share of each
    // batch; only rank 0 claims the run directory, shows the transcript and writes.
    let group = crate::run::join_group(device)?;
    if let (Some(group), Some(resolved)) = (&group, &mut config.resolved) {
        resolved.processes = group.world_size();
    }
    // Every log line of this process names its rank.
    let _rank_span = group.as_ref().map(|g| tracing::info_span!("rank", rank = g.rank()).entered());
    let plan = Plan { args, config, device, group: group.as_ref() };
    if let Some(group) = &group {
        let batch = plan.config.settings.train.batch_size;
        eprintln!(
            "rank {} of {}: batch {batch} per process, {} per step{}",
            group.rank(),
            group.world_size(),
            batch * group.world_size(),
            if group.rank() == 0 { "" } else { "; rank 0 shows the run and writes its directory" }
        );
        if group.rank() != 0 {
            return run_in(&plan, sources, None)
                .with_context(|| format!("rank {} of {}", group.rank(), group.world_size()));
        }
    }
    let name = args.run.name.clone().unwrap_or_else(|| format!("reproduce-{}", crate::run::utc_stamp()));
    let run_dir = run_dir::claim(&args.run.runs_dir, &name, args.run.overwrite)?;
    let result = plan.config.write(run_dir.path()).and_then(|()| run_in(&plan, sources, Some(&run_dir)));
    if result.is_err() {
        run_dir::remove_unstarted(run_dir);
    }
    result
}

/// The four tasks, in the run directory claimed for them (none on the other ranks of a data-parallel run, which
/// show and write nothing).
fn run_in(plan: &Plan<'_>, sources: data::Sources, run_dir: Option<&ClaimedRun>) -> Result<()> {
    let (args, settings, device) = (plan.args, &plan.config.settings, plan.device);
    let title = "Reproduction of the notebook";
    let mut transcript = if run_dir.is_some() { Transcript::new(title) } else { Transcript::unshown(title) };

    transcript.heading("Task 1: a BERT sentence encoder, checked against the reference");
    let started = Instant::now();
    let encoder = load_encoder(&args.model.model, device)?;
    let task1 = task1(&encoder, &args.model.model, started, &mut transcript)?;

    transcript.heading("Task 2: one encoder, two heads (sentence classification and NER)");
    let started = Instant::now();
    let loaded = load_data(args, sources, &encoder, settings)?;
    tch::manual_seed(settings.train.seed as i64);
    let precision = args.model.precision.resolve(device);
    let model = build_model(&args.model.model, settings, &loaded.tasks(), precision.precision, device)?;
    transcript.line(&format!("Precision: {} ({})", precision.precision, precision.reason));
    let (task2, mut session) = task2(plan, &model, &loaded, started, &mut transcript)?;

    transcript.heading("Task 3: freezing strategies");
    let table = parameter_table(&model);
    transcript.block(&crate::report::parameter_table_text(&table));

    let processes = plan.group.map_or(1, ProcessGroup::world_size);
    transcript
        .heading(&format!("Task 4: training ({})", crate::run::describe_training(settings, processes, &precision)));
    let task4 = task4(plan, &model, &mut session, run_dir, &precision, &mut transcript)?;

    let Some(run_dir) = run_dir else { return Ok(()) };
    let metrics = Metrics { device: device::describe(device), task1, task2, task3: table, task4 };
    atomic_files::write(&run_dir.path().join("metrics.json"), serde_json::to_string_pretty(&metrics)?.as_bytes())?;
    atomic_files::write(&run_dir.path().join("report.md"), transcript.report().as_bytes())?;
    println!(
        "\nwrote {} and {}",
        run_dir.path().join("report.md").display(),
        run_dir.path().join("metrics.json").display()
    );
    Ok(())
}

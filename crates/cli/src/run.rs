//! What `train` and `reproduce` share: the run's configuration file, Ctrl-C, the model built for the data, and the one
//! training path (a session trained with progress, a resumable state after every epoch, then the checkpoint, records,
//! reports and plots).

use crate::report::progress::{Fanout, ProgressBars};
use crate::report::run_dir::{ClaimedRun, RunDirectory};
use crate::report::transcript::Transcript;
use crate::report::{epoch_line, evaluation_text};
use anyhow::{bail, Context, Result};
use distributed::{GroupConfig, ProcessGroup};
use encoder::{Precision, ResolvedPrecision};
use heads::{MultiTaskConfig, MultiTaskModel};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use trainer::{Fingerprint, ResumeState, RunControl, Session, Settings, Task, TaskData, TrainError, TrainOutcome};

/// The run's configuration file, in its directory.
pub const CONFIG_FILE: &str = "config.json";
/// The resumable state's directory, in the run's directory.
pub const STATE_DIR: &str = "resume";
/// The checkpoint's directory, in the run's directory.
pub const CHECKPOINT_DIR: &str = "checkpoint";

/// A task's data files: the training file, and the validation and test files when given (otherwise drawn from the
/// training file), with how to read them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFiles {
    /// The training examples.
    pub train: PathBuf,
    /// The validation examples (none: a seeded fraction of the training file, `settings.validation_fraction`).
    #[serde(default)]
    pub validation: Option<PathBuf>,
    /// The test examples (none: drawn from the training file, `data.test_size`).
    #[serde(default)]
    pub test: Option<PathBuf>,
    /// Classification: the text column (none: `text`, then `review`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_column: Option<String>,
    /// Classification: the label column (none: `label`, then `sentiment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_column: Option<String>,
    /// NER in JSON lines with integer tags: the tag of each id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_names: Option<Vec<String>>,
}

/// How many test examples are drawn from a training file that comes without a test file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TestSize {
    /// This many examples.
    Count(usize),
    /// This fraction of the examples, in (0, 1).
    Fraction(f64),
}

impl std::str::FromStr for TestSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(count) = s.parse::<usize>() {
            return if count == 0 { Err("--test-size must be at least 1".into()) } else { Ok(Self::Count(count)) };
        }
        match s.parse::<f64>() {
            Ok(fraction) if fraction > 0.0 && fraction < 1.0 => Ok(Self::Fraction(fraction)),
            _ => Err(format!("--test-size `{s}`: expected a count (1000) or a fraction in (0, 1) (0.1)")),
        }
    }
}

impl From<TestSize> for datasets::TestSize {
    fn from(size: TestSize) -> Self {
        match size {
            TestSize::Count(count) => Self::Count(count),
            TestSize::Fraction(fraction) => Self::Fraction(fraction),
        }
    }
}

/// The data of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Sentence classification files.
    #[serde(default)]
    pub classification: Option<TaskFiles>,
    /// NER files.
    #[serde(default)]
    pub ner: Option<TaskFiles>,
    /// Fraction of the training examples to train on (validation and test stay whole).
    pub sample_ratio: f64,
    /// Test examples drawn from a training file that comes without a test file.
    pub test_size: TestSize,
}

/// What a run ran with, for people reading its configuration (ignored when it is read back).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resolved {
    /// The compute precision and why it was chosen.
    pub precision: ResolvedPrecision,
    /// The device.
    pub device: String,
    /// Processes training together; the batch size is per process.
    pub processes: usize,
}

/// A run's `config.json`: everything it was given, read back by `train --config` and `train --resume` (an unknown
/// key is an error naming it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The command that made the run (`train`, `reproduce`).
    pub command: String,
    /// The pretrained model directory.
    pub model: PathBuf,
    /// The requested compute precision (`auto`, `f32`, `bf16`).
    pub precision: Precision,
    /// The data.
    pub data: DataConfig,
    /// The training settings: a recipe with the flags applied.
    pub settings: Settings,
    /// What it ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<Resolved>,
}

impl RunConfig {
    /// Reads a run's configuration (a `config.json`, or a run directory holding one).
    pub fn read(path: &Path) -> Result<Self> {
        let file = if path.is_dir() { path.join(CONFIG_FILE) } else { path.to_path_buf() };
        let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let config: Self =
            serde_json::from_str(&text).with_context(|| format!("{} is not a run configuration", file.display()))?;
        config.settings.validate().map_err(|message| anyhow::anyhow!("{}: {message}", file.display()))?;
        Ok(config)
    }

    /// Writes it into the run's directory (atomically).
    pub fn write(&self, run: &Path) -> Result<()> {
        atomic_files::write(&run.join(CONFIG_FILE), &serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }

    /// What a resumed run must share with the saved one, besides the trainer's settings and the data itself: the
    /// model, the precision it computes in, and how the data files were split and sampled.
    pub fn fingerprint(&self, precision: &ResolvedPrecision) -> Result<Fingerprint> {
        let mut fingerprint = Fingerprint::new();
        fingerprint.insert("model", self.model.display().to_string());
        fingerprint.insert("precision", precision.precision.to_string());
        // The files' paths under `files.` (ranks on other hosts may see them elsewhere; their contents are hashed by
        // the trainer under `data.`).
        fingerprint.add_json("files", &serde_json::to_value(&self.data)?);
        fingerprint.add_json("settings", &serde_json::to_value(&self.settings)?);
        Ok(fingerprint)
    }
}

/// How many times Ctrl-C was pressed while training.
static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);
/// Set at the first Ctrl-C while training: training stops after its current step and saves its state.
static STOP: AtomicBool = AtomicBool::new(false);
/// Whether training is under way (outside it, Ctrl-C aborts at once: there is no step to finish).
static TRAINING: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler (once per process): while training, the first Ctrl-C asks it to stop after the
/// current step and save; a second one, or any outside training, aborts at once.
fn stop_flag() -> &'static AtomicBool {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let installed = ctrlc::set_handler(|| {
            if TRAINING.load(Ordering::SeqCst) && INTERRUPTS.fetch_add(1, Ordering::SeqCst) == 0 {
                STOP.store(true, Ordering::SeqCst);
                eprintln!("\nstopping after the current step and saving the run's state (Ctrl-C again aborts)");
            } else {
                eprintln!("\naborted");
                std::process::exit(130);
            }
        });
        if let Err(error) = installed {
            tracing::warn!("cannot install the Ctrl-C handler ({error}): Ctrl-C will abort without saving");
        }
    });
    &STOP
}

/// A run stopped on request with its state saved: the process exits with 130 (as after Ctrl-C) after saying how to
/// continue it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Interrupted {
    message: String,
}

/// What [`fit`] needs besides the session.
pub struct Fit<'a> {
    /// The pretrained model's directory: the checkpoint takes its tokenizer files.
    pub model_dir: &'a Path,
    /// The settings the session was built from.
    pub settings: &'a Settings,
    /// The run's directory (none on the ranks of a data-parallel run other than 0: they show and write nothing).
    pub run: Option<&'a ClaimedRun>,
    /// The saved state to continue from.
    pub resume: Option<&'a ResumeState>,
    /// What a resumed run must share with this one (the trainer adds its settings and the data's hashes).
    pub fingerprint: Fingerprint,
    /// No progress bars.
    pub quiet: bool,
    /// Save a resumable state after every epoch (and when the run stops), in the run's directory.
    pub save_state: bool,
    /// The command that continues the run after a stop, for the message.
    pub resume_command: String,
    /// Score the test sets before training too.
    pub scores_before: bool,
}

/// The one training path: trains `session` with progress bars, the run directory's records and a resumable state
/// after every epoch, then saves the checkpoint and writes the reports and plots; shows the epochs and the scores
/// before and after through `transcript`. Returns the outcome and where the checkpoint went.
pub fn fit(
    session: &mut Session<'_>,
    model: &MultiTaskModel,
    fit: Fit<'_>,
    transcript: &mut Transcript,
) -> Result<(TrainOutcome, Option<PathBuf>)> {
    let run_path = fit.run.map(ClaimedRun::path);
    let state_dir = run_path.filter(|_| fit.save_state).map(|path| path.join(STATE_DIR));
    let mut records = match (run_path, fit.resume) {
        (Some(path), Some(state)) => {
            let position = state.position();
            Some(RunDirectory::resume(path, position.global_step, state.epochs().len())?)
        }
        (Some(path), None) => Some(RunDirectory::create(path)?),
        (None, _) => None,
    };
    let mut progress = ProgressBars::new(!fit.quiet && run_path.is_some());
    let control = RunControl {
        save_state_to: state_dir.as_deref(),
        resume_from: fit.resume,
        stop: Some(stop_flag()),
        fingerprint: fit.fingerprint,
        skip_scores_before: !fit.scores_before,
    };
    let trained = {
        let mut observers: Vec<&mut dyn trainer::Observer> = vec![&mut progress];
        if let Some(records) = &mut records {
            observers.push(records);
        }
        TRAINING.store(true, Ordering::SeqCst);
        let trained = session.train(&mut Fanout(observers), &control);
        TRAINING.store(false, Ordering::SeqCst);
        trained
    };
    progress.clear();
    let outcome = match trained {
        Ok(outcome) => outcome,
        Err(error @ TrainError::Stopped { .. }) => {
            let message = match &state_dir {
                Some(_) => format!("{error}.\nContinue it with: {}", fit.resume_command),
                None => error.to_string(),
            };
            return Err(Interrupted { message }.into());
        }
        Err(error) => return Err(error.into()),
    };
    if let Some(position) = &outcome.resumed_from {
        transcript.line(&format!(
            "Resumed from the state saved at phase {}, epoch {}, batch {} (optimizer step {}).",
            position.phase + 1,
            position.epoch,
            position.batch,
            position.global_step
        ));
    }
    if let Some(cache) = &outcome.feature_cache {
        let sizes: Vec<String> = cache
            .tasks
            .iter()
            .map(|(task, size)| format!("{} {}", task.title(), trainer::features::describe(*size)))
            .collect();
        transcript.line(&format!(
            "Heads trained on the frozen encoder's features, computed once ({:.1} s; {})",
            cache.seconds,
            sizes.join(", ")
        ));
    }
    transcript.block(&outcome.epochs.iter().map(epoch_line).collect::<Vec<_>>().join("\n"));
    let phases = phase_lines(&outcome);
    if !phases.is_empty() {
        transcript.line(&format!("{phases}\n\nSelection: {}.", outcome.selection));
    }
    if let Some(before) = &outcome.before {
        transcript.line("Metrics before training:");
        transcript.block(&evaluation_text(before));
    }
    transcript.line("Metrics after training:");
    transcript.block(&evaluation_text(&outcome.after));
    let (Some(run_path), Some(records)) = (run_path, records) else { return Ok((outcome, None)) };
    let checkpoint = run_path.join(CHECKPOINT_DIR);
    model.save(&checkpoint, fit.model_dir, Some(fit.settings.strategy))?;
    records.finish(&outcome)?;
    transcript.line(&format!(
        "Training took {:.1} s ({} values trained); evaluation {}{:.1} s after. Intervals are 95% \
         percentile-bootstrap intervals over the test examples (sentences for NER). Plots: `loss.svg`, \
         `scores.svg`{}. Checkpoint: `{CHECKPOINT_DIR}/`.",
        outcome.training_seconds,
        outcome.trainable_parameters,
        outcome.before.as_ref().map_or_else(String::new, |before| format!("{:.1} s before, ", before.seconds)),
        outcome.after.seconds,
        if outcome.after.classification.is_some() { ", `confusion_matrix.svg`" } else { "" },
    ));
    Ok((outcome, Some(checkpoint)))
}

/// Removes the resumable state of the run in `run`, once its checkpoint and reports are written: the run is whole
/// (`train --resume` then says it finished).
pub fn remove_state(run: &ClaimedRun) -> Result<()> {
    let state_dir = run.path().join(STATE_DIR);
    if state_dir.exists() {
        std::fs::remove_dir_all(&state_dir)
            .with_context(|| format!("cannot remove the finished run's state {}", state_dir.display()))?;
    }
    Ok(())
}

/// A line naming the training settings: the recipe, what trains, the mode, epochs, rates, batch, pooling and precision.
pub fn describe_training(settings: &Settings, processes: usize, precision: &ResolvedPrecision) -> String {
    let train = &settings.train;
    let batch = if processes > 1 {
        format!("{} per process x {processes} processes", train.batch_size)
    } else {
        train.batch_size.to_string()
    };
    format!(
        "{} recipe: {}, {} mode, at most {} epochs, lr {} (encoder {}), batch {batch}, {} pooling, precision {}",
        settings.recipe,
        settings.strategy,
        train.mode,
        train.epochs,
        train.learning_rate,
        train.encoder_learning_rate.map_or_else(|| "the same".to_string(), |lr| lr.to_string()),
        settings.pooling,
        precision.precision
    )
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

/// `YYYYMMDD-HHMMSS` in UTC.
pub fn utc_stamp() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!("{:04}{:02}{:02}-{:02}{:02}{:02}", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
}

/// How long a rank of a data-parallel run waits for the others at each gradient sum before it gives up: PyTorch's
/// default. A rank that exits is noticed at once. Forming the group has its own limit: `BERTMT_RENDEZVOUS_TIMEOUT`
/// seconds, 10 minutes when unset (`distributed::GroupConfig::from_vars`).
pub const COLLECTIVE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Joins the data-parallel group described by torchrun's variables (`WORLD_SIZE`, `RANK`, `MASTER_ADDR`, ...), if
/// they are set: every rank then runs the same command and trains its share of each batch, and only rank 0 shows
/// and writes the run. While the ranks wait for one another, each prints every 30 s who is missing and how long it
/// will still wait.
pub fn join_group(device: tch::Device) -> Result<Option<ProcessGroup>> {
    let group_config = GroupConfig::from_vars(|name| std::env::var(name).ok(), COLLECTIVE_TIMEOUT)?;
    if group_config.is_some() && device != tch::Device::Cpu {
        bail!(
            "training across processes runs on CPU only (the Gloo backend; NCCL for GPUs is not supported yet): \
             pass --device cpu, or unset WORLD_SIZE to train on {} in one process",
            crate::device::describe(device)
        );
    }
    let group = group_config
        .as_ref()
        .map(|config| {
            ProcessGroup::connect_with_progress(config, |progress| eprintln!("{progress}")).map_err(|error| {
                let waited =
                    matches!(&error, distributed::DistributedError::Rendezvous { missing, .. } if !missing.is_empty());
                let context = if waited {
                    format!(
                        "cannot join the data-parallel group ({} sets how many seconds the ranks wait for each other)",
                        distributed::RENDEZVOUS_TIMEOUT_VARIABLE
                    )
                } else {
                    "cannot join the data-parallel group".to_owned()
                };
                anyhow::Error::new(error).context(context)
            })
        })
        .transpose()?;
    if let Some(group) = &group {
        tracing::info!(rank = group.rank(), processes = group.world_size(), "data-parallel run");
    }
    Ok(group)
}

/// The multi-task model on the pretrained encoder `model_dir` with a head per task of `data` (labels from the data),
/// with the settings' pooling, attention dropout and `precision`.
pub(crate) fn build_model(
    model_dir: &Path,
    settings: &Settings,
    data: &TaskData<'_>,
    precision: Precision,
    device: tch::Device,
) -> Result<MultiTaskModel> {
    let labels = |task: Task| data.get(task).map(|d| d.label_names().to_vec()).unwrap_or_default();
    let mut config =
        MultiTaskConfig::for_pretrained(model_dir, labels(Task::Classification), labels(Task::Ner), settings.pooling)?;
    if let Some(dropout) = settings.attention_dropout {
        config.encoder.attention_probs_dropout_prob = dropout;
    }
    config.ner_case_types = settings.ner_case_types;
    let mut model = MultiTaskModel::from_pretrained_config(model_dir, config, device)?;
    model.set_precision(precision)?;
    Ok(model)
}

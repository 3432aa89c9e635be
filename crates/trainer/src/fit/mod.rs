//! A training session: a model, each task's data, a freezing strategy and the loop's settings. It owns the frozen
//! encoder's feature cache, scores any split, and trains: evaluate, train (the phases of separate or combined mode),
//! evaluate again. With validation examples, each epoch is scored on them, the best epoch's weights are kept and
//! training can stop early. After every epoch the run can leave a resumable state, and a run resumed from it ends
//! with the weights an uninterrupted run ends with.

mod batches;
mod data_parallel;
mod phases;
pub mod state;

pub use batches::epoch_batches;

use crate::check::{check_data_fits, warn_if_nothing_to_learn};
use crate::config::{Phase, TrainConfig};
use crate::data::{has_validation, Split, TaskData};
use crate::error::{Result, TrainError};
use crate::evaluate::{score, Evaluation};
use crate::features::{FeatureCache, FeatureCacheReport};
use crate::observer::{EpochRecord, Observer, Stage};
use data_parallel::Ranks;
use datasets::Target;
use distributed::ProcessGroup;
use heads::{FreezeStrategy, MultiTaskModel, ParamGroup};
use phases::{PlannedPhase, Trainer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use state::{Fingerprint, Position, ResumeState, StateRecord, STATE_FORMAT_VERSION};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// How one phase of training went (a task in separate mode, every task in combined mode).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseOutcome {
    /// What trained.
    pub phase: Phase,
    /// Epochs run.
    pub epochs_run: usize,
    /// The epoch whose weights were kept (the best by validation; the last without validation).
    pub kept_epoch: usize,
    /// The kept epoch's validation metric, when there were validation examples.
    pub best_metric: Option<f64>,
    /// Whether early stopping ended the phase before its last epoch.
    pub stopped_early: bool,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct TrainOutcome {
    /// Scores on the test sets before training (none when the run was asked to skip them).
    pub before: Option<Evaluation>,
    /// Scores on the test sets after training (with the kept weights).
    pub after: Evaluation,
    /// Per-epoch records.
    pub epochs: Vec<EpochRecord>,
    /// Per-phase outcomes: epochs run, the kept epoch, early stopping.
    pub phases: Vec<PhaseOutcome>,
    /// How the kept epoch was chosen.
    pub selection: String,
    /// The feature cache, when the encoder was frozen and the cache on.
    pub feature_cache: Option<FeatureCacheReport>,
    /// Values the optimizer updated.
    pub trainable_parameters: i64,
    /// Seconds of training (epochs and validation), over every process that worked on the run.
    pub training_seconds: f64,
    /// Where the run resumed, when it continued a saved state.
    pub resumed_from: Option<Position>,
}

/// The selection rule, as the run records it.
pub const SELECTION_RULE: &str = "after each epoch, the mean over the tasks trained so far of the validation \
     accuracy (classification) and strict micro-F1 (NER); the epoch with the highest value is kept";

/// Whether `strategy` leaves the encoder unchanged (so that its outputs can be cached).
pub fn freezes_encoder(strategy: &FreezeStrategy) -> bool {
    matches!(strategy, FreezeStrategy::None | FreezeStrategy::HeadsOnly)
}

/// How a run saves, resumes and stops.
#[derive(Default)]
pub struct RunControl<'a> {
    /// Where the resumable state is written after every epoch (and when the run stops); `None`: nowhere.
    pub save_state_to: Option<&'a Path>,
    /// A saved state to continue from (read with [`ResumeState::read`]); its fingerprint must match this run's.
    pub resume_from: Option<&'a ResumeState>,
    /// Set it (e.g. on Ctrl-C) to stop after the current optimizer step: the state is saved and training returns
    /// [`TrainError::Stopped`].
    pub stop: Option<&'a AtomicBool>,
    /// Settings of the caller's that a resumed run must share (the trainer adds its own and the data's). Entries
    /// whose keys start with `files.` or are `model` may differ between the ranks of a data-parallel run (paths on
    /// their hosts); every other entry must be the same on every rank.
    pub fingerprint: Fingerprint,
    /// Do not score the test sets before training (a full pass over them, of untrained heads).
    pub skip_scores_before: bool,
}

/// A model, each task's data, what trains and how: scores splits and trains.
pub struct Session<'a> {
    model: &'a MultiTaskModel,
    data: TaskData<'a>,
    strategy: FreezeStrategy,
    config: TrainConfig,
    cache: Option<FeatureCache>,
    group: Option<&'a ProcessGroup>,
}

impl<'a> Session<'a> {
    /// A session over `data` (one task or several, each with a head in `model`), checked before any work: the
    /// settings, the mode against the tasks, early stopping against validation data, and every example against
    /// the model (labels, token ids, lengths).
    pub fn new(
        model: &'a MultiTaskModel,
        data: TaskData<'a>,
        strategy: FreezeStrategy,
        config: TrainConfig,
    ) -> Result<Self> {
        config.validate().map_err(TrainError::InvalidConfig)?;
        if data.is_empty() {
            return Err(TrainError::InvalidConfig("no data: give classification or NER data, or both".into()));
        }
        if let Some(task) = data.tasks().into_iter().find(|&task| !model.has_task(task)) {
            return Err(TrainError::InvalidConfig(format!(
                "the model has no {} head for the {} data",
                task.title(),
                task.title()
            )));
        }
        if config.patience.is_some() && !has_validation(&data) {
            return Err(TrainError::InvalidConfig(
                "early stopping (patience) needs validation examples in every task's data".into(),
            ));
        }
        if matches!(strategy, FreezeStrategy::AllAdaptive { .. })
            && (config.encoder_learning_rate.is_some() || config.layer_decay.is_some())
        {
            return Err(TrainError::InvalidConfig(
                "all_adaptive carries its own learning rates: an encoder learning rate or layer decay does not apply"
                    .into(),
            ));
        }
        check_data_fits(model, data)?;
        Ok(Self { model, data, strategy, config, cache: None, group: None })
    }

    /// The same session as one rank of data-parallel training over `group` (every rank builds the same session
    /// from the same model files, data and settings).
    ///
    /// Every rank starts from rank 0's weights, draws the same global batches of `config.batch_size` examples per
    /// rank (so the global batch is `config.batch_size * group.world_size()`), computes the loss of its own slice of
    /// each, and before each optimizer step the gradients are summed over the ranks, weighted so that the sum is
    /// the gradient of the global batch's mean loss: N ranks with batch `b` train as one process with batch `N * b`
    /// (with dropout off, up to the order of floating-point sums), and all ranks hold the same weights after every
    /// step. Evaluation and validation run whole on every rank; writing results is the caller's job, on one rank. A
    /// peer that fails makes this rank's next collective fail with [`TrainError::Distributed`].
    pub fn in_group(mut self, group: &'a ProcessGroup) -> Self {
        self.group = Some(group);
        self
    }

    /// The model.
    pub fn model(&self) -> &MultiTaskModel {
        self.model
    }

    /// The data.
    pub fn data(&self) -> TaskData<'a> {
        self.data
    }

    /// The settings.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Whether the encoder's outputs are computed once and the heads train on them: the strategy freezes the
    /// encoder and the settings keep the cache on.
    pub fn caches_features(&self) -> bool {
        freezes_encoder(&self.strategy) && self.config.feature_cache
    }

    /// Uses `cache` (built beforehand on the same model and data) for the frozen encoder's outputs.
    pub fn with_feature_cache(mut self, cache: FeatureCache) -> Result<Self> {
        if !freezes_encoder(&self.strategy) {
            return Err(TrainError::InvalidConfig(format!(
                "a feature cache was given but {} trains the encoder: its outputs would go stale",
                self.strategy
            )));
        }
        cache.check_serves(self.data)?;
        self.cache = Some(cache);
        Ok(self)
    }

    /// Runs the frozen encoder once over every example when [`caches_features`](Self::caches_features) and no
    /// cache is there yet; the cache then serves every evaluation and epoch. Returns what it holds.
    pub fn prepare_features(&mut self, observer: &mut dyn Observer) -> Result<Option<&FeatureCacheReport>> {
        if self.cache.is_none() && self.caches_features() {
            observer.on_stage(Stage::CachingFeatures);
            let batch = self.config.batch_size.max(32);
            self.cache = Some(FeatureCache::build(self.model, self.data, batch, self.config.feature_cache_half)?);
        }
        Ok(self.cache.as_ref().map(FeatureCache::report))
    }

    /// Scores every task on its `split` examples (from the feature cache when there is one).
    pub fn evaluate(&self, split: Split) -> Result<Evaluation> {
        score(self.model, self.data, split, self.config.batch_size, self.cache.as_ref())
    }

    /// The fingerprint a resumed run must share: `settings`, the training settings, the strategy, the model's
    /// tasks and labels, and a hash of each task's splits.
    pub fn fingerprint(&self, settings: &Fingerprint) -> Fingerprint {
        let mut fingerprint = settings.clone();
        let train = serde_json::to_value(&self.config).unwrap_or_default();
        fingerprint.extend(Fingerprint::of_json("train", &train));
        fingerprint.insert("strategy", self.strategy.to_string());
        fingerprint.insert("processes", self.group.map_or(1, ProcessGroup::world_size).to_string());
        for (task, dataset) in self.data.iter() {
            fingerprint.insert(format!("data.{task}.labels"), dataset.label_names().join(" "));
            for split in Split::ALL {
                fingerprint.insert(format!("data.{task}.{split}"), split_hash(dataset, split));
            }
        }
        fingerprint
    }

    /// Evaluates, trains and evaluates again, reporting progress to `observer`; with `control`, saves a resumable
    /// state after every epoch, continues a saved one, or stops when asked.
    ///
    /// With validation examples in every task's data ([`datasets::PreparedDataset::hold_out_validation`]), each
    /// epoch is scored on them, the best epoch's weights are restored at the end of each phase, and
    /// `config.patience` stops a phase early. The feature cache is built first when the encoder is frozen.
    pub fn train(&mut self, observer: &mut dyn Observer, control: &RunControl<'_>) -> Result<TrainOutcome> {
        warn_if_nothing_to_learn(self.data);
        let ranks = Ranks { group: self.group };
        let fingerprint = self.fingerprint(&control.fingerprint);
        if let Some(state) = control.resume_from {
            state.check(&fingerprint)?;
        }
        // Ranks that were given other settings or data, or resume from other states, would train apart (or abort in a
        // collective): they stop here, naming the first difference.
        let mut shared = fingerprint.without(|key| key == "model" || key.starts_with("files."));
        let resumed = control.resume_from.map(|state| serde_json::to_string(&state.position()).unwrap_or_default());
        shared.insert("resume.position", resumed.unwrap_or_else(|| "none".into()));
        ranks.check_agreement(&shared)?;
        tch::manual_seed(self.config.seed as i64);
        ranks.broadcast_weights(self.model)?;
        if let Some(state) = control.resume_from {
            for (name, variable) in self.model.named_parameters() {
                state.restore(&format!("{}{name}", state::prefix::MODEL), &variable)?;
            }
            tracing::info!(dir = %state.dir().display(), next = ?state.position(), "resuming");
        }
        let groups = self.strategy.apply(self.model, self.config.learning_rates())?;
        self.prepare_features(observer)?;
        let feature_cache = self.cache.as_ref().map(|c| c.report().clone());
        let record = match control.resume_from {
            Some(state) => StateRecord { fingerprint, ..state.record.clone() },
            None => {
                let before = if control.skip_scores_before {
                    None
                } else {
                    observer.on_stage(Stage::EvaluatingBefore);
                    Some(self.evaluate(Split::Test)?)
                };
                StateRecord {
                    format_version: STATE_FORMAT_VERSION,
                    fingerprint,
                    next: Position { phase: 0, epoch: 1, ..Position::default() },
                    partial_epoch: None,
                    epochs: Vec::new(),
                    phases: Vec::new(),
                    best: None,
                    before,
                    training_seconds: 0.0,
                    optimizer_steps: 0,
                }
            }
        };
        let resumed_from = control.resume_from.map(ResumeState::position);
        let trainable_parameters: i64 = groups.iter().map(ParamGroup::numel).sum();
        let validation = has_validation(&self.data);
        let plan = self.plan();
        let mut trainer = Trainer {
            model: self.model,
            config: &self.config,
            data: self.data,
            cache: self.cache.as_ref(),
            frozen_encoder: freezes_encoder(&self.strategy),
            observer,
            ranks,
            control,
            record,
            started: Instant::now(),
            stop_agreed: false,
            global_step: control.resume_from.map_or(0, |state| state.position().global_step),
            phases: plan.len(),
        };
        if trainable_parameters > 0 {
            let first = trainer.record.next.phase;
            for (index, planned) in plan.iter().enumerate().skip(first) {
                trainer.run_phase(index, planned, &groups, validation, control.resume_from)?;
            }
        } else {
            tracing::warn!(strategy = %self.strategy, "nothing is trainable: skipping training");
        }
        let record = trainer.record;
        let training_seconds = record.training_seconds + trainer.started.elapsed().as_secs_f64();
        let observer = trainer.observer;
        observer.on_stage(Stage::EvaluatingAfter);
        let after = self.evaluate(Split::Test)?;
        Ok(TrainOutcome {
            before: record.before,
            after,
            epochs: record.epochs,
            phases: record.phases,
            selection: SELECTION_RULE.to_string(),
            feature_cache,
            trainable_parameters,
            training_seconds,
            resumed_from,
        })
    }

    /// The phases of the run: each task alone in separate mode (scored with the tasks trained before it), or all
    /// tasks at once.
    fn plan(&self) -> Vec<PlannedPhase> {
        let tasks = self.data.tasks();
        Phase::plan(self.config.mode, &tasks)
            .into_iter()
            .map(|phase| {
                let trains = match phase {
                    Phase::One(task) => vec![task],
                    Phase::Combined => tasks.clone(),
                };
                let last = trains.iter().filter_map(|t| tasks.iter().position(|x| x == t)).max().unwrap_or(0);
                PlannedPhase { phase, trains, scored: tasks[..=last].to_vec() }
            })
            .collect()
    }
}

/// A stable hash (SHA-256, first 16 hex digits) of a split of a dataset: its example indices with their token ids
/// and targets.
fn split_hash(dataset: &datasets::PreparedDataset, split: Split) -> String {
    let mut hasher = Sha256::new();
    for &index in split.of(dataset) {
        hasher.update((index as u64).to_le_bytes());
        if let Some(example) = dataset.examples().get(index) {
            hasher.update((example.input_ids.len() as u64).to_le_bytes());
            for id in &example.input_ids {
                hasher.update(id.to_le_bytes());
            }
            match &example.target {
                Target::Class(class) => hasher.update(class.to_le_bytes()),
                Target::Tokens(targets) => {
                    for label in &targets.word_labels {
                        hasher.update(label.to_le_bytes());
                    }
                }
            }
        }
    }
    hasher.finalize().iter().take(8).map(|byte| format!("{byte:02x}")).collect()
}

/// Evaluates, trains with `strategy` and evaluates again (a [`Session`] without saved states), reporting progress
/// to `observer`. `cache`: encoder features built beforehand (e.g. to score the untrained model).
pub fn train_and_evaluate(
    model: &MultiTaskModel,
    strategy: &FreezeStrategy,
    data: TaskData<'_>,
    config: &TrainConfig,
    cache: Option<FeatureCache>,
    observer: &mut dyn Observer,
) -> Result<TrainOutcome> {
    let mut session = Session::new(model, data, *strategy, config.clone())?;
    if let Some(cache) = cache {
        session = session.with_feature_cache(cache)?;
    }
    session.train(observer, &RunControl::default())
}

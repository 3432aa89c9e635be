//! The training loop of the notebook's Task 4: evaluate, train (separate or combined), evaluate again; with
//! validation examples, each epoch is scored on them, the best epoch's weights are kept and training can stop early.

mod batches;
mod data_parallel;
mod phases;

pub use batches::separate_epoch_batches;

use crate::check::{check_data_fits, warn_if_nothing_to_learn};
use crate::config::{Mode, Task, TrainConfig};
use crate::error::{Result, TrainError};
use crate::evaluate::{evaluate_classification, evaluate_ner, Backbone, ClassificationEvaluation, NerEvaluation};
use crate::features::{FeatureCache, FeatureCacheReport};
use crate::observer::{EpochRecord, Observer, Stage};
use data_parallel::Ranks;
use datasets::PreparedDataset;
use distributed::ProcessGroup;
use heads::{FreezeStrategy, MultiTaskModel, ParamGroup};
use phases::{Phase, Trainer};
use serde::Serialize;
use std::time::Instant;

/// The two tasks' data; either may be absent.
#[derive(Clone, Copy)]
pub struct TaskData<'a> {
    /// Sentence classification examples with their train/validation/test split.
    pub classification: Option<&'a PreparedDataset>,
    /// NER examples with their train/validation/test split.
    pub ner: Option<&'a PreparedDataset>,
}

impl<'a> TaskData<'a> {
    /// The data of `task`.
    pub fn get(&self, task: Task) -> Option<&'a PreparedDataset> {
        match task {
            Task::Classification => self.classification,
            Task::Ner => self.ner,
        }
    }

    /// Whether every present task has validation examples (and at least one task is present).
    pub fn has_validation(&self) -> bool {
        let present: Vec<&PreparedDataset> = Task::BOTH.iter().filter_map(|&task| self.get(task)).collect();
        !present.is_empty() && present.iter().all(|d| !d.validation().is_empty())
    }
}

/// Which examples to score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The validation examples (held out of training).
    Validation,
    /// The test examples.
    Test,
}

impl Split {
    /// The example indices of this split of `data`.
    pub fn of(self, data: &PreparedDataset) -> &[usize] {
        match self {
            Self::Validation => data.validation(),
            Self::Test => data.test(),
        }
    }
}

/// Scores of both tasks at one point in time.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Classification scores.
    pub classification: Option<ClassificationEvaluation>,
    /// NER scores.
    pub ner: Option<NerEvaluation>,
    /// Seconds the evaluation took.
    pub seconds: f64,
}

/// How one phase of training went (a task in separate mode, both in combined mode).
#[derive(Debug, Clone, Serialize)]
pub struct PhaseOutcome {
    /// `classification`, `ner` or `combined`.
    pub phase: String,
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
    /// Scores on the test sets before training.
    pub before: Evaluation,
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
    /// Seconds of training (epochs and validation).
    pub training_seconds: f64,
}

/// The selection rule, as the run records it.
pub const SELECTION_RULE: &str = "after each epoch, the mean over the tasks trained so far of the validation \
     accuracy (classification) and strict micro-F1 (NER); the epoch with the highest value is kept";

/// Whether `strategy` leaves the encoder unchanged (so that its outputs can be cached).
pub fn freezes_encoder(strategy: &FreezeStrategy) -> bool {
    matches!(strategy, FreezeStrategy::None | FreezeStrategy::HeadsOnly)
}

/// Evaluates, trains with `strategy` and evaluates again, reporting progress to `observer`.
///
/// `cache`: encoder features built beforehand (e.g. to score the untrained model); with a frozen encoder and the
/// feature cache on, one is built here when none is given. With validation examples in every task's data
/// ([`PreparedDataset::hold_out_validation`]), each epoch is scored on them, the best epoch's weights are restored
/// at the end of each phase, and `config.patience` stops a phase early.
pub fn train_and_evaluate(
    model: &MultiTaskModel,
    strategy: &FreezeStrategy,
    data: TaskData<'_>,
    config: &TrainConfig,
    cache: Option<FeatureCache>,
    observer: &mut dyn Observer,
) -> Result<TrainOutcome> {
    run(model, strategy, data, config, cache, observer, Ranks { group: None })
}

/// [`train_and_evaluate`] as one rank of data-parallel training over `group` (every rank calls it with the same
/// model files, data and configuration).
///
/// Every rank starts from rank 0's weights, draws the same global batches of `config.batch_size` examples per rank
/// (so the global batch is `config.batch_size * group.world_size()`), computes the loss of its own slice of each,
/// and before each optimizer step the gradients are summed over the ranks, weighted so that the sum is the
/// gradient of the global batch's mean loss: N ranks with batch `b` train as one process with batch `N * b` (with
/// dropout off, up to the order of floating-point sums), and all ranks hold the same weights after every step.
/// Evaluation and validation run whole on every rank (they give the same scores everywhere); writing results is
/// the caller's job, on one rank. A peer that fails makes this rank's next collective fail with
/// [`TrainError::Distributed`] (at once when it exits, after the group's timeout when it hangs).
pub fn train_and_evaluate_in_group(
    model: &MultiTaskModel,
    strategy: &FreezeStrategy,
    data: TaskData<'_>,
    config: &TrainConfig,
    cache: Option<FeatureCache>,
    observer: &mut dyn Observer,
    group: &ProcessGroup,
) -> Result<TrainOutcome> {
    run(model, strategy, data, config, cache, observer, Ranks { group: Some(group) })
}

fn run(
    model: &MultiTaskModel,
    strategy: &FreezeStrategy,
    data: TaskData<'_>,
    config: &TrainConfig,
    cache: Option<FeatureCache>,
    observer: &mut dyn Observer,
    ranks: Ranks<'_>,
) -> Result<TrainOutcome> {
    config.validate().map_err(TrainError::InvalidConfig)?;
    if data.classification.is_none() && data.ner.is_none() {
        return Err(TrainError::InvalidConfig("no data: give classification or NER data, or both".into()));
    }
    if config.mode == Mode::Combined && (data.classification.is_none() || data.ner.is_none()) {
        return Err(TrainError::InvalidConfig("combined mode needs both classification and NER data".into()));
    }
    let validation = data.has_validation();
    if config.patience.is_some() && !validation {
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
    warn_if_nothing_to_learn(data);
    let frozen_encoder = freezes_encoder(strategy);
    if let Some(given) = &cache {
        if !frozen_encoder {
            return Err(TrainError::InvalidConfig(format!(
                "a feature cache was given but {strategy} trains the encoder: its outputs would go stale"
            )));
        }
        given.check_serves(data)?;
    }
    tch::manual_seed(config.seed as i64);
    ranks.broadcast_weights(model)?;
    let groups = strategy.apply(model, config.learning_rates())?;
    let cache = match cache {
        Some(cache) => Some(cache),
        None if frozen_encoder && config.feature_cache => {
            observer.on_stage(Stage::CachingFeatures);
            Some(FeatureCache::build(model, data, config.batch_size.max(32), config.feature_cache_half)?)
        }
        None => None,
    };
    let feature_cache = cache.as_ref().map(|c| c.report().clone());

    observer.on_stage(Stage::EvaluatingBefore);
    let before = score(model, data, Split::Test, config.batch_size, cache.as_ref())?;
    let trainable_parameters: i64 = groups.iter().map(ParamGroup::numel).sum();
    let started = Instant::now();
    let mut trainer = Trainer { model, config, cache: cache.as_ref(), frozen_encoder, observer, global_step: 0, ranks };
    let mut epochs = Vec::new();
    let mut phases = Vec::new();
    if trainable_parameters > 0 {
        let plan: Vec<Phase> = match config.mode {
            Mode::Separate => {
                let present: Vec<Task> = Task::BOTH.into_iter().filter(|&t| data.get(t).is_some()).collect();
                present
                    .iter()
                    .enumerate()
                    .map(|(k, &task)| Phase { trains: Some(task), scored: present[..=k].to_vec() })
                    .collect()
            }
            Mode::Combined => vec![Phase { trains: None, scored: Task::BOTH.to_vec() }],
        };
        for phase in plan {
            let (outcome, records) = trainer.run_phase(&phase, &groups, data, validation)?;
            epochs.extend(records);
            phases.push(outcome);
        }
    } else {
        tracing::warn!(strategy = %strategy, "nothing is trainable: skipping training");
    }
    let training_seconds = started.elapsed().as_secs_f64();

    observer.on_stage(Stage::EvaluatingAfter);
    let after = score(model, data, Split::Test, config.batch_size, cache.as_ref())?;
    Ok(TrainOutcome {
        before,
        after,
        epochs,
        phases,
        selection: SELECTION_RULE.to_string(),
        feature_cache,
        trainable_parameters,
        training_seconds,
    })
}

/// Scores both tasks on their `split` examples, in batches of at least 32 (`batch_size` if larger): from the
/// cached features when `cache` is given (built on the same model and data), else running the encoder.
pub fn evaluate(
    model: &MultiTaskModel,
    data: TaskData<'_>,
    split: Split,
    batch_size: usize,
    cache: Option<&FeatureCache>,
) -> Result<Evaluation> {
    check_data_fits(model, data)?;
    if let Some(cache) = cache {
        cache.check_serves(data)?;
    }
    score(model, data, split, batch_size, cache)
}

/// [`evaluate`] with a cache already checked against `data`.
pub(super) fn score(
    model: &MultiTaskModel,
    data: TaskData<'_>,
    split: Split,
    batch_size: usize,
    cache: Option<&FeatureCache>,
) -> Result<Evaluation> {
    let started = Instant::now();
    let batch = batch_size.max(32);
    let classification = data
        .classification
        .map(|d| {
            let features = cache.and_then(|c| c.classification.as_ref());
            evaluate_classification(model, d, split.of(d), batch, features.map_or(Backbone::Live, Backbone::Cached))
        })
        .transpose()?;
    let ner = data
        .ner
        .map(|d| {
            let features = cache.and_then(|c| c.ner.as_ref());
            evaluate_ner(model, d, split.of(d), batch, features.map_or(Backbone::Live, Backbone::Cached))
        })
        .transpose()?;
    Ok(Evaluation { classification, ner, seconds: started.elapsed().as_secs_f64() })
}

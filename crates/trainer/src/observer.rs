//! What training reports as it goes: typed records for each optimizer step and epoch, and progress events, handed
//! to an [`Observer`]. The loop prints, draws and writes nothing itself; a command-line tool renders these as
//! progress bars, log files and plots.

use crate::config::Phase;
use serde::{Deserialize, Serialize};

/// A stage of a run that takes time without being an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Running the frozen encoder once over every example.
    CachingFeatures,
    /// Scoring the test sets before training.
    EvaluatingBefore,
    /// Scoring the validation sets after an epoch.
    Validating,
    /// Scoring the test sets after training.
    EvaluatingAfter,
    /// Saving the resumable state after an epoch.
    SavingState,
}

/// An epoch about to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochStart {
    /// What trains: one task (`classification`, `ner`) or all at once (`combined`).
    pub phase: Phase,
    /// 1-based epoch.
    pub epoch: usize,
    /// The most epochs of the phase.
    pub epochs: usize,
    /// Batches in this epoch.
    pub batches: usize,
}

/// One optimizer step, for logs and loss curves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    /// What trains: one task (`classification`, `ner`) or all at once (`combined`).
    pub phase: Phase,
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based step within the epoch.
    pub step: usize,
    /// Global step, over all epochs and tasks.
    pub global_step: usize,
    /// The loss of the step's batches (combined: the weighted sum over the tasks).
    pub loss: f64,
    /// Learning-rate factor of the schedule.
    pub lr_factor: f64,
}

/// Validation scores after an epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidationScores {
    /// Classification accuracy on the validation examples (when classification has been trained so far).
    pub classification_accuracy: Option<f64>,
    /// NER strict micro-F1 on the validation sentences (when NER has been trained so far).
    pub ner_f1: Option<f64>,
    /// The selection metric: the mean of the scores above.
    pub metric: f64,
    /// Whether this is the best epoch of the phase so far (its weights are kept).
    pub best: bool,
    /// Seconds the validation took.
    pub seconds: f64,
}

/// Where an epoch's training time went (seconds, summed over its batches; on CUDA the kernels run asynchronously,
/// so the split is only indicative there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochTiming {
    /// Building batches, the forward pass and the loss.
    pub forward: f64,
    /// The backward pass.
    pub backward: f64,
    /// Clipping, the optimizer update and clearing the gradients.
    pub optimizer: f64,
}

/// One epoch of one phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochRecord {
    /// What trains: one task (`classification`, `ner`) or all at once (`combined`).
    pub phase: Phase,
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean loss of the epoch's optimizer steps.
    pub mean_loss: f64,
    /// Batches (a step takes `gradient_accumulation` of them).
    #[serde(alias = "steps")]
    pub batches: usize,
    /// Examples seen.
    pub examples: usize,
    /// Seconds of training (validation not included).
    pub seconds: f64,
    /// How those seconds split into forward, backward and optimizer.
    pub timing: EpochTiming,
    /// Whether the encoder ran (false: heads trained on cached features).
    pub cached: bool,
    /// Scores on the validation examples after the epoch, when there are some.
    pub validation: Option<ValidationScores>,
}

/// Receives progress as training goes. Every method has an empty default.
pub trait Observer {
    /// A stage starts (the previous one, if any, is over).
    fn on_stage(&mut self, _stage: Stage) {}
    /// An epoch starts.
    fn on_epoch_start(&mut self, _start: &EpochStart) {}
    /// A batch was trained on: its loss and its examples.
    fn on_batch(&mut self, _loss: f64, _examples: usize) {}
    /// After each optimizer step.
    fn on_step(&mut self, _record: &StepRecord) {}
    /// After each epoch (and its validation).
    fn on_epoch(&mut self, _record: &EpochRecord) {}
}

/// An observer that ignores everything.
pub struct NoObserver;
impl Observer for NoObserver {}

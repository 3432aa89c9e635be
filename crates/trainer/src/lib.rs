//! The multi-task training loop of the notebook's Task 4, on a [`heads::MultiTaskModel`], for one task or several.
//!
//! A [`Session`] holds a model, each task's data ([`TaskData`]), a [`heads::FreezeStrategy`] and the loop's
//! [`TrainConfig`]: it scores any split, and [`Session::train`] scores the test examples, trains in
//! [`Mode::Separate`] or [`Mode::Combined`] mode, and scores them again. With validation examples it keeps the best
//! epoch and stops early ([`TrainConfig::patience`]). With a frozen encoder, the encoder runs once and the heads
//! train on its cached outputs ([`features`]). After every epoch a run can leave a resumable state
//! ([`RunControl`], [`ResumeState`]); a run resumed from it ends with the weights of an uninterrupted run.
//! [`Recipe`] names complete sets of settings (`notebook`, `finetune`);
//!
//! The crate computes and reports through an [`Observer`] (typed step, epoch and stage records); it prints, draws
//! and writes no files.

mod check;
pub mod config;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod features;
pub mod fit;
pub mod observer;
pub mod optim;

pub use config::{Mode, OptimizerKind, Overrides, Phase, Recipe, Schedule, Settings, Task, TrainConfig};
pub use data::{has_validation, Split, TaskData};
pub use error::{Result, TrainError};
pub use evaluate::{evaluate, ClassificationEvaluation, Evaluation, NerEvaluation};
pub use features::{FeatureCache, FeatureCacheReport};
pub use fit::state::{Fingerprint, Position, ResumeState};
pub use fit::{
    epoch_batches, freezes_encoder, train_and_evaluate, PhaseOutcome, RunControl, Session, TrainOutcome, SELECTION_RULE,
};
pub use heads::PerTask;
pub use observer::{EpochRecord, EpochStart, EpochTiming, NoObserver, Observer, Stage, StepRecord, ValidationScores};
pub use optim::Adam;

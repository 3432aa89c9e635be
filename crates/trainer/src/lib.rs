//! The multi-task training loop of the notebook's Task 4, on a [`heads::MultiTaskModel`].
//!
//! [`train_and_evaluate`] scores both tasks on their held-out examples, trains with a
//! [`heads::FreezeStrategy`] in [`Mode::Separate`] or [`Mode::Combined`] mode, and scores them again. With
//! validation examples it keeps the best epoch and stops early ([`TrainConfig::patience`]). With a frozen encoder,
//! the encoder runs once and the heads train on its cached outputs ([`features`]). [`Recipe`] names complete sets
//! of settings (`notebook`, `finetune`).
//!
//! The crate computes and reports through an [`Observer`] (typed step, epoch and stage records); it prints, draws
//! and writes no files.

mod check;
pub mod config;
pub mod error;
pub mod evaluate;
pub mod features;
pub mod fit;
pub mod observer;
pub mod optim;

pub use config::{Mode, OptimizerKind, Recipe, RecipeSettings, Schedule, Task, TrainConfig};
pub use error::{Result, TrainError};
pub use evaluate::{ClassificationEvaluation, NerEvaluation};
pub use features::{FeatureCache, FeatureCacheReport};
pub use fit::{
    evaluate, freezes_encoder, separate_epoch_batches, train_and_evaluate, train_and_evaluate_in_group, Evaluation,
    PhaseOutcome, Split, TaskData, TrainOutcome, SELECTION_RULE,
};
pub use observer::{EpochRecord, EpochStart, EpochTiming, NoObserver, Observer, Stage, StepRecord, ValidationScores};
pub use optim::Adam;

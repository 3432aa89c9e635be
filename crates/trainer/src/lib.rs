//! The multi-task training loop of the notebook's Task 4, on a [`heads::MultiTaskModel`].
//!
//! [`train_and_evaluate`] scores both tasks on their held-out examples, trains with a
//! [`heads::FreezeStrategy`] in [`Mode::Separate`] or [`Mode::Combined`] mode, and scores them again. With a frozen
//! encoder, the encoder runs once and the heads train on its cached outputs ([`features`]).

pub mod config;
pub mod error;
pub mod evaluate;
pub mod features;
pub mod fit;
pub mod optim;
pub mod plots;
pub mod run_dir;

pub use config::{Mode, OptimizerKind, Schedule, Task, TrainConfig};
pub use error::{Result, TrainError};
pub use evaluate::{ClassificationEvaluation, NerEvaluation};
pub use fit::{
    evaluate, freezes_encoder, train_and_evaluate, EpochRecord, Evaluation, FeatureCache, FeatureCacheReport,
    NoObserver, Observer, StepRecord, TaskData, TrainOutcome,
};
pub use optim::Adam;
pub use run_dir::RunDirectory;

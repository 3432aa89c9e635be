//! The error type of this crate.

use crate::config::Task;

/// Everything that can stop training or evaluation.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The model (encoder or heads) failed.
    #[error(transparent)]
    Model(#[from] heads::HeadsError),
    /// The encoder failed.
    #[error(transparent)]
    Encoder(#[from] encoder::EncoderError),
    /// A batch could not be built.
    #[error(transparent)]
    Dataset(#[from] datasets::DatasetError),
    /// Scoring failed.
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
    /// libtorch failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// The loss became NaN or infinite.
    #[error("the {task} loss is {value} at epoch {epoch}, step {step}: training stopped (lower the learning rate, or check the data)")]
    NonFiniteLoss {
        /// The task whose loss broke.
        task: Task,
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step: usize,
        /// The loss value.
        value: f64,
    },
    /// The data does not fit the model (labels, token ids, lengths, splits).
    #[error("the {task} data does not fit the model: {message}")]
    DataMismatch {
        /// The task whose data is wrong.
        task: Task,
        /// What is wrong, naming the example.
        message: String,
    },
    /// A collective of data-parallel training failed (a peer exited or hung, or the group broke).
    #[error("data-parallel training stopped: {0}")]
    Distributed(#[from] distributed::DistributedError),
    /// A saved training state cannot be read or written.
    #[error("training state {path}: {message}")]
    State {
        /// The state's directory.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A run cannot resume: a setting or the data differs from the saved run's.
    #[error("cannot resume from {dir}: `{key}` differs (the run had {was}, now {now}); resume with the same settings and data, or start a new run")]
    ResumeMismatch {
        /// The state's directory.
        dir: std::path::PathBuf,
        /// The first setting or data split that differs.
        key: String,
        /// Its value in the saved run.
        was: String,
        /// Its value now.
        now: String,
    },
    /// Training stopped when asked (e.g. Ctrl-C), after an optimizer step.
    #[error("training stopped at phase {}, epoch {}, after batch {} (step {}){}", position.phase + 1, position.epoch, position.batch, position.global_step, state.as_ref().map_or_else(String::new, |dir| format!("; its state is saved in {}", dir.display())))]
    Stopped {
        /// Where training stands.
        position: crate::fit::state::Position,
        /// Where the state was saved, if the run saves states.
        state: Option<std::path::PathBuf>,
    },
    /// A setting that cannot work.
    #[error("invalid training configuration: {0}")]
    InvalidConfig(String),
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, TrainError>;

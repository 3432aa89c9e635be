//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while building, running, freezing, saving or loading a multi-task model.
#[derive(Debug, thiserror::Error)]
pub enum HeadsError {
    /// An error of the encoder (loading a pretrained directory, running the encoder).
    #[error(transparent)]
    Encoder(#[from] encoder::EncoderError),
    /// An error from libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A checkpoint or export could not be written.
    #[error(transparent)]
    Write(#[from] atomic_files::Error),
    /// A JSON file could not be parsed or written.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A model configuration that cannot be built (no labels, duplicate labels, bad dropout, ...).
    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),
    /// The model has no head for a task (it was trained without that task's data).
    #[error("the model has no {} head: it was trained without {} data", task.title(), task.title())]
    NoHead {
        /// The task asked for.
        task: crate::task::Task,
    },
    /// An input the model cannot take (wrong rank or width, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A freezing strategy that cannot be parsed or applied to this model.
    #[error("invalid freezing strategy: {0}")]
    InvalidStrategy(String),
    /// A directory is not a checkpoint: it is missing, or lacks a file.
    #[error("{dir} is not a checkpoint: missing {what}")]
    MissingCheckpointFile {
        /// The checkpoint directory.
        dir: PathBuf,
        /// What is missing.
        what: String,
    },
    /// A checkpoint written by another format version.
    #[error("{path}: checkpoint format version {found} is not supported (this build reads version {expected})")]
    UnsupportedFormat {
        /// The `checkpoint.json`.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// A weight file that cannot be read as safetensors (truncated, garbled, unsupported dtype).
    #[error("{file}: cannot read the weights: {message}")]
    InvalidWeights {
        /// The weight file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A text could not be split into words for tagging ([`pipeline::predict`](crate::pipeline::predict)).
    #[error("cannot split a text into words: {0}")]
    WordSplit(String),
    /// The model's NER labels cannot be read as strict IOB2 tags, so no entity can be decoded
    /// ([`pipeline::predict`](crate::pipeline::predict)).
    #[error("the model's NER labels are not IOB2 tags: {0}")]
    NerLabels(metrics::MetricsError),
    /// The model's outputs do not match its configuration (e.g. another number of class probabilities than
    /// classification labels).
    #[error("unexpected model output: {0}")]
    ModelOutput(String),
    /// A tokenizer directory has neither `tokenizer.json` nor `vocab.txt`.
    #[error("{dir} has no tokenizer.json or vocab.txt to copy into the checkpoint")]
    MissingTokenizer {
        /// The tokenizer directory.
        dir: PathBuf,
    },
}

impl HeadsError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, HeadsError>;

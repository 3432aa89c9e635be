//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running the encoder.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A model directory lacks a file it needs.
    #[error("{dir} has no {what}: expected a Hugging Face BERT directory (config.json, model.safetensors or pytorch_model.bin, tokenizer.json or vocab.txt)")]
    MissingFile {
        /// The model directory.
        dir: PathBuf,
        /// What is missing.
        what: String,
    },
    /// `config.json` is not valid.
    #[error("invalid model configuration {path}: {message}")]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A weight file lacks a tensor the model needs.
    #[error("{file}: missing tensor `{name}` (expected shape {expected:?})")]
    MissingTensor {
        /// The weight file.
        file: PathBuf,
        /// The Hugging Face name of the tensor.
        name: String,
        /// The shape the model needs.
        expected: Vec<i64>,
    },
    /// A tensor has another shape than the configuration implies.
    #[error("{file}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The weight file.
        file: PathBuf,
        /// The Hugging Face name of the tensor.
        name: String,
        /// The shape the model needs.
        expected: Vec<i64>,
        /// The shape in the file.
        found: Vec<i64>,
    },
    /// A weight file holds encoder tensors the model does not know.
    #[error("{file}: unexpected tensors {names:?} (not part of a BERT encoder with this configuration)")]
    UnexpectedTensors {
        /// The weight file.
        file: PathBuf,
        /// Their names, as in the file.
        names: Vec<String>,
    },
    /// The tokenizer could not be built or failed on an input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// An input the encoder cannot take (empty batch, bad mask rank, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The model gave NaN or infinite vectors (its weights or configuration are damaged).
    #[error("the model produced NaN or infinite vectors for {count} of {total} texts (first: text {}): its weights or its config.json (e.g. layer_norm_eps) are damaged", first + 1)]
    NonFinite {
        /// Texts whose vectors are not finite.
        count: usize,
        /// Texts embedded.
        total: usize,
        /// The first of them (0-based).
        first: usize,
    },
    /// A batch function returned another number of outputs than its batch has rows
    /// ([`run_sorted_batches`](crate::batching::run_sorted_batches)).
    #[error("the batch function returned {found} outputs for a batch of {expected} rows")]
    BatchRows {
        /// The rows of the batch.
        expected: usize,
        /// The outputs returned.
        found: usize,
    },
    /// An error from libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, EncoderError>;

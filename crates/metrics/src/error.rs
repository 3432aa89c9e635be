//! The crate's single error type.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which input a problem was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputSide {
    /// The ground truth (`y_true`).
    YTrue,
    /// The predictions (`y_pred`).
    YPred,
    /// A single list of tag sequences given to [`crate::extract_entities`].
    Sequences,
}

impl fmt::Display for InputSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputSide::YTrue => "y_true",
            InputSide::YPred => "y_pred",
            InputSide::Sequences => "sequences",
        })
    }
}

/// Why a tag was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidTagReason {
    /// The tag is the empty string.
    Empty,
    /// The first character is not one of seqeval's prefixes (`I O B E S U L`).
    UnknownPrefix,
    /// The prefix exists but the strict scheme does not allow it (e.g. `S-` in IOB2).
    PrefixNotInScheme {
        /// The scheme the tag was checked against.
        scheme: crate::Scheme,
    },
    /// Default (conlleval) mode: the tag is neither `O`, `B`, `I`, `E`, `S`
    /// nor starts with `B-`, `I-`, `E-`, `S-` (seqeval warns "seems not to be NE tag").
    NotAnEntityTag,
}

impl fmt::Display for InvalidTagReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidTagReason::Empty => f.write_str("empty tag"),
            InvalidTagReason::UnknownPrefix => f.write_str("unknown prefix (expected one of I, O, B, E, S, U, L)"),
            InvalidTagReason::PrefixNotInScheme { scheme } => {
                write!(f, "prefix not allowed in {scheme} (allowed: {})", scheme.allowed_prefixes())
            }
            InvalidTagReason::NotAnEntityTag => {
                f.write_str("not an entity tag (expected O, B, I, E, S or B-/I-/E-/S-TYPE)")
            }
        }
    }
}

/// Everything that can go wrong when computing metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// No samples (classification) or no tokens at all (entities).
    #[error("empty input: there is nothing to score")]
    EmptyInput,
    /// `y_true` and `y_pred` have different numbers of samples or sentences.
    #[error("length mismatch: y_true has {y_true} items but y_pred has {y_pred}")]
    LengthMismatch {
        /// Number of items in `y_true`.
        y_true: usize,
        /// Number of items in `y_pred`.
        y_pred: usize,
    },
    /// One sentence has a different number of tags in `y_true` and `y_pred`.
    #[error(
        "sentence {sentence}: y_true has {y_true} tags but y_pred has {y_pred} (sentences must align token by token)"
    )]
    SentenceLengthMismatch {
        /// Index of the sentence.
        sentence: usize,
        /// Number of tags in the `y_true` sentence.
        y_true: usize,
        /// Number of tags in the `y_pred` sentence.
        y_pred: usize,
    },
    /// A class index is not smaller than the number of class names.
    #[error("{side}[{position}] is class index {index}, but only {num_classes} class names were given")]
    ClassIndexOutOfRange {
        /// Input holding the bad index.
        side: InputSide,
        /// Position of the sample.
        position: usize,
        /// The offending class index.
        index: usize,
        /// Number of class names given.
        num_classes: usize,
    },
    /// A tag cannot be read in the requested mode or scheme.
    #[error("invalid tag {tag:?} in {side}, sentence {sentence}, token {token}: {reason}")]
    InvalidTag {
        /// Input holding the bad tag.
        side: InputSide,
        /// Index of the sentence.
        sentence: usize,
        /// Position of the token in the sentence.
        token: usize,
        /// The tag as given.
        tag: String,
        /// What is wrong with it.
        reason: InvalidTagReason,
    },
    /// A bootstrap option is out of range (see [`crate::BootstrapOptions::validate`]).
    #[error("invalid bootstrap option {field} = {value}: expected {expected}")]
    InvalidBootstrapOption {
        /// Name of the field, e.g. `"level"`.
        field: &'static str,
        /// The value given, as text.
        value: String,
        /// The allowed range.
        expected: &'static str,
    },
    /// The point estimate given to [`crate::bootstrap`] is NaN or infinite.
    #[error("the bootstrap point estimate is not finite")]
    NonFiniteEstimate,
    /// The bootstrap statistic returned NaN or an infinity on one resample.
    #[error("the bootstrap statistic is not finite on resample {resample}")]
    NonFiniteStatistic {
        /// Index of the resample (from 0).
        resample: usize,
    },
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, MetricsError>;

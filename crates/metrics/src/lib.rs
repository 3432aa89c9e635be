//! Evaluation metrics whose numbers and report text agree exactly with
//! scikit-learn (classification) and seqeval (named entities).
//!
//! * [`classification_report`], [`accuracy`], [`confusion_matrix`]: class
//!   indices with caller-given class names, like scikit-learn's
//!   `classification_report(y_true, y_pred, labels=range(n), target_names=names)`.
//! * [`entity_report`], [`extract_entities`], [`token_accuracy`]: tag sequences,
//!   like seqeval's `classification_report` in its default (conlleval) mode
//!   or in strict mode with a [`Scheme`].
//! * [`accuracy_interval`], [`macro_f1_interval`], [`micro_f1_interval`] (with
//!   [`entity_counts_per_sequence`]), [`bootstrap`]: 95% percentile-bootstrap
//!   [`ConfidenceInterval`]s over test examples or sentences (1000 seeded
//!   resamples by default, see [`BootstrapOptions`]); they measure test-set
//!   sampling noise only, not the variance between training runs.
//!
//! Ill-defined values (a division by zero) are 0.0, as both libraries do by
//! default, and are listed in the report's `undefined_metrics`.
//!
//! ```
//! use metrics::{classification_report, entity_report, EntityMode, Scheme};
//!
//! let report = classification_report(&[0, 1, 2, 2, 2], &[0, 0, 2, 2, 1], &["class 0", "class 1", "class 2"])?;
//! assert_eq!(report.accuracy, 0.6);
//! assert!(report.to_string().contains("    accuracy                           0.60         5\n"));
//!
//! let y_true = vec![vec!["B-PER", "I-PER", "O", "B-LOC"]];
//! let y_pred = vec![vec!["B-PER", "I-PER", "O", "I-LOC"]];
//! let strict = entity_report(&y_true, &y_pred, EntityMode::Strict(Scheme::Iob2))?;
//! assert_eq!(strict.micro_avg.recall, 0.5); // the stray I-LOC is no entity
//! let default = entity_report(&y_true, &y_pred, EntityMode::Default)?;
//! assert_eq!(default.micro_avg.recall, 1.0); // conlleval reads I-LOC as a new entity
//! # Ok::<(), metrics::MetricsError>(())
//! ```

#![warn(missing_docs)]

mod bootstrap;
mod classification;
mod entities;
mod error;
mod report;
mod scheme;
mod scores;

pub use bootstrap::{
    accuracy_interval, bootstrap, entity_counts_per_sequence, macro_f1_interval, micro_f1_interval, BootstrapOptions,
    ConfidenceInterval, EntityCounts,
};
pub use classification::{
    accuracy, classification_report, confusion_matrix, ClassScores, ClassificationReport, ConfusionMatrix,
};
pub use entities::{
    entity_report, extract_entities, token_accuracy, Entity, EntityMode, EntityReport, EntityTypeScores,
};
pub use error::{InputSide, InvalidTagReason, MetricsError, Result};
pub use scheme::{Prefix, Scheme, StrictToken};
pub use scores::{AverageScores, Metric, UndefinedMetric, UndefinedReason};

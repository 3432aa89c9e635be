//! Single-label classification metrics matching scikit-learn: accuracy,
//! confusion matrix and `classification_report(labels=range(n), target_names=names)`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{InputSide, MetricsError, Result};
use crate::report::{render_support, ReportTable};
use crate::scores::{
    f1_from_counts, numpy_mean, numpy_weighted_mean, ratio_or_zero, AverageScores, Metric, UndefinedMetric,
    UndefinedReason,
};

/// Scores of one class, as in one row of scikit-learn's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    /// Class name, as given by the caller.
    pub name: String,
    /// `tp / predicted`, 0.0 when nothing was predicted as this class.
    pub precision: f64,
    /// `tp / support`, 0.0 when the class never occurs in `y_true`.
    pub recall: f64,
    /// `2 tp / (support + predicted)`, 0.0 when both are zero.
    pub f1: f64,
    /// Number of samples of this class in `y_true`.
    pub support: usize,
    /// Number of samples predicted as this class.
    pub predicted: usize,
    /// Number of samples of this class predicted correctly.
    pub true_positives: usize,
}

/// Confusion matrix: `counts[true_class][predicted_class]` (scikit-learn's orientation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// One row per true class, one column per predicted class.
    pub counts: Vec<Vec<usize>>,
}

impl ConfusionMatrix {
    /// Number of classes (rows and columns).
    pub fn num_classes(&self) -> usize {
        self.counts.len()
    }

    /// Samples of class `true_class` predicted as `predicted_class`; `None` when out of range.
    pub fn get(&self, true_class: usize, predicted_class: usize) -> Option<usize> {
        self.counts.get(true_class).and_then(|row| row.get(predicted_class)).copied()
    }
}

/// Everything scikit-learn's `classification_report` shows, plus the confusion
/// matrix and the list of ill-defined values that were set to 0.0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// One entry per class name, in the order of the names (absent classes included).
    pub classes: Vec<ClassScores>,
    /// Fraction of samples predicted correctly.
    pub accuracy: f64,
    /// Unweighted mean over all classes.
    pub macro_avg: AverageScores,
    /// Mean over all classes weighted by support.
    pub weighted_avg: AverageScores,
    /// Number of samples.
    pub total_support: usize,
    /// Counts of (true, predicted) class pairs.
    pub confusion_matrix: ConfusionMatrix,
    /// Values scikit-learn warns about (`UndefinedMetricWarning`) and sets to 0.0.
    pub undefined_metrics: Vec<UndefinedMetric>,
}

impl ClassificationReport {
    /// The report text, byte-identical to scikit-learn's
    /// `classification_report(..., digits=digits)`, including its habit of
    /// printing supports as floats (`13.0`) when no prediction is correct.
    pub fn to_text(&self, digits: usize) -> String {
        // scikit-learn quirk: with no correct prediction at all its counts are
        // floats, so every support prints as e.g. "13.0".
        let as_float = self.classes.iter().all(|c| c.true_positives == 0);
        let support = |n| render_support(n, as_float);
        let mut table = ReportTable::new(self.classes.iter().map(|c| c.name.as_str()), digits);
        for class in &self.classes {
            table.row(&class.name, class.precision, class.recall, class.f1, &support(class.support));
        }
        table.blank_line();
        table.accuracy_row(self.accuracy, &support(self.total_support));
        for (name, avg) in [("macro avg", &self.macro_avg), ("weighted avg", &self.weighted_avg)] {
            table.row(name, avg.precision, avg.recall, avg.f1, &support(avg.support));
        }
        table.finish()
    }
}

impl fmt::Display for ClassificationReport {
    /// Same as [`ClassificationReport::to_text`] with 2 digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text(2))
    }
}

/// Checks that both inputs are non-empty and of equal length.
pub(crate) fn check_pair_lengths<T>(y_true: &[T], y_pred: &[T]) -> Result<()> {
    if y_true.len() != y_pred.len() {
        return Err(MetricsError::LengthMismatch { y_true: y_true.len(), y_pred: y_pred.len() });
    }
    if y_true.is_empty() {
        return Err(MetricsError::EmptyInput);
    }
    Ok(())
}

/// Checks that every class index is below `num_classes`.
pub(crate) fn check_indices(labels: &[usize], side: InputSide, num_classes: usize) -> Result<()> {
    match labels.iter().position(|&index| index >= num_classes) {
        None => Ok(()),
        Some(position) => Err(MetricsError::ClassIndexOutOfRange {
            side,
            position,
            index: labels.get(position).copied().unwrap_or_default(),
            num_classes,
        }),
    }
}

/// Fraction of positions where `y_true` and `y_pred` agree (`sklearn.metrics.accuracy_score`).
///
/// Errors on empty input and on a length mismatch.
pub fn accuracy<T: PartialEq>(y_true: &[T], y_pred: &[T]) -> Result<f64> {
    check_pair_lengths(y_true, y_pred)?;
    let correct = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    Ok(ratio_or_zero(correct, y_true.len()))
}

/// Confusion matrix over classes `0..num_classes` (`sklearn.metrics.confusion_matrix` with `labels=range(n)`).
///
/// Errors on empty input, a length mismatch, or an index `>= num_classes`.
pub fn confusion_matrix(y_true: &[usize], y_pred: &[usize], num_classes: usize) -> Result<ConfusionMatrix> {
    check_pair_lengths(y_true, y_pred)?;
    check_indices(y_true, InputSide::YTrue, num_classes)?;
    check_indices(y_pred, InputSide::YPred, num_classes)?;
    let mut counts = vec![vec![0usize; num_classes]; num_classes];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        if let Some(cell) = counts.get_mut(t).and_then(|row| row.get_mut(p)) {
            *cell += 1;
        }
    }
    Ok(ConfusionMatrix { counts })
}

/// Per-class and averaged scores, identical to scikit-learn's
/// `classification_report(y_true, y_pred, labels=range(len(names)), target_names=names)`.
///
/// Labels are indices into `class_names`; every name gets a row even if the
/// class never occurs. Errors on empty input, a length mismatch, or an index
/// out of range.
pub fn classification_report<S: AsRef<str>>(
    y_true: &[usize],
    y_pred: &[usize],
    class_names: &[S],
) -> Result<ClassificationReport> {
    let matrix = confusion_matrix(y_true, y_pred, class_names.len())?;
    let total = y_true.len();

    let mut classes = Vec::with_capacity(class_names.len());
    let mut undefined_metrics = Vec::new();
    for (index, name) in class_names.iter().enumerate() {
        let name = name.as_ref();
        let true_positives = matrix.get(index, index).unwrap_or(0);
        let support: usize = matrix.counts.get(index).map_or(0, |row| row.iter().sum());
        let predicted: usize = matrix.counts.iter().filter_map(|row| row.get(index)).sum();
        let mut flag =
            |metric, reason| undefined_metrics.push(UndefinedMetric { label: name.to_owned(), metric, reason });
        if predicted == 0 {
            flag(Metric::Precision, UndefinedReason::NoPredictedSamples);
        }
        if support == 0 {
            flag(Metric::Recall, UndefinedReason::NoTrueSamples);
        }
        if predicted == 0 && support == 0 {
            flag(Metric::FScore, UndefinedReason::NoTrueNorPredictedSamples);
        }
        classes.push(ClassScores {
            name: name.to_owned(),
            precision: ratio_or_zero(true_positives, predicted),
            recall: ratio_or_zero(true_positives, support),
            f1: f1_from_counts(true_positives, support, predicted),
            support,
            predicted,
            true_positives,
        });
    }

    let correct: usize = (0..class_names.len()).filter_map(|i| matrix.get(i, i)).sum();
    let precisions: Vec<f64> = classes.iter().map(|c| c.precision).collect();
    let recalls: Vec<f64> = classes.iter().map(|c| c.recall).collect();
    let f1s: Vec<f64> = classes.iter().map(|c| c.f1).collect();
    let supports: Vec<usize> = classes.iter().map(|c| c.support).collect();
    // Inputs are non-empty and every index is a valid class, so there is at
    // least one class and the supports sum to `total > 0`.
    let mean = |values: &[f64]| numpy_mean(values).unwrap_or(0.0);
    let weighted = |values: &[f64]| numpy_weighted_mean(values, &supports).unwrap_or(0.0);

    Ok(ClassificationReport {
        accuracy: ratio_or_zero(correct, total),
        macro_avg: AverageScores {
            precision: mean(&precisions),
            recall: mean(&recalls),
            f1: mean(&f1s),
            support: total,
        },
        weighted_avg: AverageScores {
            precision: weighted(&precisions),
            recall: weighted(&recalls),
            f1: weighted(&f1s),
            support: total,
        },
        classes,
        total_support: total,
        confusion_matrix: matrix,
        undefined_metrics,
    })
}

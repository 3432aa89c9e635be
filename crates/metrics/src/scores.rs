//! Score types shared by classification and entity metrics, and the float
//! arithmetic that reproduces numpy / scikit-learn / seqeval bit for bit.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Precision, recall, F1 and support of one average row (micro, macro or weighted).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AverageScores {
    /// Averaged precision.
    pub precision: f64,
    /// Averaged recall.
    pub recall: f64,
    /// Averaged F1 score.
    pub f1: f64,
    /// Total support (number of true samples or entities).
    pub support: usize,
}

/// A metric that can be ill-defined (a division by zero, reported as 0.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Precision: `tp / predicted`.
    Precision,
    /// Recall: `tp / true`.
    Recall,
    /// F1 score.
    FScore,
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Metric::Precision => "Precision",
            Metric::Recall => "Recall",
            Metric::FScore => "F-score",
        })
    }
}

/// Why a metric is ill-defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UndefinedReason {
    /// Nothing was predicted for this label.
    NoPredictedSamples,
    /// The label never occurs in the ground truth.
    NoTrueSamples,
    /// The label occurs neither in the ground truth nor in the predictions.
    NoTrueNorPredictedSamples,
    /// An average over zero labels (no entity type at all).
    NoLabels,
    /// A support-weighted average whose weights sum to zero.
    ZeroTotalSupport,
}

impl fmt::Display for UndefinedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UndefinedReason::NoPredictedSamples => "no predicted samples",
            UndefinedReason::NoTrueSamples => "no true samples",
            UndefinedReason::NoTrueNorPredictedSamples => "no true nor predicted samples",
            UndefinedReason::NoLabels => "no labels to average over",
            UndefinedReason::ZeroTotalSupport => "the total support is zero",
        })
    }
}

/// One ill-defined value that was set to 0.0, as scikit-learn and seqeval do
/// by default (where they emit an `UndefinedMetricWarning`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UndefinedMetric {
    /// Class name, entity type, or average row name (`"micro avg"`, ...).
    pub label: String,
    /// Which metric was ill-defined.
    pub metric: Metric,
    /// Why it was ill-defined.
    pub reason: UndefinedReason,
}

impl fmt::Display for UndefinedMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is ill-defined and being set to 0.0 for {:?}: {}", self.metric, self.label, self.reason)
    }
}

/// `numerator / denominator` as float64, or 0.0 when the denominator is zero
/// (`zero_division="warn"` behaviour).
pub(crate) fn ratio_or_zero(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// F1 from precision and recall as seqeval computes it:
/// `2 * p * r / (p + r)`, 0.0 when `p + r == 0`.
pub(crate) fn f1_from_precision_recall(precision: f64, recall: f64) -> f64 {
    let denominator = precision + recall;
    if denominator == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / denominator
    }
}

/// F1 from counts as scikit-learn (>= 1.4) computes it:
/// `2 * tp / (true + predicted)`, 0.0 when both are zero.
pub(crate) fn f1_from_counts(true_positives: usize, true_count: usize, predicted: usize) -> f64 {
    let denominator = true_count as f64 + predicted as f64;
    if denominator == 0.0 {
        0.0
    } else {
        2.0 * true_positives as f64 / denominator
    }
}

/// Sum of float64 values in exactly the order numpy's `add.reduce` uses
/// (pairwise summation with 8-way unrolled blocks of up to 128 elements).
pub(crate) fn numpy_sum(values: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = values.len();
    if n < 8 {
        values.iter().fold(0.0, |acc, v| acc + v)
    } else if n <= BLOCK {
        let mut partial = [0.0f64; 8];
        partial.copy_from_slice(&values[..8]);
        let unrolled_end = n - n % 8;
        let mut chunks = values[8..unrolled_end].chunks_exact(8);
        for chunk in &mut chunks {
            for (acc, v) in partial.iter_mut().zip(chunk) {
                *acc += v;
            }
        }
        let mut result = ((partial[0] + partial[1]) + (partial[2] + partial[3]))
            + ((partial[4] + partial[5]) + (partial[6] + partial[7]));
        for v in &values[unrolled_end..] {
            result += v;
        }
        result
    } else {
        let mut half = n / 2;
        half -= half % 8;
        let (left, right) = values.split_at(half);
        numpy_sum(left) + numpy_sum(right)
    }
}

/// `np.mean(values)`; `None` for an empty slice (numpy would give NaN).
pub(crate) fn numpy_mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        None
    } else {
        Some(numpy_sum(values) / values.len() as f64)
    }
}

/// `np.average(values, weights=weights)`; `None` when the weights sum to zero.
pub(crate) fn numpy_weighted_mean(values: &[f64], weights: &[usize]) -> Option<f64> {
    let weights_f64: Vec<f64> = weights.iter().map(|&w| w as f64).collect();
    let scale = numpy_sum(&weights_f64);
    if scale == 0.0 {
        return None;
    }
    let products: Vec<f64> = values.iter().zip(&weights_f64).map(|(v, w)| v * w).collect();
    Some(numpy_sum(&products) / scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_sum_small_is_sequential() {
        assert_eq!(numpy_sum(&[]), 0.0);
        assert_eq!(numpy_sum(&[0.1, 0.2, 0.3]), (0.1 + 0.2) + 0.3);
    }

    #[test]
    fn numpy_sum_unrolled_differs_from_sequential_like_numpy() {
        // numpy.sum of 0.1 * 1..=10 gives 5.5 (pairwise); a naive left fold gives 5.500000000000001.
        let values: Vec<f64> = (1..=10).map(|i| 0.1 * i as f64).collect();
        let naive = values.iter().fold(0.0, |acc, v| acc + v);
        assert_eq!(numpy_sum(&values), 5.5);
        assert_ne!(naive, numpy_sum(&values));
    }

    #[test]
    fn f1_formulas() {
        assert_eq!(f1_from_precision_recall(0.0, 0.0), 0.0);
        assert_eq!(f1_from_counts(0, 0, 0), 0.0);
        assert!((f1_from_precision_recall(1.0, 0.5) - 2.0 / 3.0).abs() < 1e-15);
        assert!((f1_from_counts(1, 2, 1) - 2.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn weighted_mean_zero_weights_is_none() {
        assert_eq!(numpy_weighted_mean(&[1.0, 0.5], &[0, 0]), None);
        assert_eq!(numpy_weighted_mean(&[1.0, 0.5], &[1, 3]), Some(2.5 / 4.0));
    }
}

//! Bootstrap confidence intervals for accuracy, macro F1 and entity micro F1.
//!
//! The interval is a nonparametric *percentile bootstrap* over the test set:
//! each of [`BootstrapOptions::resamples`] resamples (1000 by default) draws as
//! many units as there are, uniformly with replacement, and recomputes the
//! statistic on them. The bounds are the `(1 - level) / 2` and
//! `1 - (1 - level) / 2` percentiles of the resampled statistics (2.5% and
//! 97.5% at the default level 0.95), with linear interpolation between order
//! statistics: numpy's default `np.percentile(..., method="linear")`, type 7
//! of Hyndman and Fan. The estimate is the caller's number on the full data.
//!
//! The units are test examples for classification and sentences for named
//! entities (entities of one sentence are not independent, so sentences are
//! resampled whole). The interval therefore measures only the sampling noise
//! of the test set: how much the score could move on another test set of the
//! same size from the same distribution. It says nothing about the variance
//! between training runs (seeds, data order), which needs several trainings.
//!
//! Draws come from a ChaCha8 generator seeded with [`BootstrapOptions::seed`]
//! and bounded without modulo bias (Lemire's method), so one seed gives the
//! same interval on every platform.
//!
//! ```
//! use metrics::{accuracy_interval, BootstrapOptions};
//!
//! let y_true = vec![0, 1, 1, 0, 1, 0, 0, 1, 1, 1];
//! let y_pred = vec![0, 1, 0, 0, 1, 0, 1, 1, 1, 1];
//! let interval = accuracy_interval(&y_true, &y_pred, &BootstrapOptions::default())?;
//! assert_eq!(interval.estimate, 0.8);
//! assert!(interval.low <= 0.8 && 0.8 <= interval.high);
//! # Ok::<(), metrics::MetricsError>(())
//! ```

use std::fmt;
use std::iter::Sum;
use std::ops::Add;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::classification::{accuracy, check_indices, check_pair_lengths};
use crate::entities::{for_each_match, visit_sentence_spans, EntityMode};
use crate::error::{InputSide, MetricsError, Result};
use crate::scores::{f1_from_counts, f1_from_precision_recall, numpy_mean, ratio_or_zero};

/// A point estimate with a bootstrap confidence interval.
///
/// The bounds come from a percentile bootstrap over the test examples (or
/// sentences, for entities): they measure how much the score would move on
/// another test set of the same size, not the variance between training runs.
///
/// Displays as `0.8123 [0.7890, 0.8350]` (4 decimals unless a precision is given, as in `{:.2}`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConfidenceInterval {
    /// The statistic on the full data.
    pub estimate: f64,
    /// Lower bound: the `(1 - level) / 2` percentile of the resampled statistics.
    pub low: f64,
    /// Upper bound: the `1 - (1 - level) / 2` percentile of the resampled statistics.
    pub high: f64,
    /// Confidence level, e.g. 0.95.
    pub level: f64,
    /// Number of bootstrap resamples.
    pub resamples: usize,
}

impl ConfidenceInterval {
    /// `high - low`.
    pub fn width(&self) -> f64 {
        self.high - self.low
    }
}

impl fmt::Display for ConfidenceInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = f.precision().unwrap_or(4);
        write!(f, "{:.digits$} [{:.digits$}, {:.digits$}]", self.estimate, self.low, self.high)
    }
}

/// How a bootstrap interval is computed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapOptions {
    /// Number of resamples; at least 1 (default 1000).
    pub resamples: usize,
    /// Confidence level, strictly between 0 and 1 (default 0.95).
    pub level: f64,
    /// Seed of the ChaCha8 generator (default 0).
    pub seed: u64,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        BootstrapOptions { resamples: 1000, level: 0.95, seed: 0 }
    }
}

impl BootstrapOptions {
    /// Checks that `resamples >= 1` and `0 < level < 1`; the error names the bad field.
    pub fn validate(&self) -> Result<()> {
        if self.resamples == 0 {
            return Err(MetricsError::InvalidBootstrapOption {
                field: "resamples",
                value: self.resamples.to_string(),
                expected: "at least 1",
            });
        }
        if !(self.level > 0.0 && self.level < 1.0) {
            return Err(MetricsError::InvalidBootstrapOption {
                field: "level",
                value: self.level.to_string(),
                expected: "strictly between 0 and 1",
            });
        }
        Ok(())
    }
}

/// A uniform draw from `0..n` (`n > 0`), without modulo bias (Lemire's method).
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    let threshold = n.wrapping_neg() % n;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(n);
        if (product as u64) >= threshold {
            return (product >> 64) as u64;
        }
    }
}

/// The `q`-quantile (`0 <= q <= 1`) of non-empty sorted `values`, interpolated
/// linearly as numpy's default method (including its two-sided `_lerp`).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len().saturating_sub(1)) as f64;
    let below_index = position.floor() as usize;
    let fraction = position - below_index as f64;
    let lower = sorted.get(below_index).copied().unwrap_or(f64::NAN);
    let upper = sorted.get(below_index + 1).copied().unwrap_or(lower);
    let difference = upper - lower;
    if fraction >= 0.5 {
        upper - difference * (1.0 - fraction)
    } else {
        lower + difference * fraction
    }
}

/// Percentile bootstrap interval of a statistic over `units` independent units.
///
/// Each resample draws `units` indices from `0..units` uniformly with
/// replacement and passes them to `statistic`; `estimate` (the statistic on
/// the full data, computed by the caller) is reported as is. The bounds are
/// the `(1 - level) / 2` and `1 - (1 - level) / 2` percentiles of the
/// resampled values, interpolated linearly between order statistics as
/// numpy's default `np.percentile` (Hyndman and Fan's type 7). Draws come
/// from ChaCha8 seeded with `options.seed`, bounded by Lemire's unbiased method.
///
/// Errors on invalid `options`, on `units == 0` ([`MetricsError::EmptyInput`]),
/// and when `estimate` or a resampled statistic is NaN or infinite.
pub fn bootstrap<F: FnMut(&[usize]) -> f64>(
    units: usize,
    estimate: f64,
    options: &BootstrapOptions,
    mut statistic: F,
) -> Result<ConfidenceInterval> {
    options.validate()?;
    if units == 0 {
        return Err(MetricsError::EmptyInput);
    }
    if !estimate.is_finite() {
        return Err(MetricsError::NonFiniteEstimate);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut indices = vec![0usize; units];
    let mut values = Vec::with_capacity(options.resamples);
    for resample in 0..options.resamples {
        for index in &mut indices {
            *index = below(&mut rng, units as u64) as usize;
        }
        let value = statistic(&indices);
        if !value.is_finite() {
            return Err(MetricsError::NonFiniteStatistic { resample });
        }
        values.push(value);
    }
    values.sort_by(f64::total_cmp);
    let tail = (1.0 - options.level) / 2.0;
    Ok(ConfidenceInterval {
        estimate,
        low: percentile(&values, tail),
        high: percentile(&values, 1.0 - tail),
        level: options.level,
        resamples: options.resamples,
    })
}

/// Accuracy with a bootstrap interval over examples; the estimate is [`accuracy`].
///
/// Errors on empty input, a length mismatch, and invalid options.
pub fn accuracy_interval(y_true: &[usize], y_pred: &[usize], options: &BootstrapOptions) -> Result<ConfidenceInterval> {
    let estimate = accuracy(y_true, y_pred)?;
    let correct: Vec<bool> = y_true.iter().zip(y_pred).map(|(t, p)| t == p).collect();
    bootstrap(correct.len(), estimate, options, |indices| {
        let hits = indices.iter().filter(|&&i| correct.get(i).copied().unwrap_or(false)).count();
        ratio_or_zero(hits, indices.len())
    })
}

/// Macro-averaged F1 over classes `0..num_classes` with a bootstrap interval over examples.
///
/// The estimate equals [`crate::classification_report`]'s `macro_avg.f1` with
/// `num_classes` class names: scikit-learn's unweighted mean over all classes,
/// a class with neither true nor predicted samples scoring 0 (`zero_division=0`),
/// on every resample too. So a resample that misses a class entirely scores it
/// 0, which pulls the lower bound down when a class has only a few test
/// examples. Errors on empty input, a length mismatch, an index
/// `>= num_classes`, and invalid options.
pub fn macro_f1_interval(
    y_true: &[usize],
    y_pred: &[usize],
    num_classes: usize,
    options: &BootstrapOptions,
) -> Result<ConfidenceInterval> {
    check_pair_lengths(y_true, y_pred)?;
    check_indices(y_true, InputSide::YTrue, num_classes)?;
    check_indices(y_pred, InputSide::YPred, num_classes)?;
    let mut scorer = MacroF1 { y_true, y_pred, counts: vec![[0; 3]; num_classes], f1s: Vec::new() };
    let all: Vec<usize> = (0..y_true.len()).collect();
    let estimate = scorer.score(&all);
    bootstrap(y_true.len(), estimate, options, |indices| scorer.score(indices))
}

/// Macro F1 of a subset of examples, reusing its buffers.
struct MacroF1<'a> {
    y_true: &'a [usize],
    y_pred: &'a [usize],
    /// Per class: true positives, support, predicted.
    counts: Vec<[usize; 3]>,
    f1s: Vec<f64>,
}

impl MacroF1<'_> {
    fn score(&mut self, indices: &[usize]) -> f64 {
        self.counts.iter_mut().for_each(|c| *c = [0; 3]);
        for &i in indices {
            let (Some(&t), Some(&p)) = (self.y_true.get(i), self.y_pred.get(i)) else { continue };
            if let Some(c) = self.counts.get_mut(t) {
                c[1] += 1;
                if t == p {
                    c[0] += 1;
                }
            }
            if let Some(c) = self.counts.get_mut(p) {
                c[2] += 1;
            }
        }
        self.f1s.clear();
        self.f1s.extend(self.counts.iter().map(|&[tp, support, predicted]| f1_from_counts(tp, support, predicted)));
        numpy_mean(&self.f1s).unwrap_or(0.0)
    }
}

/// Entity counts of one sentence (or, summed, of a corpus).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityCounts {
    /// Predicted entities that exactly match a true one (type, start and end).
    pub true_positives: usize,
    /// Predicted entities.
    pub predicted: usize,
    /// True entities.
    pub gold: usize,
}

impl EntityCounts {
    /// Micro precision `tp / predicted`, 0.0 when nothing was predicted (as seqeval).
    pub fn precision(&self) -> f64 {
        ratio_or_zero(self.true_positives, self.predicted)
    }

    /// Micro recall `tp / gold`, 0.0 when there is no true entity (as seqeval).
    pub fn recall(&self) -> f64 {
        ratio_or_zero(self.true_positives, self.gold)
    }

    /// Micro F1 as seqeval computes it, `2 p r / (p + r)`, 0.0 when `p + r == 0`.
    ///
    /// Mathematically `2 tp / (predicted + gold)`; this form keeps the result
    /// bit-identical to [`crate::entity_report`]'s `micro_avg.f1`.
    pub fn f1(&self) -> f64 {
        f1_from_precision_recall(self.precision(), self.recall())
    }
}

impl Add for EntityCounts {
    type Output = EntityCounts;

    fn add(self, other: EntityCounts) -> EntityCounts {
        EntityCounts {
            true_positives: self.true_positives + other.true_positives,
            predicted: self.predicted + other.predicted,
            gold: self.gold + other.gold,
        }
    }
}

impl Sum for EntityCounts {
    fn sum<I: Iterator<Item = EntityCounts>>(iter: I) -> EntityCounts {
        iter.fold(EntityCounts::default(), Add::add)
    }
}

/// Entity counts of each sentence, read exactly as [`crate::entity_report`] reads them.
///
/// Their sum holds the totals behind the report's micro average. Takes the same
/// inputs and gives the same errors as [`crate::entity_report`].
pub fn entity_counts_per_sequence<T, P, S, R>(y_true: &[T], y_pred: &[P], mode: EntityMode) -> Result<Vec<EntityCounts>>
where
    T: AsRef<[S]>,
    P: AsRef<[R]>,
    S: AsRef<str>,
    R: AsRef<str>,
{
    let mut per_sentence = Vec::with_capacity(y_true.len());
    visit_sentence_spans(y_true, y_pred, mode, |truth, predictions| {
        let mut true_positives = 0;
        for_each_match(truth, predictions, |_| true_positives += 1);
        per_sentence.push(EntityCounts { true_positives, predicted: predictions.len(), gold: truth.len() });
    })?;
    Ok(per_sentence)
}

/// Entity micro F1 with a bootstrap interval over sentences.
///
/// `counts` come from [`entity_counts_per_sequence`]; each resample sums the
/// drawn sentences' counts and scores them with [`EntityCounts::f1`], so the
/// estimate equals [`crate::entity_report`]'s `micro_avg.f1` exactly.
/// Errors on an empty `counts` and invalid options.
pub fn micro_f1_interval(counts: &[EntityCounts], options: &BootstrapOptions) -> Result<ConfidenceInterval> {
    let estimate = counts.iter().copied().sum::<EntityCounts>().f1();
    bootstrap(counts.len(), estimate, options, |indices| {
        indices.iter().filter_map(|&i| counts.get(i).copied()).sum::<EntityCounts>().f1()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear() {
        // np.percentile([1, 2, 3, 4], [0, 25, 50, 100]) and
        // np.percentile(np.arange(1, 11), [2.5, 97.5]).
        let four = [1.0, 2.0, 3.0, 4.0];
        assert_eq!([0.0, 0.25, 0.5, 1.0].map(|q| percentile(&four, q)), [1.0, 1.75, 2.5, 4.0]);
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert!((percentile(&ten, 0.025) - 1.225).abs() < 1e-12);
        assert!((percentile(&ten, 0.975) - 9.775).abs() < 1e-12);
        assert_eq!(percentile(&[0.3], 0.975), 0.3);
        assert_eq!(percentile(&[0.7, 0.7, 0.7], 0.025), 0.7);
    }

    #[test]
    fn below_is_in_range_and_covers_it() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut seen = [0usize; 3];
        for _ in 0..3000 {
            let draw = below(&mut rng, 3) as usize;
            assert!(draw < 3);
            seen[draw] += 1;
        }
        assert!(seen.iter().all(|&n| (900..1100).contains(&n)), "{seen:?}");
        assert_eq!(below(&mut rng, 1), 0);
    }
}

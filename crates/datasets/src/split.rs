//! Seeded train/test splits, sampling and shuffling.
//!
//! Everything here draws from ChaCha8 streams seeded with `(seed, stream)`, through this
//! module's own shuffle and bounded draws, so results depend only on the seed: not on the
//! thread count, nor on the `rand` version.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{DatasetError, Result};

/// Random streams used by this crate, so that one seed gives independent draws.
pub(crate) mod streams {
    /// The train/test permutation.
    pub const SPLIT: u64 = 1;
    /// Sampling the training set.
    pub const SAMPLE_TRAIN: u64 = 2;
    /// Sampling the test set.
    pub const SAMPLE_TEST: u64 = 3;
    /// Holding out the validation set (mixed into the seed).
    pub const VALIDATION: u64 = 0x5A11_DA7E;
    /// Batch shuffling; the epoch is added.
    pub const SHUFFLE: u64 = 1 << 32;
}

/// A ChaCha8 generator for `seed` on stream `stream`.
pub fn seeded_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// A uniform draw from `0..n` (`n > 0`), without modulo bias (Lemire's method).
pub(crate) fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    debug_assert!(n > 0);
    let threshold = n.wrapping_neg() % n;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(n);
        if (product as u64) >= threshold {
            return (product >> 64) as u64;
        }
    }
}

/// Fisher-Yates shuffle.
pub fn shuffle<T>(items: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// How large the test set is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum TestSize {
    /// This many examples (the notebook uses 100).
    Count(usize),
    /// This fraction of the examples, rounded up; in `(0, 1)`.
    Fraction(f64),
}

impl Default for TestSize {
    fn default() -> Self {
        Self::Count(100)
    }
}

/// Example indices of a train/test split, each list in ascending order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Training examples.
    pub train: Vec<usize>,
    /// Test examples.
    pub test: Vec<usize>,
}

/// Splits `0..n` at random (seeded) into train and test indices.
///
/// Fails if the test set would take every example (no training data) or the size is invalid.
///
/// ```
/// use datasets::{train_test_split, TestSize};
/// let split = train_test_split(10, TestSize::Count(3), 42).unwrap();
/// assert_eq!((split.train.len(), split.test.len()), (7, 3));
/// assert_eq!(split, train_test_split(10, TestSize::Count(3), 42).unwrap());
/// assert!(train_test_split(3, TestSize::Count(3), 42).is_err());
/// ```
pub fn train_test_split(n: usize, test_size: TestSize, seed: u64) -> Result<Split> {
    let test = match test_size {
        TestSize::Count(c) => c,
        TestSize::Fraction(f) => {
            if !(f > 0.0 && f < 1.0) {
                return Err(DatasetError::InvalidOption(format!("test fraction {f} is not in (0, 1)")));
            }
            ((n as f64) * f).ceil() as usize
        }
    };
    if test >= n {
        return Err(DatasetError::InvalidOption(format!(
            "a test set of {test} out of {n} examples leaves no training data"
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, &mut seeded_rng(seed, streams::SPLIT));
    let mut test_idx = order[..test].to_vec();
    let mut train_idx = order[test..].to_vec();
    test_idx.sort_unstable();
    train_idx.sort_unstable();
    Ok(Split { train: train_idx, test: test_idx })
}

/// A seeded random subset of `indices` holding `max(1, floor(len * ratio))` of them (as the
/// notebook's `demo_data_loading` does), in their original order; all of them when `ratio` is 1.
///
/// ```
/// use datasets::sample_indices;
/// let picked = sample_indices(&[10, 11, 12, 13], 0.5, 7, 0).unwrap();
/// assert_eq!(picked.len(), 2);
/// assert_eq!(sample_indices(&[10, 11], 0.01, 7, 0).unwrap().len(), 1);
/// ```
pub fn sample_indices(indices: &[usize], ratio: f64, seed: u64, stream: u64) -> Result<Vec<usize>> {
    if !(ratio > 0.0 && ratio <= 1.0) {
        return Err(DatasetError::InvalidOption(format!("sample_ratio {ratio} is not in (0, 1]")));
    }
    if ratio >= 1.0 || indices.is_empty() {
        return Ok(indices.to_vec());
    }
    let keep = (((indices.len() as f64) * ratio).floor() as usize).max(1);
    let mut positions: Vec<usize> = (0..indices.len()).collect();
    let mut rng = seeded_rng(seed, stream);
    // Partial Fisher-Yates: the first `keep` positions become a uniform sample.
    for i in 0..keep {
        let j = i + below(&mut rng, (positions.len() - i) as u64) as usize;
        positions.swap(i, j);
    }
    positions.truncate(keep);
    positions.sort_unstable();
    Ok(positions.into_iter().filter_map(|p| indices.get(p).copied()).collect())
}

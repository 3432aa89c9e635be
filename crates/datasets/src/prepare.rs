//! End to end: load, clean, tokenize (cached), split and sample, as the notebook's
//! `prepare_classification_data`, `prepare_ner_data` and `demo_data_loading` do.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::batch::{pad_batch, PaddedBatch};
use crate::cache::{Cache, CacheReport, CacheStatus, KeyBuilder};
use crate::classification::{load_classification, ClassificationOptions};
use crate::encode::{encode_classification, encode_ner, pad_id, EncodeOptions, EncodeStats, Encoded};
use crate::error::{DatasetError, Result};
use crate::ner::{load_ner, NerOptions};
use crate::report::DropReport;
use crate::split::{sample_indices, streams, train_test_split, TestSize};

/// How to prepare a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareOptions {
    /// Tokenization.
    pub encode: EncodeOptions,
    /// Size of the test split (default 100 examples, as in the notebook).
    pub test_size: TestSize,
    /// Seed of the split and the sampling (default 42).
    pub seed: u64,
    /// Fraction of the train and of the test split to keep, at least one example each
    /// (default 1.0: everything).
    pub sample_ratio: f64,
    /// Where processed datasets are cached (default `data/processed`); `None` disables caching.
    pub cache_dir: Option<PathBuf>,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        Self {
            encode: EncodeOptions::default(),
            test_size: TestSize::default(),
            seed: 42,
            sample_ratio: 1.0,
            cache_dir: Some(PathBuf::from("data/processed")),
        }
    }
}

/// A tokenized dataset: what the cache stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessedDataset {
    examples: Vec<Encoded>,
    label_names: Vec<String>,
    rows_read: u64,
    dropped: Vec<DropReport>,
    stats: EncodeStats,
    pad_id: u32,
}

impl ProcessedDataset {
    /// Examples tokenized elsewhere (another loader, synthetic data): `label_names` indexed by label id, `pad_id` the
    /// padding token. Nothing is checked here (as with a dataset read back from a cache): the trainer checks data
    /// against its model before any work.
    pub fn new(examples: Vec<Encoded>, label_names: Vec<String>, pad_id: u32) -> Self {
        let stats = EncodeStats {
            examples: examples.len() as u64,
            tokens: examples.iter().map(|example| example.len() as u64).sum(),
            ..EncodeStats::default()
        };
        Self { rows_read: examples.len() as u64, examples, label_names, dropped: Vec::new(), stats, pad_id }
    }

    /// The same data with the counts that tokenizing it gathered (as [`crate::encode_classification`] and
    /// [`crate::encode_ner`] return them) instead of the plain counts [`new`](Self::new) makes.
    pub fn with_stats(mut self, stats: EncodeStats) -> Self {
        self.stats = stats;
        self
    }

    /// Tokenized examples, in file order.
    pub fn examples(&self) -> &[Encoded] {
        &self.examples
    }

    /// Class names (classification) or tags (NER), indexed by label id.
    pub fn label_names(&self) -> &[String] {
        &self.label_names
    }

    /// Rows (classification) or token rows (NER) read from the file.
    pub fn rows_read(&self) -> u64 {
        self.rows_read
    }

    /// What loading dropped, and why (rows; for NER also tokens and sentences).
    pub fn dropped(&self) -> &[DropReport] {
        &self.dropped
    }

    /// Tokenization counts.
    pub fn stats(&self) -> &EncodeStats {
        &self.stats
    }

    /// The padding token id.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }
}

/// A prepared dataset: tokenized examples, a train/validation/test split (after sampling), and the cache outcome.
/// The split's indices are always in range and disjoint.
#[derive(Debug, Clone)]
pub struct PreparedDataset {
    data: ProcessedDataset,
    train: Vec<usize>,
    validation: Vec<usize>,
    test: Vec<usize>,
    cache: CacheReport,
}

impl PreparedDataset {
    /// `data` with a split given by example indices; each split is sorted, and they must be in range and
    /// disjoint. Examples in no split are left out.
    pub fn from_split(
        data: ProcessedDataset,
        mut train: Vec<usize>,
        mut validation: Vec<usize>,
        mut test: Vec<usize>,
    ) -> Result<Self> {
        let count = data.examples.len();
        let mut owner = vec![None; count];
        for (name, indices) in [("train", &mut train), ("validation", &mut validation), ("test", &mut test)] {
            indices.sort_unstable();
            for &index in indices.iter() {
                let slot = owner.get_mut(index).ok_or_else(|| {
                    DatasetError::InvalidOption(format!(
                        "the {name} split names example {index}, but there are {count}"
                    ))
                })?;
                if let Some(other) = slot.replace(name) {
                    return Err(DatasetError::InvalidOption(format!(
                        "example {index} is in the {other} split and the {name} split"
                    )));
                }
            }
        }
        let cache = CacheReport { status: CacheStatus::Disabled, path: None, write_error: None };
        Ok(Self { data, train, validation, test, cache })
    }

    /// The tokenized data.
    pub fn data(&self) -> &ProcessedDataset {
        &self.data
    }

    /// Tokenized examples, in file order (all of them, in any split or none).
    pub fn examples(&self) -> &[Encoded] {
        &self.data.examples
    }

    /// Class names (classification) or tags (NER), indexed by label id.
    pub fn label_names(&self) -> &[String] {
        &self.data.label_names
    }

    /// Training example indices (ascending).
    pub fn train(&self) -> &[usize] {
        &self.train
    }

    /// Validation example indices (ascending), held out of the training examples by
    /// [`hold_out_validation`](Self::hold_out_validation) or given to [`from_split`](Self::from_split).
    pub fn validation(&self) -> &[usize] {
        &self.validation
    }

    /// Test example indices (ascending).
    pub fn test(&self) -> &[usize] {
        &self.test
    }

    /// What the cache did.
    pub fn cache(&self) -> &CacheReport {
        &self.cache
    }

    /// The token count of every example (for [`crate::BucketSampler`]).
    pub fn lengths(&self) -> Vec<usize> {
        crate::batch::lengths(&self.data.examples)
    }

    /// Pads the given examples into a batch.
    pub fn batch(&self, indices: &[usize]) -> Result<PaddedBatch> {
        pad_batch(&self.data.examples, indices, self.data.pad_id)
    }

    /// Keeps a seeded random `ratio` (in (0, 1]) of the training examples, in order (see [`sample_indices`]); the
    /// validation and test examples are untouched.
    pub fn sample_train(&mut self, ratio: f64, seed: u64, stream: u64) -> Result<()> {
        self.train = sample_indices(&self.train, ratio, seed, stream)?;
        Ok(())
    }

    /// Moves a seeded random `fraction` of the training examples (at least one, and at least one left to train
    /// on) into the validation set; the test set is never touched. A fraction of 0 moves them all back.
    ///
    /// The draw depends only on the training indices, the fraction and `seed`, so a run is reproducible.
    pub fn hold_out_validation(&mut self, fraction: f64, seed: u64) -> Result<()> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(DatasetError::InvalidOption(format!("validation fraction {fraction} is not in [0, 1)")));
        }
        let mut pool = std::mem::take(&mut self.train);
        pool.append(&mut self.validation);
        pool.sort_unstable();
        if fraction == 0.0 {
            self.train = pool;
            return Ok(());
        }
        let held_out = (pool.len() as f64 * fraction).ceil() as usize;
        if held_out >= pool.len() {
            let count = pool.len();
            self.train = pool;
            return Err(DatasetError::InvalidOption(format!(
                "a validation fraction of {fraction} of {count} training example(s) leaves none to train on"
            )));
        }
        let split = train_test_split(pool.len(), TestSize::Fraction(fraction), seed ^ streams::VALIDATION)?;
        self.validation = split.test.iter().filter_map(|&p| pool.get(p).copied()).collect();
        self.train = split.train.iter().filter_map(|&p| pool.get(p).copied()).collect();
        Ok(())
    }
}

fn entry_name(kind: &str, path: &Path) -> String {
    let stem = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!("{kind}-{stem}")
}

fn cached<F>(
    kind: &str,
    path: &Path,
    key: &mut KeyBuilder,
    tokenizer: &Tokenizer,
    prepare: &PrepareOptions,
    build: F,
) -> Result<(ProcessedDataset, CacheReport)>
where
    F: FnOnce() -> Result<ProcessedDataset>,
{
    let Some(dir) = &prepare.cache_dir else {
        let report = CacheReport { status: CacheStatus::Disabled, path: None, write_error: None };
        return Ok((build()?, report));
    };
    key.file(path)?.json(&prepare.encode)?.tokenizer(tokenizer)?;
    Cache::new(dir).load_or_build(&entry_name(kind, path), key.finish(), build)
}

fn split_and_sample(data: ProcessedDataset, cache: CacheReport, prepare: &PrepareOptions) -> Result<PreparedDataset> {
    let split = train_test_split(data.examples.len(), prepare.test_size, prepare.seed)?;
    let train = sample_indices(&split.train, prepare.sample_ratio, prepare.seed, streams::SAMPLE_TRAIN)?;
    let test = sample_indices(&split.test, prepare.sample_ratio, prepare.seed, streams::SAMPLE_TEST)?;
    tracing::info!(train = train.len(), test = test.len(), cache = %cache, "dataset prepared");
    Ok(PreparedDataset { data, train, validation: Vec::new(), test, cache })
}

/// Loads (or takes from the cache), tokenizes, splits and samples a classification file.
///
/// ```no_run
/// use datasets::{prepare_classification, ClassificationOptions, PrepareOptions};
/// let tokenizer = tokenizers::Tokenizer::from_file("tokenizer.json").unwrap();
/// let ds = prepare_classification("reviews.xlsx", &ClassificationOptions::default(), &tokenizer, &PrepareOptions::default())?;
/// println!("Train Size: {}, Test Size: {} ({})", ds.train().len(), ds.test().len(), ds.cache());
/// # Ok::<(), datasets::DatasetError>(())
/// ```
pub fn prepare_classification(
    path: impl AsRef<Path>,
    options: &ClassificationOptions,
    tokenizer: &Tokenizer,
    prepare: &PrepareOptions,
) -> Result<PreparedDataset> {
    let path = path.as_ref();
    let mut key = KeyBuilder::new("classification");
    key.json(options)?;
    let (data, cache) = cached("classification", path, &mut key, tokenizer, prepare, || {
        let pad = pad_id(tokenizer)?;
        let loaded = load_classification(path, options)?;
        let (examples, stats) = encode_classification(tokenizer, &loaded.examples, &prepare.encode)?;
        Ok(ProcessedDataset {
            examples,
            label_names: loaded.label_names,
            rows_read: loaded.rows_read,
            dropped: vec![loaded.dropped],
            stats,
            pad_id: pad,
        })
    })?;
    split_and_sample(data, cache, prepare)
}

/// Loads (or takes from the cache), tokenizes and aligns, splits and samples an NER file.
pub fn prepare_ner(
    path: impl AsRef<Path>,
    options: &NerOptions,
    tokenizer: &Tokenizer,
    prepare: &PrepareOptions,
) -> Result<PreparedDataset> {
    let path = path.as_ref();
    let mut key = KeyBuilder::new("ner");
    key.json(options)?;
    let (data, cache) = cached("ner", path, &mut key, tokenizer, prepare, || {
        let pad = pad_id(tokenizer)?;
        let loaded = load_ner(path, options)?;
        let (examples, stats) = encode_ner(tokenizer, &loaded.sentences, &loaded.labels, &prepare.encode)?;
        Ok(ProcessedDataset {
            examples,
            label_names: loaded.labels.tags().to_vec(),
            rows_read: loaded.tokens_read,
            dropped: vec![loaded.dropped_tokens, loaded.dropped_sentences],
            stats,
            pad_id: pad,
        })
    })?;
    split_and_sample(data, cache, prepare)
}

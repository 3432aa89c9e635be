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
    /// Tokenized examples, in file order.
    pub examples: Vec<Encoded>,
    /// Class names (classification) or tags (NER), indexed by label id.
    pub label_names: Vec<String>,
    /// Rows (classification) or token rows (NER) read from the file.
    pub rows_read: u64,
    /// What loading dropped, and why (rows; for NER also tokens and sentences).
    pub dropped: Vec<DropReport>,
    /// Tokenization counts.
    pub stats: EncodeStats,
    /// The padding token id.
    pub pad_id: u32,
}

/// A prepared dataset: tokenized examples, a train/test split (after sampling), and the cache outcome.
#[derive(Debug, Clone)]
pub struct PreparedDataset {
    /// The tokenized data.
    pub data: ProcessedDataset,
    /// Training example indices (ascending).
    pub train: Vec<usize>,
    /// Validation example indices (ascending), held out of the training examples by
    /// [`hold_out_validation`](Self::hold_out_validation); empty until then.
    pub validation: Vec<usize>,
    /// Test example indices (ascending).
    pub test: Vec<usize>,
    /// What the cache did.
    pub cache: CacheReport,
}

impl PreparedDataset {
    /// The token count of every example (for [`crate::BucketSampler`]).
    pub fn lengths(&self) -> Vec<usize> {
        crate::batch::lengths(&self.data.examples)
    }

    /// Pads the given examples into a batch.
    pub fn batch(&self, indices: &[usize]) -> Result<PaddedBatch> {
        pad_batch(&self.data.examples, indices, self.data.pad_id)
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
/// println!("Train Size: {}, Test Size: {} ({})", ds.train.len(), ds.test.len(), ds.cache);
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

//! End to end: load, clean, tokenize (cached), split and sample, as the notebook's
//! `prepare_classification_data`, `prepare_ner_data` and `demo_data_loading` do ([`prepare_classification`],
//! [`prepare_ner`]: one file, the test split drawn from it); or from the user's own train, validation and test
//! files ([`prepare_classification_files`], [`prepare_ner_files`]).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use crate::batch::{pad_batch, PaddedBatch};
use crate::cache::{Cache, CacheReport, CacheStatus, KeyBuilder};
use crate::classification::{load_classification, ClassificationOptions, LabelSpec};
use crate::encode::{encode_classification, encode_ner, pad_id, EncodeOptions, EncodeStats, Encoded};
use crate::error::{DatasetError, Result};
use crate::labels::{NerLabels, UnknownLabels};
use crate::ner::{load_ner, NerOptions};
use crate::report::{DropReason, DropReport};
use crate::split::{sample_indices, streams, train_test_split, TestSize};

/// How to prepare a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareOptions {
    /// Tokenization.
    pub encode: EncodeOptions,
    /// Size of the test split drawn from the training file when no test file is given (default 100 examples, as in
    /// the notebook).
    pub test_size: TestSize,
    /// Seed of the split and the sampling (default 42).
    pub seed: u64,
    /// Fraction of the examples to keep, at least one (default 1.0: everything). One file
    /// ([`prepare_classification`], [`prepare_ner`]): of the train and of the test split, as the notebook does;
    /// given files ([`prepare_classification_files`], [`prepare_ner_files`]): of the training split only.
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

/// One of the three splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SplitName {
    /// The training split.
    Train,
    /// The validation split.
    Validation,
    /// The test split.
    Test,
}

impl fmt::Display for SplitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Train => "train",
            Self::Validation => "validation",
            Self::Test => "test",
        })
    }
}

/// What was read from one input file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// The split it was given for (the one file of [`prepare_classification`] and [`prepare_ner`] is the training
    /// file, the test split being drawn from it).
    pub split: SplitName,
    /// Rows (classification) or tokens (NER) read, kept and dropped.
    pub rows_read: u64,
    /// Examples kept (rows or sentences).
    pub examples: usize,
    /// What was dropped, and why (rows; for NER tokens, then sentences).
    pub dropped: Vec<DropReport>,
    /// NER: `I-X` tags that started an entity (IOB1) and were read as `B-X`.
    pub iob1_tags_converted: u64,
}

/// Where a split's examples came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SplitSource {
    /// There is no such split (no validation split until one is held out).
    Absent,
    /// Read from this file: all of its examples (for the training split: those left once a test split was drawn
    /// out of it, and after sampling).
    Given(PathBuf),
    /// Drawn at random (seeded) from the training file's examples: this many, or this fraction.
    DrawnFromTraining(TestSize),
    /// Given as example indices ([`PreparedDataset::from_split`]).
    Indices,
}

impl fmt::Display for SplitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absent => f.write_str("none"),
            Self::Given(path) => write!(f, "{}", path.display()),
            Self::DrawnFromTraining(TestSize::Count(n)) => write!(f, "{n} examples drawn from the training file"),
            Self::DrawnFromTraining(TestSize::Fraction(x)) => write!(f, "{x} of the training file, drawn at random"),
            Self::Indices => f.write_str("given example indices"),
        }
    }
}

/// Where each split came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitSources {
    /// The training split.
    pub train: SplitSource,
    /// The validation split.
    pub validation: SplitSource,
    /// The test split.
    pub test: SplitSource,
}

/// Validation and test examples whose text (classification: the cleaned text; NER: the word sequence) also
/// occurs in the training split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leakage {
    /// Validation examples also in the training split.
    pub validation: usize,
    /// Test examples also in the training split.
    pub test: usize,
}

/// The files of a dataset whose splits are given: a training file, and optionally a validation and a test file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitFiles {
    /// The training file: the label set comes from it.
    pub train: PathBuf,
    /// The validation file, used as it is; `None`: the caller may hold a validation split out of the training
    /// examples ([`PreparedDataset::hold_out_validation`]).
    pub validation: Option<PathBuf>,
    /// The test file, used as it is; `None`: a test split is drawn from the training file
    /// ([`PrepareOptions::test_size`], seeded).
    pub test: Option<PathBuf>,
}

impl SplitFiles {
    /// A training file alone.
    pub fn new(train: impl Into<PathBuf>) -> Self {
        Self { train: train.into(), validation: None, test: None }
    }

    /// The same files with a validation file.
    pub fn with_validation(mut self, path: impl Into<PathBuf>) -> Self {
        self.validation = Some(path.into());
        self
    }

    /// The same files with a test file.
    pub fn with_test(mut self, path: impl Into<PathBuf>) -> Self {
        self.test = Some(path.into());
        self
    }
}

/// A tokenized dataset: what the cache stores (one per file), and what [`PreparedDataset`] indexes (the files'
/// examples one after another).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessedDataset {
    examples: Vec<Encoded>,
    label_names: Vec<String>,
    rows_read: u64,
    dropped: Vec<DropReport>,
    stats: EncodeStats,
    pad_id: u32,
    files: Vec<FileReport>,
    /// A hash of each example's text (classification: the cleaned text; NER: the words), to find duplicates.
    fingerprints: Vec<u64>,
}

/// The first 8 bytes of a SHA-256, as a number.
fn digest_u64(hasher: Sha256) -> u64 {
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

fn text_fingerprint(text: &str) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(b"text\0");
    hasher.update(text.as_bytes());
    digest_u64(hasher)
}

fn words_fingerprint(words: &[String]) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(b"words\0");
    for word in words {
        hasher.update((word.len() as u64).to_le_bytes());
        hasher.update(word.as_bytes());
    }
    digest_u64(hasher)
}

fn ids_fingerprint(ids: &[u32]) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(b"ids\0");
    for id in ids {
        hasher.update(id.to_le_bytes());
    }
    digest_u64(hasher)
}

impl ProcessedDataset {
    /// Examples tokenized elsewhere (another loader, synthetic data): `label_names` indexed by label id, `pad_id` the
    /// padding token. Nothing is checked here (as with a dataset read back from a cache): the trainer checks data
    /// against its model before any work. Duplicates ([`PreparedDataset::leakage`]) are found by token ids.
    pub fn new(examples: Vec<Encoded>, label_names: Vec<String>, pad_id: u32) -> Self {
        let stats = EncodeStats {
            examples: examples.len() as u64,
            tokens: examples.iter().map(|example| example.len() as u64).sum(),
            ..EncodeStats::default()
        };
        let fingerprints = examples.iter().map(|example| ids_fingerprint(&example.input_ids)).collect();
        Self {
            rows_read: examples.len() as u64,
            examples,
            label_names,
            dropped: Vec::new(),
            stats,
            pad_id,
            files: Vec::new(),
            fingerprints,
        }
    }

    /// The same data with the counts that tokenizing it gathered (as [`crate::encode_classification`] and
    /// [`crate::encode_ner`] return them) instead of the plain counts [`new`](Self::new) makes.
    pub fn with_stats(mut self, stats: EncodeStats) -> Self {
        self.stats = stats;
        self
    }

    /// Tokenized examples, in file order (the training file's, then the validation file's, then the test file's).
    pub fn examples(&self) -> &[Encoded] {
        &self.examples
    }

    /// Class names (classification) or tags (NER), indexed by label id.
    pub fn label_names(&self) -> &[String] {
        &self.label_names
    }

    /// Rows (classification) or tokens (NER) read, over all files (per file: [`files`](Self::files)).
    pub fn rows_read(&self) -> u64 {
        self.rows_read
    }

    /// What loading dropped, and why (rows; for NER tokens, then sentences), summed over all files (per file:
    /// [`files`](Self::files)).
    pub fn dropped(&self) -> &[DropReport] {
        &self.dropped
    }

    /// What was read from each input file, in example order (empty for data made with [`new`](Self::new)).
    pub fn files(&self) -> &[FileReport] {
        &self.files
    }

    /// Tokenization counts.
    pub fn stats(&self) -> &EncodeStats {
        &self.stats
    }

    /// The padding token id.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The files' datasets one after another (the label sets are the same: the later files were read against the
    /// first one's).
    fn concat(parts: Vec<ProcessedDataset>) -> Result<Self> {
        let mut parts = parts.into_iter();
        let Some(mut all) = parts.next() else {
            return Err(DatasetError::InvalidOption("no files to prepare".into()));
        };
        for part in parts {
            if part.label_names != all.label_names {
                return Err(DatasetError::InvalidLabels(format!(
                    "{:?} has the labels {:?}, the training file {:?}",
                    part.files.first().map(|f| f.path.display().to_string()).unwrap_or_default(),
                    part.label_names,
                    all.label_names
                )));
            }
            all.examples.extend(part.examples);
            all.rows_read += part.rows_read;
            for (total, report) in all.dropped.iter_mut().zip(&part.dropped) {
                total.merge(report);
            }
            all.stats.examples += part.stats.examples;
            all.stats.truncated_examples += part.stats.truncated_examples;
            all.stats.windowed_examples += part.stats.windowed_examples;
            all.stats.words_without_tokens += part.stats.words_without_tokens;
            all.stats.tokens += part.stats.tokens;
            all.files.extend(part.files);
            all.fingerprints.extend(part.fingerprints);
        }
        Ok(all)
    }

    /// The label values the first file's reading dropped as unknown (the Rotten Tomatoes `plot`): the other files
    /// drop them too, and fail on any other unknown label.
    fn unknown_labels_dropped(&self) -> UnknownLabels {
        let values: Vec<String> = self
            .files
            .iter()
            .flat_map(|file| &file.dropped)
            .filter(|report| report.count(&DropReason::UnknownLabel) > 0 || report.count(&DropReason::UnknownTag) > 0)
            .flat_map(|report| report.offending_values().map(str::to_owned))
            .collect();
        if values.is_empty() {
            UnknownLabels::Error
        } else {
            UnknownLabels::ErrorExcept(values)
        }
    }
}

/// A prepared dataset: tokenized examples, a train/validation/test split (after sampling), where each split came
/// from, and the cache outcome. The split's indices are always in range and disjoint.
#[derive(Debug, Clone)]
pub struct PreparedDataset {
    data: ProcessedDataset,
    train: Vec<usize>,
    validation: Vec<usize>,
    test: Vec<usize>,
    sources: SplitSources,
    caches: Vec<CacheReport>,
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
        let source = |indices: &[usize]| if indices.is_empty() { SplitSource::Absent } else { SplitSource::Indices };
        let sources = SplitSources { train: source(&train), validation: source(&validation), test: source(&test) };
        let cache = CacheReport { status: CacheStatus::Disabled, path: None, write_error: None };
        Ok(Self { data, train, validation, test, sources, caches: vec![cache] })
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

    /// Validation example indices (ascending): a validation file's examples, or those held out of the training
    /// examples by [`hold_out_validation`](Self::hold_out_validation), or given to [`from_split`](Self::from_split).
    pub fn validation(&self) -> &[usize] {
        &self.validation
    }

    /// Test example indices (ascending).
    pub fn test(&self) -> &[usize] {
        &self.test
    }

    /// Where each split came from.
    pub fn sources(&self) -> &SplitSources {
        &self.sources
    }

    /// What the cache did with the training file (the first of [`caches`](Self::caches)).
    pub fn cache(&self) -> &CacheReport {
        // `caches` is never empty: every constructor puts the training file's report first.
        static DISABLED: CacheReport = CacheReport { status: CacheStatus::Disabled, path: None, write_error: None };
        self.caches.first().unwrap_or(&DISABLED)
    }

    /// What the cache did with each file, in the order of [`ProcessedDataset::files`].
    pub fn caches(&self) -> &[CacheReport] {
        &self.caches
    }

    /// How many validation and test examples also occur in the training split (classification: the same cleaned
    /// text; NER: the same word sequence), as the split stands now (after sampling and holding out).
    pub fn leakage(&self) -> Leakage {
        let fingerprints = &self.data.fingerprints;
        let train: HashSet<u64> = self.train.iter().filter_map(|&i| fingerprints.get(i).copied()).collect();
        let count = |indices: &[usize]| {
            indices.iter().filter(|&&i| fingerprints.get(i).is_some_and(|f| train.contains(f))).count()
        };
        Leakage { validation: count(&self.validation), test: count(&self.test) }
    }

    /// The token count of every example (for [`crate::BucketSampler`]).
    pub fn lengths(&self) -> Vec<usize> {
        crate::batch::lengths(&self.data.examples)
    }

    /// How many rows the model reads for every example (see [`Encoded::row_count`]).
    pub fn row_counts(&self) -> Vec<usize> {
        self.data.examples.iter().map(Encoded::row_count).collect()
    }

    /// Evaluation batches of `indices` (longest first) holding at most `batch_size` model rows each.
    pub fn eval_batches(&self, indices: &[usize], batch_size: usize) -> Result<Vec<Vec<usize>>> {
        crate::batch::BucketSampler::new(batch_size).eval_batches_by_rows(indices, &self.lengths(), &self.row_counts())
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
    ///
    /// Refused when the validation split was given as a file ([`prepare_classification_files`] with a validation
    /// file): that split is used as it is, never merged into the training examples.
    pub fn hold_out_validation(&mut self, fraction: f64, seed: u64) -> Result<()> {
        if let SplitSource::Given(path) = &self.sources.validation {
            return Err(DatasetError::InvalidOption(format!(
                "the validation split is the given file {}: no validation split is held out of the training \
                 examples (that would merge the file into them)",
                path.display()
            )));
        }
        if !(0.0..1.0).contains(&fraction) {
            return Err(DatasetError::InvalidOption(format!("validation fraction {fraction} is not in [0, 1)")));
        }
        let mut pool = std::mem::take(&mut self.train);
        pool.append(&mut self.validation);
        pool.sort_unstable();
        if fraction == 0.0 {
            self.train = pool;
            self.sources.validation = SplitSource::Absent;
            return Ok(());
        }
        let held_out = (pool.len() as f64 * fraction).ceil() as usize;
        if held_out >= pool.len() {
            let count = pool.len();
            self.train = pool;
            self.sources.validation = SplitSource::Absent;
            return Err(DatasetError::InvalidOption(format!(
                "a validation fraction of {fraction} of {count} training example(s) leaves none to train on"
            )));
        }
        let split = train_test_split(pool.len(), TestSize::Fraction(fraction), seed ^ streams::VALIDATION)?;
        self.validation = split.test.iter().filter_map(|&p| pool.get(p).copied()).collect();
        self.train = split.train.iter().filter_map(|&p| pool.get(p).copied()).collect();
        self.sources.validation = SplitSource::DrawnFromTraining(TestSize::Fraction(fraction));
        Ok(())
    }
}

fn entry_name(kind: &str, path: &Path) -> String {
    let stem = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!("{kind}-{stem}")
}

/// Takes a file's processed data from the cache (entry `entry`), or builds it; the file's report then names this
/// path and split (the cache is keyed by the bytes, so the entry may have been built from a copy elsewhere).
fn cached<F>(
    entry: &str,
    path: &Path,
    split: SplitName,
    key: &mut KeyBuilder,
    tokenizer: &Tokenizer,
    prepare: &PrepareOptions,
    build: F,
) -> Result<(ProcessedDataset, CacheReport)>
where
    F: FnOnce() -> Result<ProcessedDataset>,
{
    let (mut data, report) = match &prepare.cache_dir {
        None => {
            let report = CacheReport { status: CacheStatus::Disabled, path: None, write_error: None };
            (build()?, report)
        }
        Some(dir) => {
            key.file(path)?.json(&prepare.encode)?.tokenizer(tokenizer)?;
            Cache::new(dir).load_or_build(&entry_name(entry, path), key.finish(), build)?
        }
    };
    for file in &mut data.files {
        file.path = path.to_path_buf();
        file.split = split;
    }
    Ok((data, report))
}

/// The error for a file that gave no examples.
fn no_examples(path: &Path, rows_read: u64, unit: &str, dropped: &[&DropReport]) -> DatasetError {
    let mut why = if rows_read == 0 {
        format!("the file holds no data (0 {unit} read)")
    } else {
        format!("{rows_read} {unit} read")
    };
    for report in dropped {
        if !report.is_empty() {
            why.push_str("; ");
            why.push_str(&report.to_string());
        }
    }
    DatasetError::NoExamples { path: path.to_path_buf(), why }
}

fn warn_leakage(dataset: &PreparedDataset) {
    let leakage = dataset.leakage();
    for (name, count, total) in
        [("validation", leakage.validation, dataset.validation.len()), ("test", leakage.test, dataset.test.len())]
    {
        if count > 0 {
            tracing::warn!(
                "{count} of the {total} {name} examples also occur in the training split (same text): scores on \
                 them overstate how the model does on new data"
            );
        }
    }
}

/// Loads (or takes from the cache) and tokenizes one classification file.
fn classification_file(
    entry: &str,
    path: &Path,
    split: SplitName,
    options: &ClassificationOptions,
    tokenizer: &Tokenizer,
    prepare: &PrepareOptions,
) -> Result<(ProcessedDataset, CacheReport)> {
    let mut key = KeyBuilder::new("classification");
    key.json(options)?;
    cached(entry, path, split, &mut key, tokenizer, prepare, || {
        let pad = pad_id(tokenizer)?;
        let loaded = load_classification(path, options)?;
        if loaded.examples.is_empty() {
            return Err(no_examples(path, loaded.rows_read, "rows", &[&loaded.dropped]));
        }
        let fingerprints = loaded.examples.par_iter().map(|example| text_fingerprint(&example.text)).collect();
        let (examples, stats) = encode_classification(tokenizer, &loaded.examples, &prepare.encode)?;
        let file = FileReport {
            path: path.to_path_buf(),
            split,
            rows_read: loaded.rows_read,
            examples: examples.len(),
            dropped: vec![loaded.dropped.clone()],
            iob1_tags_converted: 0,
        };
        Ok(ProcessedDataset {
            examples,
            label_names: loaded.label_names,
            rows_read: loaded.rows_read,
            dropped: vec![loaded.dropped],
            stats,
            pad_id: pad,
            files: vec![file],
            fingerprints,
        })
    })
}

/// Loads (or takes from the cache), tokenizes and aligns one NER file.
fn ner_file(
    entry: &str,
    path: &Path,
    split: SplitName,
    options: &NerOptions,
    tokenizer: &Tokenizer,
    prepare: &PrepareOptions,
) -> Result<(ProcessedDataset, CacheReport)> {
    let mut key = KeyBuilder::new("ner");
    key.json(options)?;
    cached(entry, path, split, &mut key, tokenizer, prepare, || {
        let pad = pad_id(tokenizer)?;
        let loaded = load_ner(path, options)?;
        if loaded.sentences.is_empty() {
            let reports = [&loaded.dropped_tokens, &loaded.dropped_sentences];
            return Err(no_examples(path, loaded.tokens_read, "tokens", &reports));
        }
        let fingerprints = loaded.sentences.par_iter().map(|sentence| words_fingerprint(&sentence.words)).collect();
        let (examples, stats) = encode_ner(tokenizer, &loaded.sentences, &loaded.labels, &prepare.encode)?;
        let dropped = vec![loaded.dropped_tokens, loaded.dropped_sentences];
        let file = FileReport {
            path: path.to_path_buf(),
            split,
            rows_read: loaded.tokens_read,
            examples: examples.len(),
            dropped: dropped.clone(),
            iob1_tags_converted: loaded.iob1_tags_converted,
        };
        Ok(ProcessedDataset {
            examples,
            label_names: loaded.labels.tags().to_vec(),
            rows_read: loaded.tokens_read,
            dropped,
            stats,
            pad_id: pad,
            files: vec![file],
            fingerprints,
        })
    })
}

fn split_and_sample(
    path: &Path,
    data: ProcessedDataset,
    cache: CacheReport,
    prepare: &PrepareOptions,
) -> Result<PreparedDataset> {
    let split = train_test_split(data.examples.len(), prepare.test_size, prepare.seed)?;
    let train = sample_indices(&split.train, prepare.sample_ratio, prepare.seed, streams::SAMPLE_TRAIN)?;
    let test = sample_indices(&split.test, prepare.sample_ratio, prepare.seed, streams::SAMPLE_TEST)?;
    tracing::info!(train = train.len(), test = test.len(), cache = %cache, "dataset prepared");
    let sources = SplitSources {
        train: SplitSource::Given(path.to_path_buf()),
        validation: SplitSource::Absent,
        test: SplitSource::DrawnFromTraining(prepare.test_size),
    };
    let dataset = PreparedDataset { data, train, validation: Vec::new(), test, sources, caches: vec![cache] };
    warn_leakage(&dataset);
    Ok(dataset)
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
    let (data, cache) = classification_file("classification", path, SplitName::Train, options, tokenizer, prepare)?;
    split_and_sample(path, data, cache, prepare)
}

/// Loads (or takes from the cache), tokenizes and aligns, splits and samples an NER file.
pub fn prepare_ner(
    path: impl AsRef<Path>,
    options: &NerOptions,
    tokenizer: &Tokenizer,
    prepare: &PrepareOptions,
) -> Result<PreparedDataset> {
    let path = path.as_ref();
    let (data, cache) = ner_file("ner", path, SplitName::Train, options, tokenizer, prepare)?;
    split_and_sample(path, data, cache, prepare)
}

/// Puts the files' data together: the training file's examples, then the validation file's, then the test file's;
/// the given splits as they are, a missing test split drawn from the training file, the training split sampled.
fn assemble(
    files: &SplitFiles,
    train: (ProcessedDataset, CacheReport),
    validation: Option<(ProcessedDataset, CacheReport)>,
    test: Option<(ProcessedDataset, CacheReport)>,
    prepare: &PrepareOptions,
) -> Result<PreparedDataset> {
    let train_count = train.0.examples.len();
    let validation_count = validation.as_ref().map_or(0, |(data, _)| data.examples.len());
    let test_count = test.as_ref().map_or(0, |(data, _)| data.examples.len());
    let (train_indices, test_indices, test_source) = match &files.test {
        Some(path) => {
            let start = train_count + validation_count;
            ((0..train_count).collect(), (start..start + test_count).collect(), SplitSource::Given(path.clone()))
        }
        None => {
            let split = train_test_split(train_count, prepare.test_size, prepare.seed).map_err(|e| {
                DatasetError::InvalidOption(format!(
                    "no test file, and drawing the test split from {} fails: {e}",
                    files.train.display()
                ))
            })?;
            (split.train, split.test, SplitSource::DrawnFromTraining(prepare.test_size))
        }
    };
    let train_indices = sample_indices(&train_indices, prepare.sample_ratio, prepare.seed, streams::SAMPLE_TRAIN)?;
    let validation_indices: Vec<usize> = (train_count..train_count + validation_count).collect();
    let sources = SplitSources {
        train: SplitSource::Given(files.train.clone()),
        validation: files.validation.clone().map_or(SplitSource::Absent, SplitSource::Given),
        test: test_source,
    };
    let mut parts = vec![train];
    parts.extend(validation);
    parts.extend(test);
    let (parts, caches): (Vec<ProcessedDataset>, Vec<CacheReport>) = parts.into_iter().unzip();
    let data = ProcessedDataset::concat(parts)?;
    let dataset = PreparedDataset {
        data,
        train: train_indices,
        validation: validation_indices,
        test: test_indices,
        sources,
        caches,
    };
    tracing::info!(
        train = dataset.train.len(),
        validation = dataset.validation.len(),
        test = dataset.test.len(),
        "dataset prepared from {}",
        files.train.display()
    );
    warn_leakage(&dataset);
    Ok(dataset)
}

/// Prepares a classification dataset from the user's split files.
///
/// The classes come from the training file (`options.labels`, or derived from its label values); the validation
/// and test files are read strictly against them: a label the training file does not have is an error naming the
/// label, the file and the row or line ([`DatasetError::UnknownLabel`]; labels that reading the training file
/// dropped, such as Rotten Tomatoes' `plot`, are dropped again). Given splits are used as they are (never
/// re-split, never sampled); a missing test split is drawn from the training file (`prepare.test_size`, seeded,
/// as [`prepare_classification`] does); `prepare.sample_ratio` samples the training split only; a missing
/// validation split is left empty (see [`PreparedDataset::hold_out_validation`]). A file that gives no example
/// is an error ([`DatasetError::NoExamples`]). Each file goes through the cache on its own.
///
/// ```no_run
/// use datasets::{prepare_classification_files, ClassificationOptions, PrepareOptions, SplitFiles};
/// let tokenizer = tokenizers::Tokenizer::from_file("tokenizer.json").unwrap();
/// let files = SplitFiles::new("train.jsonl").with_validation("dev.jsonl").with_test("test.jsonl");
/// let ds = prepare_classification_files(&files, &ClassificationOptions::default(), &tokenizer, &PrepareOptions::default())?;
/// println!("{} train, {} validation, {} test; leakage {:?}", ds.train().len(), ds.validation().len(), ds.test().len(), ds.leakage());
/// # Ok::<(), datasets::DatasetError>(())
/// ```
pub fn prepare_classification_files(
    files: &SplitFiles,
    options: &ClassificationOptions,
    tokenizer: &Tokenizer,
    prepare: &PrepareOptions,
) -> Result<PreparedDataset> {
    let train =
        classification_file("classification-train", &files.train, SplitName::Train, options, tokenizer, prepare)?;
    let labels = match &options.labels {
        Some(spec) => spec.clone(),
        None => {
            let names: Vec<&str> = train.0.label_names.iter().map(String::as_str).collect();
            LabelSpec::new(&names)?
        }
    };
    let strict = ClassificationOptions {
        labels: Some(labels),
        unknown_labels: train.0.unknown_labels_dropped(),
        ..options.clone()
    };
    let load = |path: &Option<PathBuf>, entry: &str, split: SplitName| {
        path.as_deref().map(|path| classification_file(entry, path, split, &strict, tokenizer, prepare)).transpose()
    };
    let validation = load(&files.validation, "classification-validation", SplitName::Validation)?;
    let test = load(&files.test, "classification-test", SplitName::Test)?;
    assemble(files, train, validation, test, prepare)
}

/// Prepares an NER dataset from the user's split files: as [`prepare_classification_files`] does, with the tag
/// set derived from the training file (or `options.labels`) and the validation and test files read strictly
/// against it.
pub fn prepare_ner_files(
    files: &SplitFiles,
    options: &NerOptions,
    tokenizer: &Tokenizer,
    prepare: &PrepareOptions,
) -> Result<PreparedDataset> {
    let train = ner_file("ner-train", &files.train, SplitName::Train, options, tokenizer, prepare)?;
    let strict = NerOptions {
        labels: Some(NerLabels::new(train.0.label_names.as_slice())?),
        unknown_labels: train.0.unknown_labels_dropped(),
        ..options.clone()
    };
    let load = |path: &Option<PathBuf>, entry: &str, split: SplitName| {
        path.as_deref().map(|path| ner_file(entry, path, split, &strict, tokenizer, prepare)).transpose()
    };
    let validation = load(&files.validation, "ner-validation", SplitName::Validation)?;
    let test = load(&files.test, "ner-test", SplitName::Test)?;
    assemble(files, train, validation, test, prepare)
}

/// One labelled file as a test set alone, to score a trained model: all of its examples in the test split (in file
/// order), none in training or validation; never split nor sampled (`prepare.test_size` and `prepare.sample_ratio`
/// are not used).
fn test_only(path: &Path, data: ProcessedDataset, cache: CacheReport) -> PreparedDataset {
    let test = (0..data.examples.len()).collect();
    let sources = SplitSources {
        train: SplitSource::Absent,
        validation: SplitSource::Absent,
        test: SplitSource::Given(path.to_path_buf()),
    };
    PreparedDataset { data, train: Vec::new(), validation: Vec::new(), test, sources, caches: vec![cache] }
}

/// Prepares one labelled classification file as a test set alone (to score a trained model): every example in
/// the test split, nothing in training or validation, never sampled. Give the model's classes in `options.labels`
/// and `unknown_labels: UnknownLabels::Error` to make a label the model never learnt an error naming it.
///
/// ```no_run
/// use datasets::{prepare_classification_test, ClassificationOptions, LabelSpec, PrepareOptions, UnknownLabels};
/// let tokenizer = tokenizers::Tokenizer::from_file("tokenizer.json").unwrap();
/// let options = ClassificationOptions {
///     labels: Some(LabelSpec::new(&["neg", "pos"])?),
///     unknown_labels: UnknownLabels::Error,
///     ..ClassificationOptions::default()
/// };
/// let ds = prepare_classification_test("held_out.jsonl", &options, &tokenizer, &PrepareOptions::default())?;
/// assert!(ds.train().is_empty());
/// # Ok::<(), datasets::DatasetError>(())
/// ```
pub fn prepare_classification_test(
    path: impl AsRef<Path>,
    options: &ClassificationOptions,
    tokenizer: &Tokenizer,
    prepare: &PrepareOptions,
) -> Result<PreparedDataset> {
    let path = path.as_ref();
    let (data, cache) = classification_file("classification-eval", path, SplitName::Test, options, tokenizer, prepare)?;
    Ok(test_only(path, data, cache))
}

/// Prepares one labelled NER file as a test set alone, as [`prepare_classification_test`] does (give the model's
/// tags in `options.labels`).
pub fn prepare_ner_test(
    path: impl AsRef<Path>,
    options: &NerOptions,
    tokenizer: &Tokenizer,
    prepare: &PrepareOptions,
) -> Result<PreparedDataset> {
    let path = path.as_ref();
    let (data, cache) = ner_file("ner-eval", path, SplitName::Test, options, tokenizer, prepare)?;
    Ok(test_only(path, data, cache))
}

//! The two tasks' data (the user's files, the notebook's, or the embedded corpora) and its summary.

use super::ReproduceArgs;
use anyhow::{bail, Context, Result};
use datasets::{
    prepare_classification, prepare_ner, ClassificationOptions, NerOptions, PrepareOptions, PreparedDataset, TestSize,
};
use encoder::SentenceEncoder;
use serde::Serialize;
use std::path::PathBuf;
use trainer::{Settings, Task, TaskData};

/// What Task 2 loaded.
#[derive(Debug, Serialize)]
pub(super) struct TaskDataSummary {
    pub(super) file: String,
    pub(super) source: &'static str,
    pub(super) rows_read: u64,
    pub(super) examples: usize,
    pub(super) dropped: Vec<String>,
    pub(super) labels: Vec<String>,
    pub(super) train: usize,
    pub(super) validation: usize,
    pub(super) test: usize,
    pub(super) truncated_examples: u64,
    pub(super) windowed_examples: u64,
    pub(super) cache: String,
    pub(super) batch_shapes: Vec<(String, Vec<i64>)>,
}

/// Where a task's data comes from: the user's file, the notebook's Kaggle file in data/raw, or the embedded corpus.
pub(super) fn resolve(given: &Option<PathBuf>, kaggle: &str, embedded: &str) -> Result<(PathBuf, &'static str)> {
    if let Some(path) = given {
        return Ok((path.clone(), "given"));
    }
    let kaggle = PathBuf::from(kaggle);
    if kaggle.is_file() {
        return Ok((kaggle, "notebook's Kaggle file"));
    }
    let default_dir =
        std::env::var_os("BERTMT_DEFAULT_DATA").map(PathBuf::from).unwrap_or_else(|| "data/default".into());
    let embedded = default_dir.join(embedded);
    if !embedded.is_file() {
        bail!(
            "no data: {} is missing and so is the embedded default {} (run `cargo xtask setup`, or pass the file)",
            kaggle.display(),
            embedded.display()
        );
    }
    Ok((embedded, "embedded default"))
}

/// Where each task's data comes from: the file, and what kind of source it is.
pub(super) struct Sources {
    pub(super) classification: (PathBuf, &'static str),
    pub(super) ner: (PathBuf, &'static str),
}

/// The files `reproduce` reads: the user's, the notebook's Kaggle files in data/raw, or the embedded corpora.
pub(super) fn resolve_sources(args: &ReproduceArgs) -> Result<Sources> {
    Ok(Sources {
        classification: resolve(&args.classification, "data/raw/classification_dataset.xlsx", "rotten_tomatoes.csv")?,
        ner: resolve(&args.ner, "data/raw/ner_dataset.xlsx", "wnut16_train.conll")?,
    })
}

/// A prepared dataset with the file it came from and what kind of source that was.
pub(super) struct LoadedData {
    pub(super) dataset: PreparedDataset,
    pub(super) source: (PathBuf, &'static str),
}

/// Both tasks' data.
pub(super) struct Loaded {
    pub(super) classification: LoadedData,
    pub(super) ner: LoadedData,
}

impl Loaded {
    /// The datasets, by task.
    pub(super) fn tasks(&self) -> TaskData<'_> {
        TaskData::new().with(Task::Classification, &self.classification.dataset).with(Task::Ner, &self.ner.dataset)
    }
}

pub(super) fn load_data(
    args: &ReproduceArgs,
    sources: Sources,
    encoder: &SentenceEncoder,
    settings: &Settings,
) -> Result<Loaded> {
    let (validation_fraction, seed) = (settings.validation_fraction, settings.train.seed);
    let tokenizer = encoder.tokenizer().inner();
    let prepare = PrepareOptions {
        encode: datasets::EncodeOptions { case_types: settings.ner_case_types, ..datasets::EncodeOptions::default() },
        test_size: TestSize::Count(args.test_size),
        seed,
        sample_ratio: 1.0,
        ..PrepareOptions::default()
    };
    let (path, source) = sources.classification;
    let options = if source == "embedded default" {
        ClassificationOptions::rotten_tomatoes()
    } else {
        ClassificationOptions::notebook()
    };
    let mut classification = prepare_classification(&path, &options, tokenizer, &prepare)
        .with_context(|| format!("cannot load the classification data {}", path.display()))?;
    classification.sample_train(args.sample_ratio, seed, 1)?;
    classification.hold_out_validation(validation_fraction, seed).context("classification data")?;
    let classification = LoadedData { dataset: classification, source: (path, source) };

    let (path, source) = sources.ner;
    let mut ner = prepare_ner(&path, &NerOptions::default(), tokenizer, &prepare)
        .with_context(|| format!("cannot load the NER data {}", path.display()))?;
    ner.sample_train(args.sample_ratio, seed, 2)?;
    ner.hold_out_validation(validation_fraction, seed).context("NER data")?;
    Ok(Loaded { classification, ner: LoadedData { dataset: ner, source: (path, source) } })
}

pub(super) fn summarize(loaded: &LoadedData, batch_size: usize) -> Result<TaskDataSummary> {
    let (dataset, source) = (&loaded.dataset, loaded.source.clone());
    let batch =
        dataset.batch(&dataset.train()[..batch_size.min(dataset.train().len())])?.to_tensors(tch::Device::Cpu)?;
    Ok(TaskDataSummary {
        file: source.0.display().to_string(),
        source: source.1,
        rows_read: dataset.data().rows_read(),
        examples: dataset.examples().len(),
        dropped: dataset.data().dropped().iter().map(ToString::to_string).collect(),
        labels: dataset.label_names().to_vec(),
        train: dataset.train().len(),
        validation: dataset.validation().len(),
        test: dataset.test().len(),
        truncated_examples: dataset.data().stats().truncated_examples,
        windowed_examples: dataset.data().stats().windowed_examples,
        cache: dataset.cache().to_string(),
        batch_shapes: vec![
            ("input_ids".into(), batch.input_ids.size()),
            ("attention_mask".into(), batch.attention_mask.size()),
            ("labels".into(), batch.labels.size()),
        ],
    })
}

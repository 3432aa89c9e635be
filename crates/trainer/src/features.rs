//! The frozen-backbone feature cache. When the encoder does not train, its outputs are the same every epoch:
//! they are computed once (no gradient) and only what the heads read is kept, the pooled vector of each sentence
//! and the token states at the positions NER trains on or is scored at.

use crate::data::TaskData;
use crate::error::{Result, TrainError};
use datasets::{PreparedDataset, Target};
use heads::{MultiTaskModel, PerTask, Task};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Instant;
use tch::{Kind, Tensor};

/// What the feature cache holds and how long it took to fill.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureCacheReport {
    /// Seconds spent running the encoder to fill it.
    pub seconds: f64,
    /// What each task's cache holds: classification vectors, NER token states (train, validation and test
    /// examples).
    pub tasks: PerTask<CacheSize>,
}

/// The cached features of one task.
pub enum TaskFeatures {
    /// Pooled sentence vectors.
    Classification(ClassificationFeatures),
    /// Token states at the positions NER reads.
    Ner(NerFeatures),
}

impl TaskFeatures {
    /// Runs the frozen encoder over `indices` of `data` for `task`.
    fn compute(
        task: Task,
        model: &MultiTaskModel,
        data: &PreparedDataset,
        indices: &[usize],
        batch_size: usize,
        half: bool,
    ) -> Result<Self> {
        Ok(match task {
            Task::Classification => {
                Self::Classification(ClassificationFeatures::compute(model, data, indices, batch_size, half)?)
            }
            Task::Ner => Self::Ner(NerFeatures::compute(model, data, indices, batch_size, half)?),
        })
    }

    fn size(&self) -> CacheSize {
        match self {
            Self::Classification(features) => features.size(),
            Self::Ner(features) => features.size(),
        }
    }

    fn holds(&self, index: usize) -> bool {
        match self {
            Self::Classification(features) => features.rows.contains_key(&index),
            Self::Ner(features) => features.spans.contains_key(&index),
        }
    }
}

/// The frozen encoder's outputs on every train, validation and test example of each task: built once, they serve
/// every epoch and every evaluation while the encoder does not change.
pub struct FeatureCache {
    features: PerTask<TaskFeatures>,
    /// A fingerprint of the token ids of the cached examples of each task, so that other data is noticed.
    fingerprints: PerTask<u64>,
    report: FeatureCacheReport,
}

impl FeatureCache {
    /// Runs the encoder (no gradient) over every train, validation and test example of `data`, in batches of
    /// `batch_size`, storing half precision if `half`.
    pub fn build(model: &MultiTaskModel, data: TaskData<'_>, batch_size: usize, half: bool) -> Result<Self> {
        let started = Instant::now();
        let features = data.try_map(|task, dataset| {
            TaskFeatures::compute(task, model, dataset, &all_examples(dataset), batch_size, half)
        })?;
        let report =
            FeatureCacheReport { seconds: started.elapsed().as_secs_f64(), tasks: features.map(|_, f| f.size()) };
        tracing::info!(
            seconds = report.seconds,
            cached = %report.tasks.iter().map(|(task, size)| format!("{task} {}", describe(*size))).collect::<Vec<_>>().join(", "),
            "encoder features cached"
        );
        let fingerprints = data.map(|_, dataset| fingerprint(dataset));
        Ok(Self { features, fingerprints, report })
    }

    /// How long it took and what it holds.
    pub fn report(&self) -> &FeatureCacheReport {
        &self.report
    }

    /// The features of `task`, if cached.
    pub fn get(&self, task: Task) -> Option<&TaskFeatures> {
        self.features.get(task)
    }

    /// An error unless every train, validation and test example of `data` is cached, for each task it has.
    pub fn check_serves(&self, data: TaskData<'_>) -> Result<()> {
        let same_data = data.map(|_, dataset| fingerprint(dataset)) == self.fingerprints;
        let complete = data.iter().all(|(task, dataset)| {
            self.features.get(task).is_some_and(|f| all_examples(dataset).into_iter().all(|index| f.holds(index)))
        });
        if !same_data || !complete {
            return Err(TrainError::InvalidConfig(
                "the feature cache was built for other examples or another train/validation/test split".into(),
            ));
        }
        Ok(())
    }
}

/// A hash of the token ids of a dataset's train, validation and test examples.
fn fingerprint(data: &PreparedDataset) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for index in all_examples(data) {
        index.hash(&mut hasher);
        data.examples().get(index).map(|e| &e.input_ids).hash(&mut hasher);
    }
    hasher.finish()
}

/// The train, validation and test examples of a dataset, ascending.
fn all_examples(data: &PreparedDataset) -> Vec<usize> {
    let mut all: Vec<usize> = data.train().iter().chain(data.validation()).chain(data.test()).copied().collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// Pooled sentence vectors of a set of classification examples.
pub struct ClassificationFeatures {
    /// `[examples, hidden]`.
    pub pooled: Tensor,
    /// The class of each row.
    pub labels: Tensor,
    rows: HashMap<usize, i64>,
}

/// Token states of a set of NER examples, at the positions that carry a label or start a word.
pub struct NerFeatures {
    /// `[cached tokens, hidden]`.
    pub states: Tensor,
    /// The training label of each row (-100 where the token is only scored, not trained on).
    pub labels: Tensor,
    /// For each row, the index of the word it starts (rows that are later sub-tokens have `None`).
    pub first_of_word: Vec<Option<u32>>,
    spans: HashMap<usize, (i64, i64)>,
}

/// Memory held by cached features.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheSize {
    /// Rows (sentences or tokens).
    pub rows: i64,
    /// Bytes of tensor data.
    pub bytes: i64,
}

fn size_of(tensor: &Tensor) -> CacheSize {
    let element = match tensor.kind() {
        Kind::Half | Kind::BFloat16 => 2,
        Kind::Double | Kind::Int64 => 8,
        _ => 4,
    };
    let rows = tensor.size().first().copied().unwrap_or(0);
    CacheSize { rows, bytes: tensor.numel() as i64 * element }
}

fn storage_kind(half: bool) -> Kind {
    if half {
        Kind::Half
    } else {
        Kind::Float
    }
}

impl ClassificationFeatures {
    /// Runs the frozen encoder over `indices` of `data` and keeps the pooled vectors.
    pub fn compute(
        model: &MultiTaskModel,
        data: &PreparedDataset,
        indices: &[usize],
        batch_size: usize,
        half: bool,
    ) -> Result<Self> {
        let device = model.var_store().device();
        let mut pooled = Vec::new();
        let mut labels = Vec::new();
        let mut rows = HashMap::with_capacity(indices.len());
        let _guard = tch::no_grad_guard();
        for batch_indices in data.eval_batches(indices, batch_size)? {
            let batch = data.batch(&batch_indices)?.to_tensors(device)?;
            let hidden = model.encode_t(&batch.input_ids, &batch.attention_mask, Some(&batch.token_type_ids), false)?;
            pooled.push(model.f_pool(&hidden, &batch.attention_mask)?.to_kind(storage_kind(half)));
            labels.push(batch.labels);
            for &index in &batch.indices {
                let row = rows.len() as i64;
                rows.insert(index, row);
            }
        }
        Ok(Self { pooled: Tensor::cat(&pooled, 0), labels: Tensor::cat(&labels, 0), rows })
    }

    /// Pooled vectors (f32) and labels of the examples `indices`, in that order.
    pub fn batch(&self, indices: &[usize]) -> (Tensor, Tensor) {
        let rows: Vec<i64> = indices.iter().filter_map(|i| self.rows.get(i).copied()).collect();
        let rows = Tensor::from_slice(&rows).to_device(self.pooled.device());
        (self.pooled.index_select(0, &rows).to_kind(Kind::Float), self.labels.index_select(0, &rows))
    }

    /// Memory held.
    pub fn size(&self) -> CacheSize {
        size_of(&self.pooled)
    }
}

impl NerFeatures {
    /// Runs the frozen encoder over `indices` of `data` and keeps the states of labelled and word-initial tokens.
    pub fn compute(
        model: &MultiTaskModel,
        data: &PreparedDataset,
        indices: &[usize],
        batch_size: usize,
        half: bool,
    ) -> Result<Self> {
        let device = model.var_store().device();
        let mut states = Vec::new();
        let mut labels = Vec::new();
        let mut first_of_word = Vec::new();
        let mut spans = HashMap::with_capacity(indices.len());
        let mut next_row = 0i64;
        let _guard = tch::no_grad_guard();
        for batch_indices in data.eval_batches(indices, batch_size)? {
            let batch = data.batch(&batch_indices)?.to_tensors(device)?;
            let hidden = model.encode_t(&batch.input_ids, &batch.attention_mask, Some(&batch.token_type_ids), false)?;
            let (_, seq_len, hidden_size) = hidden.size3()?;
            let mut flat_positions = Vec::new();
            // The rows of an example are consecutive: its cached states are one span, in position order.
            let mut current: Option<(usize, i64)> = None;
            for (row, batch_row) in batch.rows.iter().enumerate() {
                let index = batch_row.example;
                let Some(Target::Tokens(targets)) = data.examples().get(index).map(|e| &e.target) else {
                    continue;
                };
                if current.is_none_or(|(example, _)| example != index) {
                    if let Some((example, start)) = current {
                        spans.insert(example, (start, next_row - start));
                    }
                    current = Some((index, next_row));
                }
                let starts: Vec<Option<u32>> = datasets::word_starts(&targets.word_ids).collect();
                for (column, owned) in batch_row.owned.iter().enumerate() {
                    let Some(position) = *owned else { continue };
                    let label = targets.labels.get(position).copied().unwrap_or(datasets::IGNORE_INDEX);
                    let start = starts.get(position).copied().flatten();
                    if label != datasets::IGNORE_INDEX || start.is_some() {
                        flat_positions.push(row as i64 * seq_len + column as i64);
                        labels.push(i64::from(label));
                        first_of_word.push(start);
                        next_row += 1;
                    }
                }
            }
            if let Some((example, start)) = current {
                spans.insert(example, (start, next_row - start));
            }
            let positions = Tensor::from_slice(&flat_positions).to_device(device);
            let selected = hidden.reshape([-1, hidden_size]).index_select(0, &positions);
            states.push(selected.to_kind(storage_kind(half)));
        }
        Ok(Self {
            states: Tensor::cat(&states, 0),
            labels: Tensor::from_slice(&labels).to_device(device),
            first_of_word,
            spans,
        })
    }

    /// States (f32) and labels of the cached tokens of the examples `indices`, in that order.
    pub fn batch(&self, indices: &[usize]) -> (Tensor, Tensor) {
        let rows: Vec<i64> =
            indices.iter().filter_map(|i| self.spans.get(i)).flat_map(|&(start, len)| start..start + len).collect();
        let rows = Tensor::from_slice(&rows).to_device(self.states.device());
        (self.states.index_select(0, &rows).to_kind(Kind::Float), self.labels.index_select(0, &rows))
    }

    /// The rows of example `index`: `(first row, row count)`.
    pub fn span(&self, index: usize) -> Option<(i64, i64)> {
        self.spans.get(&index).copied()
    }

    /// Memory held.
    pub fn size(&self) -> CacheSize {
        size_of(&self.states)
    }
}

/// `"N rows, X MiB"`.
pub fn describe(size: CacheSize) -> String {
    format!("{} rows, {:.1} MiB", size.rows, size.bytes as f64 / (1024.0 * 1024.0))
}

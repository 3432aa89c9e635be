//! The frozen-backbone feature cache. When the encoder does not train, its outputs are the same every epoch:
//! they are computed once (no gradient) and only what the heads read is kept, the pooled vector of each sentence
//! and the token states at the positions NER trains on or is scored at.

use crate::error::Result;
use datasets::{BucketSampler, PreparedDataset, Target};
use heads::MultiTaskModel;
use std::collections::HashMap;
use tch::{Kind, Tensor};

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
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
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
        let sampler = BucketSampler::new(batch_size);
        let lengths = data.lengths();
        let mut pooled = Vec::new();
        let mut labels = Vec::new();
        let mut rows = HashMap::with_capacity(indices.len());
        let _guard = tch::no_grad_guard();
        for batch_indices in sampler.eval_batches(indices, &lengths)? {
            let batch = data.batch(&batch_indices)?.to_tensors(device)?;
            let hidden = model.encode_t(&batch.input_ids, &batch.attention_mask, Some(&batch.token_type_ids), false)?;
            pooled.push(model.pool(&hidden, &batch.attention_mask).to_kind(storage_kind(half)));
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
        let sampler = BucketSampler::new(batch_size);
        let lengths = data.lengths();
        let mut states = Vec::new();
        let mut labels = Vec::new();
        let mut first_of_word = Vec::new();
        let mut spans = HashMap::with_capacity(indices.len());
        let mut next_row = 0i64;
        let _guard = tch::no_grad_guard();
        for batch_indices in sampler.eval_batches(indices, &lengths)? {
            let batch = data.batch(&batch_indices)?.to_tensors(device)?;
            let hidden = model.encode_t(&batch.input_ids, &batch.attention_mask, Some(&batch.token_type_ids), false)?;
            let (_, seq_len, hidden_size) = hidden.size3()?;
            let mut flat_positions = Vec::new();
            for (row, &index) in batch.indices.iter().enumerate() {
                let Some(Target::Tokens(targets)) = data.data.examples.get(index).map(|e| &e.target) else {
                    continue;
                };
                let start = next_row;
                for (position, word) in targets.word_ids.iter().enumerate() {
                    let label = targets.labels.get(position).copied().unwrap_or(datasets::IGNORE_INDEX);
                    let starts_word = word.is_some() && (position == 0 || targets.word_ids[position - 1] != *word);
                    if label != datasets::IGNORE_INDEX || starts_word {
                        flat_positions.push(row as i64 * seq_len + position as i64);
                        labels.push(i64::from(label));
                        first_of_word.push(if starts_word { *word } else { None });
                        next_row += 1;
                    }
                }
                spans.insert(index, (start, next_row - start));
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

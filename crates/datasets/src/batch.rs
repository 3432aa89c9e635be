//! Batches: length-bucketed sampling and dynamic padding (plain vectors, no torch).

use serde::{Deserialize, Serialize};

use crate::encode::{Encoded, Row, Target, IGNORE_INDEX};
use crate::error::{DatasetError, Result};
use crate::split::{seeded_rng, shuffle, streams};

/// Labels of a padded batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BatchLabels {
    /// One class per example: shape `[batch]`.
    Classes(Vec<i64>),
    /// One label per token, [`IGNORE_INDEX`] at padding: shape `[batch, seq_len]`, row-major.
    Tokens(Vec<i64>),
}

/// A padded batch in row-major `[rows, seq_len]` vectors, ready for tensor conversion. An example is one row,
/// unless it is a NER sentence longer than the model, read in several windows (its rows are consecutive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaddedBatch {
    /// The examples in the batch (indices into the example list), in order.
    pub indices: Vec<usize>,
    /// Each row: the example it reads (index into the example list) and which of its positions it holds.
    pub rows: Vec<BatchRow>,
    /// Rows.
    pub batch_size: usize,
    /// Columns: the longest row in the batch.
    pub seq_len: usize,
    /// Token ids, padded with the pad id.
    pub input_ids: Vec<i64>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<i64>,
    /// Token type ids, 0 at padding.
    pub token_type_ids: Vec<i64>,
    /// The targets.
    pub labels: BatchLabels,
}

/// One row of a batch: the example it reads and its positions (see [`crate::Row`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRow {
    /// The example (index into the example list).
    pub example: usize,
    /// For each column of the row that holds a token: the token's position in the example, when this row owns it
    /// (its prediction counts there); `None` for positions another window owns.
    pub owned: Vec<Option<usize>>,
}

/// Pads the examples `indices` of `examples` to the longest row among them; a NER sentence longer than the model
/// gives one row per window, with labels only where the row owns the position.
///
/// ```
/// use datasets::{pad_batch, BatchLabels, Encoded, Target};
/// let ex = |ids: &[u32], class| Encoded { input_ids: ids.to_vec(), type_ids: vec![0; ids.len()], target: Target::Class(class) };
/// let examples = [ex(&[2, 7, 3], 0), ex(&[2, 3], 1)];
/// let batch = pad_batch(&examples, &[1, 0], 0).unwrap();
/// assert_eq!(batch.seq_len, 3);
/// assert_eq!(batch.input_ids, [2, 3, 0, 2, 7, 3]);
/// assert_eq!(batch.attention_mask, [1, 1, 0, 1, 1, 1]);
/// assert_eq!(batch.labels, BatchLabels::Classes(vec![1, 0]));
/// ```
pub fn pad_batch(examples: &[Encoded], indices: &[usize], pad_id: u32) -> Result<PaddedBatch> {
    if indices.is_empty() {
        return Err(DatasetError::Batch("empty batch".into()));
    }
    let chosen: Vec<(usize, &Encoded)> = indices
        .iter()
        .map(|&i| {
            examples
                .get(i)
                .map(|example| (i, example))
                .ok_or_else(|| DatasetError::Batch(format!("example {i} out of range ({} examples)", examples.len())))
        })
        .collect::<Result<_>>()?;
    let token_level = matches!(chosen.first().map(|(_, e)| &e.target), Some(Target::Tokens(_)));
    let mut rows: Vec<(usize, &Encoded, Row)> = Vec::new();
    for &(index, example) in &chosen {
        let n = example.input_ids.len();
        if example.type_ids.len() != n {
            return Err(DatasetError::Batch(format!(
                "example {index}: {} type ids for {n} tokens",
                example.type_ids.len()
            )));
        }
        match (&example.target, token_level) {
            (Target::Class(_), false) => {}
            (Target::Tokens(t), true) => {
                if t.labels.len() != n {
                    return Err(DatasetError::Batch(format!(
                        "example {index}: {} labels for {n} tokens",
                        t.labels.len()
                    )));
                }
                if t.windows.iter().any(|w| w.start == 0 || w.start >= w.end || w.end as usize >= n) {
                    return Err(DatasetError::Batch(format!("example {index}: a window outside its {n} tokens")));
                }
            }
            _ => return Err(DatasetError::Batch("a batch mixes sequence and token classification examples".into())),
        }
        for row in example.rows() {
            rows.push((index, example, row));
        }
    }
    let seq_len = rows.iter().map(|(_, _, row)| row.positions.len()).max().unwrap_or(0);
    let batch_size = rows.len();
    let cells = batch_size * seq_len;
    let mut input_ids = vec![i64::from(pad_id); cells];
    let mut attention_mask = vec![0i64; cells];
    let mut token_type_ids = vec![0i64; cells];
    let mut classes = Vec::new();
    let mut token_labels = if token_level { vec![i64::from(IGNORE_INDEX); cells] } else { Vec::new() };
    let mut batch_rows = Vec::with_capacity(batch_size);
    for (r, (index, example, row)) in rows.iter().enumerate() {
        let start = r * seq_len;
        for (j, (&position, &owned)) in row.positions.iter().zip(&row.owned).enumerate() {
            let cell = start + j;
            input_ids[cell] = i64::from(example.input_ids[position]);
            attention_mask[cell] = 1;
            token_type_ids[cell] = i64::from(example.type_ids[position]);
            if let (Target::Tokens(t), true) = (&example.target, owned) {
                token_labels[cell] = i64::from(t.labels[position]);
            }
        }
        if let Target::Class(c) = example.target {
            classes.push(i64::from(c));
        }
        let owned = row.positions.iter().zip(&row.owned).map(|(&p, &owned)| owned.then_some(p)).collect();
        batch_rows.push(BatchRow { example: *index, owned });
    }
    Ok(PaddedBatch {
        indices: indices.to_vec(),
        rows: batch_rows,
        batch_size,
        seq_len,
        input_ids,
        attention_mask,
        token_type_ids,
        labels: if token_level { BatchLabels::Tokens(token_labels) } else { BatchLabels::Classes(classes) },
    })
}

/// Groups examples of similar length into batches, so padding stays small.
///
/// Training order: the indices are shuffled (seeded by `seed` and the epoch), cut into buckets
/// of `batch_size * bucket_batches` examples, each bucket sorted by length and cut into
/// batches, and the order of all batches shuffled. Evaluation order: sorted by length, longest
/// first, ties by index. Both return lists of example indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketSampler {
    /// Examples per batch (the last batch of a bucket may be smaller).
    pub batch_size: usize,
    /// Batches per bucket (default 50): larger buckets pad less but mix less.
    pub bucket_batches: usize,
}

impl BucketSampler {
    /// A sampler with `batch_size` and the default 50 batches per bucket.
    pub fn new(batch_size: usize) -> Self {
        Self { batch_size, bucket_batches: 50 }
    }

    fn check(&self, indices: &[usize], lengths: &[usize]) -> Result<()> {
        if self.batch_size == 0 || self.bucket_batches == 0 {
            return Err(DatasetError::InvalidOption("batch_size and bucket_batches must be positive".into()));
        }
        if let Some(bad) = indices.iter().find(|&&i| i >= lengths.len()) {
            return Err(DatasetError::Batch(format!("example {bad} out of range ({} lengths)", lengths.len())));
        }
        Ok(())
    }

    /// Training batches for `epoch`: shuffled within buckets of similar length, and the
    /// batch order shuffled. `lengths[i]` is the length of example `i`.
    ///
    /// ```
    /// use datasets::BucketSampler;
    /// let lengths = [5, 50, 6, 49, 7, 48, 8, 47];
    /// let sampler = BucketSampler { batch_size: 2, bucket_batches: 4 };
    /// let batches = sampler.train_batches(&[0, 1, 2, 3, 4, 5, 6, 7], &lengths, 42, 0).unwrap();
    /// assert_eq!(batches.len(), 4);
    /// // Each batch holds two short or two long examples.
    /// assert!(batches.iter().all(|b| (lengths[b[0]] > 10) == (lengths[b[1]] > 10)));
    /// ```
    pub fn train_batches(
        &self,
        indices: &[usize],
        lengths: &[usize],
        seed: u64,
        epoch: u64,
    ) -> Result<Vec<Vec<usize>>> {
        self.check(indices, lengths)?;
        let mut rng = seeded_rng(seed, streams::SHUFFLE.wrapping_add(epoch));
        let mut order = indices.to_vec();
        shuffle(&mut order, &mut rng);
        let bucket = self.batch_size.saturating_mul(self.bucket_batches);
        let mut batches = Vec::with_capacity(order.len().div_ceil(self.batch_size));
        for chunk in order.chunks_mut(bucket) {
            // Stable sort: equal lengths keep their shuffled order.
            chunk.sort_by_key(|&i| lengths[i]);
            batches.extend(chunk.chunks(self.batch_size).map(<[usize]>::to_vec));
        }
        shuffle(&mut batches, &mut rng);
        Ok(batches)
    }

    /// Evaluation batches: longest first, deterministic.
    pub fn eval_batches(&self, indices: &[usize], lengths: &[usize]) -> Result<Vec<Vec<usize>>> {
        self.check(indices, lengths)?;
        let mut order = indices.to_vec();
        order.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]).then(a.cmp(&b)));
        Ok(order.chunks(self.batch_size).map(<[usize]>::to_vec).collect())
    }

    /// [`eval_batches`](Self::eval_batches) holding at most `batch_size` rows each, where example `i` is `rows[i]`
    /// rows (a NER sentence read in windows is several; an example with more rows than that is a batch alone), so
    /// that long documents do not pile into one forward pass.
    ///
    /// ```
    /// use datasets::BucketSampler;
    /// let batches = BucketSampler::new(4).eval_batches_by_rows(&[0, 1, 2, 3], &[90, 50, 10, 9], &[3, 2, 1, 1]).unwrap();
    /// assert_eq!(batches, [vec![0], vec![1, 2, 3]]);
    /// ```
    pub fn eval_batches_by_rows(
        &self,
        indices: &[usize],
        lengths: &[usize],
        rows: &[usize],
    ) -> Result<Vec<Vec<usize>>> {
        self.check(indices, lengths)?;
        self.check(indices, rows)?;
        let mut order = indices.to_vec();
        order.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]).then(a.cmp(&b)));
        let mut batches: Vec<Vec<usize>> = Vec::new();
        let mut filled = 0;
        for index in order {
            let count = rows[index].max(1);
            match batches.last_mut() {
                Some(batch) if filled + count <= self.batch_size => {
                    batch.push(index);
                    filled += count;
                }
                _ => {
                    batches.push(vec![index]);
                    filled = count;
                }
            }
        }
        Ok(batches)
    }
}

/// The token count of each example, for [`BucketSampler`].
pub fn lengths(examples: &[Encoded]) -> Vec<usize> {
    examples.iter().map(Encoded::len).collect()
}

//! Conversion of padded batches to `tch` tensors (the only torch-dependent part).

use tch::{Device, Tensor};

use crate::batch::{BatchLabels, BatchRow, PaddedBatch};
use crate::error::{DatasetError, Result};

/// A batch as `int64` tensors on a device, ready for the encoder.
#[derive(Debug)]
pub struct TensorBatch {
    /// Token ids, `[rows, seq_len]`.
    pub input_ids: Tensor,
    /// 1 for tokens, 0 for padding, `[batch, seq_len]`.
    pub attention_mask: Tensor,
    /// Token type ids, `[batch, seq_len]`.
    pub token_type_ids: Tensor,
    /// `[batch]` classes, or `[batch, seq_len]` token labels with -100 at padding and ignored tokens.
    pub labels: Tensor,
    /// The examples of the batch, in order.
    pub indices: Vec<usize>,
    /// Each row's example and the positions it owns (an example longer than the model has several rows).
    pub rows: Vec<BatchRow>,
}

fn to_tensor(values: &[i64], shape: &[i64], device: Device) -> Result<Tensor> {
    let tensor_error = |e: tch::TchError| DatasetError::Tensor(e.to_string());
    Tensor::f_from_slice(values).and_then(|t| t.f_view(shape)).and_then(|t| t.f_to_device(device)).map_err(tensor_error)
}

impl PaddedBatch {
    /// Copies the batch into tensors on `device`.
    pub fn to_tensors(&self, device: Device) -> Result<TensorBatch> {
        let dim = |n: usize| i64::try_from(n).map_err(|_| DatasetError::Batch(format!("dimension {n} too large")));
        let shape = [dim(self.batch_size)?, dim(self.seq_len)?];
        let labels = match &self.labels {
            BatchLabels::Classes(c) => to_tensor(c, &shape[..1], device)?,
            BatchLabels::Tokens(t) => to_tensor(t, &shape, device)?,
        };
        Ok(TensorBatch {
            input_ids: to_tensor(&self.input_ids, &shape, device)?,
            attention_mask: to_tensor(&self.attention_mask, &shape, device)?,
            token_type_ids: to_tensor(&self.token_type_ids, &shape, device)?,
            labels,
            indices: self.indices.clone(),
            rows: self.rows.clone(),
        })
    }
}

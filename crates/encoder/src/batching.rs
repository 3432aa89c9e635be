//! Dynamic padding: sequences sorted longest first, cut into batches, each padded to its longest sequence, and the
//! outputs put back in the order given.
//!
//! Sorting by length keeps the padding (and so the wasted compute) small; since padding is masked out, the outputs
//! do not depend on how sequences are grouped. [`run_sorted_batches`] is the one place that does this, for
//! [`SentenceEncoder`](crate::SentenceEncoder) and for the multi-task prediction pipeline.

use crate::error::EncoderError;
use tch::{Device, Tensor};

/// Pads token id sequences to the longest one: `([batch, longest] ids, [batch, longest] 1/0 mask)`, int64.
///
/// # Panics
///
/// When libtorch cannot build the tensors or move them to `device`, as tch's non-`f_` methods do; see
/// [`f_pad_batch`].
pub fn pad_batch(sequences: &[&[u32]], pad_id: u32, device: Device) -> (Tensor, Tensor) {
    match f_pad_batch(sequences, pad_id, device) {
        Ok(batch) => batch,
        Err(error) => panic!("cannot pad a batch of {} sequences on {device:?}: {error}", sequences.len()),
    }
}

/// [`pad_batch`] returning libtorch's errors (e.g. an unavailable `device`) instead of panicking.
pub fn f_pad_batch(sequences: &[&[u32]], pad_id: u32, device: Device) -> Result<(Tensor, Tensor), EncoderError> {
    let longest = sequences.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(sequences.len() * longest);
    let mut mask = Vec::with_capacity(sequences.len() * longest);
    for sequence in sequences {
        ids.extend(sequence.iter().map(|&id| i64::from(id)));
        ids.extend(std::iter::repeat_n(i64::from(pad_id), longest - sequence.len()));
        mask.extend(std::iter::repeat_n(1i64, sequence.len()));
        mask.extend(std::iter::repeat_n(0i64, longest - sequence.len()));
    }
    let shape = [sequences.len() as i64, longest as i64];
    let tensor = |values: &[i64]| Tensor::from_slice(values).f_view(shape)?.f_to_device(device);
    Ok((tensor(&ids)?, tensor(&mask)?))
}

/// Runs `forward(input_ids, mask)` on batches of at most `batch_size` of `sequences` and returns its outputs in the
/// order of `sequences`, one per sequence.
///
/// Sequences are sorted longest first (stably: equal lengths keep their order) and each batch is padded with
/// `pad_id` to its longest sequence by [`f_pad_batch`], on `device`. `forward` gets `[batch, longest]` int64 ids and
/// mask and must return one output per row, in row order. No sequences give no outputs and no call.
///
/// Gradients are not turned off here: callers running inference hold a [`tch::no_grad_guard`].
///
/// # Errors
///
/// [`EncoderError::InvalidInput`] when `batch_size` is 0, [`EncoderError::BatchRows`] when `forward` returns another
/// number of outputs than the batch has rows, [`EncoderError::Torch`] when a batch cannot be built on `device` (all
/// converted into `E`), and any error of `forward`.
pub fn run_sorted_batches<T, E>(
    sequences: &[&[u32]],
    pad_id: u32,
    device: Device,
    batch_size: usize,
    mut forward: impl FnMut(&Tensor, &Tensor) -> Result<Vec<T>, E>,
) -> Result<Vec<T>, E>
where
    E: From<EncoderError>,
{
    sorted_batches(sequences, None, pad_id, device, batch_size, |ids, mask, _| forward(ids, mask))
}

/// [`run_sorted_batches`] with each sequence's token types beside its ids (`types[i]` as long as `sequences[i]`),
/// padded with 0: `forward` gets ids, mask and types, all `[batch, longest]` int64.
///
/// # Errors
///
/// As [`run_sorted_batches`], and [`EncoderError::InvalidInput`] when the types do not match the sequences.
pub fn run_sorted_batches_with_types<T, E>(
    sequences: &[&[u32]],
    types: &[&[u32]],
    pad_id: u32,
    device: Device,
    batch_size: usize,
    mut forward: impl FnMut(&Tensor, &Tensor, &Tensor) -> Result<Vec<T>, E>,
) -> Result<Vec<T>, E>
where
    E: From<EncoderError>,
{
    let mismatch = types.len() != sequences.len() || types.iter().zip(sequences).any(|(t, s)| t.len() != s.len());
    if mismatch {
        return Err(EncoderError::InvalidInput("token types must match the sequences one for one".into()).into());
    }
    sorted_batches(sequences, Some(types), pad_id, device, batch_size, |ids, mask, types| match types {
        Some(types) => forward(ids, mask, types),
        None => Err(EncoderError::InvalidInput("token types missing".into()).into()),
    })
}

fn sorted_batches<T, E>(
    sequences: &[&[u32]],
    types: Option<&[&[u32]]>,
    pad_id: u32,
    device: Device,
    batch_size: usize,
    mut forward: impl FnMut(&Tensor, &Tensor, Option<&Tensor>) -> Result<Vec<T>, E>,
) -> Result<Vec<T>, E>
where
    E: From<EncoderError>,
{
    if batch_size == 0 {
        return Err(EncoderError::InvalidInput("batch_size must be at least 1".into()).into());
    }
    let mut order: Vec<usize> = (0..sequences.len()).collect();
    order.sort_by_key(|&index| std::cmp::Reverse(sequences[index].len()));
    let mut outputs: Vec<Option<T>> = (0..sequences.len()).map(|_| None).collect();
    for indices in order.chunks(batch_size) {
        let batch: Vec<&[u32]> = indices.iter().map(|&index| sequences[index]).collect();
        let (input_ids, mask) = f_pad_batch(&batch, pad_id, device)?;
        let batch_types = match types {
            Some(types) => {
                let batch: Vec<&[u32]> = indices.iter().map(|&index| types[index]).collect();
                Some(f_pad_batch(&batch, 0, device)?.0)
            }
            None => None,
        };
        let rows = forward(&input_ids, &mask, batch_types.as_ref())?;
        if rows.len() != indices.len() {
            return Err(EncoderError::BatchRows { expected: indices.len(), found: rows.len() }.into());
        }
        for (&index, row) in indices.iter().zip(rows) {
            outputs[index] = Some(row);
        }
    }
    // Every index is in exactly one chunk, so every slot is filled.
    Ok(outputs.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    /// Each row's real ids (the mask's 1s) as a vector, so outputs can be traced back to their inputs.
    fn rows(input_ids: &Tensor, mask: &Tensor) -> Result<Vec<Vec<i64>>, EncoderError> {
        let ids = Vec::<Vec<i64>>::try_from(input_ids)?;
        let mask = Vec::<Vec<i64>>::try_from(mask)?;
        Ok(ids
            .into_iter()
            .zip(mask)
            .map(|(ids, mask)| ids.into_iter().zip(mask).filter(|&(_, m)| m == 1).map(|(id, _)| id).collect())
            .collect())
    }

    #[test]
    fn pads_to_the_longest_sequence_with_a_mask() {
        let (ids, mask) = pad_batch(&[&[5, 6, 7], &[8]], 0, Device::Cpu);
        assert_eq!(ids.kind(), Kind::Int64);
        assert_eq!(Vec::<Vec<i64>>::try_from(&ids).expect("ids"), [[5, 6, 7], [8, 0, 0]]);
        assert_eq!(Vec::<Vec<i64>>::try_from(&mask).expect("mask"), [[1, 1, 1], [1, 0, 0]]);
    }

    #[test]
    fn outputs_come_back_in_input_order_whatever_the_batch_size() {
        let sequences: Vec<Vec<u32>> = vec![vec![1], vec![2, 2, 2], vec![3, 3], vec![4, 4, 4, 4], vec![5, 5]];
        let refs: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
        let expected: Vec<Vec<i64>> = sequences.iter().map(|s| s.iter().map(|&id| i64::from(id)).collect()).collect();
        for batch_size in [1, 2, 3, 5, 8] {
            let mut widths = Vec::new();
            let outputs = run_sorted_batches(&refs, 9, Device::Cpu, batch_size, |ids, mask| {
                widths.push(ids.size()[1]);
                rows(ids, mask)
            })
            .expect("runs");
            assert_eq!(outputs, expected, "batch size {batch_size}");
            // Longest first: batch widths never grow.
            assert!(widths.windows(2).all(|w| w[0] >= w[1]), "{widths:?}");
            assert_eq!(widths.len(), sequences.len().div_ceil(batch_size));
        }
    }

    #[test]
    fn batch_size_zero_and_wrong_row_counts_are_typed_errors() {
        let refs: Vec<&[u32]> = vec![&[1, 2], &[3]];
        let zero = run_sorted_batches(&refs, 0, Device::Cpu, 0, rows);
        assert!(matches!(zero, Err(EncoderError::InvalidInput(_))), "{zero:?}");
        let short = run_sorted_batches(&refs, 0, Device::Cpu, 2, |_, _| Ok::<_, EncoderError>(vec![0]));
        assert!(matches!(short, Err(EncoderError::BatchRows { expected: 2, found: 1 })), "{short:?}");
        let none = run_sorted_batches(&[], 0, Device::Cpu, 4, |_, _| -> Result<Vec<u8>, EncoderError> {
            panic!("no batch to run")
        });
        assert!(none.expect("no sequences").is_empty());
    }
}

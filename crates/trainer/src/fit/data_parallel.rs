//! Data-parallel training over a [`ProcessGroup`]: every rank draws the same global batches (the sampler's batch
//! size times the number of ranks, seeded alike), computes the loss of its own contiguous slice of each, weighted by
//! that slice's share of the global batch's loss terms, and before each optimizer step the gradients are summed
//! over the ranks. The summed gradient is then the gradient of the global batch's mean loss, so N ranks with batch
//! `b` step exactly as one process with batch `N * b` (up to the order of floating-point sums; with dropout off),
//! and every rank applies the same update to the same weights.

use super::state::Fingerprint;
use crate::error::{Result, TrainError};
use datasets::{Encoded, PreparedDataset, Target, IGNORE_INDEX};
use distributed::ProcessGroup;
use heads::MultiTaskModel;
use tch::Tensor;

/// How many terms an example adds to its batch's mean loss: one for a class, its labelled tokens for NER.
fn loss_terms(example: &Encoded) -> usize {
    match &example.target {
        Target::Class(_) => 1,
        Target::Tokens(targets) => targets.labels.iter().filter(|&&label| label != IGNORE_INDEX).count(),
    }
}

/// This rank's part in data-parallel training; `None` in a single process.
#[derive(Clone, Copy)]
pub(super) struct Ranks<'a> {
    pub(super) group: Option<&'a ProcessGroup>,
}

impl Ranks<'_> {
    pub(super) fn world_size(&self) -> usize {
        self.group.map_or(1, ProcessGroup::world_size)
    }

    /// This rank's slice of a global `batch` (the rank-th of `world_size` contiguous slices whose sizes differ by
    /// at most one; empty when the batch has fewer examples than ranks) and its weight: the slice's share of the
    /// batch's loss terms. A single process takes the whole batch with weight 1.
    pub(super) fn share<'b>(&self, dataset: &PreparedDataset, batch: &'b [usize]) -> (&'b [usize], f64) {
        let Some(group) = self.group else { return (batch, 1.0) };
        let (rank, world) = (group.rank(), group.world_size());
        let slice = &batch[batch.len() * rank / world..batch.len() * (rank + 1) / world];
        let terms = |indices: &[usize]| -> usize { indices.iter().map(|&i| loss_terms(&dataset.examples()[i])).sum() };
        let total = terms(batch);
        let weight = if total == 0 { 0.0 } else { terms(slice) as f64 / total as f64 };
        (slice, weight)
    }

    /// Sums the gradients of `params`, `loss` (this rank's weighted loss since the last step) and whether this rank
    /// was asked to `stop`, over the ranks, in one flat buffer; returns the summed loss and whether any rank was
    /// asked to stop (so that all stop after the same step). Gradients a rank never produced count as zeros. A
    /// single process keeps its gradients, loss and stop as they are.
    pub(super) fn sum_gradients(&self, params: &[Tensor], loss: f64, stop: bool) -> Result<(f64, bool)> {
        let Some(group) = self.group else { return Ok((loss, stop)) };
        // A rank whose slices were all empty (or that never reached a parameter) has undefined gradients: make
        // them zeros, so that every rank sends the same layout.
        let missing: Vec<&Tensor> = params.iter().filter(|p| !p.grad().defined()).collect();
        if !missing.is_empty() {
            let zero = missing.iter().map(|p| p.sum(p.kind()) * 0.0).reduce(|a, b| a + b);
            if let Some(zero) = zero {
                zero.f_backward()?;
            }
        }
        let grads: Vec<Tensor> = params.iter().map(Tensor::grad).collect();
        let mut parts: Vec<Tensor> = grads.iter().map(|g| g.reshape([-1])).collect();
        let kind = grads.first().map_or(tch::Kind::Float, Tensor::kind);
        parts.push(Tensor::from_slice(&[loss as f32, if stop { 1.0 } else { 0.0 }]).to_kind(kind));
        let flat = Tensor::f_cat(&parts, 0)?;
        group.all_reduce_sum(std::slice::from_ref(&flat))?;
        let mut offset = 0;
        tch::no_grad(|| -> Result<()> {
            for grad in &grads {
                let numel = grad.numel() as i64;
                let mut grad = grad.shallow_clone();
                grad.f_copy_(&flat.narrow(0, offset, numel).view_as(&grad))?;
                offset += numel;
            }
            Ok(())
        })?;
        Ok((flat.double_value(&[offset]), flat.double_value(&[offset + 1]) > 0.0))
    }

    /// Checks that every rank trains with the same settings and data: rank 0's `fingerprint` is sent to all; a rank
    /// whose own differs names the first entry that does, and every rank stops with that rank's message (sent by
    /// the lowest such rank). A single process has nothing to compare.
    pub(super) fn check_agreement(&self, fingerprint: &Fingerprint) -> Result<()> {
        let Some(group) = self.group else { return Ok(()) };
        let ours = serde_json::to_vec(fingerprint.entries()).map_err(|e| TrainError::InvalidConfig(e.to_string()))?;
        let theirs = broadcast_bytes(group, &ours, 0)?;
        let rank_zero: Fingerprint = serde_json::from_slice::<std::collections::BTreeMap<String, String>>(&theirs)
            .map(Fingerprint::from_entries)
            .map_err(|e| TrainError::InvalidConfig(format!("rank 0's settings cannot be read: {e}")))?;
        let difference = rank_zero.first_difference(fingerprint).map(|(key, zero, here)| {
            format!(
                "rank {} does not train with rank 0's settings and data: `{key}` is {} on rank {} but {} on rank 0 \
                 (every process needs the same flags, model and data files)",
                group.rank(),
                here.unwrap_or_else(|| "(not set)".into()),
                group.rank(),
                zero.unwrap_or_else(|| "(not set)".into())
            )
        });
        // Which ranks differ: each marks its own slot, the sum gathers them; the lowest tells everyone why.
        let slots = Tensor::zeros([group.world_size() as i64], (tch::Kind::Int64, tch::Device::Cpu));
        if difference.is_some() {
            let _ = tch::no_grad(|| slots.narrow(0, group.rank() as i64, 1).fill_(1));
        }
        group.all_reduce_sum(std::slice::from_ref(&slots))?;
        let differing = Vec::<i64>::try_from(&slots).unwrap_or_default();
        let Some(reported) = differing.iter().position(|&flag| flag > 0) else { return Ok(()) };
        let message = broadcast_bytes(group, difference.unwrap_or_default().as_bytes(), reported)?;
        Err(TrainError::InvalidConfig(String::from_utf8_lossy(&message).into_owned()))
    }

    /// Makes every rank start from rank 0's weights (all of the model's variables, in name order).
    pub(super) fn broadcast_weights(&self, model: &MultiTaskModel) -> Result<()> {
        let Some(group) = self.group else { return Ok(()) };
        let mut variables: Vec<(String, Tensor)> = model.var_store().variables().into_iter().collect();
        variables.sort_by(|a, b| a.0.cmp(&b.0));
        let tensors: Vec<Tensor> = variables.into_iter().map(|(_, t)| t).collect();
        tch::no_grad(|| group.broadcast(&tensors, 0))?;
        Ok(())
    }
}

/// Sends `bytes` from rank `root` to every rank (their length first); returns what `root` sent.
fn broadcast_bytes(group: &ProcessGroup, bytes: &[u8], root: usize) -> Result<Vec<u8>> {
    let length = Tensor::from_slice(&[bytes.len() as i64]);
    group.broadcast(std::slice::from_ref(&length), root)?;
    let length = usize::try_from(length.int64_value(&[0])).unwrap_or(0);
    let mut buffer = bytes.to_vec();
    buffer.resize(length, 0);
    let tensor = Tensor::from_slice(&buffer);
    group.broadcast(std::slice::from_ref(&tensor), root)?;
    Ok(Vec::<u8>::try_from(&tensor).unwrap_or_default())
}

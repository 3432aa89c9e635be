//! Which examples each training step sees: separate mode's epoch batches, and combined mode's cycling batches.

use crate::config::{Task, TrainConfig};
use crate::error::{Result, TrainError};
use datasets::{BucketSampler, PreparedDataset};

/// The training batches (lists of example indices into `dataset`) of `task`'s `epoch` (1-based) in separate mode,
/// in the order the training loop runs them: seeded by [`TrainConfig::seed`], the task and the epoch.
pub fn separate_epoch_batches(
    config: &TrainConfig,
    task: Task,
    dataset: &PreparedDataset,
    epoch: usize,
) -> Result<Vec<Vec<usize>>> {
    global_epoch_batches(config, config.batch_size, task, dataset, epoch)
}

/// [`separate_epoch_batches`] of `batch_size` examples (the global batch of data-parallel training).
pub(super) fn global_epoch_batches(
    config: &TrainConfig,
    batch_size: usize,
    task: Task,
    dataset: &PreparedDataset,
    epoch: usize,
) -> Result<Vec<Vec<usize>>> {
    let stream = if task == Task::Classification { 0 } else { 1_000 };
    let sampler = BucketSampler::new(batch_size);
    Ok(sampler.train_batches(dataset.train(), &dataset.lengths(), config.seed, stream + epoch as u64)?)
}

/// A task's training batches for combined mode: when they run out, a new shuffle starts (the shorter task cycles).
pub(super) struct CyclingBatches<'a> {
    sampler: BucketSampler,
    data: &'a PreparedDataset,
    lengths: Vec<usize>,
    seed: u64,
    stream: u64,
    batches: std::vec::IntoIter<Vec<usize>>,
    pub(super) per_pass: usize,
}

impl<'a> CyclingBatches<'a> {
    pub(super) fn new(sampler: BucketSampler, data: &'a PreparedDataset, seed: u64, stream: u64) -> Result<Self> {
        let lengths = data.lengths();
        let batches = sampler.train_batches(data.train(), &lengths, seed, stream)?;
        let per_pass = batches.len();
        if per_pass == 0 {
            return Err(TrainError::InvalidConfig("a task has no training examples".into()));
        }
        Ok(Self { sampler, data, lengths, seed, stream, batches: batches.into_iter(), per_pass })
    }

    pub(super) fn next_batch(&mut self) -> Result<Vec<usize>> {
        if let Some(batch) = self.batches.next() {
            return Ok(batch);
        }
        self.stream += 1;
        self.batches =
            self.sampler.train_batches(self.data.train(), &self.lengths, self.seed, self.stream)?.into_iter();
        self.batches.next().ok_or_else(|| TrainError::InvalidConfig("a task has no training examples".into()))
    }
}

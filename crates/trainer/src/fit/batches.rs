//! Which examples each training step sees: each task trained in an epoch draws its batches from its own stream, a
//! seeded shuffle of its training examples into length-bucketed batches; a task that runs out before the epoch
//! ends (the shorter task of combined mode) starts a new shuffle.

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use datasets::{BucketSampler, PreparedDataset};
use heads::Task;

/// The first shuffle stream of `task` in `epoch`; a task that cycles takes the next ones. Tasks and epochs start 2^32
/// streams apart, so no cycling reaches another's.
fn first_stream(task: Task, epoch: usize) -> u64 {
    ((task.index() as u64) << 48) | ((epoch as u64 & 0xFFFF) << 32)
}

/// The training batches (lists of example indices into `dataset`) of `task` in `epoch` (1-based), in the order
/// the training loop runs them, seeded by [`TrainConfig::seed`], the task and the epoch (one pass over the
/// training examples).
pub fn epoch_batches(
    config: &TrainConfig,
    task: Task,
    dataset: &PreparedDataset,
    epoch: usize,
) -> Result<Vec<Vec<usize>>> {
    let sampler = BucketSampler::new(config.batch_size);
    Ok(sampler.train_batches(dataset.train(), &dataset.lengths(), config.seed, first_stream(task, epoch))?)
}

/// One task's batches in an epoch: when they run out, a new shuffle starts.
pub(super) struct TaskStream<'a> {
    pub(super) task: Task,
    pub(super) data: &'a PreparedDataset,
    sampler: BucketSampler,
    lengths: Vec<usize>,
    seed: u64,
    stream: u64,
    batches: std::vec::IntoIter<Vec<usize>>,
    /// Batches in one pass over the task's training examples.
    pub(super) per_pass: usize,
}

impl<'a> TaskStream<'a> {
    /// The stream of `task` in `epoch`, in global batches of `batch_size` examples.
    pub(super) fn new(
        task: Task,
        data: &'a PreparedDataset,
        batch_size: usize,
        seed: u64,
        epoch: usize,
    ) -> Result<Self> {
        let sampler = BucketSampler::new(batch_size);
        let lengths = data.lengths();
        let stream = first_stream(task, epoch);
        let batches = sampler.train_batches(data.train(), &lengths, seed, stream)?;
        let per_pass = batches.len();
        if per_pass == 0 {
            return Err(TrainError::InvalidConfig(format!("the {} data has no training examples", task.title())));
        }
        Ok(Self { task, data, sampler, lengths, seed, stream, batches: batches.into_iter(), per_pass })
    }

    /// The next batch.
    pub(super) fn next_batch(&mut self) -> Result<Vec<usize>> {
        if let Some(batch) = self.batches.next() {
            return Ok(batch);
        }
        self.stream += 1;
        self.batches =
            self.sampler.train_batches(self.data.train(), &self.lengths, self.seed, self.stream)?.into_iter();
        self.batches.next().ok_or_else(|| {
            TrainError::InvalidConfig(format!("the {} data has no training examples", self.task.title()))
        })
    }

    /// Skips `count` batches (those a resumed epoch already trained on).
    pub(super) fn skip(&mut self, count: usize) -> Result<()> {
        for _ in 0..count {
            self.next_batch()?;
        }
        Ok(())
    }
}

//! The epochs of a phase: batches, losses, optimizer steps, validation after each epoch and keeping the best epoch.

use super::batches::{global_epoch_batches, CyclingBatches};
use super::data_parallel::Ranks;
use super::{score, PhaseOutcome, Split, TaskData};
use crate::config::{Task, TrainConfig};
use crate::error::{Result, TrainError};
use crate::features::FeatureCache;
use crate::observer::{EpochRecord, EpochStart, EpochTiming, Observer, Stage, StepRecord, ValidationScores};
use crate::optim::Adam;
use datasets::{BucketSampler, PreparedDataset};
use heads::{MultiTaskModel, ParamGroup};
use std::time::Instant;
use tch::{Reduction, Tensor};

/// One phase of training: one task's epochs (separate mode) or both tasks' (combined mode, `trains: None`).
pub(super) struct Phase {
    pub(super) trains: Option<Task>,
    /// The tasks whose validation scores choose the kept epoch: those trained so far.
    pub(super) scored: Vec<Task>,
}

impl Phase {
    fn name(&self) -> String {
        self.trains.map_or_else(|| "combined".to_string(), |task| task.to_string())
    }
}

/// The weights of the best epoch so far.
struct Best {
    epoch: usize,
    metric: f64,
    weights: Vec<Tensor>,
}

pub(super) struct Trainer<'a> {
    pub(super) model: &'a MultiTaskModel,
    pub(super) config: &'a TrainConfig,
    pub(super) cache: Option<&'a FeatureCache>,
    /// The encoder does not train: it runs in eval mode (no dropout) and without a graph, as the cache does.
    pub(super) frozen_encoder: bool,
    pub(super) observer: &'a mut dyn Observer,
    pub(super) global_step: usize,
    /// This process's part in data-parallel training (a single process takes every batch whole).
    pub(super) ranks: Ranks<'a>,
}

/// The losses of the batches since the last optimizer step: this rank's, each weighted by its slice's share.
#[derive(Default)]
struct PendingLoss {
    weighted_sum: f64,
    batches: usize,
}

impl Trainer<'_> {
    /// Runs a phase's epochs with a fresh optimizer over what the phase trains, validating after each epoch when
    /// there are validation examples; restores the best epoch's weights at the end.
    pub(super) fn run_phase(
        &mut self,
        phase: &Phase,
        groups: &[ParamGroup],
        data: TaskData<'_>,
        validation: bool,
    ) -> Result<(PhaseOutcome, Vec<EpochRecord>)> {
        let config = self.config;
        // In separate mode the other task's head is left out, so its optimizer state does not move it (as
        // `zero_grad(set_to_none=True)` in PyTorch).
        let phase_groups: Vec<ParamGroup> = groups
            .iter()
            .map(|group| match phase.trains {
                Some(Task::Classification) => group.without_head(Some(Task::Ner)),
                Some(Task::Ner) => group.without_head(Some(Task::Classification)),
                None => group.without_head(None),
            })
            .collect();
        let trained: Vec<Tensor> =
            phase_groups.iter().flat_map(|g| &g.parameters).map(|(_, t)| t.shallow_clone()).collect();
        let mut optimizer = Adam::new(phase_groups, config.optimizer);
        let mut best: Option<Best> = None;
        let mut records = Vec::new();
        let mut stopped_early = false;
        let mut phase_step = 0usize;
        for epoch in 1..=config.epochs {
            let mut record = match phase.trains {
                Some(task) => {
                    let dataset = data
                        .get(task)
                        .ok_or_else(|| TrainError::InvalidConfig(format!("no {task} data to train on")))?;
                    self.separate_epoch(task, dataset, &mut optimizer, &trained, epoch, &mut phase_step)?
                }
                None => self.combined_epoch(data, &mut optimizer, &trained, epoch, &mut phase_step)?,
            };
            if validation {
                self.observer.on_stage(Stage::Validating);
                let scores = self.validate(data, &phase.scored)?;
                let improved = best.as_ref().is_none_or(|b| scores.metric > b.metric);
                if improved {
                    let weights = tch::no_grad(|| trained.iter().map(Tensor::copy).collect());
                    best = Some(Best { epoch, metric: scores.metric, weights });
                }
                record.validation = Some(ValidationScores { best: improved, ..scores });
            }
            tracing::info!(
                phase = %phase.name(),
                epoch,
                mean_loss = record.mean_loss,
                seconds = record.seconds,
                validation = ?record.validation.as_ref().map(|v| v.metric),
                "epoch done"
            );
            self.observer.on_epoch(&record);
            records.push(record);
            if let (Some(patience), Some(best)) = (config.patience, &best) {
                if epoch - best.epoch >= patience && epoch < config.epochs {
                    stopped_early = true;
                    tracing::info!(phase = %phase.name(), epoch, best = best.epoch, "early stopping");
                    break;
                }
            }
        }
        let epochs_run = records.len();
        let (kept_epoch, best_metric) = match best {
            Some(best) => {
                if best.epoch != epochs_run {
                    tch::no_grad(|| -> Result<()> {
                        for (mut variable, saved) in trained.into_iter().zip(&best.weights) {
                            variable.f_copy_(saved)?;
                        }
                        Ok(())
                    })?;
                    tracing::info!(phase = %phase.name(), kept = best.epoch, "restored the best epoch's weights");
                }
                (best.epoch, Some(best.metric))
            }
            None => (epochs_run, None),
        };
        let outcome = PhaseOutcome { phase: phase.name(), epochs_run, kept_epoch, best_metric, stopped_early };
        Ok((outcome, records))
    }

    /// Scores the validation examples of the `scored` tasks.
    fn validate(&self, data: TaskData<'_>, scored: &[Task]) -> Result<ValidationScores> {
        let only = |task: Task| if scored.contains(&task) { data.get(task) } else { None };
        let subset = TaskData { classification: only(Task::Classification), ner: only(Task::Ner) };
        let evaluation = score(self.model, subset, Split::Validation, self.config.batch_size, self.cache)?;
        let classification_accuracy = evaluation.classification.as_ref().map(|c| c.report.accuracy);
        let ner_f1 = evaluation.ner.as_ref().map(|n| n.report.micro_avg.f1);
        let values: Vec<f64> = classification_accuracy.into_iter().chain(ner_f1).collect();
        let metric = values.iter().sum::<f64>() / values.len().max(1) as f64;
        Ok(ValidationScores { classification_accuracy, ner_f1, metric, best: false, seconds: evaluation.seconds })
    }

    /// The training loss of one batch of `task` (cached features when there are some).
    fn loss(&self, task: Task, dataset: &PreparedDataset, indices: &[usize]) -> Result<Tensor> {
        let model = self.model;
        let device = model.var_store().device();
        let cross_entropy = |logits: &Tensor, labels: &Tensor| {
            logits.cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, datasets::IGNORE_INDEX.into(), 0.0)
        };
        let cached_classification = self.cache.and_then(|c| c.classification.as_ref());
        let cached_ner = self.cache.and_then(|c| c.ner.as_ref());
        Ok(match (task, cached_classification, cached_ner) {
            (Task::Classification, Some(features), _) => {
                let (pooled, labels) = features.batch(indices);
                cross_entropy(&model.f_classification_head(&pooled, true)?, &labels)
            }
            (Task::Ner, _, Some(features)) => {
                let (states, labels) = features.batch(indices);
                cross_entropy(&model.f_ner_head(&states, true)?, &labels)
            }
            (Task::Classification, None, _) => {
                let batch = dataset.batch(indices)?.to_tensors(device)?;
                let hidden = self.encode(&batch)?;
                let pooled = model.f_pool(&hidden, &batch.attention_mask)?;
                cross_entropy(&model.f_classification_head(&pooled, true)?, &batch.labels)
            }
            (Task::Ner, _, None) => {
                let batch = dataset.batch(indices)?.to_tensors(device)?;
                let logits = model.f_ner_head(&self.encode(&batch)?, true)?;
                let labels_count = logits.size().last().copied().unwrap_or(1);
                cross_entropy(&logits.reshape([-1, labels_count]), &batch.labels.reshape([-1]))
            }
        })
    }

    /// The encoder's token states of a batch: trained (dropout on, graph kept) unless the encoder is frozen.
    fn encode(&self, batch: &datasets::TensorBatch) -> Result<Tensor> {
        let (ids, mask, types) = (&batch.input_ids, &batch.attention_mask, Some(&batch.token_type_ids));
        if self.frozen_encoder {
            let _guard = tch::no_grad_guard();
            Ok(self.model.encode_t(ids, mask, types, false)?)
        } else {
            Ok(self.model.encode_t(ids, mask, types, true)?)
        }
    }

    fn cached(&self, task: Task) -> bool {
        self.cache.is_some_and(|c| match task {
            Task::Classification => c.classification.is_some(),
            Task::Ner => c.ner.is_some(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn separate_epoch(
        &mut self,
        task: Task,
        dataset: &PreparedDataset,
        optimizer: &mut Adam,
        trained: &[Tensor],
        epoch: usize,
        phase_step: &mut usize,
    ) -> Result<EpochRecord> {
        let started = Instant::now();
        let config = self.config;
        let batch_size = config.batch_size * self.ranks.world_size();
        let batches = global_epoch_batches(config, batch_size, task, dataset, epoch)?;
        if batches.is_empty() {
            return Err(TrainError::InvalidConfig(format!("the {task} data has no training examples")));
        }
        let total_steps = config.epochs * batches.len().div_ceil(config.gradient_accumulation);
        self.observer.on_epoch_start(&EpochStart {
            phase: task.to_string(),
            epoch,
            epochs: config.epochs,
            batches: batches.len(),
        });
        let mut loss_sum = 0.0;
        let mut pending = PendingLoss::default();
        let mut examples = 0;
        let mut timing = EpochTiming::default();
        optimizer.zero_grad();
        for (index, indices) in batches.iter().enumerate() {
            let step = index + 1;
            let (share, weight) = self.ranks.share(dataset, indices);
            let mut value = 0.0;
            // A slice without loss terms (an empty one, or NER sentences without labelled tokens) adds nothing.
            if !share.is_empty() && weight > 0.0 {
                let clock = Instant::now();
                let loss = self.loss(task, dataset, share)?;
                value = checked(&loss, task, epoch, step)?;
                let forward = clock.elapsed().as_secs_f64();
                (loss * weight / config.gradient_accumulation as f64).backward();
                timing.forward += forward;
                timing.backward += clock.elapsed().as_secs_f64() - forward;
            }
            pending.weighted_sum += value * weight;
            pending.batches += 1;
            examples += indices.len();
            if step % config.gradient_accumulation == 0 || step == batches.len() {
                let position = (task.to_string(), epoch, step);
                loss_sum += self.optimizer_step(
                    optimizer,
                    trained,
                    &mut pending,
                    &mut timing,
                    position,
                    (phase_step, total_steps),
                )?;
            }
            self.observer.on_batch(value, share.len());
        }
        Ok(EpochRecord {
            task: task.to_string(),
            epoch,
            mean_loss: loss_sum / batches.len() as f64,
            steps: batches.len(),
            examples,
            seconds: started.elapsed().as_secs_f64(),
            timing,
            cached: self.cached(task),
            validation: None,
        })
    }

    fn combined_epoch(
        &mut self,
        data: TaskData<'_>,
        optimizer: &mut Adam,
        trained: &[Tensor],
        epoch: usize,
        phase_step: &mut usize,
    ) -> Result<EpochRecord> {
        let started = Instant::now();
        let config = self.config;
        let (Some(classification), Some(ner)) = (data.classification, data.ner) else {
            return Err(TrainError::InvalidConfig("combined mode needs both classification and NER data".into()));
        };
        let sampler = BucketSampler::new(config.batch_size * self.ranks.world_size());
        let mut streams = [
            CyclingBatches::new(sampler, classification, config.seed, epoch as u64 * 1_000)?,
            CyclingBatches::new(sampler, ner, config.seed, 500_000 + epoch as u64 * 1_000)?,
        ];
        let steps = streams[0].per_pass.max(streams[1].per_pass);
        let total_steps = config.epochs * steps.div_ceil(config.gradient_accumulation);
        self.observer.on_epoch_start(&EpochStart {
            phase: "combined".into(),
            epoch,
            epochs: config.epochs,
            batches: steps,
        });
        let task_weights = [config.classification_weight, 1.0 - config.classification_weight];
        let mut loss_sum = 0.0;
        let mut pending = PendingLoss::default();
        let mut examples = 0;
        let mut timing = EpochTiming::default();
        optimizer.zero_grad();
        for step in 1..=steps {
            let batches = [streams[0].next_batch()?, streams[1].next_batch()?];
            let clock = Instant::now();
            // This rank's weighted loss over both tasks' slices (a task whose slice is empty adds nothing).
            let mut loss: Option<Tensor> = None;
            let mut value = 0.0;
            let mut shared = 0;
            for ((task, dataset), (indices, task_weight)) in [(Task::Classification, classification), (Task::Ner, ner)]
                .into_iter()
                .zip(batches.iter().zip(task_weights))
            {
                let (share, weight) = self.ranks.share(dataset, indices);
                if share.is_empty() || weight == 0.0 {
                    continue;
                }
                let task_loss = self.loss(task, dataset, share)?;
                value += checked(&task_loss, task, epoch, step)? * task_weight * weight;
                let term = task_loss * (task_weight * weight);
                loss = Some(match loss {
                    Some(sum) => sum + term,
                    None => term,
                });
                shared += share.len();
            }
            let forward = clock.elapsed().as_secs_f64();
            if let Some(loss) = loss {
                (loss / config.gradient_accumulation as f64).backward();
            }
            timing.forward += forward;
            timing.backward += clock.elapsed().as_secs_f64() - forward;
            pending.weighted_sum += value;
            pending.batches += 1;
            examples += batches[0].len() + batches[1].len();
            if step % config.gradient_accumulation == 0 || step == steps {
                let position = ("combined".to_string(), epoch, step);
                loss_sum += self.optimizer_step(
                    optimizer,
                    trained,
                    &mut pending,
                    &mut timing,
                    position,
                    (phase_step, total_steps),
                )?;
            }
            self.observer.on_batch(value, shared);
        }
        Ok(EpochRecord {
            task: "combined".into(),
            epoch,
            mean_loss: loss_sum / steps as f64,
            steps,
            examples,
            seconds: started.elapsed().as_secs_f64(),
            timing,
            cached: self.cached(Task::Classification) && self.cached(Task::Ner),
            validation: None,
        })
    }

    /// Sums the gradients over the ranks (in data-parallel training), clips, steps the optimizer at the schedule's
    /// rate for the phase's `phase_step`-th step of `total_steps`, clears the gradients and the `pending` losses,
    /// adds its time to `timing` and reports the step (its loss: the mean over its batches of the global batches'
    /// losses). Returns the sum of those losses.
    fn optimizer_step(
        &mut self,
        optimizer: &mut Adam,
        trained: &[Tensor],
        pending: &mut PendingLoss,
        timing: &mut EpochTiming,
        (task, epoch, step): (String, usize, usize),
        (phase_step, total_steps): (&mut usize, usize),
    ) -> Result<f64> {
        let clock = Instant::now();
        let PendingLoss { weighted_sum, batches } = std::mem::take(pending);
        let summed = self.ranks.sum_gradients(trained, weighted_sum)?;
        if let Some(max_norm) = self.config.max_grad_norm {
            optimizer.clip_grad_norm(max_norm)?;
        }
        let lr_factor = self.config.schedule.factor(*phase_step, total_steps);
        optimizer.step(lr_factor)?;
        optimizer.zero_grad();
        *phase_step += 1;
        self.global_step += 1;
        timing.optimizer += clock.elapsed().as_secs_f64();
        let loss = summed / batches.max(1) as f64;
        self.observer.on_step(&StepRecord { task, epoch, step, global_step: self.global_step, loss, lr_factor });
        Ok(summed)
    }
}

fn checked(loss: &Tensor, task: Task, epoch: usize, step: usize) -> Result<f64> {
    let value = loss.double_value(&[]);
    if value.is_finite() {
        Ok(value)
    } else {
        Err(TrainError::NonFiniteLoss { task, epoch, step, value })
    }
}

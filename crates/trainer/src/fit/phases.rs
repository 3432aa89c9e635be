//! The phases of a run and their epochs: batches from one stream per trained task, losses, optimizer steps,
//! validation after each epoch, keeping the best epoch, early stopping, and the resumable state after every epoch.

use super::batches::TaskStream;
use super::data_parallel::Ranks;
use super::state::{prefix, write_state, BestEpoch, PartialEpoch, Position, ResumeState, StateRecord};
use super::{PhaseOutcome, RunControl};
use crate::config::{Phase, TrainConfig};
use crate::data::{Split, TaskData};
use crate::error::{Result, TrainError};
use crate::evaluate::score;
use crate::features::{FeatureCache, TaskFeatures};
use crate::observer::{EpochRecord, EpochStart, EpochTiming, Observer, Stage, StepRecord, ValidationScores};
use crate::optim::Adam;
use datasets::PreparedDataset;
use heads::{MultiTaskModel, ParamGroup, Task};
use std::sync::atomic::Ordering;
use std::time::Instant;
use tch::{Reduction, Tensor};

/// A phase in a run's plan: what it trains and whose validation scores choose its kept epoch.
#[derive(Debug, Clone)]
pub(super) struct PlannedPhase {
    pub(super) phase: Phase,
    /// The tasks whose batches train in this phase.
    pub(super) trains: Vec<Task>,
    /// The tasks whose validation scores choose the kept epoch: those trained so far.
    pub(super) scored: Vec<Task>,
}

/// How an epoch ended.
enum EpochEnd {
    Done(EpochRecord),
    /// A stop was asked for: the epoch stopped after `batch` batches, with these sums so far.
    Stopped {
        batch: usize,
        partial: PartialEpoch,
    },
}

/// The losses of the batches since the last optimizer step: this rank's, each weighted by its slice's share.
#[derive(Default)]
struct PendingLoss {
    weighted_sum: f64,
    batches: usize,
}

/// A run in progress: the model, what it trains on, and where it stands (the record a resumable state saves).
pub(super) struct Trainer<'a> {
    pub(super) model: &'a MultiTaskModel,
    pub(super) config: &'a TrainConfig,
    pub(super) data: TaskData<'a>,
    pub(super) cache: Option<&'a FeatureCache>,
    /// The encoder does not train: it runs in eval mode (no dropout) and without a graph, as the cache does.
    pub(super) frozen_encoder: bool,
    pub(super) observer: &'a mut dyn Observer,
    /// This process's part in data-parallel training (a single process takes every batch whole).
    pub(super) ranks: Ranks<'a>,
    pub(super) control: &'a RunControl<'a>,
    /// Where the run stands, what it recorded so far.
    pub(super) record: StateRecord,
    /// When this process started training (the record holds the seconds of earlier processes).
    pub(super) started: Instant,
    /// Every rank was asked to stop (known at a gradient sum; in a single process, at the step the flag was seen).
    pub(super) stop_agreed: bool,
    /// Optimizer steps done in the run.
    pub(super) global_step: usize,
    /// Phases in the run's plan.
    pub(super) phases: usize,
}

/// The best epoch of a phase so far, with its trained weights.
struct Best {
    epoch: BestEpoch,
    weights: Vec<Tensor>,
}

impl Trainer<'_> {
    /// Runs phase `index` of the plan with a fresh optimizer over what it trains (or the saved one, when `resume`
    /// stopped inside it), validating after each epoch when there is validation data, saving the resumable state
    /// after each epoch, and restoring the best epoch's weights at its end.
    pub(super) fn run_phase(
        &mut self,
        index: usize,
        planned: &PlannedPhase,
        groups: &[ParamGroup],
        validation: bool,
        resume: Option<&ResumeState>,
    ) -> Result<()> {
        let config = self.config;
        // Another task's head is left out of a phase that does not train it, so the optimizer never moves it (as
        // `zero_grad(set_to_none=True)` in PyTorch).
        let phase_groups: Vec<ParamGroup> = groups.iter().map(|group| group.for_tasks(&planned.trains)).collect();
        let trained: Vec<(String, Tensor)> = phase_groups
            .iter()
            .flat_map(|g| &g.parameters)
            .map(|(name, tensor)| (name.clone(), tensor.shallow_clone()))
            .collect();
        let mut optimizer = Adam::new(phase_groups, config.optimizer);
        let mut best: Option<Best> = None;
        let mut start = Position { phase: index, epoch: 1, batch: 0, phase_step: 0, global_step: self.global_step };
        let mut partial = None;
        if let Some(state) = resume.filter(|state| {
            let at = state.position();
            at.phase == index && (at.epoch > 1 || at.batch > 0)
        }) {
            // Inside this phase: the optimizer's moments and the best epoch so far come back too.
            optimizer.restore(state.record.optimizer_steps, |name, first, target| {
                let moment = if first { prefix::FIRST_MOMENT } else { prefix::SECOND_MOMENT };
                state.restore(&format!("{moment}{name}"), target)
            })?;
            if let Some(epoch) = state.record.best {
                let weights = trained
                    .iter()
                    .map(|(name, like)| state.take(&format!("{}{name}", prefix::BEST), like))
                    .collect::<Result<Vec<_>>>()?;
                best = Some(Best { epoch, weights });
            }
            start = state.position();
            partial = state.record.partial_epoch;
        }
        let trained_tensors: Vec<Tensor> = trained.iter().map(|(_, t)| t.shallow_clone()).collect();
        let mut phase_step = start.phase_step;
        let mut epoch = start.epoch;
        loop {
            let resume_at = if epoch == start.epoch { Some((start.batch, partial.unwrap_or_default())) } else { None };
            let mut record = match self.run_epoch(
                index,
                planned,
                epoch,
                &mut optimizer,
                &trained_tensors,
                &mut phase_step,
                resume_at,
            )? {
                EpochEnd::Done(record) => record,
                EpochEnd::Stopped { batch, partial } => {
                    let at = Position { phase: index, epoch, batch, phase_step, global_step: self.global_step };
                    return self.stop_at(at, Some(partial), &optimizer, &trained, best.as_ref());
                }
            };
            if validation {
                self.observer.on_stage(Stage::Validating);
                let scores = self.validate(&planned.scored)?;
                let improved = best.as_ref().is_none_or(|b| scores.metric > b.epoch.metric);
                if improved {
                    let weights = tch::no_grad(|| trained_tensors.iter().map(Tensor::copy).collect());
                    best = Some(Best { epoch: BestEpoch { epoch, metric: scores.metric }, weights });
                }
                record.validation = Some(ValidationScores { best: improved, ..scores });
            }
            tracing::info!(
                phase = %planned.phase,
                epoch,
                mean_loss = record.mean_loss,
                seconds = record.seconds,
                validation = ?record.validation.as_ref().map(|v| v.metric),
                "epoch done"
            );
            self.observer.on_epoch(&record);
            self.record.epochs.push(record);
            let stopped_early = match (config.patience, &best) {
                (Some(patience), Some(best)) => epoch - best.epoch.epoch >= patience && epoch < config.epochs,
                _ => false,
            };
            if stopped_early {
                tracing::info!(phase = %planned.phase, epoch, "early stopping");
            }
            let finished = stopped_early || epoch == config.epochs;
            let global_step = self.global_step;
            if finished {
                self.finish_phase(planned, &trained_tensors, best.take(), stopped_early)?;
                let next = Position { phase: index + 1, epoch: 1, batch: 0, phase_step: 0, global_step };
                self.save(next, None, None, &[], None)?;
            } else {
                let next = Position { phase: index, epoch: epoch + 1, batch: 0, phase_step, global_step };
                self.save(next, None, Some(&optimizer), &trained, best.as_ref())?;
            }
            // A stop asked after the last epoch of the last phase has nothing left to stop: the run ends normally.
            if self.should_stop() && !(finished && index + 1 == self.phases) {
                return Err(self.stopped());
            }
            if finished {
                return Ok(());
            }
            epoch += 1;
        }
    }

    /// Records how the phase ended and restores its best epoch's weights.
    fn finish_phase(
        &mut self,
        planned: &PlannedPhase,
        trained: &[Tensor],
        best: Option<Best>,
        stopped_early: bool,
    ) -> Result<()> {
        let epochs_run = self.record.epochs.iter().filter(|e| e.phase == planned.phase).count();
        let (kept_epoch, best_metric) = match best {
            Some(best) => {
                if best.epoch.epoch != epochs_run {
                    tch::no_grad(|| -> Result<()> {
                        for (variable, saved) in trained.iter().zip(&best.weights) {
                            variable.shallow_clone().f_copy_(saved)?;
                        }
                        Ok(())
                    })?;
                    tracing::info!(phase = %planned.phase, kept = best.epoch.epoch, "restored the best epoch's weights");
                }
                (best.epoch.epoch, Some(best.epoch.metric))
            }
            None => (epochs_run, None),
        };
        self.record.phases.push(PhaseOutcome {
            phase: planned.phase,
            epochs_run,
            kept_epoch,
            best_metric,
            stopped_early,
        });
        Ok(())
    }

    /// Saves the state at `at` (when the run saves states) and returns the stop as an error.
    fn stop_at(
        &mut self,
        at: Position,
        partial: Option<PartialEpoch>,
        optimizer: &Adam,
        trained: &[(String, Tensor)],
        best: Option<&Best>,
    ) -> Result<()> {
        self.save(at, partial, Some(optimizer), trained, best)?;
        Err(self.stopped())
    }

    fn stopped(&self) -> TrainError {
        TrainError::Stopped { position: self.record.next, state: self.control.save_state_to.map(|d| d.to_path_buf()) }
    }

    /// Whether the run is to stop: every rank agreed at the last gradient sum, or (in a single process) a stop was
    /// asked for since.
    fn should_stop(&self) -> bool {
        self.stop_agreed
            || (self.ranks.world_size() == 1 && self.control.stop.is_some_and(|stop| stop.load(Ordering::SeqCst)))
    }

    /// Records `next` as where the run stands and writes the resumable state, when the run saves states.
    fn save(
        &mut self,
        next: Position,
        partial: Option<PartialEpoch>,
        optimizer: Option<&Adam>,
        trained: &[(String, Tensor)],
        best: Option<&Best>,
    ) -> Result<()> {
        self.record.next = next;
        self.record.partial_epoch = partial;
        self.record.best = best.map(|b| b.epoch);
        self.record.optimizer_steps = optimizer.map_or(0, Adam::steps);
        let Some(dir) = self.control.save_state_to else { return Ok(()) };
        self.observer.on_stage(Stage::SavingState);
        let seconds = self.record.training_seconds;
        self.record.training_seconds += self.started.elapsed().as_secs_f64();
        self.started = Instant::now();
        let mut tensors: Vec<(String, Tensor)> = self
            .model
            .named_parameters()
            .into_iter()
            .map(|(name, tensor)| (format!("{}{name}", prefix::MODEL), tensor))
            .collect();
        if let Some(optimizer) = optimizer {
            for (name, first, second) in optimizer.moments() {
                tensors.push((format!("{}{name}", prefix::FIRST_MOMENT), first.shallow_clone()));
                tensors.push((format!("{}{name}", prefix::SECOND_MOMENT), second.shallow_clone()));
            }
        }
        if let Some(best) = best {
            for ((name, _), weights) in trained.iter().zip(&best.weights) {
                tensors.push((format!("{}{name}", prefix::BEST), weights.shallow_clone()));
            }
        }
        let written = write_state(dir, &self.record, tensors);
        if written.is_err() {
            self.record.training_seconds = seconds;
        }
        written
    }

    /// Scores the validation examples of the `scored` tasks.
    fn validate(&self, scored: &[Task]) -> Result<ValidationScores> {
        let subset: TaskData<'_> =
            self.data.iter().filter(|(task, _)| scored.contains(task)).map(|(t, d)| (t, *d)).collect();
        let evaluation = score(self.model, subset, Split::Validation, self.config.batch_size, self.cache)?;
        let values: Vec<f64> = scored.iter().filter_map(|&task| evaluation.metric(task)).collect();
        let metric = values.iter().sum::<f64>() / values.len().max(1) as f64;
        Ok(ValidationScores {
            classification_accuracy: evaluation.metric(Task::Classification),
            ner_f1: evaluation.metric(Task::Ner),
            metric,
            best: false,
            seconds: evaluation.seconds,
        })
    }

    /// The training loss of one batch of `task`: from its cached features when there are some, else running the
    /// encoder (trained, unless it is frozen).
    fn loss(&self, task: Task, dataset: &PreparedDataset, indices: &[usize]) -> Result<Tensor> {
        let model = self.model;
        let cross_entropy = |logits: &Tensor, labels: &Tensor| {
            let classes = logits.size().last().copied().unwrap_or(1);
            logits.reshape([-1, classes]).cross_entropy_loss::<Tensor>(
                &labels.reshape([-1]),
                None,
                Reduction::Mean,
                datasets::IGNORE_INDEX.into(),
                0.0,
            )
        };
        if let Some(features) = self.cache.and_then(|c| c.get(task)) {
            return Ok(match features {
                TaskFeatures::Classification(features) => {
                    let (pooled, labels) = features.batch(indices);
                    cross_entropy(&model.f_classification_head(&pooled, true)?, &labels)
                }
                TaskFeatures::Ner(features) => {
                    let (states, labels) = features.batch(indices);
                    cross_entropy(&model.f_ner_head(&states, true)?, &labels)
                }
            });
        }
        let batch = dataset.batch(indices)?.to_tensors(model.device())?;
        let hidden = self.encode(&batch)?;
        let logits = match task {
            Task::Classification => {
                model.f_classification_head(&model.f_pool(&hidden, &batch.attention_mask)?, true)?
            }
            Task::Ner => model.f_ner_head(&hidden, true)?,
        };
        Ok(cross_entropy(&logits, &batch.labels))
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

    /// The weight of `task`'s loss in a step of a phase that trains `trains`: 1 alone; in combined mode,
    /// `classification_weight` for classification and the rest for NER.
    fn task_weight(&self, task: Task, trains: &[Task]) -> f64 {
        if trains.len() == 1 {
            return 1.0;
        }
        match task {
            Task::Classification => self.config.classification_weight,
            Task::Ner => 1.0 - self.config.classification_weight,
        }
    }

    /// One epoch of phase `index`: as many steps as its longest task stream has batches (a shorter one cycles),
    /// each step summing the weighted losses of one batch of every task the phase trains. `resume_at`: the batch
    /// to start from and the sums of the batches before it. Stops after an optimizer step when a stop is asked.
    #[allow(clippy::too_many_arguments)]
    fn run_epoch(
        &mut self,
        index: usize,
        planned: &PlannedPhase,
        epoch: usize,
        optimizer: &mut Adam,
        trained: &[Tensor],
        phase_step: &mut usize,
        resume_at: Option<(usize, PartialEpoch)>,
    ) -> Result<EpochEnd> {
        let epoch_clock = Instant::now();
        let config = self.config;
        let batch_size = config.batch_size * self.ranks.world_size();
        let mut streams = planned
            .trains
            .iter()
            .map(|&task| {
                let data = self
                    .data
                    .get(task)
                    .copied()
                    .ok_or_else(|| TrainError::InvalidConfig(format!("no {} data to train on", task.title())))?;
                TaskStream::new(task, data, batch_size, config.seed, epoch)
            })
            .collect::<Result<Vec<_>>>()?;
        let steps = streams.iter().map(|s| s.per_pass).max().unwrap_or(0);
        let total_steps = config.epochs * steps.div_ceil(config.gradient_accumulation);
        let (first_batch, mut sums) = resume_at.unwrap_or_default();
        for stream in &mut streams {
            stream.skip(first_batch)?;
        }
        self.observer.on_epoch_start(&EpochStart {
            phase: planned.phase,
            epoch,
            epochs: config.epochs,
            batches: steps,
        });
        let mut pending = PendingLoss::default();
        optimizer.zero_grad();
        for batch in first_batch..steps {
            let step = batch + 1;
            tch::manual_seed(batch_seed(config.seed, index, epoch, batch));
            let clock = Instant::now();
            // This rank's weighted loss over the tasks' slices (a slice without loss terms adds nothing).
            let mut loss: Option<Tensor> = None;
            let mut value = 0.0;
            let mut examples = 0;
            let mut shared = 0;
            for stream in &mut streams {
                let (task, dataset) = (stream.task, stream.data);
                let indices = stream.next_batch()?;
                examples += indices.len();
                let (share, weight) = self.ranks.share(dataset, &indices);
                if share.is_empty() || weight == 0.0 {
                    continue;
                }
                let task_weight = self.task_weight(task, &planned.trains);
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
            sums.timing.forward += forward;
            sums.timing.backward += clock.elapsed().as_secs_f64() - forward;
            pending.weighted_sum += value;
            pending.batches += 1;
            sums.examples += examples;
            self.observer.on_batch(value, shared);
            if step % config.gradient_accumulation == 0 || step == steps {
                sums.loss_sum += self.optimizer_step(
                    planned.phase,
                    optimizer,
                    trained,
                    &mut pending,
                    &mut sums.timing,
                    (epoch, step),
                    (phase_step, total_steps),
                )?;
                if self.stop_agreed && step < steps {
                    sums.seconds += epoch_clock.elapsed().as_secs_f64();
                    return Ok(EpochEnd::Stopped { batch: step, partial: sums });
                }
            }
        }
        sums.seconds += epoch_clock.elapsed().as_secs_f64();
        let cached = planned.trains.iter().all(|&task| self.cache.is_some_and(|c| c.get(task).is_some()));
        Ok(EpochEnd::Done(EpochRecord {
            phase: planned.phase,
            epoch,
            mean_loss: sums.loss_sum / steps as f64,
            batches: steps,
            examples: sums.examples,
            seconds: sums.seconds,
            timing: sums.timing,
            cached,
            validation: None,
        }))
    }

    /// Sums the gradients over the ranks (in data-parallel training), clips, steps the optimizer at the schedule's
    /// rate for the phase's `phase_step`-th step of `total_steps`, clears the gradients and the `pending` losses,
    /// adds its time to `timing` and reports the step (its loss: the mean over its batches of the global batches'
    /// losses). Returns the sum of those losses; notes whether any rank was asked to stop.
    #[allow(clippy::too_many_arguments)]
    fn optimizer_step(
        &mut self,
        phase: Phase,
        optimizer: &mut Adam,
        trained: &[Tensor],
        pending: &mut PendingLoss,
        timing: &mut EpochTiming,
        (epoch, step): (usize, usize),
        (phase_step, total_steps): (&mut usize, usize),
    ) -> Result<f64> {
        let clock = Instant::now();
        let PendingLoss { weighted_sum, batches } = std::mem::take(pending);
        let asked = self.control.stop.is_some_and(|stop| stop.load(Ordering::SeqCst));
        let (summed, stop) = self.ranks.sum_gradients(trained, weighted_sum, asked)?;
        self.stop_agreed |= stop;
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
        let global_step = self.global_step;
        self.observer.on_step(&StepRecord { phase, epoch, step, global_step, loss, lr_factor });
        Ok(summed)
    }
}

/// The seed of libtorch's generator (dropout) for batch `batch` of `epoch` of phase `phase`: a function of the
/// place alone, so a resumed run draws what an uninterrupted one draws.
pub(super) fn batch_seed(seed: u64, phase: usize, epoch: usize, batch: usize) -> i64 {
    // SplitMix64 over the seed and the place.
    let mut z = seed
        .wrapping_add((phase as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add((epoch as u64) << 32)
        .wrapping_add(batch as u64);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 1) as i64
}

fn checked(loss: &Tensor, task: Task, epoch: usize, step: usize) -> Result<f64> {
    let value = loss.double_value(&[]);
    if value.is_finite() {
        Ok(value)
    } else {
        Err(TrainError::NonFiniteLoss { task, epoch, step, value })
    }
}

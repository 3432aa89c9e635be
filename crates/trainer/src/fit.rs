//! The training loop of the notebook's Task 4: evaluate, train (separate or combined), evaluate again.

use crate::config::{Mode, Task, TrainConfig};
use crate::error::{Result, TrainError};
use crate::evaluate::{evaluate_classification, evaluate_ner, Backbone, ClassificationEvaluation, NerEvaluation};
use crate::features::{describe, CacheSize, ClassificationFeatures, NerFeatures};
use crate::optim::Adam;
use datasets::{BucketSampler, PreparedDataset};
use heads::{FreezeStrategy, MultiTaskModel, ParamGroup};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::time::Instant;
use tch::{Reduction, Tensor};

/// The two tasks' data; either may be absent.
#[derive(Clone, Copy)]
pub struct TaskData<'a> {
    /// Sentence classification examples with their train/test split.
    pub classification: Option<&'a PreparedDataset>,
    /// NER examples with their train/test split.
    pub ner: Option<&'a PreparedDataset>,
}

/// Scores of both tasks at one point in time.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Classification scores.
    pub classification: Option<ClassificationEvaluation>,
    /// NER scores.
    pub ner: Option<NerEvaluation>,
    /// Seconds the evaluation took.
    pub seconds: f64,
}

/// One optimizer step, for logs and loss curves.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// Which task's batch (in combined mode: `combined`).
    pub task: String,
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based step within the epoch.
    pub step: usize,
    /// Global step, over all epochs and tasks.
    pub global_step: usize,
    /// The loss of the batch (combined: the weighted sum).
    pub loss: f64,
    /// Learning-rate factor of the schedule.
    pub lr_factor: f64,
}

/// One epoch of one task.
#[derive(Debug, Clone, Serialize)]
pub struct EpochRecord {
    /// Which task (`combined` in combined mode).
    pub task: String,
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean batch loss.
    pub mean_loss: f64,
    /// Batches.
    pub steps: usize,
    /// Examples seen.
    pub examples: usize,
    /// Seconds.
    pub seconds: f64,
    /// Whether the encoder ran (false: heads trained on cached features).
    pub cached: bool,
}

/// Receives progress as training goes (a run directory writes it as JSON lines).
pub trait Observer {
    /// After each optimizer step.
    fn on_step(&mut self, _record: &StepRecord) {}
    /// After each epoch.
    fn on_epoch(&mut self, _record: &EpochRecord) {}
}

/// An observer that ignores everything.
pub struct NoObserver;
impl Observer for NoObserver {}

/// What the feature cache held.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureCacheReport {
    /// Seconds spent running the encoder to fill it.
    pub seconds: f64,
    /// Classification vectors (train + test).
    pub classification: CacheSize,
    /// NER token states (train + test).
    pub ner: CacheSize,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct TrainOutcome {
    /// Scores before training.
    pub before: Evaluation,
    /// Scores after training.
    pub after: Evaluation,
    /// Per-epoch records.
    pub epochs: Vec<EpochRecord>,
    /// The feature cache, when the encoder was frozen and the cache on.
    pub feature_cache: Option<FeatureCacheReport>,
    /// Values the optimizer updated.
    pub trainable_parameters: i64,
    /// Seconds of training (epochs only).
    pub training_seconds: f64,
}

/// The frozen encoder's outputs on both tasks' train and test examples (see [`crate::features`]): built once, they
/// serve every epoch and every evaluation while the encoder does not change.
pub struct FeatureCache {
    classification_train: Option<ClassificationFeatures>,
    classification_test: Option<ClassificationFeatures>,
    ner_train: Option<NerFeatures>,
    ner_test: Option<NerFeatures>,
    /// The (train, test) example indices each task's features were computed for.
    classification_split: Option<(Vec<usize>, Vec<usize>)>,
    ner_split: Option<(Vec<usize>, Vec<usize>)>,
    report: FeatureCacheReport,
}

impl FeatureCache {
    /// Runs the encoder (no gradient) over every train and test example of `data`, in batches of at least 32
    /// (`config.batch_size` if larger), storing half precision if `config.feature_cache_half`.
    pub fn build(model: &MultiTaskModel, data: TaskData<'_>, config: &TrainConfig) -> Result<Self> {
        let started = Instant::now();
        let batch = config.batch_size.max(32);
        let half = config.feature_cache_half;
        let bar = progress(config, 2, "caching encoder features");
        let classification = |indices: &[usize]| -> Result<Option<ClassificationFeatures>> {
            data.classification.map(|d| ClassificationFeatures::compute(model, d, indices, batch, half)).transpose()
        };
        let ner = |indices: &[usize]| -> Result<Option<NerFeatures>> {
            data.ner.map(|d| NerFeatures::compute(model, d, indices, batch, half)).transpose()
        };
        let empty: Vec<usize> = Vec::new();
        let classification_train = classification(data.classification.map_or(&empty, |d| &d.train))?;
        let classification_test = classification(data.classification.map_or(&empty, |d| &d.test))?;
        bar.inc(1);
        let ner_train = ner(data.ner.map_or(&empty, |d| &d.train))?;
        let ner_test = ner(data.ner.map_or(&empty, |d| &d.test))?;
        bar.finish_and_clear();
        let add = |a: Option<CacheSize>, b: Option<CacheSize>| {
            let (a, b) = (a.unwrap_or_default(), b.unwrap_or_default());
            CacheSize { rows: a.rows + b.rows, bytes: a.bytes + b.bytes }
        };
        let report = FeatureCacheReport {
            seconds: started.elapsed().as_secs_f64(),
            classification: add(
                classification_train.as_ref().map(ClassificationFeatures::size),
                classification_test.as_ref().map(ClassificationFeatures::size),
            ),
            ner: add(ner_train.as_ref().map(NerFeatures::size), ner_test.as_ref().map(NerFeatures::size)),
        };
        tracing::info!(
            seconds = report.seconds,
            classification = %describe(report.classification),
            ner = %describe(report.ner),
            "encoder features cached"
        );
        Ok(Self {
            classification_train,
            classification_test,
            ner_train,
            ner_test,
            classification_split: split_of(data.classification),
            ner_split: split_of(data.ner),
            report,
        })
    }

    /// How long it took and what it holds.
    pub fn report(&self) -> &FeatureCacheReport {
        &self.report
    }

    /// An error unless the cache was computed for exactly these examples and splits.
    fn check_serves(&self, data: TaskData<'_>) -> Result<()> {
        let same = |cached: &Option<(Vec<usize>, Vec<usize>)>, data: Option<&PreparedDataset>| {
            cached.as_ref().map(|(train, test)| (train.as_slice(), test.as_slice()))
                == data.map(|d| (d.train.as_slice(), d.test.as_slice()))
        };
        if same(&self.classification_split, data.classification) && same(&self.ner_split, data.ner) {
            Ok(())
        } else {
            Err(TrainError::InvalidConfig(
                "the feature cache was built for other examples or another train/test split".into(),
            ))
        }
    }
}

/// A dataset's (train, test) example indices.
fn split_of(data: Option<&PreparedDataset>) -> Option<(Vec<usize>, Vec<usize>)> {
    data.map(|d| (d.train.clone(), d.test.clone()))
}

/// Whether `strategy` leaves the encoder unchanged (so that its outputs can be cached).
pub fn freezes_encoder(strategy: &FreezeStrategy) -> bool {
    matches!(strategy, FreezeStrategy::None | FreezeStrategy::HeadsOnly)
}

/// Evaluates both tasks, trains with `strategy`, and evaluates again.
///
/// `cache`: encoder features built beforehand with [`FeatureCache::build`] on the same model and data (e.g. to
/// score the untrained model first); without one, a cache is built when the encoder is frozen and
/// `config.feature_cache` is on. A cache that does not match `data`, or given with a strategy that trains the
/// encoder, is an error.
pub fn train_and_evaluate(
    model: &MultiTaskModel,
    strategy: &FreezeStrategy,
    data: TaskData<'_>,
    config: &TrainConfig,
    cache: Option<FeatureCache>,
    observer: &mut dyn Observer,
) -> Result<TrainOutcome> {
    config.validate().map_err(TrainError::InvalidConfig)?;
    if data.classification.is_none() && data.ner.is_none() {
        return Err(TrainError::InvalidConfig("no data: give classification data, NER data, or both".into()));
    }
    let frozen_encoder = freezes_encoder(strategy);
    if let Some(given) = &cache {
        if !frozen_encoder {
            return Err(TrainError::InvalidConfig(format!(
                "a feature cache was given, but strategy {strategy} trains the encoder: its features would go stale"
            )));
        }
        given.check_serves(data)?;
    }
    tch::manual_seed(config.seed as i64);
    let groups = strategy.apply(model, config.learning_rate)?;
    let cache = match cache {
        Some(cache) => Some(cache),
        None if frozen_encoder && config.feature_cache => Some(FeatureCache::build(model, data, config)?),
        None => None,
    };
    let feature_cache = cache.as_ref().map(|c| c.report.clone());

    tracing::info!("evaluating before training");
    let before = score(model, data, config.batch_size, cache.as_ref())?;
    let trainable_parameters: i64 = groups.iter().flat_map(|g| &g.parameters).map(|(_, t)| t.numel() as i64).sum();
    let mut epochs = Vec::new();
    let started = Instant::now();
    let mut trainer = Trainer { model, config, cache: cache.as_ref(), frozen_encoder, observer, global_step: 0 };
    if trainable_parameters > 0 {
        match config.mode {
            Mode::Separate => {
                for (task, dataset) in [(Task::Classification, data.classification), (Task::Ner, data.ner)] {
                    let Some(dataset) = dataset else { continue };
                    let mut optimizer = Adam::new(groups_for(&groups, Some(task)), config.optimizer);
                    for epoch in 1..=config.epochs {
                        epochs.push(trainer.separate_epoch(task, dataset, &mut optimizer, epoch)?);
                    }
                }
            }
            Mode::Combined => {
                let mut optimizer = Adam::new(groups_for(&groups, None), config.optimizer);
                for epoch in 1..=config.epochs {
                    epochs.push(trainer.combined_epoch(data, &mut optimizer, epoch)?);
                }
            }
        }
    } else {
        tracing::warn!(strategy = %strategy, "nothing is trainable: skipping training");
    }
    let training_seconds = started.elapsed().as_secs_f64();

    tracing::info!("evaluating after training");
    let after = score(model, data, config.batch_size, cache.as_ref())?;
    Ok(TrainOutcome { before, after, epochs, feature_cache, trainable_parameters, training_seconds })
}

/// The groups restricted to what `task` trains: in separate mode the other task's head is left out, so its
/// optimizer state does not move it (as `zero_grad(set_to_none=True)` in PyTorch).
fn groups_for(groups: &[ParamGroup], task: Option<Task>) -> Vec<ParamGroup> {
    let other_head = match task {
        Some(Task::Classification) => Some("ner_head."),
        Some(Task::Ner) => Some("classification_head."),
        None => None,
    };
    groups
        .iter()
        .map(|group| ParamGroup {
            name: group.name.clone(),
            lr: group.lr,
            parameters: group
                .parameters
                .iter()
                .filter(|(name, _)| other_head.is_none_or(|prefix| !name.starts_with(prefix)))
                .map(|(name, tensor)| (name.clone(), tensor.shallow_clone()))
                .collect(),
        })
        .collect()
}

/// Scores both tasks on their test examples, in batches of at least 32 (`batch_size` if larger): from the
/// cached features when `cache` is given (built on the same model and data), else running the encoder.
pub fn evaluate(
    model: &MultiTaskModel,
    data: TaskData<'_>,
    batch_size: usize,
    cache: Option<&FeatureCache>,
) -> Result<Evaluation> {
    if let Some(cache) = cache {
        cache.check_serves(data)?;
    }
    score(model, data, batch_size, cache)
}

/// [`evaluate`] with a cache already checked against `data`.
fn score(
    model: &MultiTaskModel,
    data: TaskData<'_>,
    batch_size: usize,
    cache: Option<&FeatureCache>,
) -> Result<Evaluation> {
    let started = Instant::now();
    let batch = batch_size.max(32);
    let classification = match data.classification {
        Some(d) => {
            let backbone = match cache.and_then(|c| c.classification_test.as_ref()) {
                Some(features) => Backbone::Cached(features),
                None => Backbone::Live,
            };
            Some(evaluate_classification(model, d, &d.test, batch, backbone)?)
        }
        None => None,
    };
    let ner = match data.ner {
        Some(d) => {
            let backbone = match cache.and_then(|c| c.ner_test.as_ref()) {
                Some(features) => Backbone::Cached(features),
                None => Backbone::Live,
            };
            Some(evaluate_ner(model, d, &d.test, batch, backbone)?)
        }
        None => None,
    };
    Ok(Evaluation { classification, ner, seconds: started.elapsed().as_secs_f64() })
}

struct Trainer<'a> {
    model: &'a MultiTaskModel,
    config: &'a TrainConfig,
    cache: Option<&'a FeatureCache>,
    /// The encoder does not train: it runs in eval mode (no dropout) and without a graph, as the cache does.
    frozen_encoder: bool,
    observer: &'a mut dyn Observer,
    global_step: usize,
}

impl Trainer<'_> {
    /// The training loss of one batch of `task` (cached features when there are some).
    fn loss(&self, task: Task, dataset: &PreparedDataset, indices: &[usize]) -> Result<Tensor> {
        let model = self.model;
        let device = model.var_store().device();
        let cross_entropy = |logits: &Tensor, labels: &Tensor| {
            logits.cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, datasets::IGNORE_INDEX.into(), 0.0)
        };
        let cached_classification = self.cache.and_then(|c| c.classification_train.as_ref());
        let cached_ner = self.cache.and_then(|c| c.ner_train.as_ref());
        Ok(match (task, cached_classification, cached_ner) {
            (Task::Classification, Some(features), _) => {
                let (pooled, labels) = features.batch(indices);
                cross_entropy(&model.classification_head(&pooled, true), &labels)
            }
            (Task::Ner, _, Some(features)) => {
                let (states, labels) = features.batch(indices);
                cross_entropy(&model.ner_head(&states, true), &labels)
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
            Task::Classification => c.classification_train.is_some(),
            Task::Ner => c.ner_train.is_some(),
        })
    }

    fn separate_epoch(
        &mut self,
        task: Task,
        dataset: &PreparedDataset,
        optimizer: &mut Adam,
        epoch: usize,
    ) -> Result<EpochRecord> {
        let started = Instant::now();
        let config = self.config;
        let sampler = BucketSampler::new(config.batch_size);
        let stream = if task == Task::Classification { 0 } else { 1_000 };
        let batches = sampler.train_batches(&dataset.train, &dataset.lengths(), config.seed, stream + epoch as u64)?;
        let total_steps = config.epochs * batches.len().div_ceil(config.gradient_accumulation);
        let bar = progress(config, batches.len() as u64, &format!("{task} epoch {epoch}/{}", config.epochs));
        let mut losses = Vec::with_capacity(batches.len());
        let mut examples = 0;
        optimizer.zero_grad();
        for (index, indices) in batches.iter().enumerate() {
            let step = index + 1;
            let loss = self.loss(task, dataset, indices)?;
            let value = checked(&loss, task, epoch, step)?;
            (loss / config.gradient_accumulation as f64).backward();
            losses.push(value);
            examples += indices.len();
            if step % config.gradient_accumulation == 0 || step == batches.len() {
                let record = self.optimizer_step(optimizer, task.to_string(), epoch, step, value, total_steps);
                self.observer.on_step(&record);
            }
            bar.set_message(format!("loss {value:.4}, {:.0} ex/s", examples as f64 / started.elapsed().as_secs_f64()));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let record = EpochRecord {
            task: task.to_string(),
            epoch,
            mean_loss: mean(&losses),
            steps: batches.len(),
            examples,
            seconds: started.elapsed().as_secs_f64(),
            cached: self.cached(task),
        };
        tracing::info!(task = %task, epoch, mean_loss = record.mean_loss, seconds = record.seconds, "epoch done");
        self.observer.on_epoch(&record);
        Ok(record)
    }

    fn combined_epoch(&mut self, data: TaskData<'_>, optimizer: &mut Adam, epoch: usize) -> Result<EpochRecord> {
        let started = Instant::now();
        let config = self.config;
        let (Some(classification), Some(ner)) = (data.classification, data.ner) else {
            return Err(TrainError::InvalidConfig("combined mode needs both classification and NER data".into()));
        };
        let sampler = BucketSampler::new(config.batch_size);
        let mut streams = [
            CyclingBatches::new(sampler, classification, config.seed, epoch as u64 * 1_000)?,
            CyclingBatches::new(sampler, ner, config.seed, 500_000 + epoch as u64 * 1_000)?,
        ];
        let steps = streams[0].per_pass.max(streams[1].per_pass);
        let total_steps = config.epochs * steps.div_ceil(config.gradient_accumulation);
        let bar = progress(config, steps as u64, &format!("combined epoch {epoch}/{}", config.epochs));
        let weight = config.classification_weight;
        let mut losses = Vec::with_capacity(steps);
        let mut examples = 0;
        optimizer.zero_grad();
        for step in 1..=steps {
            let class_indices = streams[0].next_batch()?;
            let ner_indices = streams[1].next_batch()?;
            let class_loss = self.loss(Task::Classification, classification, &class_indices)?;
            checked(&class_loss, Task::Classification, epoch, step)?;
            let ner_loss = self.loss(Task::Ner, ner, &ner_indices)?;
            checked(&ner_loss, Task::Ner, epoch, step)?;
            let loss = class_loss * weight + ner_loss * (1.0 - weight);
            let value = loss.double_value(&[]);
            (loss / config.gradient_accumulation as f64).backward();
            losses.push(value);
            examples += class_indices.len() + ner_indices.len();
            if step % config.gradient_accumulation == 0 || step == steps {
                let record = self.optimizer_step(optimizer, "combined".into(), epoch, step, value, total_steps);
                self.observer.on_step(&record);
            }
            bar.set_message(format!("loss {value:.4}"));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let record = EpochRecord {
            task: "combined".into(),
            epoch,
            mean_loss: mean(&losses),
            steps,
            examples,
            seconds: started.elapsed().as_secs_f64(),
            cached: self.cached(Task::Classification) && self.cached(Task::Ner),
        };
        self.observer.on_epoch(&record);
        Ok(record)
    }

    fn optimizer_step(
        &mut self,
        optimizer: &mut Adam,
        task: String,
        epoch: usize,
        step: usize,
        loss: f64,
        total_steps: usize,
    ) -> StepRecord {
        if let Some(max_norm) = self.config.max_grad_norm {
            optimizer.clip_grad_norm(max_norm);
        }
        let lr_factor = self.config.schedule.factor(self.global_step, total_steps);
        optimizer.step(lr_factor);
        optimizer.zero_grad();
        self.global_step += 1;
        StepRecord { task, epoch, step, global_step: self.global_step, loss, lr_factor }
    }
}

/// A task's training batches for combined mode: when they run out, a new shuffle starts (the shorter task cycles).
struct CyclingBatches<'a> {
    sampler: BucketSampler,
    data: &'a PreparedDataset,
    lengths: Vec<usize>,
    seed: u64,
    stream: u64,
    batches: std::vec::IntoIter<Vec<usize>>,
    per_pass: usize,
}

impl<'a> CyclingBatches<'a> {
    fn new(sampler: BucketSampler, data: &'a PreparedDataset, seed: u64, stream: u64) -> Result<Self> {
        let lengths = data.lengths();
        let batches = sampler.train_batches(&data.train, &lengths, seed, stream)?;
        let per_pass = batches.len();
        if per_pass == 0 {
            return Err(TrainError::InvalidConfig("a task has no training examples".into()));
        }
        Ok(Self { sampler, data, lengths, seed, stream, batches: batches.into_iter(), per_pass })
    }

    fn next_batch(&mut self) -> Result<Vec<usize>> {
        if let Some(batch) = self.batches.next() {
            return Ok(batch);
        }
        self.stream += 1;
        self.batches = self.sampler.train_batches(&self.data.train, &self.lengths, self.seed, self.stream)?.into_iter();
        self.batches.next().ok_or_else(|| TrainError::InvalidConfig("a task has no training examples".into()))
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

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

fn progress(config: &TrainConfig, length: u64, prefix: &str) -> ProgressBar {
    if !config.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    let style = ProgressStyle::with_template("{prefix:>28} [{bar:30}] {pos}/{len} {elapsed_precise} ETA {eta} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(prefix.to_string());
    bar
}

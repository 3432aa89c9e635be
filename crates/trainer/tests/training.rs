//! The training loop on a tiny random model and synthetic data the tests make themselves.

mod common;

use common::{classification_data, long_ner_data, max_difference, ner_data, tiny_model, weights};

use datasets::{Encoded, PreparedDataset, ProcessedDataset, Target};
use heads::{FreezeStrategy, MultiTaskModel};
use tch::Tensor;
use trainer::{
    evaluate, train_and_evaluate, FeatureCache, Mode, NoObserver, Observer, Split, StepRecord, Task, TaskData,
    TrainConfig, TrainError,
};

/// libtorch's random generator is global to the process and the tests run on parallel threads: every test that
/// seeds it (model initialisation, dropout) holds this lock, so that no other test draws in between.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn a_tiny_model_learns_both_synthetic_tasks() {
    let _rng = serial();
    let (classification, ner) = (classification_data(200), ner_data(100));
    let both = TaskData::new().with(Task::Classification, &classification).with(Task::Ner, &ner);
    // In separate mode a trainable encoder tuned for NER after classification would drift away from the
    // classification head, so each task is checked on its own there; combined mode trains both together.
    let runs = [
        (Mode::Combined, both),
        (Mode::Separate, TaskData::new().with(Task::Classification, &classification)),
        (Mode::Separate, TaskData::new().with(Task::Ner, &ner)),
    ];
    for (mode, data) in runs {
        let model = tiny_model(0.0, 1);
        let config = TrainConfig { mode, epochs: 8, batch_size: 8, learning_rate: 1e-3, ..TrainConfig::default() };
        let outcome =
            train_and_evaluate(&model, &FreezeStrategy::All, data, &config, None, &mut NoObserver).expect("trains");
        let first = outcome.epochs.first().expect("epochs").mean_loss;
        let last = outcome.epochs.last().expect("epochs").mean_loss;
        assert!(last < first * 0.5, "{mode:?}: loss {first} -> {last}");
        if let Some(classification) = outcome.after.classification {
            assert_eq!(classification.report.accuracy, 1.0, "{mode:?}: loss {first} -> {last}");
            assert_eq!(classification.examples, 40);
        }
        if let Some(ner) = outcome.after.ner {
            assert_eq!(ner.report.micro_avg.f1, 1.0, "{mode:?}");
            assert_eq!(ner.sentences, 20);
        }
    }
}

#[test]
fn cached_and_uncached_heads_only_training_give_the_same_weights() {
    let _rng = serial();
    let (classification, ner) = (classification_data(40), ner_data(40));
    let run = |feature_cache: bool, dropout: f64, data: TaskData<'_>| {
        let model = tiny_model(dropout, 7);
        let config = TrainConfig { epochs: 2, batch_size: 4, feature_cache, ..TrainConfig::default() };
        let outcome = train_and_evaluate(&model, &FreezeStrategy::HeadsOnly, data, &config, None, &mut NoObserver)
            .expect("trains");
        assert_eq!(outcome.feature_cache.is_some(), feature_cache);
        (weights(&model), outcome)
    };
    // Both tasks without dropout; classification alone with dropout: a frozen encoder runs in eval mode whether its
    // outputs are cached or not, and the classification head's dropout draws the same random numbers either way.
    // (The NER head's dropout does not: uncached it draws for every position, cached only for the kept tokens.)
    let both = TaskData::new().with(Task::Classification, &classification).with(Task::Ner, &ner);
    let classification_only = TaskData::new().with(Task::Classification, &classification);
    for (dropout, data) in [(0.0, both), (0.1, classification_only)] {
        let (cached, cached_outcome) = run(true, dropout, data);
        let (uncached, uncached_outcome) = run(false, dropout, data);
        let difference = max_difference(&cached, &uncached);
        assert!(difference < 1e-5, "dropout {dropout}: cached and uncached weights differ by {difference}");
        assert!(cached_outcome.epochs.iter().all(|e| e.cached));
        assert!(uncached_outcome.epochs.iter().all(|e| !e.cached));
        let accuracy = |o: &trainer::TrainOutcome| o.after.classification.as_ref().map(|c| c.report.accuracy);
        assert_eq!(accuracy(&cached_outcome), accuracy(&uncached_outcome));
    }
}

#[test]
fn a_cache_built_beforehand_scores_the_untrained_model_and_serves_training() {
    let _rng = serial();
    let (classification, ner) = (classification_data(40), ner_data(40));
    let data = TaskData::new().with(Task::Classification, &classification).with(Task::Ner, &ner);
    let config = TrainConfig { epochs: 2, batch_size: 4, ..TrainConfig::default() };
    let scores = |e: &trainer::Evaluation| {
        (
            e.classification.as_ref().map(|c| c.report.accuracy),
            e.ner.as_ref().map(|n| n.report.micro_avg.f1),
            e.classification.as_ref().map(|c| c.examples),
            e.ner.as_ref().map(|n| n.sentences),
        )
    };

    let model = tiny_model(0.0, 7);
    let cache = FeatureCache::build(&model, data, 32, false).expect("cache");
    assert_eq!(cache.report().tasks.get(Task::Classification).map(|size| size.rows), Some(40));
    let live = evaluate(&model, data, Split::Test, 4, None).expect("live evaluation");
    let cached = evaluate(&model, data, Split::Test, 4, Some(&cache)).expect("cached evaluation");
    assert_eq!(scores(&live), scores(&cached));
    let given = train_and_evaluate(&model, &FreezeStrategy::HeadsOnly, data, &config, Some(cache), &mut NoObserver)
        .expect("trains");
    assert_eq!(scores(given.before.as_ref().expect("scored before")), scores(&live));
    assert!(given.epochs.iter().all(|e| e.cached));

    let fresh = tiny_model(0.0, 7);
    let built =
        train_and_evaluate(&fresh, &FreezeStrategy::HeadsOnly, data, &config, None, &mut NoObserver).expect("trains");
    let difference = max_difference(&weights(&model), &weights(&fresh));
    assert!(difference < 1e-6, "a cache given and a cache built inside train differently: {difference}");
    assert_eq!(scores(&given.after), scores(&built.after));
}

#[test]
fn a_cache_that_cannot_serve_is_an_error() {
    let _rng = serial();
    let (classification, ner, other) = (classification_data(40), ner_data(40), classification_data(30));
    let data = TaskData::new().with(Task::Classification, &classification).with(Task::Ner, &ner);
    let config = TrainConfig { epochs: 1, batch_size: 4, ..TrainConfig::default() };
    let model = tiny_model(0.0, 7);

    let cache = FeatureCache::build(&model, data, 32, false).expect("cache");
    let error = train_and_evaluate(&model, &FreezeStrategy::All, data, &config, Some(cache), &mut NoObserver)
        .expect_err("the encoder trains");
    assert!(matches!(&error, TrainError::InvalidConfig(m) if m.contains("trains the encoder")), "{error}");

    let cache = FeatureCache::build(&model, data, 32, false).expect("cache");
    let data = TaskData::new().with(Task::Classification, &other).with(Task::Ner, &ner);
    assert!(matches!(evaluate(&model, data, Split::Test, 4, Some(&cache)), Err(TrainError::InvalidConfig(_))));
    let error = train_and_evaluate(&model, &FreezeStrategy::HeadsOnly, data, &config, Some(cache), &mut NoObserver)
        .expect_err("other data");
    assert!(error.to_string().contains("other examples"), "{error}");
}

#[test]
fn frozen_parameters_do_not_change() {
    let _rng = serial();
    let (classification, ner) = (classification_data(20), ner_data(20));
    let data = TaskData::new().with(Task::Classification, &classification).with(Task::Ner, &ner);
    for strategy in [FreezeStrategy::None, FreezeStrategy::HeadsOnly, FreezeStrategy::OutputLayers(1)] {
        let model = tiny_model(0.1, 3);
        let before = weights(&model);
        let config = TrainConfig { epochs: 1, batch_size: 4, ..TrainConfig::default() };
        train_and_evaluate(&model, &strategy, data, &config, None, &mut NoObserver).expect("trains");
        for ((name, old), (_, new)) in before.iter().zip(weights(&model)) {
            let layer0 = name.starts_with("encoder.layer.0.") || name.starts_with("embeddings.");
            let frozen = match strategy {
                FreezeStrategy::None => true,
                FreezeStrategy::HeadsOnly => !name.contains("_head."),
                _ => layer0,
            };
            assert_eq!(frozen, old.equal(&new), "{strategy}: {name} frozen={frozen}");
        }
    }
}

#[derive(Default)]
struct Steps(Vec<StepRecord>);
impl Observer for Steps {
    fn on_step(&mut self, record: &StepRecord) {
        self.0.push(record.clone());
    }
}

#[test]
fn combined_mode_cycles_the_shorter_task() {
    let _rng = serial();
    // 40 classification training examples (10 batches of 4) against 8 NER ones (2 batches).
    let (classification, ner) = (classification_data(50), ner_data(10));
    let data = TaskData::new().with(Task::Classification, &classification).with(Task::Ner, &ner);
    let model = tiny_model(0.0, 5);
    let config = TrainConfig { mode: Mode::Combined, epochs: 1, batch_size: 4, ..TrainConfig::default() };
    let mut steps = Steps::default();
    let outcome =
        train_and_evaluate(&model, &FreezeStrategy::HeadsOnly, data, &config, None, &mut steps).expect("trains");
    assert_eq!(steps.0.len(), 10, "an epoch is as long as the longer task");
    let epoch = &outcome.epochs[0];
    assert_eq!(epoch.examples, 40 + 10 * 4, "the NER batches were reused: {}", epoch.examples);
}

#[test]
fn gradient_accumulation_equals_one_larger_batch() {
    let _rng = serial();
    let classification = classification_data(40);
    let data = TaskData::new().with(Task::Classification, &classification);
    let run = |batch_size: usize, gradient_accumulation: usize| {
        let model = tiny_model(0.0, 11);
        let config = TrainConfig {
            epochs: 1,
            batch_size,
            gradient_accumulation,
            feature_cache: false,
            ..TrainConfig::default()
        };
        train_and_evaluate(&model, &FreezeStrategy::All, data, &config, None, &mut NoObserver).expect("trains");
        weights(&model)
    };
    // One batch of all 32 training examples, against 4 batches of 8 accumulated: the same examples, in buckets.
    let big = run(32, 1);
    let accumulated = run(8, 4);
    let difference = max_difference(&big, &accumulated);
    assert!(difference < 1e-5, "accumulated gradients differ by {difference}");
}

#[test]
fn a_non_finite_loss_stops_training_with_its_place() {
    let _rng = serial();
    let (classification, ner) = (classification_data(20), ner_data(20));
    let data = TaskData::new().with(Task::Classification, &classification).with(Task::Ner, &ner);
    let model = tiny_model(0.0, 2);
    // Poison the classification head: every logit becomes NaN.
    tch::no_grad(|| {
        for (name, mut tensor) in model.named_parameters() {
            if name == "classification_head.bias" {
                let _ = tensor.fill_(f64::NAN);
            }
        }
    });
    let config = TrainConfig { epochs: 1, batch_size: 4, ..TrainConfig::default() };
    let error =
        train_and_evaluate(&model, &FreezeStrategy::HeadsOnly, data, &config, None, &mut NoObserver).unwrap_err();
    match error {
        TrainError::NonFiniteLoss { task, epoch, step, value } => {
            assert_eq!((task.to_string().as_str(), epoch, step), ("classification", 1, 1));
            assert!(value.is_nan());
        }
        other => panic!("expected a non-finite loss error, got {other}"),
    }
    let message =
        TrainError::NonFiniteLoss { task: trainer::Task::Ner, epoch: 2, step: 7, value: f64::INFINITY }.to_string();
    assert!(message.contains("ner") && message.contains("epoch 2") && message.contains("step 7"), "{message}");
}

/// Copies of every variable after each epoch, and the epoch records.
struct Snapshots {
    variables: Vec<Tensor>,
    after_epoch: Vec<Vec<Tensor>>,
    records: Vec<trainer::EpochRecord>,
}

impl Snapshots {
    fn of(model: &MultiTaskModel) -> Self {
        let variables = model.named_parameters().into_iter().map(|(_, t)| t).collect();
        Self { variables, after_epoch: Vec::new(), records: Vec::new() }
    }
}

impl Observer for Snapshots {
    fn on_epoch(&mut self, record: &trainer::EpochRecord) {
        self.after_epoch.push(tch::no_grad(|| self.variables.iter().map(Tensor::copy).collect()));
        self.records.push(record.clone());
    }
}

fn same(a: &[Tensor], b: &[Tensor]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.equal(y))
}

#[test]
fn the_best_validation_epoch_is_kept_and_training_stops_early() {
    let _rng = serial();
    // Validation examples labelled against the training rule: the better the model learns the training data, the
    // worse its validation accuracy, so the first epoch is the best and the second makes things worse.
    let data = classification_data(120);
    let (validation, train): (Vec<usize>, Vec<usize>) = data.train().iter().partition(|&&i| i % 4 == 1);
    let mut examples = data.examples().to_vec();
    for &index in &validation {
        if let Target::Class(class) = &mut examples[index].target {
            *class = 1 - *class;
        }
    }
    let relabelled = ProcessedDataset::new(examples, data.label_names().to_vec(), 0);
    let data = PreparedDataset::from_split(relabelled, train, validation, data.test().to_vec()).expect("split");
    let tasks = TaskData::new().with(Task::Classification, &data);
    let model = tiny_model(0.0, 3);
    let config =
        TrainConfig { epochs: 6, batch_size: 8, learning_rate: 3e-3, patience: Some(2), ..TrainConfig::default() };
    let mut snapshots = Snapshots::of(&model);
    let outcome =
        train_and_evaluate(&model, &FreezeStrategy::All, tasks, &config, None, &mut snapshots).expect("trains");
    let phase = &outcome.phases[0];
    let metrics: Vec<f64> =
        snapshots.records.iter().map(|r| r.validation.as_ref().expect("validated").metric).collect();
    assert!(phase.stopped_early && phase.epochs_run < 6, "{phase:?}, validation {metrics:?}");
    assert_eq!(phase.epochs_run, phase.kept_epoch + 2, "patience 2: {phase:?}, {metrics:?}");
    let best = metrics.iter().cloned().fold(f64::MIN, f64::max);
    assert_eq!(metrics[phase.kept_epoch - 1], best, "{metrics:?}");
    assert_eq!(phase.best_metric, Some(best));
    // The final weights are the kept epoch's, not the last epoch's.
    let final_weights: Vec<Tensor> = snapshots.variables.iter().map(Tensor::copy).collect();
    assert!(same(&final_weights, &snapshots.after_epoch[phase.kept_epoch - 1]), "kept epoch not restored");
    assert!(!same(&final_weights, &snapshots.after_epoch[phase.epochs_run - 1]), "the last epoch was kept");
    let flagged: Vec<usize> =
        snapshots.records.iter().filter(|r| r.validation.as_ref().is_some_and(|v| v.best)).map(|r| r.epoch).collect();
    assert_eq!(flagged.last(), Some(&phase.kept_epoch), "the records flag the kept epoch as the last best");
    // The test scores after training are those of the kept weights.
    let rescored = evaluate(&model, tasks, Split::Test, 8, None).expect("evaluates");
    let accuracy = |e: &trainer::Evaluation| e.classification.as_ref().map(|c| c.report.accuracy);
    assert_eq!(accuracy(&rescored), accuracy(&outcome.after));
}

#[test]
fn patience_needs_validation_examples() {
    let _rng = serial();
    let data = classification_data(40);
    let tasks = TaskData::new().with(Task::Classification, &data);
    let config = TrainConfig { patience: Some(1), ..TrainConfig::default() };
    let error =
        train_and_evaluate(&tiny_model(0.0, 1), &FreezeStrategy::HeadsOnly, tasks, &config, None, &mut NoObserver)
            .unwrap_err();
    assert!(error.to_string().contains("validation"), "{error}");
}

#[test]
fn the_finetune_recipe_learns_both_tasks_with_validation_in_either_mode() {
    let _rng = serial();
    let (mut classification, mut ner) = (classification_data(200), ner_data(100));
    classification.hold_out_validation(0.25, 1).expect("validation");
    ner.hold_out_validation(0.25, 1).expect("validation");
    let recipe = trainer::Recipe::Finetune.settings();
    assert_eq!(recipe.train.mode, Mode::Combined);
    // Combined mode trains the shared encoder on both tasks at once; separate mode is checked one task at a time
    // (training NER after classification moves the encoder away from the classification head).
    let runs = [
        (Mode::Combined, TaskData::new().with(Task::Classification, &classification).with(Task::Ner, &ner)),
        (Mode::Separate, TaskData::new().with(Task::Classification, &classification)),
        (Mode::Separate, TaskData::new().with(Task::Ner, &ner)),
    ];
    for (mode, data) in runs {
        let model = tiny_model(0.1, 1);
        // A random tiny encoder learns from scratch: it takes a larger rate than a pretrained one is tuned at.
        let config = TrainConfig {
            mode,
            epochs: 8,
            batch_size: 8,
            encoder_learning_rate: Some(1e-3),
            patience: None,
            ..recipe.train.clone()
        };
        let mut steps = Steps::default();
        let outcome = train_and_evaluate(&model, &recipe.strategy, data, &config, None, &mut steps).expect("trains");
        if let Some(classification) = &outcome.after.classification {
            let accuracy = classification.report.accuracy;
            assert!(accuracy >= 0.9, "{mode:?}: accuracy {accuracy}, {:?}", outcome.phases);
            assert!(
                classification.accuracy_interval.low <= accuracy && accuracy <= classification.accuracy_interval.high
            );
        }
        if let Some(ner) = &outcome.after.ner {
            assert!(
                ner.report.micro_avg.f1 >= 0.9,
                "{mode:?}: NER F1 {}, {:?}",
                ner.report.micro_avg.f1,
                outcome.phases
            );
        }
        assert!(outcome.epochs.iter().all(|e| e.validation.is_some()), "{mode:?}: every epoch is validated");
        assert_eq!(outcome.phases.len(), 1);
        assert!(outcome.phases[0].best_metric.is_some());
        // The schedule warms up from a small, non-zero rate.
        let first = steps.0.first().expect("steps");
        assert!(first.lr_factor > 0.0 && first.lr_factor < 0.5, "{mode:?}: first factor {}", first.lr_factor);
    }
}

#[test]
fn each_separate_phase_has_its_own_warm_up_and_decay() {
    let _rng = serial();
    let (classification, ner) = (classification_data(40), ner_data(40));
    let data = TaskData::new().with(Task::Classification, &classification).with(Task::Ner, &ner);
    let config = TrainConfig {
        epochs: 2,
        batch_size: 4,
        schedule: trainer::Schedule::LinearWarmupDecay { warmup_ratio: 0.25 },
        ..TrainConfig::default()
    };
    let mut steps = Steps::default();
    train_and_evaluate(&tiny_model(0.0, 2), &FreezeStrategy::HeadsOnly, data, &config, None, &mut steps)
        .expect("trains");
    for task in ["classification", "ner"] {
        let factors: Vec<f64> = steps.0.iter().filter(|s| s.phase.to_string() == task).map(|s| s.lr_factor).collect();
        // 2 epochs of 8 batches: 4 warm-up steps rising to 1, then a decay towards 0.
        assert_eq!(factors.len(), 16, "{task}");
        assert_eq!(&factors[..4], [0.25, 0.5, 0.75, 1.0], "{task}: {factors:?}");
        assert!(factors[4..].windows(2).all(|w| w[1] < w[0]) && factors[15] > 0.0, "{task}: {factors:?}");
    }
}

#[test]
fn strategies_with_layer_decay_change_only_what_they_train() {
    let _rng = serial();
    let (classification, ner) = (classification_data(20), ner_data(20));
    let data = TaskData::new().with(Task::Classification, &classification).with(Task::Ner, &ner);
    for strategy in [FreezeStrategy::OutputLayers(1), FreezeStrategy::All] {
        let model = tiny_model(0.1, 3);
        let before = weights(&model);
        let config = TrainConfig {
            epochs: 1,
            batch_size: 4,
            encoder_learning_rate: Some(1e-4),
            layer_decay: Some(0.5),
            optimizer: trainer::OptimizerKind::AdamW { weight_decay: 0.01 },
            ..TrainConfig::default()
        };
        train_and_evaluate(&model, &strategy, data, &config, None, &mut NoObserver).expect("trains");
        for ((name, old), (_, new)) in before.iter().zip(weights(&model)) {
            let frozen = strategy == FreezeStrategy::OutputLayers(1)
                && (name.starts_with("encoder.layer.0.") || name.starts_with("embeddings."));
            assert_eq!(frozen, old.equal(&new), "{strategy}: {name} frozen={frozen}");
        }
    }
}

#[test]
fn bf16_training_keeps_f32_weights_and_learns() {
    let _rng = serial();
    let classification = classification_data(120);
    let data = TaskData::new().with(Task::Classification, &classification);
    let mut model = tiny_model(0.0, 4);
    model.set_precision(encoder::Precision::Bf16).expect("bf16");
    let config = TrainConfig { epochs: 6, batch_size: 8, learning_rate: 3e-3, ..TrainConfig::default() };
    let outcome =
        train_and_evaluate(&model, &FreezeStrategy::All, data, &config, None, &mut NoObserver).expect("trains");
    assert!(model.named_parameters().iter().all(|(_, t)| t.kind() == tch::Kind::Float), "master weights stay f32");
    let first = outcome.epochs.first().expect("epochs").mean_loss;
    let last = outcome.epochs.last().expect("epochs").mean_loss;
    assert!(last < first * 0.5, "bf16 loss {first} -> {last}");
    assert!(outcome.after.classification.expect("scored").report.accuracy >= 0.9);
}

#[test]
fn data_that_does_not_fit_the_model_is_refused_before_training_naming_the_example() {
    let _rng = serial();
    let model = tiny_model(0.0, 3);
    let config = TrainConfig { epochs: 1, batch_size: 4, ..TrainConfig::default() };
    let ner = ner_data(20);
    // Each corruption as a reloaded cache could carry it.
    type Corruption = (&'static str, fn(&mut Vec<Encoded>, &mut Vec<String>));
    let corruptions: [Corruption; 4] = [
        ("class 7 is not one of the 2 labels", |examples, _| examples[3].target = Target::Class(7)),
        ("token id 99 is outside the model's vocabulary of 24", |examples, _| examples[4].input_ids[1] = 99),
        ("labels [\"bad\", \"good\"] are not the model's", |_, labels| *labels = vec!["bad".into(), "good".into()]),
        ("more than the model's 32 positions", |examples, _| {
            examples[2].input_ids = vec![10; 40];
            examples[2].type_ids = vec![0; 40];
        }),
    ];
    for (expected, corrupt) in corruptions {
        let clean = classification_data(20);
        let (mut examples, mut labels) = (clean.examples().to_vec(), clean.label_names().to_vec());
        corrupt(&mut examples, &mut labels);
        let data = ProcessedDataset::new(examples, labels, 0);
        let classification =
            PreparedDataset::from_split(data, clean.train().to_vec(), Vec::new(), clean.test().to_vec())
                .expect("split");
        let data = TaskData::new().with(Task::Classification, &classification).with(Task::Ner, &ner);
        let before = weights(&model);
        let error = train_and_evaluate(&model, &FreezeStrategy::All, data, &config, None, &mut NoObserver)
            .expect_err("refused");
        assert!(matches!(error, TrainError::DataMismatch { .. }), "{error}");
        assert!(error.to_string().contains(expected), "{error} lacks {expected}");
        assert_eq!(max_difference(&before, &weights(&model)), 0.0, "nothing trained");
        let error = evaluate(&model, data, Split::Test, 4, None).expect_err("evaluation refuses too");
        assert!(error.to_string().contains(expected), "{error}");
    }
    let clean = ner_data(20);
    let mut examples = clean.examples().to_vec();
    if let Target::Tokens(targets) = &mut examples[5].target {
        targets.word_labels[0] = 9;
    }
    let data = ProcessedDataset::new(examples, clean.label_names().to_vec(), 0);
    let bad_tags =
        PreparedDataset::from_split(data, clean.train().to_vec(), Vec::new(), clean.test().to_vec()).expect("split");
    let classification = classification_data(20);
    let data = TaskData::new().with(Task::Classification, &classification).with(Task::Ner, &bad_tags);
    let error = evaluate(&model, data, Split::Test, 4, None).expect_err("tag out of range");
    assert!(error.to_string().contains("the ner data does not fit the model: example 5: word label 9"), "{error}");
}

#[test]
fn ner_sentences_longer_than_the_model_train_and_score_every_word_through_windows() {
    let _rng = serial();
    // 16-token windows over 32-39 token sentences: entities near the end sit in the last window only.
    let ner = long_ner_data(60, 16);
    let data = TaskData::new().with(Task::Ner, &ner);
    let model = tiny_model(0.0, 3);
    let config = TrainConfig { epochs: 12, batch_size: 4, learning_rate: 2e-3, ..TrainConfig::default() };
    let outcome =
        train_and_evaluate(&model, &FreezeStrategy::All, data, &config, None, &mut NoObserver).expect("trains");
    let scores = outcome.after.ner.expect("ner scores");
    let test_words: usize = ner.test().iter().map(|&i| 30 + i % 8).sum();
    assert_eq!(scores.words, test_words, "every word of every test sentence is scored");
    assert_eq!(scores.report.micro_avg.support, 2 * ner.test().len(), "both entities of each sentence are gold");
    assert_eq!(scores.report.micro_avg.f1, 1.0, "entities in every window are found");

    // With a frozen encoder the cached features read the same windows: cached and live scores agree.
    let live = evaluate(&model, data, Split::Test, 4, None).expect("live");
    let cache = FeatureCache::build(&model, data, 4, false).expect("cache");
    let cached = evaluate(&model, data, Split::Test, 4, Some(&cache)).expect("cached");
    assert_eq!(live.ner.map(|n| n.report), cached.ner.map(|n| n.report));
    let heads_only = tiny_model(0.0, 4);
    let config = TrainConfig { epochs: 2, batch_size: 4, ..TrainConfig::default() };
    let cached_run = train_and_evaluate(&heads_only, &FreezeStrategy::HeadsOnly, data, &config, None, &mut NoObserver)
        .expect("trains on cached windows");
    let uncached = tiny_model(0.0, 4);
    let config = TrainConfig { feature_cache: false, ..config };
    let live_run = train_and_evaluate(&uncached, &FreezeStrategy::HeadsOnly, data, &config, None, &mut NoObserver)
        .expect("trains on live windows");
    let difference = max_difference(&weights(&heads_only), &weights(&uncached));
    assert!(difference < 1e-5, "cached and live windows train alike: {difference}");
    assert_eq!(cached_run.epochs.len(), live_run.epochs.len());
}

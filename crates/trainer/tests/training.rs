//! The training loop on a tiny random model and synthetic data the tests make themselves.

use datasets::{
    CacheReport, CacheStatus, EncodeStats, Encoded, PreparedDataset, ProcessedDataset, Target, TokenTargets,
};
use encoder::{BertConfig, Pooling};
use heads::{FreezeStrategy, MultiTaskConfig, MultiTaskModel};
use tch::{Device, Tensor};
use trainer::{
    evaluate, train_and_evaluate, FeatureCache, Mode, NoObserver, Observer, StepRecord, TaskData, TrainConfig,
    TrainError,
};

const CLS: u32 = 2;
const SEP: u32 = 3;

fn dataset(examples: Vec<Encoded>, label_names: &[&str], test_every: usize) -> PreparedDataset {
    let (train, test): (Vec<usize>, Vec<usize>) = (0..examples.len()).partition(|i| i % test_every != 0);
    PreparedDataset {
        data: ProcessedDataset {
            examples,
            label_names: label_names.iter().map(|s| s.to_string()).collect(),
            rows_read: 0,
            dropped: Vec::new(),
            stats: EncodeStats::default(),
            pad_id: 0,
        },
        train,
        test,
        cache: CacheReport { status: CacheStatus::Disabled, path: None, write_error: None },
    }
}

/// Sentences of filler tokens (10..20) holding token 5 (class 0) or token 6 (class 1).
fn classification_data(n: usize) -> PreparedDataset {
    let examples = (0..n)
        .map(|i| {
            let class = (i % 2) as u32;
            let mut ids = vec![CLS];
            ids.extend((0..(3 + i % 7)).map(|k| 10 + ((i + k) % 10) as u32));
            ids.insert(1 + i % 3, 5 + class);
            ids.push(SEP);
            Encoded { type_ids: vec![0; ids.len()], input_ids: ids, target: Target::Class(class) }
        })
        .collect();
    dataset(examples, &["negative", "positive"], 5)
}

/// Word = one token; token 7 is B-LOC, a following token 8 is I-LOC, everything else O.
fn ner_data(n: usize) -> PreparedDataset {
    let examples = (0..n)
        .map(|i| {
            let mut words: Vec<u32> = (0..(4 + i % 4)).map(|k| 10 + ((i * 3 + k) % 10) as u32).collect();
            let at = i % words.len().saturating_sub(1).max(1);
            words[at] = 7;
            if i % 2 == 0 {
                words[at + 1] = 8;
            }
            let tags: Vec<u32> = words
                .iter()
                .map(|&w| {
                    if w == 7 {
                        1
                    } else if w == 8 {
                        2
                    } else {
                        0
                    }
                })
                .collect();
            let mut ids = vec![CLS];
            ids.extend(&words);
            ids.push(SEP);
            let mut labels = vec![-100];
            labels.extend(tags.iter().map(|&t| t as i32));
            labels.push(-100);
            let mut word_ids = vec![None];
            word_ids.extend((0..words.len() as u32).map(Some));
            word_ids.push(None);
            let targets = TokenTargets { labels, word_ids, word_labels: tags, words_truncated: 0 };
            Encoded { type_ids: vec![0; ids.len()], input_ids: ids, target: Target::Tokens(targets) }
        })
        .collect();
    dataset(examples, &["O", "B-LOC", "I-LOC"], 5)
}

fn tiny_model(dropout: f64, seed: i64) -> MultiTaskModel {
    tch::manual_seed(seed);
    let encoder = BertConfig {
        vocab_size: 24,
        hidden_size: 16,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 32,
        max_position_embeddings: 32,
        hidden_dropout_prob: dropout,
        attention_probs_dropout_prob: dropout,
        ..BertConfig::default()
    };
    let labels = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
    let config = MultiTaskConfig::new(
        encoder,
        labels(&["negative", "positive"]),
        labels(&["O", "B-LOC", "I-LOC"]),
        Pooling::Mean,
    );
    MultiTaskModel::new(config, Device::Cpu).expect("tiny model")
}

/// libtorch's random generator is global to the process and the tests run on parallel threads: every test that
/// seeds it (model initialisation, dropout) holds this lock, so that no other test draws in between.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn quiet(config: TrainConfig) -> TrainConfig {
    TrainConfig { progress: false, ..config }
}

fn weights(model: &MultiTaskModel) -> Vec<(String, Tensor)> {
    model.named_parameters().into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
}

fn max_difference(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> f64 {
    a.iter().zip(b).map(|((_, x), (_, y))| (x - y).abs().max().double_value(&[])).fold(0.0, f64::max)
}

#[test]
fn a_tiny_model_learns_both_synthetic_tasks() {
    let _rng = serial();
    let (classification, ner) = (classification_data(200), ner_data(100));
    let both = TaskData { classification: Some(&classification), ner: Some(&ner) };
    // In separate mode a trainable encoder tuned for NER after classification would drift away from the
    // classification head, so each task is checked on its own there; combined mode trains both together.
    let runs = [
        (Mode::Combined, both),
        (Mode::Separate, TaskData { classification: Some(&classification), ner: None }),
        (Mode::Separate, TaskData { classification: None, ner: Some(&ner) }),
    ];
    for (mode, data) in runs {
        let model = tiny_model(0.0, 1);
        let config =
            quiet(TrainConfig { mode, epochs: 8, batch_size: 8, learning_rate: 1e-3, ..TrainConfig::default() });
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
        let config = quiet(TrainConfig { epochs: 2, batch_size: 4, feature_cache, ..TrainConfig::default() });
        let outcome = train_and_evaluate(&model, &FreezeStrategy::HeadsOnly, data, &config, None, &mut NoObserver)
            .expect("trains");
        assert_eq!(outcome.feature_cache.is_some(), feature_cache);
        (weights(&model), outcome)
    };
    // Both tasks without dropout; classification alone with dropout: a frozen encoder runs in eval mode whether its
    // outputs are cached or not, and the classification head's dropout draws the same random numbers either way.
    // (The NER head's dropout does not: uncached it draws for every position, cached only for the kept tokens.)
    let both = TaskData { classification: Some(&classification), ner: Some(&ner) };
    let classification_only = TaskData { classification: Some(&classification), ner: None };
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
    let data = TaskData { classification: Some(&classification), ner: Some(&ner) };
    let config = quiet(TrainConfig { epochs: 2, batch_size: 4, ..TrainConfig::default() });
    let scores = |e: &trainer::Evaluation| {
        (
            e.classification.as_ref().map(|c| c.report.accuracy),
            e.ner.as_ref().map(|n| n.report.micro_avg.f1),
            e.classification.as_ref().map(|c| c.examples),
            e.ner.as_ref().map(|n| n.sentences),
        )
    };

    let model = tiny_model(0.0, 7);
    let cache = FeatureCache::build(&model, data, &config).expect("cache");
    assert_eq!(cache.report().classification.rows, 40);
    let live = evaluate(&model, data, 4, None).expect("live evaluation");
    let cached = evaluate(&model, data, 4, Some(&cache)).expect("cached evaluation");
    assert_eq!(scores(&live), scores(&cached));
    let given = train_and_evaluate(&model, &FreezeStrategy::HeadsOnly, data, &config, Some(cache), &mut NoObserver)
        .expect("trains");
    assert_eq!(scores(&given.before), scores(&live));
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
    let data = TaskData { classification: Some(&classification), ner: Some(&ner) };
    let config = quiet(TrainConfig { epochs: 1, batch_size: 4, ..TrainConfig::default() });
    let model = tiny_model(0.0, 7);

    let cache = FeatureCache::build(&model, data, &config).expect("cache");
    let error = train_and_evaluate(&model, &FreezeStrategy::All, data, &config, Some(cache), &mut NoObserver)
        .expect_err("the encoder trains");
    assert!(matches!(&error, TrainError::InvalidConfig(m) if m.contains("trains the encoder")), "{error}");

    let cache = FeatureCache::build(&model, data, &config).expect("cache");
    let data = TaskData { classification: Some(&other), ner: Some(&ner) };
    assert!(matches!(evaluate(&model, data, 4, Some(&cache)), Err(TrainError::InvalidConfig(_))));
    let error = train_and_evaluate(&model, &FreezeStrategy::HeadsOnly, data, &config, Some(cache), &mut NoObserver)
        .expect_err("other data");
    assert!(error.to_string().contains("other examples"), "{error}");
}

#[test]
fn frozen_parameters_do_not_change() {
    let _rng = serial();
    let (classification, ner) = (classification_data(20), ner_data(20));
    let data = TaskData { classification: Some(&classification), ner: Some(&ner) };
    for strategy in [FreezeStrategy::None, FreezeStrategy::HeadsOnly, FreezeStrategy::OutputLayers(1)] {
        let model = tiny_model(0.1, 3);
        let before = weights(&model);
        let config = quiet(TrainConfig { epochs: 1, batch_size: 4, ..TrainConfig::default() });
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
    let data = TaskData { classification: Some(&classification), ner: Some(&ner) };
    let model = tiny_model(0.0, 5);
    let config = quiet(TrainConfig { mode: Mode::Combined, epochs: 1, batch_size: 4, ..TrainConfig::default() });
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
    let data = TaskData { classification: Some(&classification), ner: None };
    let run = |batch_size: usize, gradient_accumulation: usize| {
        let model = tiny_model(0.0, 11);
        let config = quiet(TrainConfig {
            epochs: 1,
            batch_size,
            gradient_accumulation,
            feature_cache: false,
            ..TrainConfig::default()
        });
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
    let data = TaskData { classification: Some(&classification), ner: Some(&ner) };
    let model = tiny_model(0.0, 2);
    // Poison the classification head: every logit becomes NaN.
    tch::no_grad(|| {
        for (name, mut tensor) in model.named_parameters() {
            if name == "classification_head.bias" {
                let _ = tensor.fill_(f64::NAN);
            }
        }
    });
    let config = quiet(TrainConfig { epochs: 1, batch_size: 4, ..TrainConfig::default() });
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

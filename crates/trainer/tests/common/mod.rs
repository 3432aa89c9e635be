//! The tiny random model and the synthetic data that the trainer's tests make themselves.
#![allow(dead_code)] // each test binary uses its own part

use datasets::{Encoded, PreparedDataset, ProcessedDataset, Target, TokenTargets};
use encoder::{BertConfig, Pooling};
use heads::{MultiTaskConfig, MultiTaskModel};
use tch::{Device, Tensor};

pub const CLS: u32 = 2;
pub const SEP: u32 = 3;

/// A fifth of the examples (seeded) for testing, the rest for training.
pub fn dataset(examples: Vec<Encoded>, label_names: &[&str], test_every: usize) -> PreparedDataset {
    let split = datasets::train_test_split(examples.len(), datasets::TestSize::Count(examples.len() / test_every), 0)
        .expect("split");
    let data = ProcessedDataset::new(examples, label_names.iter().map(|s| s.to_string()).collect(), 0);
    PreparedDataset::from_split(data, split.train, Vec::new(), split.test).expect("a valid split")
}

/// Sentences of filler tokens (10..20) holding token 5 (class 0) or token 6 (class 1).
pub fn classification_data(n: usize) -> PreparedDataset {
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
pub fn ner_data(n: usize) -> PreparedDataset {
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
            let targets = TokenTargets { labels, word_ids, word_labels: tags, windows: Vec::new() };
            Encoded { type_ids: vec![0; ids.len()], input_ids: ids, target: Target::Tokens(targets) }
        })
        .collect();
    dataset(examples, &["O", "B-LOC", "I-LOC"], 5)
}

/// Sentences of 30 to 37 one-token words (token 7 is B-LOC, a following 8 is I-LOC, with an entity near the start
/// and one near the end), read in windows of `window` tokens sharing a quarter of them.
pub fn long_ner_data(n: usize, window: usize) -> PreparedDataset {
    let examples = (0..n)
        .map(|i| {
            let length = 30 + i % 8;
            let mut words: Vec<u32> = (0..length).map(|k| 10 + ((i * 5 + k * 3) % 10) as u32).collect();
            for at in [1 + i % 3, length - 3 - i % 2] {
                words[at] = 7;
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
            let windows = datasets::windows(ids.len(), window, window / 4).expect("windows");
            assert!(windows.len() > 1, "every sentence is longer than a window");
            let targets = TokenTargets { labels, word_ids, word_labels: tags, windows };
            Encoded { type_ids: vec![0; ids.len()], input_ids: ids, target: Target::Tokens(targets) }
        })
        .collect();
    dataset(examples, &["O", "B-LOC", "I-LOC"], 5)
}

pub fn tiny_model(dropout: f64, seed: i64) -> MultiTaskModel {
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

pub fn weights(model: &MultiTaskModel) -> Vec<(String, Tensor)> {
    model.named_parameters().into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
}

pub fn max_difference(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> f64 {
    a.iter().zip(b).map(|((_, x), (_, y))| (x - y).abs().max().double_value(&[])).fold(0.0, f64::max)
}

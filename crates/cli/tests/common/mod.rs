//! A tiny random BERT the command-line tests write themselves.
#![allow(dead_code)] // each test binary uses its own part

use std::path::Path;

pub const VOCAB: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "was", "great", "awful", "loved", "hated", "it",
    "in", "paris", "john", "visited", "london", ".", "!", "a", "film", "##s",
];

pub fn write_tiny_model(dir: &Path) {
    write_model(dir, |_| {});
}

/// A tiny random model whose weights `edit` may change before they are written.
pub fn write_model(dir: &Path, edit: impl FnOnce(&mut Vec<(String, tch::Tensor)>)) {
    std::fs::create_dir_all(dir).expect("model dir");
    let config = encoder::BertConfig {
        vocab_size: VOCAB.len() as i64,
        hidden_size: 16,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 32,
        max_position_embeddings: 64,
        ..encoder::BertConfig::default()
    };
    tch::manual_seed(0);
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let _model = encoder::BertModel::new(vs.root(), &config);
    let mut tensors: Vec<(String, tch::Tensor)> = vs.variables().into_iter().collect();
    edit(&mut tensors);
    tch::Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).expect("weights");
    std::fs::write(dir.join("config.json"), serde_json::to_string(&config).expect("json")).expect("config");
    std::fs::write(dir.join("vocab.txt"), VOCAB.join("\n")).expect("vocab");
}

//! Loading a model directory that is incomplete or inconsistent gives an error naming what is wrong.

use encoder::{load_pretrained, BertConfig, BertModel, EncoderError, SentenceEncoder};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

fn tiny_config() -> BertConfig {
    BertConfig {
        vocab_size: 20,
        hidden_size: 8,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 16,
        max_position_embeddings: 16,
        ..BertConfig::default()
    }
}

/// Writes a complete tiny model directory (random weights) and returns its tensors by name.
fn write_model(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) {
    let config = tiny_config();
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = BertModel::new(vs.root(), &config);
    let mut tensors: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    edit(&mut tensors);
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).expect("write weights");
    std::fs::write(dir.join("config.json"), serde_json::to_string(&config).expect("json")).expect("write config");
}

fn load(dir: &Path) -> Result<BertModel, EncoderError> {
    let vs = nn::VarStore::new(Device::Cpu);
    load_pretrained(&vs, dir).map(|(model, _)| model)
}

#[test]
fn a_complete_directory_loads_and_copies_every_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_model(dir.path(), |_| {});
    let vs = nn::VarStore::new(Device::Cpu);
    let (_, report) = load_pretrained(&vs, dir.path()).expect("loads");
    assert_eq!(report.copied, 5 + 16 * 2);
    let expected: i64 = vs.variables().values().map(|t| t.numel() as i64).sum();
    assert_eq!(report.parameters, expected);
}

#[test]
fn missing_directory_config_and_weights_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = load(&dir.path().join("nope")).unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");

    write_model(dir.path(), |_| {});
    std::fs::remove_file(dir.path().join("config.json")).expect("rm");
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("config.json"), "{err}");

    write_model(dir.path(), |_| {});
    std::fs::remove_file(dir.path().join("model.safetensors")).expect("rm");
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("model.safetensors or pytorch_model.bin"), "{err}");
}

#[test]
fn a_missing_tensor_is_named_with_its_expected_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let name = "encoder.layer.1.attention.self.key.weight";
    write_model(dir.path(), |tensors| tensors.retain(|(n, _)| n != name));
    match load(dir.path()) {
        Err(EncoderError::MissingTensor { name: missing, expected, .. }) => {
            assert_eq!(missing, name);
            assert_eq!(expected, [8, 8]);
        }
        other => panic!("expected a missing tensor error, got {other:?}"),
    }
}

#[test]
fn a_mis_shaped_tensor_is_named_with_both_shapes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let name = "encoder.layer.0.intermediate.dense.weight";
    write_model(dir.path(), |tensors| {
        for (n, t) in tensors.iter_mut() {
            if n == name {
                *t = Tensor::zeros([15, 8], (Kind::Float, Device::Cpu));
            }
        }
    });
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(&err, EncoderError::ShapeMismatch { name: n, found, .. } if n == name && found == &[15, 8]));
    assert!(err.to_string().contains("[16, 8]"), "{err}");
}

#[test]
fn unexpected_encoder_tensors_are_an_error_but_other_tensors_are_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_model(dir.path(), |tensors| {
        tensors
            .push(("encoder.layer.2.output.dense.weight".into(), Tensor::zeros([8, 16], (Kind::Float, Device::Cpu))));
    });
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("encoder.layer.2.output.dense.weight"), "{err}");

    write_model(dir.path(), |tensors| {
        tensors.push(("pooler.dense.weight".into(), Tensor::zeros([8, 8], (Kind::Float, Device::Cpu))));
        tensors.push(("embeddings.position_ids".into(), Tensor::arange(16, (Kind::Int64, Device::Cpu))));
    });
    let vs = nn::VarStore::new(Device::Cpu);
    let (_, report) = load_pretrained(&vs, dir.path()).expect("pooler and buffers are skipped");
    assert_eq!(report.skipped, ["embeddings.position_ids", "pooler.dense.weight"]);
}

#[test]
fn a_directory_without_a_tokenizer_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_model(dir.path(), |_| {});
    let err = SentenceEncoder::from_dir(dir.path(), Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json or vocab.txt"), "{err}");
}

#[test]
fn a_vocab_txt_directory_tokenizes_like_bert() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_model(dir.path(), |_| {});
    let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", "!", "play", "##ing"];
    std::fs::write(dir.path().join("vocab.txt"), vocab.join("\n")).expect("vocab");
    let encoder = SentenceEncoder::from_dir(dir.path(), Device::Cpu).expect("loads with vocab.txt");
    let encoding = encoder.tokenizer().encode_texts(&["Hello worlds! Playing zzz"]).expect("tokenizes");
    assert_eq!(encoding[0].get_tokens(), ["[CLS]", "hello", "world", "##s", "!", "play", "##ing", "[UNK]", "[SEP]"]);
    let words = encoder.tokenizer().encode_words(&["Playing", "world"]).expect("words");
    assert_eq!(words.get_word_ids(), [None, Some(0), Some(0), Some(1), None]);
    // A text longer than the 16 positions is truncated, not an error.
    let long = "hello ".repeat(40);
    let vectors = encoder.encode(&[long.as_str()], &Default::default()).expect("encodes");
    assert_eq!(vectors.size(), [1, 8]);
}

#[test]
fn a_tokenizer_larger_than_the_vocabulary_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_model(dir.path(), |_| {});
    // 25 tokens for a model with 20 embedding rows: ids 20-24 would index past the table.
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map(String::from).to_vec();
    vocab.extend((0..20).map(|i| format!("word{i}")));
    std::fs::write(dir.path().join("vocab.txt"), vocab.join("\n")).expect("vocab");
    let err = SentenceEncoder::from_dir(dir.path(), Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("25 tokens") && err.contains("vocab_size is 20"), "{err}");
}

#[test]
fn a_config_a_model_cannot_be_built_from_is_named_before_anything_is_allocated() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_model(dir.path(), |_| {});
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).expect("read")).expect("json");
    for (field, value) in [
        ("hidden_dropout_prob", serde_json::json!(1.5)),
        ("layer_norm_eps", serde_json::json!(-1.0)),
        ("vocab_size", serde_json::json!(1_i64 << 40)),
        ("num_hidden_layers", serde_json::json!(10_000_000)),
    ] {
        let mut bad = config.clone();
        bad[field] = value;
        std::fs::write(dir.path().join("config.json"), bad.to_string()).expect("write");
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("config.json") && err.contains(field), "{field}: {err}");
    }
    config.as_object_mut().expect("object").remove("hidden_size");
    std::fs::write(dir.path().join("config.json"), config.to_string()).expect("write");
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("config.json") && err.contains("hidden_size"), "{err}");
}

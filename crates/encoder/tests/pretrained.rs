//! The encoder against the reference implementation: Hugging Face `transformers` outputs committed as fixtures
//! (`fixtures/make_parity_fixture.py` regenerates them), on the default model that `cargo xtask setup` installs.

mod common;

use common::model_dir;
use encoder::reference::{compare, ReferenceOutputs};
use encoder::{cosine_similarity_matrix, BertModel, EncodeOptions, EncoderError, Pooling, SentenceEncoder};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

const TOLERANCE: f64 = 1e-5;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn read_tensors(path: &Path) -> std::collections::HashMap<String, Tensor> {
    Tensor::read_safetensors(path).expect("fixture readable").into_iter().collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

#[test]
fn matches_transformers_on_a_padded_batch_to_1e_5() {
    let encoder = SentenceEncoder::from_dir(&model_dir(), Device::Cpu).expect("model loads");
    let reference = ReferenceOutputs::read(&fixture("parity.safetensors")).expect("fixture readable");
    assert!(reference.texts.len() >= 6);
    assert!(reference.lengths.iter().any(|&l| l > 128), "one text must be longer than 128 tokens");
    assert!(reference.texts.iter().any(|t| !t.is_ascii()), "one text must hold unicode");
    let report = compare(&encoder, &reference).expect("comparison runs");
    println!("{report:?}");
    assert!(report.token_ids_match, "token ids differ from the reference tokenizer");
    assert_eq!(report.tokens, reference.input_ids.len());
    assert!(report.token_states_max_abs_diff <= TOLERANCE, "{report:?}");
    assert!(report.cls_max_abs_diff <= TOLERANCE && report.mean_max_abs_diff <= TOLERANCE, "{report:?}");
}

#[test]
fn bf16_embeddings_keep_a_cosine_of_0_9999_to_f32_on_the_parity_texts() {
    let reference = ReferenceOutputs::read(&fixture("parity.safetensors")).expect("fixture readable");
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let f32_encoder = SentenceEncoder::from_dir(&model_dir(), Device::Cpu).expect("model loads");
    let (bf16_encoder, resolved) = SentenceEncoder::from_dir(&model_dir(), Device::Cpu)
        .expect("model loads")
        .with_precision(encoder::Precision::Bf16)
        .expect("bf16 is a valid precision");
    assert_eq!(resolved.precision, encoder::Precision::Bf16);
    for pooling in [Pooling::Cls, Pooling::Mean] {
        let options = EncodeOptions { pooling, normalize: true, batch_size: 4 };
        let full = f32_encoder.encode(&texts, &options).expect("f32 encode");
        let reduced = bf16_encoder.encode(&texts, &options).expect("bf16 encode");
        assert_eq!(reduced.kind(), Kind::Float, "outputs stay f32");
        // Both are unit vectors: the row-wise dot product is the cosine.
        let cosine = (&full * &reduced).sum_dim_intlist(-1, false, Kind::Double);
        let worst = cosine.min().double_value(&[]);
        assert!(worst >= 0.9999, "{pooling}: lowest bf16/f32 cosine {worst}");
        // And bf16 did change something: the test would notice a silent fallback to f32.
        assert!(max_abs_diff(&full, &reduced) > 1e-6, "{pooling}: bf16 gave exactly the f32 vectors");
    }
    let mut model = encoder::BertModel::new(tch::nn::VarStore::new(Device::Cpu).root(), f32_encoder.config());
    assert!(model.set_precision(encoder::Precision::Auto).is_err(), "auto must be resolved first");
}

#[test]
fn a_mixed_batch_gives_the_same_embeddings_as_each_text_alone() {
    let encoder = SentenceEncoder::from_dir(&model_dir(), Device::Cpu).expect("model loads");
    let texts = ["Short.", "A considerably longer sentence, with several clauses, to force padding.", "Mid size."];
    let options = EncodeOptions { pooling: Pooling::Mean, normalize: true, batch_size: 8 };
    let together = encoder.encode(&texts, &options).expect("encode");
    for (i, text) in texts.iter().enumerate() {
        let alone = encoder.encode(&[text], &options).expect("encode");
        let diff = max_abs_diff(&together.get(i as i64), &alone.get(0));
        assert!(diff <= TOLERANCE, "text {i} differs by {diff} when batched");
    }
    let tokens = encoder.encode_tokens(&texts, 2).expect("tokens");
    assert_eq!(tokens[0].tokens, ["[CLS]", "short", ".", "[SEP]"]);
    assert_eq!(tokens[0].states.size(), [4, encoder.config().hidden_size]);
}

#[test]
fn related_sentences_are_more_similar_than_unrelated_ones() {
    let encoder = SentenceEncoder::from_dir(&model_dir(), Device::Cpu).expect("model loads");
    let ids = encoder.tokenizer().encode_texts(&["A man is eating food."]).expect("tokenizes");
    assert_eq!(ids[0].get_ids(), [101, 1037, 2158, 2003, 5983, 2833, 1012, 102]);

    let texts = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply today."];
    let vectors = encoder.encode(&texts, &EncodeOptions::default()).expect("encode");
    let similarity = cosine_similarity_matrix(&vectors);
    let related = similarity.double_value(&[0, 1]);
    assert!((related - 0.755).abs() < 0.01, "all-MiniLM-L6-v2 gives about 0.755, got {related}");
    assert!(related > similarity.double_value(&[0, 2]) && related > similarity.double_value(&[1, 2]));

    // The notebook's three sentences: the two about fruit are closer than fruit and the app.
    let notebook = ["Fetch Rewards is a great app!", "I love eating apples.", "I do enjoy oranges!"];
    for pooling in [Pooling::Cls, Pooling::Mean] {
        let options = EncodeOptions { pooling, ..EncodeOptions::default() };
        let similarity = cosine_similarity_matrix(&encoder.encode(&notebook, &options).expect("encode"));
        assert!(
            similarity.double_value(&[1, 2]) > similarity.double_value(&[0, 1]),
            "{pooling}: apples/oranges should beat app/apples"
        );
    }
}

#[test]
fn texts_longer_than_the_model_are_truncated_and_empty_input_is_an_error() {
    let encoder = SentenceEncoder::from_dir(&model_dir(), Device::Cpu).expect("model loads");
    let long = "word ".repeat(2000);
    let tokens = encoder.encode_tokens(&[long.as_str()], 1).expect("long text encodes");
    assert_eq!(tokens[0].ids.len(), 512);
    assert_eq!(tokens[0].ids.last(), Some(&102), "truncation keeps [SEP]");
    let vectors = encoder.encode(&[long.as_str(), "short"], &EncodeOptions::default()).expect("encode");
    assert_eq!(vectors.size(), [2, 384]);
    assert!(matches!(encoder.encode(&[], &EncodeOptions::default()), Err(EncoderError::InvalidInput(_))));
    let too_long = Tensor::ones([1, 513], (Kind::Int64, Device::Cpu));
    let err = encoder.model().forward_t(&too_long, None, None, false).unwrap_err();
    assert!(err.to_string().contains("513"), "{err}");
}

#[test]
fn loads_a_legacy_pytorch_checkpoint_and_matches_transformers() {
    let dir = fixture("tiny-legacy-bert");
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let (model, report) = encoder::load_pretrained(&vs, &dir).expect("legacy checkpoint loads");
    assert_eq!(report.skipped, ["cls.predictions.bias"]);
    assert_eq!(report.copied, 5 + 16 * 2);
    let expected = read_tensors(&dir.join("expected.safetensors"));
    let mask = &expected["attention_mask"];
    let hidden = tch::no_grad(|| model.forward_t(&expected["input_ids"], Some(mask), None, false))
        .expect("forward")
        .last_hidden_state;
    // Compare real tokens only: padding positions are not defined by the reference.
    let keep = mask.unsqueeze(-1).to_kind(Kind::Float);
    let diff = max_abs_diff(&(&hidden * &keep), &(&expected["last_hidden_state"] * &keep));
    assert!(diff <= TOLERANCE, "tiny legacy model differs by {diff}");
    let _: &BertModel = &model;
}

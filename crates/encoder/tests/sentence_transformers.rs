//! `Embedder` against sentence-transformers itself: the vectors `SentenceTransformer(model).encode(texts)` gives for
//! the default model (committed as a fixture; `fixtures/make_st_fixture.py` regenerates it), texts longer than the
//! model's 256-token limit and an empty text included.

mod common;

use common::model_dir;
use encoder::{EmbedOverrides, Embedder, LongText, Pooling};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// The fixture's texts, untruncated token counts and vectors.
fn fixture() -> (Vec<String>, Vec<usize>, Tensor) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sentence_transformers.safetensors");
    let bytes = std::fs::read(&path).expect("the fixture");
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).expect("safetensors");
    let metadata = header.metadata().clone().expect("metadata");
    let texts: Vec<String> = serde_json::from_str(&metadata["texts"]).expect("texts");
    let tokens: Vec<usize> = serde_json::from_str(&metadata["untruncated_tokens"]).expect("token counts");
    let vectors = Tensor::read_safetensors(&path)
        .expect("tensors")
        .into_iter()
        .find(|(name, _)| name == "vectors")
        .map(|(_, t)| t)
        .expect("vectors");
    (texts, tokens, vectors)
}

#[test]
fn the_model_own_settings_give_sentence_transformers_vectors() {
    let (texts, tokens, expected) = fixture();
    assert!(tokens.iter().filter(|&&n| n > 256).count() >= 2, "the fixture holds texts past the 256-token limit");
    assert!(texts.iter().any(String::is_empty));
    let embedder = Embedder::from_dir(&model_dir(), Device::Cpu, &EmbedOverrides::default()).expect("loads");
    let info = embedder.info();
    assert_eq!((info.source, info.max_length, info.normalized), ("sentence-transformers", 256, true));
    assert_eq!((info.pooling.as_slice(), info.dimension), ([Pooling::Mean].as_slice(), 384));
    assert!(info.overridden.is_empty());
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for batch_size in [1, 3, 8] {
        let ours = embedder.embed(&refs, batch_size).expect("embeds");
        assert_eq!(ours.truncated, tokens.iter().filter(|&&n| n > 256).count());
        assert_eq!(ours.vectors.size(), expected.size());
        let cosine = (&ours.vectors * &expected).sum_dim_intlist(1, false, Kind::Double)
            / (ours.vectors.norm_scalaropt_dim(2.0, [1], false) * expected.norm_scalaropt_dim(2.0, [1], false))
                .to_kind(Kind::Double);
        let cosines = Vec::<f64>::try_from(cosine).expect("cosines");
        for (text, cosine) in texts.iter().zip(&cosines) {
            assert!(
                *cosine >= 0.99999,
                "batch {batch_size}: cosine {cosine} on {:?}",
                text.chars().take(40).collect::<String>()
            );
        }
        let difference = (&ours.vectors - &expected).abs().max().double_value(&[]);
        assert!(difference < 1e-5, "batch {batch_size}: largest difference {difference}");
    }
}

#[test]
fn explicit_settings_override_the_model_and_say_so() {
    let overrides = EmbedOverrides {
        pooling: Some(Pooling::Cls),
        normalize: Some(false),
        max_length: Some(128),
        ..EmbedOverrides::default()
    };
    let embedder = Embedder::from_dir(&model_dir(), Device::Cpu, &overrides).expect("loads");
    let info = embedder.info();
    assert_eq!((info.max_length, info.normalized, info.pooling.as_slice()), (128, false, [Pooling::Cls].as_slice()));
    assert_eq!(info.overridden.len(), 3, "{:?}", info.overridden);
    let vectors = embedder.embed(&["A man is eating food.", "Short."], 2).expect("embeds").vectors;
    let norms = Vec::<f64>::try_from(vectors.norm_scalaropt_dim(2.0, [1], false).to_kind(Kind::Double)).expect("norms");
    assert!(norms.iter().all(|n| (n - 1.0).abs() > 1e-3), "not normalized: {norms:?}");
}

#[test]
fn long_texts_read_in_chunks_lose_nothing_and_short_ones_are_unchanged() {
    let model = model_dir();
    let truncating = EmbedOverrides { max_length: Some(32), ..EmbedOverrides::default() };
    let chunking = EmbedOverrides { long_text: LongText::Chunk, ..truncating };
    let truncate = Embedder::from_dir(&model, Device::Cpu, &truncating).expect("loads");
    let chunk = Embedder::from_dir(&model, Device::Cpu, &chunking).expect("loads");
    let short = "A man is eating food.";
    let repeated = ["The committee approved the budget after a long debate."; 12].join(" ");
    // The ending differs from the start: only chunking sees it.
    let mixed = format!("{repeated} Meanwhile volcanoes erupted on three continents, grounding every flight.");
    let texts = [short, repeated.as_str(), mixed.as_str()];
    let cut = truncate.embed(&texts, 2).expect("embeds");
    let read = chunk.embed(&texts, 2).expect("embeds");
    assert_eq!((cut.truncated, read.truncated), (2, 2), "two texts are longer than 32 tokens");
    let cosine = |a: &Tensor, b: &Tensor| {
        (a * b).sum(Kind::Double).double_value(&[]) / (a.norm().double_value(&[]) * b.norm().double_value(&[]))
    };
    // A text within the limit is one chunk: the same vector.
    assert!((read.vectors.get(0) - cut.vectors.get(0)).abs().max().double_value(&[]) < 1e-6);
    // Every chunk of the repeated text says the same thing: about the truncated vector.
    assert!(cosine(&read.vectors.get(1), &cut.vectors.get(1)) > 0.98);
    // The text whose end differs: its chunked vector moves toward the ending the truncated one never saw.
    let ending = truncate
        .embed(&["Meanwhile volcanoes erupted on three continents, grounding every flight."], 1)
        .expect("embeds")
        .vectors
        .get(0);
    let (chunked, truncated) = (read.vectors.get(2), cut.vectors.get(2));
    assert!(cosine(&chunked, &ending) > cosine(&truncated, &ending) + 0.01);
    let norm = chunked.norm().double_value(&[]);
    assert!((norm - 1.0).abs() < 1e-5, "normalized as the model's files say: {norm}");
    assert!("split".parse::<LongText>().unwrap_err().contains(LongText::NAMES));
}

//! `Embedder`: sentence embeddings as the model itself defines them. It follows the model directory's
//! sentence-transformers configuration when there is one ([`SentenceTransformersConfig`]: its length limit,
//! lower-casing, pooling, dense layers, normalization), so its vectors are the ones sentence-transformers gives for the
//! same model; a plain Hugging Face BERT directory gets mean pooling over the model's positions, not normalized.
//! Settings given explicitly override the model's, and the embedder says which.

use crate::error::{EncoderError, Result};
use crate::pooling::Pooling;
use crate::precision::{Precision, ResolvedPrecision};
use crate::sentence::SentenceEncoder;
use crate::sentence_transformers::{apply_stages, SentenceTransformersConfig, Stage};
use serde::Serialize;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// What becomes of a text longer than the embedder's `max_length`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LongText {
    /// Cut at `max_length` tokens, as sentence-transformers does (the model's own vectors).
    #[default]
    Truncate,
    /// Read in overlapping chunks of `max_length` tokens (sharing a quarter of them), each turned into a vector,
    /// and averaged (then normalized when the model normalizes): nothing is cut off, at the price of vectors that
    /// are no longer sentence-transformers' own for those texts.
    Chunk,
}

impl LongText {
    /// The accepted names, for error messages.
    pub const NAMES: &'static str = "truncate or chunk";
}

impl std::str::FromStr for LongText {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "truncate" => Ok(Self::Truncate),
            "chunk" => Ok(Self::Chunk),
            other => Err(format!("unknown long-text handling `{other}`: expected {}", Self::NAMES)),
        }
    }
}

/// Settings that override the model's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmbedOverrides {
    /// Pool with this mode instead of the model's.
    pub pooling: Option<Pooling>,
    /// Normalize (or not) whatever the model does.
    pub normalize: Option<bool>,
    /// Truncate at this many tokens (special tokens included) instead of the model's limit.
    pub max_length: Option<usize>,
    /// What becomes of texts longer than the limit (default: truncated).
    pub long_text: LongText,
}

/// What an embedder does, for people and for `/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmbedderInfo {
    /// Where the settings come from: `sentence-transformers` (the model's own files) or `defaults`.
    pub source: &'static str,
    /// Values per vector.
    pub dimension: i64,
    /// Tokens read per text (special tokens included); longer texts are truncated.
    pub max_length: usize,
    /// The pooling modes (several are concatenated).
    pub pooling: Vec<Pooling>,
    /// Dense layers after the pooling.
    pub dense_layers: usize,
    /// Whether the vectors have unit length.
    pub normalized: bool,
    /// Whether texts are lower-cased before tokenizing (the model's `do_lower_case`).
    pub lowercase: bool,
    /// The settings given that replaced the model's, as `name: model's -> given`.
    pub overridden: Vec<String>,
    /// What becomes of texts longer than `max_length`.
    pub long_text: LongText,
}

/// The vectors of some texts.
#[derive(Debug)]
pub struct Embeddings {
    /// `[texts, dimension]` f32 on the CPU, in the order of the texts.
    pub vectors: Tensor,
    /// Texts longer than the embedder's `max_length`: truncated, or read in chunks with [`LongText::Chunk`].
    pub truncated: usize,
    /// Tokens read, over all texts (special tokens included).
    pub tokens: usize,
}

/// A model, its tokenizer and what turns token states into sentence vectors.
#[derive(Debug)]
pub struct Embedder {
    encoder: SentenceEncoder,
    stages: Vec<Stage>,
    info: EmbedderInfo,
}

impl Embedder {
    /// Loads the model directory `dir` onto `device` with its own embedding settings, `overrides` replacing them.
    pub fn from_dir(dir: &Path, device: Device, overrides: &EmbedOverrides) -> Result<Self> {
        let encoder = SentenceEncoder::from_dir(dir, device)?;
        let positions = usize::try_from(encoder.config().max_position_embeddings).unwrap_or(usize::MAX);
        let own = SentenceTransformersConfig::read(dir)?;
        let (source, mut stages, model_length, lowercase) = match own {
            Some(mut config) => {
                config.move_to(device);
                let length = config.max_seq_length.map_or(positions, |l| l.min(positions));
                ("sentence-transformers", config.stages, length, config.do_lower_case)
            }
            None => ("defaults", vec![Stage::Pool(vec![Pooling::Mean])], positions, false),
        };
        let mut overridden = Vec::new();
        let pool_names = |modes: &[Pooling]| modes.iter().map(ToString::to_string).collect::<Vec<_>>().join("+");
        if let Some(pooling) = overrides.pooling {
            for stage in &mut stages {
                if let Stage::Pool(modes) = stage {
                    if modes.as_slice() != [pooling] {
                        overridden.push(format!("pooling: {} -> {pooling}", pool_names(modes)));
                        *modes = vec![pooling];
                    }
                }
            }
        }
        let normalizes = matches!(stages.last(), Some(Stage::Normalize));
        match overrides.normalize {
            Some(true) if !normalizes => {
                stages.push(Stage::Normalize);
                overridden.push("normalize: no -> yes".into());
            }
            Some(false) if normalizes => {
                stages.retain(|stage| !matches!(stage, Stage::Normalize));
                overridden.push("normalize: yes -> no".into());
            }
            _ => {}
        }
        let max_length = match overrides.max_length {
            Some(length) if length != model_length => {
                overridden.push(format!("max_length: {model_length} -> {length}"));
                length
            }
            _ => model_length,
        };
        let encoder = encoder.with_max_length(max_length)?;
        let pooling: Vec<Pooling> = stages
            .iter()
            .find_map(|stage| match stage {
                Stage::Pool(modes) => Some(modes.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let dense_layers = stages.iter().filter(|stage| matches!(stage, Stage::Dense(_))).count();
        let normalized = matches!(stages.last(), Some(Stage::Normalize));
        let mut embedder = Self {
            encoder,
            stages,
            info: EmbedderInfo {
                source,
                dimension: 0,
                max_length,
                pooling,
                dense_layers,
                normalized,
                lowercase,
                overridden,
                long_text: overrides.long_text,
            },
        };
        // The dimension is whatever the stages make of the hidden size: measured once on an empty text.
        embedder.info.dimension = embedder.embed(&[""], 1)?.vectors.size().get(1).copied().unwrap_or(0);
        Ok(embedder)
    }

    /// The same embedder computing in `precision` (`auto` resolved for its device).
    pub fn with_precision(self, precision: Precision) -> Result<(Self, ResolvedPrecision)> {
        let (encoder, resolved) = self.encoder.with_precision(precision)?;
        Ok((Self { encoder, ..self }, resolved))
    }

    /// What it does.
    pub fn info(&self) -> &EmbedderInfo {
        &self.info
    }

    /// The underlying encoder (model and tokenizer).
    pub fn encoder(&self) -> &SentenceEncoder {
        &self.encoder
    }

    /// One vector per text, in the order given, batched `batch_size` texts a forward pass (sorted by length, padding
    /// masked out). An empty text is a text (its `[CLS] [SEP]` gives a vector). Non-finite vectors (broken weights)
    /// are an error naming the first such text.
    pub fn embed(&self, texts: &[&str], batch_size: usize) -> Result<Embeddings> {
        let lowered: Vec<String>;
        let texts: Vec<&str> = if self.info.lowercase {
            lowered = texts.iter().map(|text| text.to_lowercase()).collect();
            lowered.iter().map(String::as_str).collect()
        } else {
            texts.to_vec()
        };
        if self.info.long_text == LongText::Chunk {
            return self.embed_in_chunks(&texts, batch_size);
        }
        let (encodings, rows) = self.encoder.run_batches(&texts, batch_size, |hidden, mask| {
            let vectors = apply_stages(&self.stages, &hidden.to_kind(Kind::Float), mask)?.to_device(Device::Cpu);
            Ok((0..vectors.size()[0]).map(|row| vectors.get(row)).collect())
        })?;
        let vectors = Tensor::f_stack(&rows, 0)?;
        check_finite(&vectors)?;
        Ok(Embeddings {
            vectors,
            truncated: encodings.iter().filter(|e| !e.get_overflowing().is_empty()).count(),
            tokens: encodings.iter().map(|e| e.get_ids().len()).sum(),
        })
    }

    /// [`embed`](Self::embed) reading each text longer than `max_length` in overlapping chunks ([`text_prep::windows`],
    /// each with the text's `[CLS]` and `[SEP]`): every chunk goes through the stages but the final normalization,
    /// the chunks of a text are averaged, then normalized when the model normalizes.
    fn embed_in_chunks(&self, texts: &[&str], batch_size: usize) -> Result<Embeddings> {
        if texts.is_empty() {
            return Err(EncoderError::InvalidInput("no texts to encode".into()));
        }
        let max_length = self.info.max_length;
        let stride = text_prep::default_stride(max_length);
        let mut chunk_ids: Vec<Vec<u32>> = Vec::new();
        let mut owner: Vec<usize> = Vec::new();
        let mut long = 0;
        let mut tokens = 0;
        for (index, text) in texts.iter().enumerate() {
            let encoding = self.encoder.tokenizer().encode_text_whole(text)?;
            let ids = encoding.get_ids();
            tokens += ids.len();
            let windows = text_prep::windows(ids.len(), max_length, stride)
                .map_err(|error| EncoderError::InvalidInput(error.to_string()))?;
            long += usize::from(!windows.is_empty());
            for row in text_prep::rows(ids.len(), &windows) {
                chunk_ids.push(row.positions.iter().map(|&p| ids[p]).collect());
                owner.push(index);
            }
        }
        let normalize = matches!(self.stages.last(), Some(Stage::Normalize));
        let stages = if normalize { &self.stages[..self.stages.len() - 1] } else { &self.stages[..] };
        let refs: Vec<&[u32]> = chunk_ids.iter().map(Vec::as_slice).collect();
        let device = self.encoder.var_store().device();
        let _no_grad = tch::no_grad_guard();
        let chunks = crate::batching::run_sorted_batches(
            &refs,
            self.encoder.tokenizer().pad_id(),
            device,
            batch_size,
            |input_ids, mask| -> Result<Vec<Tensor>> {
                let output = self.encoder.model().forward_t(input_ids, Some(mask), None, false)?;
                let vectors = apply_stages(stages, &output.last_hidden_state.to_kind(Kind::Float), mask)?;
                let vectors = vectors.to_device(Device::Cpu);
                Ok((0..vectors.size()[0]).map(|row| vectors.get(row)).collect())
            },
        )?;
        // `owner` is in text order: each text's chunks are one run of it.
        let mut rows = Vec::with_capacity(texts.len());
        let mut start = 0;
        for index in 0..texts.len() {
            let end = start + owner[start..].iter().take_while(|&&o| o == index).count();
            let mine: Vec<&Tensor> = chunks[start..end].iter().collect();
            rows.push(Tensor::f_stack(&mine, 0)?.mean_dim(0, false, Kind::Float));
            start = end;
        }
        let mut vectors = Tensor::f_stack(&rows, 0)?;
        if normalize {
            vectors = crate::pooling::l2_normalize(&vectors);
        }
        check_finite(&vectors)?;
        Ok(Embeddings { vectors, truncated: long, tokens })
    }
}

/// An error naming the first text whose vector is NaN or infinite (broken weights).
fn check_finite(vectors: &Tensor) -> Result<()> {
    let finite = Vec::<bool>::try_from(vectors.isfinite().all_dim(1, false))?;
    if let Some(first) = finite.iter().position(|ok| !ok) {
        return Err(EncoderError::NonFinite {
            count: finite.iter().filter(|ok| !**ok).count(),
            total: finite.len(),
            first,
        });
    }
    Ok(())
}

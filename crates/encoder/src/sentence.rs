//! `SentenceEncoder`: a pretrained BERT and its tokenizer, turning texts into sentence or token embeddings.

use crate::batching::run_sorted_batches;
use crate::config::BertConfig;
use crate::error::{EncoderError, Result};
use crate::model::BertModel;
use crate::pooling::{l2_normalize, pool, Pooling};
use crate::precision::{Precision, ResolvedPrecision};
use crate::tokenizer::BertTokenizer;
use crate::weights::{copy_encoder_weights, read_checkpoint, LoadReport};
use std::path::{Path, PathBuf};
use tch::{nn, Device, Tensor};
use tokenizers::Encoding;

/// Options of [`SentenceEncoder::encode`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncodeOptions {
    /// How token states become one vector per text.
    pub pooling: Pooling,
    /// Scale each sentence vector to unit length.
    pub normalize: bool,
    /// Texts per forward pass.
    pub batch_size: usize,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self { pooling: Pooling::Mean, normalize: false, batch_size: 32 }
    }
}

/// The per-token output of one text.
#[derive(Debug)]
pub struct TokenEmbeddings {
    /// The WordPiece tokens, `[CLS]` and `[SEP]` included.
    pub tokens: Vec<String>,
    /// Their ids.
    pub ids: Vec<u32>,
    /// `[tokens, hidden]` last hidden states of the real tokens (no padding).
    pub states: Tensor,
}

/// The files of a Hugging Face BERT directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// The directory.
    pub dir: PathBuf,
    /// `config.json`.
    pub config: PathBuf,
    /// `model.safetensors` (preferred) or `pytorch_model.bin`.
    pub weights: PathBuf,
}

impl ModelFiles {
    /// Finds the configuration and weight files of `dir`, or says which is missing.
    pub fn locate(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(EncoderError::MissingFile { dir: dir.to_path_buf(), what: "such directory".into() });
        }
        let config = dir.join("config.json");
        if !config.is_file() {
            return Err(EncoderError::MissingFile { dir: dir.to_path_buf(), what: "config.json".into() });
        }
        let weights = Self::weights_in(dir).ok_or_else(|| EncoderError::MissingFile {
            dir: dir.to_path_buf(),
            what: "model.safetensors or pytorch_model.bin".into(),
        })?;
        Ok(Self { dir: dir.to_path_buf(), config, weights })
    }

    /// The weights file of a Hugging Face model directory: `model.safetensors`, else `pytorch_model.bin`.
    pub(crate) fn weights_in(dir: &Path) -> Option<PathBuf> {
        ["model.safetensors", "pytorch_model.bin"].iter().map(|name| dir.join(name)).find(|path| path.is_file())
    }
}

/// Builds a `BertModel` at the root of `vs` from a Hugging Face directory and copies its weights.
pub fn load_pretrained(vs: &nn::VarStore, dir: &Path) -> Result<(BertModel, LoadReport)> {
    let files = ModelFiles::locate(dir)?;
    let config = BertConfig::from_file(&files.config)?;
    tracing::info!(dir = %dir.display(), "model configuration:\n{config}");
    let model = BertModel::new(vs.root(), &config);
    let report = copy_encoder_weights(vs, "", read_checkpoint(&files.weights)?, &files.weights)?;
    Ok((model, report))
}

/// A pretrained encoder with its tokenizer, for inference.
#[derive(Debug)]
pub struct SentenceEncoder {
    vs: nn::VarStore,
    model: BertModel,
    tokenizer: BertTokenizer,
    load_report: LoadReport,
}

impl SentenceEncoder {
    /// Loads a Hugging Face BERT directory (config, weights, tokenizer) onto `device`.
    pub fn from_dir(dir: &Path, device: Device) -> Result<Self> {
        let vs = nn::VarStore::new(device);
        let (model, load_report) = load_pretrained(&vs, dir)?;
        let max_length = usize::try_from(model.config().max_position_embeddings)
            .map_err(|_| EncoderError::InvalidInput("max_position_embeddings does not fit in usize".into()))?;
        let tokenizer = BertTokenizer::from_dir(dir, max_length)?;
        tokenizer.check_fits(model.config().vocab_size).map_err(|error| match error {
            EncoderError::Tokenizer(message) => EncoderError::Tokenizer(format!("{}: {message}", dir.display())),
            other => other,
        })?;
        Ok(Self { vs, model, tokenizer, load_report })
    }

    /// The same encoder truncating texts at `max_length` tokens (`[CLS]` and `[SEP]` included) instead of the
    /// model's `max_position_embeddings`, e.g. 256 to drop the end of long texts for speed.
    ///
    /// Errors when `max_length` is below 2 or above the model's positions.
    pub fn with_max_length(self, max_length: usize) -> Result<Self> {
        let positions = self.config().max_position_embeddings;
        if i64::try_from(max_length).map_or(true, |length| length > positions) {
            return Err(EncoderError::InvalidInput(format!(
                "max_length {max_length} is longer than the model's {positions} positions"
            )));
        }
        let tokenizer = BertTokenizer::new(self.tokenizer.inner().clone(), max_length)?;
        Ok(Self { tokenizer, ..self })
    }

    /// The same encoder computing in `precision` (`auto` resolved for its device; see [`crate::precision`]).
    /// Returns the resolved choice with the reason for it.
    pub fn with_precision(mut self, precision: Precision) -> Result<(Self, ResolvedPrecision)> {
        let resolved = precision.resolve(self.vs.device());
        self.model.set_precision(resolved.precision)?;
        // A sentence encoder only infers.
        self.model.cast_weights_for_inference();
        tracing::info!(precision = %resolved.precision, reason = %resolved.reason, "encoder precision");
        Ok((self, resolved))
    }

    /// The encoder.
    pub fn model(&self) -> &BertModel {
        &self.model
    }

    /// The configuration.
    pub fn config(&self) -> &BertConfig {
        self.model.config()
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &BertTokenizer {
        &self.tokenizer
    }

    /// The variables (Hugging Face names).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// What loading the weights did.
    pub fn load_report(&self) -> &LoadReport {
        &self.load_report
    }

    /// One vector per text, `[texts, hidden]` on the CPU, in the order given.
    ///
    /// Texts are sorted by length and batched with padding to the longest text of each batch, so the result does
    /// not depend on how texts are grouped (padding is masked out); texts longer than the model's positions are
    /// truncated.
    pub fn encode(&self, texts: &[&str], options: &EncodeOptions) -> Result<Tensor> {
        let (_, rows) = self.run_batches(texts, options.batch_size, |states, mask| {
            let vectors = pool(states, mask, options.pooling);
            let vectors = if options.normalize { l2_normalize(&vectors) } else { vectors };
            let vectors = vectors.to_device(Device::Cpu);
            Ok((0..vectors.size()[0]).map(|row| vectors.get(row)).collect())
        })?;
        Ok(Tensor::stack(&rows, 0))
    }

    /// The last hidden state of every real token of every text, in the order given.
    pub fn encode_tokens(&self, texts: &[&str], batch_size: usize) -> Result<Vec<TokenEmbeddings>> {
        let (encodings, rows) = self.run_batches(texts, batch_size, |hidden, _mask| {
            let hidden = hidden.to_device(Device::Cpu);
            Ok((0..hidden.size()[0]).map(|row| hidden.get(row)).collect())
        })?;
        Ok(encodings
            .into_iter()
            .zip(rows)
            .map(|(encoding, padded)| TokenEmbeddings {
                tokens: encoding.get_tokens().to_vec(),
                ids: encoding.get_ids().to_vec(),
                states: padded.narrow(0, 0, encoding.get_ids().len() as i64),
            })
            .collect())
    }

    /// Tokenizes `texts` and runs the encoder on them in batches sorted by length
    /// ([`run_sorted_batches`]), calling `rows(last_hidden_state, mask)` per batch for one output per row.
    /// Returns the encodings and the outputs, both in the order of `texts`.
    pub(crate) fn run_batches<T>(
        &self,
        texts: &[&str],
        batch_size: usize,
        mut rows: impl FnMut(&Tensor, &Tensor) -> Result<Vec<T>>,
    ) -> Result<(Vec<Encoding>, Vec<T>)> {
        if texts.is_empty() {
            return Err(EncoderError::InvalidInput("no texts to encode".into()));
        }
        if batch_size == 0 {
            return Err(EncoderError::InvalidInput("batch_size must be at least 1".into()));
        }
        let encodings = self.tokenizer.encode_texts(texts)?;
        let truncated = encodings.iter().filter(|e| !e.get_overflowing().is_empty()).count();
        if truncated > 0 {
            tracing::warn!(
                truncated,
                max_length = self.tokenizer.max_length(),
                "texts truncated to the model's length"
            );
        }
        let ids: Vec<&[u32]> = encodings.iter().map(Encoding::get_ids).collect();
        let _no_grad = tch::no_grad_guard();
        let outputs =
            run_sorted_batches(&ids, self.tokenizer.pad_id(), self.vs.device(), batch_size, |input_ids, mask| {
                let output = self.model.forward_t(input_ids, Some(mask), None, false)?;
                rows(&output.last_hidden_state, mask)
            })?;
        Ok((encodings, outputs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::wordpiece_from_vocab;

    /// A random 2-layer encoder with 12 positions and a 9-word vocabulary.
    fn tiny_encoder() -> SentenceEncoder {
        tch::manual_seed(0);
        let dir = tempfile::tempdir().expect("temporary directory");
        let vocab = dir.path().join("vocab.txt");
        std::fs::write(&vocab, "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\ncat\nsat\non\nmat\n").expect("vocab written");
        let inner = wordpiece_from_vocab(&vocab, true).expect("vocab reads");
        let config = BertConfig {
            vocab_size: 9,
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 32,
            max_position_embeddings: 12,
            ..BertConfig::default()
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let model = BertModel::new(vs.root(), &config);
        let tokenizer = BertTokenizer::new(inner, 12).expect("tokenizer");
        let load_report = LoadReport { file: PathBuf::new(), copied: 0, parameters: 0, skipped: Vec::new() };
        SentenceEncoder { vs, model, tokenizer, load_report }
    }

    #[test]
    fn with_max_length_truncates_texts_and_checks_the_bound() {
        let text = "the cat sat on the mat the cat sat on the mat";
        let full = tiny_encoder();
        assert_eq!(full.tokenizer().encode_texts(&[text]).expect("tokenizes")[0].get_ids().len(), 12);

        let short = tiny_encoder().with_max_length(5).expect("5 fits in 12 positions");
        assert_eq!(short.tokenizer().max_length(), 5);
        let ids = short.tokenizer().encode_texts(&[text]).expect("tokenizes")[0].get_ids().to_vec();
        assert_eq!(ids, [2, 4, 5, 6, 3], "[CLS] the cat sat [SEP]");
        // Truncating the text by hand gives the same vectors.
        let options = EncodeOptions::default();
        let truncated = short.encode(&[text], &options).expect("encodes");
        let by_hand = short.encode(&["the cat sat"], &options).expect("encodes");
        assert!(truncated.allclose(&by_hand, 1e-6, 1e-6, false));

        assert!(matches!(tiny_encoder().with_max_length(13), Err(EncoderError::InvalidInput(_))));
        assert!(tiny_encoder().with_max_length(1).is_err());
        assert!(tiny_encoder().with_max_length(12).is_ok());
    }
}

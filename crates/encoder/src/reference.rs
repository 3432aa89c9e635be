//! Parity with the reference implementation: outputs of Hugging Face `transformers` saved as safetensors
//! (see `tests/fixtures/make_parity_fixture.py`), and the comparison of our encoder against them.

use crate::batching::pad_batch;
use crate::error::{EncoderError, Result};
use crate::pooling::Pooling;
use crate::sentence::{EncodeOptions, SentenceEncoder};
use serde::Serialize;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Reference outputs for a list of texts, run as one padded batch.
#[derive(Debug)]
pub struct ReferenceOutputs {
    /// The texts.
    pub texts: Vec<String>,
    /// The directory name of the model that produced them.
    pub model: String,
    /// Token ids of all texts, concatenated (no padding).
    pub input_ids: Vec<i64>,
    /// Tokens per text.
    pub lengths: Vec<i64>,
    /// `[all real tokens, hidden]` last hidden states.
    pub token_states: Tensor,
    /// `[texts, hidden]` `[CLS]` states.
    pub cls: Tensor,
    /// `[texts, hidden]` masked means.
    pub mean: Tensor,
}

/// The committed reference outputs of the default model (all-MiniLM-L6-v2 on the parity texts), made by
/// `tests/fixtures/make_parity_fixture.py`; read them with [`ReferenceOutputs::default_model`].
const DEFAULT_MODEL_OUTPUTS: &[u8] = include_bytes!("../tests/fixtures/parity.safetensors");

impl ReferenceOutputs {
    /// Reads a fixture written by `make_parity_fixture.py` (texts and model name are in its metadata).
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| EncoderError::Io { path: path.to_path_buf(), source })?;
        Self::from_bytes(&bytes, path)
    }

    /// The reference outputs of the default model, built into the crate. Their [`model`](Self::model) names the
    /// model directory they came from, so a caller can check it is comparing the same model.
    pub fn default_model() -> Result<Self> {
        Self::from_bytes(DEFAULT_MODEL_OUTPUTS, Path::new("(built-in reference outputs of the default model)"))
    }

    /// Parses a fixture's bytes; `origin` names them in errors.
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Self> {
        let invalid = |message: String| EncoderError::Config { path: origin.to_path_buf(), message };
        let file = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| invalid(format!("not a safetensors file ({e})")))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| invalid(format!("not a safetensors file ({e})")))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let texts: Vec<String> = metadata
            .get("texts")
            .and_then(|t| serde_json::from_str(t).ok())
            .ok_or_else(|| invalid("no `texts` list in the metadata".into()))?;
        let model = metadata.get("model").cloned().unwrap_or_default();

        let take = |name: &str, expected: safetensors::Dtype, kind: Kind| -> Result<Tensor> {
            let view = file.tensor(name).map_err(|_| invalid(format!("no tensor `{name}`")))?;
            if view.dtype() != expected {
                return Err(invalid(format!("tensor `{name}` is {:?}, not {expected:?}", view.dtype())));
            }
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            Ok(Tensor::f_from_data_size(view.data(), &shape, kind)?)
        };
        let (int64, float) = ((safetensors::Dtype::I64, Kind::Int64), (safetensors::Dtype::F32, Kind::Float));
        let input_ids = Vec::<i64>::try_from(take("input_ids", int64.0, int64.1)?)?;
        let lengths = Vec::<i64>::try_from(take("lengths", int64.0, int64.1)?)?;
        let token_states = take("token_states", float.0, float.1)?;
        let cls = take("cls", float.0, float.1)?;
        let mean = take("mean", float.0, float.1)?;
        if lengths.len() != texts.len() || lengths.iter().sum::<i64>() != input_ids.len() as i64 {
            return Err(invalid("lengths do not match the texts and token ids".into()));
        }
        Ok(Self { texts, model, input_ids, lengths, token_states, cls, mean })
    }
}

/// How far our encoder is from the reference.
#[derive(Debug, Clone, Serialize)]
pub struct ParityReport {
    /// Number of texts compared.
    pub texts: usize,
    /// Number of real tokens compared.
    pub tokens: usize,
    /// Whether our tokenizer gave the reference's token ids.
    pub token_ids_match: bool,
    /// Max |ours - reference| over every real token state, for the same padded batch.
    pub token_states_max_abs_diff: f64,
    /// Max |ours - reference| of `[CLS]` vectors from [`SentenceEncoder::encode`] (length-sorted batches).
    pub cls_max_abs_diff: f64,
    /// Max |ours - reference| of masked-mean vectors from [`SentenceEncoder::encode`].
    pub mean_max_abs_diff: f64,
}

impl ParityReport {
    /// The largest of the three differences.
    pub fn max_abs_diff(&self) -> f64 {
        self.token_states_max_abs_diff.max(self.cls_max_abs_diff).max(self.mean_max_abs_diff)
    }
}

/// Runs the reference's texts through `encoder` (once as the reference's padded batch, once through `encode`
/// in batches of 3 sorted by length) and measures the differences.
pub fn compare(encoder: &SentenceEncoder, reference: &ReferenceOutputs) -> Result<ParityReport> {
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let encodings = encoder.tokenizer().encode_texts(&texts)?;
    let ids: Vec<i64> = encodings.iter().flat_map(|e| e.get_ids().iter().map(|&id| i64::from(id))).collect();
    let token_ids_match = ids == reference.input_ids;

    let sequences: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
    let device = encoder.var_store().device();
    let (input_ids, mask) = pad_batch(&sequences, encoder.tokenizer().pad_id(), device);
    let hidden = tch::no_grad(|| encoder.model().forward_t(&input_ids, Some(&mask), None, false))?
        .last_hidden_state
        .to_device(Device::Cpu);
    let real: Vec<Tensor> =
        sequences.iter().enumerate().map(|(i, s)| hidden.get(i as i64).narrow(0, 0, s.len() as i64)).collect();
    let token_states_max_abs_diff =
        if token_ids_match { max_abs_diff(&Tensor::cat(&real, 0), &reference.token_states)? } else { f64::INFINITY };

    let pooled = |pooling| encoder.encode(&texts, &EncodeOptions { pooling, normalize: false, batch_size: 3 });
    let cls_max_abs_diff = max_abs_diff(&pooled(Pooling::Cls)?, &reference.cls)?;
    let mean_max_abs_diff = max_abs_diff(&pooled(Pooling::Mean)?, &reference.mean)?;
    Ok(ParityReport {
        texts: texts.len(),
        tokens: ids.len(),
        token_ids_match,
        token_states_max_abs_diff,
        cls_max_abs_diff,
        mean_max_abs_diff,
    })
}

fn max_abs_diff(ours: &Tensor, reference: &Tensor) -> Result<f64> {
    if ours.size() != reference.size() {
        return Err(EncoderError::InvalidInput(format!(
            "shape {:?} does not match the reference's {:?}",
            ours.size(),
            reference.size()
        )));
    }
    Ok((ours - reference).abs().max().double_value(&[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_safetensors_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("temporary directory");
        for (name, bytes) in
            [("empty", &b""[..]), ("short", &b"\x10\0"[..]), ("garbage", &b"\xff\xff\xff\xff\xff\xff\xff\x7fjunk"[..])]
        {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("written");
            let error = ReferenceOutputs::read(&path).expect_err("not a safetensors file").to_string();
            assert!(error.contains(name) && error.contains("not a safetensors file"), "{error}");
        }
    }

    #[test]
    fn a_safetensors_file_without_the_texts_metadata_is_refused() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("bare.safetensors");
        Tensor::write_safetensors(&[("cls", Tensor::zeros([1, 2], (tch::Kind::Float, Device::Cpu)))], &path)
            .expect("written");
        let error = ReferenceOutputs::read(&path).expect_err("no texts").to_string();
        assert!(error.contains("no `texts` list"), "{error}");
    }

    #[test]
    fn the_built_in_outputs_are_the_committed_fixture() {
        let built_in = ReferenceOutputs::default_model().expect("built-in outputs parse");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity.safetensors");
        let file = ReferenceOutputs::read(&path).expect("fixture parses");
        assert_eq!(built_in.model, "all-MiniLM-L6-v2");
        assert_eq!(
            (&built_in.texts, &built_in.input_ids, &built_in.lengths),
            (&file.texts, &file.input_ids, &file.lengths)
        );
        assert_eq!(built_in.token_states.size(), [built_in.input_ids.len() as i64, 384]);
        assert!(built_in.mean.equal(&file.mean) && built_in.cls.equal(&file.cls));
    }
}

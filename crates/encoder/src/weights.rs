//! The weight copier: reads a Hugging Face checkpoint and copies every encoder tensor into the model's variables.
//!
//! Checkpoint keys are accepted with or without a `bert.` prefix (as `BertModel` and `BertFor*` save them), and
//! old TensorFlow-era LayerNorm names (`gamma`, `beta`) are read as `weight` and `bias`. Every encoder variable must be
//! found with the right shape; an encoder tensor the model does not know is an error too. The pooler, the
//! `position_ids` buffer and task heads of the checkpoint (`cls.*`, `classifier.*`) are skipped and reported.

use crate::error::{EncoderError, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tch::{nn, Tensor};

/// What a weight copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// The weight file.
    pub file: PathBuf,
    /// Number of encoder tensors copied.
    pub copied: usize,
    /// Number of values copied.
    pub parameters: i64,
    /// Checkpoint tensors that are not part of the encoder (pooler, buffers, task heads), as named in the file.
    pub skipped: Vec<String>,
}

/// Reads all tensors of a `.safetensors` file or a PyTorch `.bin` (zip) checkpoint.
pub fn read_checkpoint(file: &Path) -> Result<Vec<(String, Tensor)>> {
    if !file.is_file() {
        return Err(EncoderError::Io {
            path: file.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let is_safetensors = file.extension().is_some_and(|ext| ext == "safetensors");
    let tensors = if is_safetensors { Tensor::read_safetensors(file) } else { Tensor::loadz_multi(file) };
    tensors.map_err(|error| EncoderError::Config {
        path: file.to_path_buf(),
        message: format!("cannot read the checkpoint: {error}"),
    })
}

/// The checkpoint key of a tensor as our variables name it: without `bert.`, with `weight`/`bias` for LayerNorms.
fn canonical_name(name: &str) -> String {
    let name = name.strip_prefix("bert.").unwrap_or(name);
    if let Some(stem) = name.strip_suffix("LayerNorm.gamma") {
        format!("{stem}LayerNorm.weight")
    } else if let Some(stem) = name.strip_suffix("LayerNorm.beta") {
        format!("{stem}LayerNorm.bias")
    } else {
        name.to_string()
    }
}

/// Whether a canonical name belongs to the encoder (what must match a variable one to one).
fn is_encoder_tensor(name: &str) -> bool {
    (name.starts_with("embeddings.") || name.starts_with("encoder.")) && name != "embeddings.position_ids"
}

/// Copies the checkpoint's encoder tensors into the variables of `vs` whose names start with `prefix`
/// (`""` for a model built at the root, `"bert."` for one built under `root / "bert"`). Values are converted to
/// each variable's dtype and device. Variables outside `prefix` + `embeddings.`/`encoder.` (e.g. task heads) are
/// left alone.
pub fn copy_encoder_weights(
    vs: &nn::VarStore,
    prefix: &str,
    tensors: Vec<(String, Tensor)>,
    file: &Path,
) -> Result<LoadReport> {
    let mut by_name: HashMap<String, Tensor> = HashMap::with_capacity(tensors.len());
    let mut skipped = Vec::new();
    for (name, tensor) in tensors {
        let canonical = canonical_name(&name);
        if is_encoder_tensor(&canonical) {
            by_name.insert(canonical, tensor);
        } else {
            skipped.push(name);
        }
    }
    let variables: BTreeMap<String, Tensor> = vs
        .variables()
        .into_iter()
        .filter_map(|(name, tensor)| name.strip_prefix(prefix).map(|rest| (rest.to_string(), tensor)))
        .filter(|(name, _)| is_encoder_tensor(name))
        .collect();

    let (copied, parameters) = copy_exactly(variables, by_name, file)?;
    skipped.sort();
    tracing::info!(
        file = %file.display(),
        copied,
        parameters,
        skipped = skipped.len(),
        "copied the encoder weights"
    );
    Ok(LoadReport { file: file.to_path_buf(), copied, parameters, skipped })
}

/// Copies `tensors` (by name) into `variables`, converted to each variable's dtype and device: every variable must
/// find its tensor with its shape, and every tensor its variable. The one strict copy of weights from a file (`file`
/// names it in errors), for pretrained encoders and for checkpoints. Returns the tensors and values copied.
pub fn copy_exactly(
    variables: impl IntoIterator<Item = (String, Tensor)>,
    mut tensors: HashMap<String, Tensor>,
    file: &Path,
) -> Result<(usize, i64)> {
    let mut copied = 0;
    let mut parameters = 0;
    for (name, variable) in variables {
        let expected = variable.size();
        let source = tensors.remove(&name).ok_or_else(|| EncoderError::MissingTensor {
            file: file.to_path_buf(),
            name: name.clone(),
            expected: expected.clone(),
        })?;
        if source.size() != expected {
            return Err(EncoderError::ShapeMismatch { file: file.to_path_buf(), name, expected, found: source.size() });
        }
        let source = source.f_to_kind(variable.kind())?.f_to_device(variable.device())?;
        let mut variable = variable.shallow_clone();
        tch::no_grad(|| variable.f_copy_(&source))?;
        copied += 1;
        parameters += variable.numel() as i64;
    }
    if !tensors.is_empty() {
        let mut names: Vec<String> = tensors.into_keys().collect();
        names.sort();
        return Err(EncoderError::UnexpectedTensors { file: file.to_path_buf(), names });
    }
    Ok((copied, parameters))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_canonicalised() {
        assert_eq!(canonical_name("bert.embeddings.LayerNorm.gamma"), "embeddings.LayerNorm.weight");
        assert_eq!(canonical_name("encoder.layer.3.output.LayerNorm.beta"), "encoder.layer.3.output.LayerNorm.bias");
        assert_eq!(canonical_name("bert.pooler.dense.weight"), "pooler.dense.weight");
        assert!(!is_encoder_tensor("embeddings.position_ids"));
        assert!(!is_encoder_tensor("pooler.dense.weight"));
        assert!(is_encoder_tensor("encoder.layer.0.attention.self.query.weight"));
    }
}

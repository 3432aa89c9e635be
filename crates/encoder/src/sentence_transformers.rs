//! A model directory's own sentence-transformers configuration: what turns its token states into the vectors
//! sentence-transformers, TEI and vector databases built with them hold.
//!
//! `modules.json` lists the modules in order: the `Transformer` (its `sentence_bert_config.json` gives
//! `max_seq_length` and `do_lower_case`), a `Pooling` module (`config.json` with its `pooling_mode_*` flags; several
//! modes are concatenated, as sentence-transformers does), optional `Dense` layers (`config.json` with
//! `in_features`, `out_features`, `bias`, `activation_function`, and their `linear.weight` / `linear.bias` in
//! `model.safetensors` or `pytorch_model.bin`), and an optional `Normalize`. Any other module type is an error naming
//! it: its vectors could not be reproduced.

use crate::error::{EncoderError, Result};
use crate::pooling::{l2_normalize, pool, Pooling};
use crate::weights::read_checkpoint;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// The modules file of a sentence-transformers model.
pub const MODULES_FILE: &str = "modules.json";

/// What sentence-transformers does after the transformer, in order.
#[derive(Debug)]
pub enum Stage {
    /// Pooling: one mode, or several concatenated (in sentence-transformers' order).
    Pool(Vec<Pooling>),
    /// A dense layer with its activation.
    Dense(Dense),
    /// Scaling every vector to unit length.
    Normalize,
}

/// A sentence-transformers `Dense` module: `activation(x W^T + b)`.
#[derive(Debug)]
pub struct Dense {
    weight: Tensor,
    bias: Option<Tensor>,
    activation: Activation,
    /// The module's directory.
    pub dir: PathBuf,
}

/// The activations a `Dense` module can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `torch.nn.Identity`.
    Identity,
    /// `torch.nn.Tanh` (sentence-transformers' default).
    Tanh,
    /// `torch.nn.ReLU`.
    Relu,
    /// `torch.nn.GELU`.
    Gelu,
    /// `torch.nn.Sigmoid`.
    Sigmoid,
}

impl Activation {
    fn from_torch_name(name: &str) -> Option<Self> {
        match name.rsplit('.').next()? {
            "Identity" => Some(Self::Identity),
            "Tanh" => Some(Self::Tanh),
            "ReLU" => Some(Self::Relu),
            "GELU" => Some(Self::Gelu),
            "Sigmoid" => Some(Self::Sigmoid),
            _ => None,
        }
    }

    fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Self::Identity => x.shallow_clone(),
            Self::Tanh => x.tanh(),
            Self::Relu => x.relu(),
            Self::Gelu => x.gelu("none"),
            Self::Sigmoid => x.sigmoid(),
        }
    }
}

impl Dense {
    /// `activation(vectors W^T + b)`, in f32.
    fn forward(&self, vectors: &Tensor) -> Result<Tensor> {
        let inputs = self.weight.size().get(1).copied().unwrap_or(0);
        if vectors.size().last() != Some(&inputs) {
            return Err(EncoderError::Config {
                path: self.dir.clone(),
                message: format!(
                    "the Dense layer takes {inputs} values, the vectors before it have {:?}",
                    vectors.size().last()
                ),
            });
        }
        let output = vectors.to_kind(Kind::Float).f_linear(&self.weight, self.bias.as_ref())?;
        Ok(self.activation.apply(&output))
    }

    /// Moves the layer to `device`.
    fn move_to(&mut self, device: Device) {
        self.weight = self.weight.to_device(device);
        self.bias = self.bias.as_ref().map(|b| b.to_device(device));
    }
}

/// The sentence-transformers configuration of a model directory.
#[derive(Debug)]
pub struct SentenceTransformersConfig {
    /// `max_seq_length`: texts are truncated at this many tokens (special tokens included).
    pub max_seq_length: Option<usize>,
    /// `do_lower_case`: texts are lower-cased before the tokenizer sees them.
    pub do_lower_case: bool,
    /// What follows the transformer, in order.
    pub stages: Vec<Stage>,
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct TransformerConfig {
    #[serde(default)]
    max_seq_length: Option<usize>,
    #[serde(default)]
    do_lower_case: bool,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

#[derive(Deserialize)]
struct DenseConfig {
    in_features: i64,
    out_features: i64,
    #[serde(default = "default_bias")]
    bias: bool,
    #[serde(default = "default_activation")]
    activation_function: String,
}

fn default_bias() -> bool {
    true
}

fn default_activation() -> String {
    "torch.nn.modules.activation.Tanh".into()
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| EncoderError::Io { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text)
        .map_err(|error| EncoderError::Config { path: path.to_path_buf(), message: error.to_string() })
}

impl SentenceTransformersConfig {
    /// Reads the configuration of `dir`: `None` when it has no `modules.json` (a plain Hugging Face directory).
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let modules_path = dir.join(MODULES_FILE);
        if !modules_path.is_file() {
            return Ok(None);
        }
        let modules: Vec<ModuleEntry> = read_json(&modules_path)?;
        let invalid = |message: String| EncoderError::Config { path: modules_path.clone(), message };
        let mut config = Self { max_seq_length: None, do_lower_case: false, stages: Vec::new() };
        for (index, module) in modules.iter().enumerate() {
            let module_dir = dir.join(&module.path);
            let kind = module.kind.rsplit('.').next().unwrap_or(&module.kind);
            match kind {
                "Transformer" => {
                    if index != 0 {
                        return Err(invalid(format!("module {index}: the Transformer must come first")));
                    }
                    let file = module_dir.join("sentence_bert_config.json");
                    if file.is_file() {
                        let transformer: TransformerConfig = read_json(&file)?;
                        config.max_seq_length = transformer.max_seq_length;
                        config.do_lower_case = transformer.do_lower_case;
                    }
                }
                "Pooling" => {
                    let file = module_dir.join("config.json");
                    let pooling: PoolingConfig = read_json(&file)?;
                    // sentence-transformers concatenates the modes in this order.
                    let modes: Vec<Pooling> = [
                        (pooling.pooling_mode_cls_token, Pooling::Cls),
                        (pooling.pooling_mode_max_tokens, Pooling::Max),
                        (pooling.pooling_mode_mean_tokens, Pooling::Mean),
                        (pooling.pooling_mode_mean_sqrt_len_tokens, Pooling::MeanSqrtLen),
                        (pooling.pooling_mode_weightedmean_tokens, Pooling::WeightedMean),
                        (pooling.pooling_mode_lasttoken, Pooling::LastToken),
                    ]
                    .into_iter()
                    .filter_map(|(on, mode)| on.then_some(mode))
                    .collect();
                    if modes.is_empty() {
                        return Err(EncoderError::Config {
                            path: file,
                            message: "no pooling_mode_* is true: the module pools nothing".into(),
                        });
                    }
                    config.stages.push(Stage::Pool(modes));
                }
                "Dense" => config.stages.push(Stage::Dense(read_dense(&module_dir)?)),
                "Normalize" => config.stages.push(Stage::Normalize),
                other => {
                    return Err(invalid(format!(
                        "module {index} is a sentence-transformers `{other}` ({}): only Transformer, Pooling, Dense \
                         and Normalize modules are supported, so the model's vectors cannot be reproduced",
                        module.kind
                    )))
                }
            }
        }
        if !config.stages.iter().any(|stage| matches!(stage, Stage::Pool(_))) {
            return Err(invalid("no Pooling module: the model gives no sentence vectors".into()));
        }
        Ok(Some(config))
    }

    /// The pooling modes of the first Pooling module.
    pub fn poolings(&self) -> &[Pooling] {
        self.stages
            .iter()
            .find_map(|stage| match stage {
                Stage::Pool(modes) => Some(modes.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }

    /// Whether the vectors end normalized.
    pub fn normalizes(&self) -> bool {
        matches!(self.stages.last(), Some(Stage::Normalize))
    }

    /// Moves the Dense layers to `device`.
    pub fn move_to(&mut self, device: Device) {
        for stage in &mut self.stages {
            if let Stage::Dense(dense) = stage {
                dense.move_to(device);
            }
        }
    }
}

/// Runs `stages` on the last hidden states `[batch, seq, hidden]` with `mask`: one vector per row.
pub fn apply_stages(stages: &[Stage], hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mut vectors: Option<Tensor> = None;
    for stage in stages {
        vectors = Some(match (stage, vectors.take()) {
            (Stage::Pool(modes), _) => {
                let pooled: Vec<Tensor> = modes.iter().map(|&mode| pool(hidden, mask, mode)).collect();
                Tensor::f_cat(&pooled, -1)?
            }
            (Stage::Dense(dense), Some(vectors)) => dense.forward(&vectors)?,
            (Stage::Normalize, Some(vectors)) => l2_normalize(&vectors),
            (_, None) => {
                return Err(EncoderError::InvalidInput("a Dense or Normalize module comes before any pooling".into()))
            }
        });
    }
    vectors.ok_or_else(|| EncoderError::InvalidInput("no pooling stage".into()))
}

fn read_dense(dir: &Path) -> Result<Dense> {
    let config_path = dir.join("config.json");
    let config: DenseConfig = read_json(&config_path)?;
    let activation = Activation::from_torch_name(&config.activation_function).ok_or_else(|| EncoderError::Config {
        path: config_path.clone(),
        message: format!(
            "activation `{}` is not supported (Identity, Tanh, ReLU, GELU or Sigmoid)",
            config.activation_function
        ),
    })?;
    let weights = crate::ModelFiles::weights_in(dir).ok_or_else(|| EncoderError::MissingFile {
        dir: dir.to_path_buf(),
        what: "model.safetensors or pytorch_model.bin (the Dense layer's weights)".into(),
    })?;
    let tensors = read_checkpoint(&weights)?;
    let find = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t.to_kind(Kind::Float));
    let weight = find("linear.weight").ok_or_else(|| EncoderError::MissingTensor {
        file: weights.clone(),
        name: "linear.weight".into(),
        expected: vec![config.out_features, config.in_features],
    })?;
    if weight.size() != [config.out_features, config.in_features] {
        return Err(EncoderError::ShapeMismatch {
            file: weights,
            name: "linear.weight".into(),
            expected: vec![config.out_features, config.in_features],
            found: weight.size(),
        });
    }
    let bias = if config.bias {
        let bias = find("linear.bias").ok_or_else(|| EncoderError::MissingTensor {
            file: weights.clone(),
            name: "linear.bias".into(),
            expected: vec![config.out_features],
        })?;
        if bias.size() != [config.out_features] {
            return Err(EncoderError::ShapeMismatch {
                file: weights,
                name: "linear.bias".into(),
                expected: vec![config.out_features],
                found: bias.size(),
            });
        }
        Some(bias)
    } else {
        None
    };
    Ok(Dense { weight, bias, activation, dir: dir.to_path_buf() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, text).expect("write");
    }

    const MODULES: &str = r#"[
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
        {"idx": 3, "name": "3", "path": "3_Normalize", "type": "sentence_transformers.models.Normalize"}
    ]"#;

    #[test]
    fn a_directory_without_modules_has_no_configuration_and_one_with_them_is_read_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(SentenceTransformersConfig::read(dir.path()).expect("reads").is_none());
        write(dir.path(), "modules.json", MODULES);
        write(dir.path(), "sentence_bert_config.json", r#"{"max_seq_length": 128, "do_lower_case": true}"#);
        write(
            dir.path(),
            "1_Pooling/config.json",
            r#"{"word_embedding_dimension": 4, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true}"#,
        );
        write(
            dir.path(),
            "2_Dense/config.json",
            r#"{"in_features": 8, "out_features": 3, "bias": true, "activation_function": "torch.nn.modules.activation.Tanh"}"#,
        );
        let weight = Tensor::ones([3, 8], (Kind::Float, Device::Cpu)) * 0.1;
        let bias = Tensor::from_slice(&[0.0f32, 1.0, -1.0]);
        Tensor::write_safetensors(
            &[("linear.weight", weight), ("linear.bias", bias)],
            dir.path().join("2_Dense/model.safetensors"),
        )
        .expect("weights");
        let config = SentenceTransformersConfig::read(dir.path()).expect("reads").expect("configured");
        assert_eq!((config.max_seq_length, config.do_lower_case), (Some(128), true));
        assert_eq!(config.poolings(), [Pooling::Cls, Pooling::Mean]);
        assert!(config.normalizes());
        // cls and mean of [1,1,1,1] and [3,3,3,3] concatenated (8 values), through tanh(0.1 * sum + b), normalized.
        let hidden = Tensor::from_slice(&[1.0f32, 1.0, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0]).view([1, 2, 4]);
        let mask = Tensor::from_slice(&[1i64, 1]).view([1, 2]);
        let vector = apply_stages(&config.stages, &hidden, &mask).expect("runs");
        let pre: Vec<f64> = [0.0, 1.0, -1.0].iter().map(|b| (0.1f64 * (4.0 + 8.0) + b).tanh()).collect();
        let norm = pre.iter().map(|v| v * v).sum::<f64>().sqrt();
        for (i, value) in pre.iter().enumerate() {
            assert!((vector.double_value(&[0, i as i64]) - value / norm).abs() < 1e-6);
        }
    }

    #[test]
    fn unsupported_modules_and_activations_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "modules.json",
            r#"[{"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "path": "1_CNN", "type": "sentence_transformers.models.CNN"}]"#,
        );
        let error = SentenceTransformersConfig::read(dir.path()).unwrap_err().to_string();
        assert!(error.contains("`CNN`") && error.contains("modules.json"), "{error}");
        write(dir.path(), "modules.json", MODULES);
        write(dir.path(), "1_Pooling/config.json", r#"{"pooling_mode_mean_tokens": true}"#);
        write(
            dir.path(),
            "2_Dense/config.json",
            r#"{"in_features": 4, "out_features": 2, "activation_function": "torch.nn.modules.activation.Softsign"}"#,
        );
        let error = SentenceTransformersConfig::read(dir.path()).unwrap_err().to_string();
        assert!(error.contains("Softsign") && error.contains("2_Dense"), "{error}");
    }
}

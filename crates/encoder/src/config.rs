//! The model configuration, read from a Hugging Face `config.json`.

use crate::error::{EncoderError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The feed-forward activation (`hidden_act` in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenAct {
    /// Exact GELU, `x * Φ(x)` (Hugging Face `gelu`).
    Gelu,
    /// The tanh approximation of GELU (Hugging Face `gelu_new`, also spelled `gelu_pytorch_tanh`).
    #[serde(alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluNew,
    /// ReLU.
    Relu,
}

/// A BERT configuration, read from a Hugging Face `config.json`.
///
/// The sizes a model cannot be built without (`vocab_size`, `hidden_size`, `num_hidden_layers`,
/// `num_attention_heads`, `intermediate_size`, `max_position_embeddings`) are required: a file without one is an
/// error naming it. The others take `bert-base-uncased`'s values when missing, as `transformers` does. Unknown
/// fields are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// Size of the WordPiece vocabulary.
    pub vocab_size: i64,
    /// Width of every hidden state.
    pub hidden_size: i64,
    /// Number of transformer layers.
    pub num_hidden_layers: i64,
    /// Number of attention heads per layer.
    pub num_attention_heads: i64,
    /// Width of the feed-forward layer.
    pub intermediate_size: i64,
    /// Feed-forward activation.
    #[serde(default = "defaults::hidden_act")]
    pub hidden_act: HiddenAct,
    /// Dropout after embeddings, attention output and feed-forward output.
    #[serde(default = "defaults::dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on the attention probabilities.
    #[serde(default = "defaults::dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Number of learned positions: the longest input the model takes.
    pub max_position_embeddings: i64,
    /// Number of token types (segments).
    #[serde(default = "defaults::type_vocab_size")]
    pub type_vocab_size: i64,
    /// Standard deviation of the weight initialisation.
    #[serde(default = "defaults::initializer_range")]
    pub initializer_range: f64,
    /// Epsilon of every LayerNorm.
    #[serde(default = "defaults::layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Id of the padding token.
    #[serde(default)]
    pub pad_token_id: i64,
}

/// `bert-base-uncased`'s values of the optional fields.
mod defaults {
    use super::HiddenAct;

    pub fn hidden_act() -> HiddenAct {
        HiddenAct::Gelu
    }
    pub fn dropout() -> f64 {
        0.1
    }
    pub fn type_vocab_size() -> i64 {
        2
    }
    pub fn initializer_range() -> f64 {
        0.02
    }
    pub fn layer_norm_eps() -> f64 {
        1e-12
    }
}

/// The most transformer layers a configuration may ask for (the largest BERTs have 48).
pub const MAX_LAYERS: i64 = 1000;

/// The most values (weights) a configuration may ask for: 20 billion, 80 GB in f32. A larger one is a damaged or
/// mistyped file, and allocating it would abort the process instead of failing.
pub const MAX_PARAMETERS: f64 = 2e10;

impl Default for BertConfig {
    /// The `bert-base-uncased` configuration.
    fn default() -> Self {
        Self {
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: defaults::hidden_act(),
            hidden_dropout_prob: defaults::dropout(),
            attention_probs_dropout_prob: defaults::dropout(),
            max_position_embeddings: 512,
            type_vocab_size: defaults::type_vocab_size(),
            initializer_range: defaults::initializer_range(),
            layer_norm_eps: defaults::layer_norm_eps(),
            pad_token_id: 0,
        }
    }
}

impl BertConfig {
    /// Reads and validates a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|source| EncoderError::Io { path: path.to_path_buf(), source })?;
        let config: Self = serde_json::from_str(&text)
            .map_err(|source| EncoderError::Config { path: path.to_path_buf(), message: source.to_string() })?;
        config.validate().map_err(|message| EncoderError::Config { path: path.to_path_buf(), message })?;
        Ok(config)
    }

    /// Checks every value a model is built from: sizes positive and the hidden size a multiple of the heads, at
    /// most [`MAX_LAYERS`] layers, the whole model under [`MAX_PARAMETERS`], dropouts in `[0, 1)`, `layer_norm_eps` positive, `initializer_range`
    /// finite and not negative, `pad_token_id` inside the vocabulary. The message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        for (name, value) in positive {
            if value <= 0 {
                return Err(format!("{name} must be positive, got {value}"));
            }
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.num_hidden_layers > MAX_LAYERS {
            return Err(format!(
                "num_hidden_layers is {}, more than the {MAX_LAYERS} this tool accepts",
                self.num_hidden_layers
            ));
        }
        let parameters = self.parameter_count();
        if parameters > MAX_PARAMETERS {
            return Err(format!(
                "the sizes ask for {parameters:.3e} weights (vocab_size {}, hidden_size {}, num_hidden_layers {}, \
                 intermediate_size {}), more than the {MAX_PARAMETERS:.0e} this tool accepts",
                self.vocab_size, self.hidden_size, self.num_hidden_layers, self.intermediate_size
            ));
        }
        for (name, value) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            ("attention_probs_dropout_prob", self.attention_probs_dropout_prob),
        ] {
            if !(0.0..1.0).contains(&value) {
                return Err(format!("{name} must be in [0, 1), got {value}"));
            }
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(format!("layer_norm_eps must be a positive number, got {}", self.layer_norm_eps));
        }
        if !(self.initializer_range.is_finite() && self.initializer_range >= 0.0) {
            return Err(format!("initializer_range must be a finite number >= 0, got {}", self.initializer_range));
        }
        if !(0..self.vocab_size).contains(&self.pad_token_id) {
            return Err(format!(
                "pad_token_id must be a token id in [0, vocab_size {}), got {}",
                self.vocab_size, self.pad_token_id
            ));
        }
        Ok(())
    }

    /// The number of weights of the encoder these sizes describe (embeddings, layers, LayerNorms), as a float so
    /// that absurd sizes do not overflow.
    pub fn parameter_count(&self) -> f64 {
        let [vocab, hidden, layers, intermediate, positions, types] = [
            self.vocab_size,
            self.hidden_size,
            self.num_hidden_layers,
            self.intermediate_size,
            self.max_position_embeddings,
            self.type_vocab_size,
        ]
        .map(|value| value as f64);
        let embeddings = (vocab + positions + types) * hidden + 2.0 * hidden;
        // Q, K, V and output projections with biases, two feed-forward layers with biases, two LayerNorms.
        let layer =
            4.0 * (hidden * hidden + hidden) + 2.0 * hidden * intermediate + intermediate + hidden + 4.0 * hidden;
        embeddings + layers * layer
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> i64 {
        self.hidden_size / self.num_attention_heads
    }
}

impl std::fmt::Display for BertConfig {
    /// The summary the notebook prints when it builds its model.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Vocab Size: {}", self.vocab_size)?;
        writeln!(f, "Embedding Size: {}", self.hidden_size)?;
        writeln!(f, "Number of Heads: {}", self.num_attention_heads)?;
        writeln!(f, "Hidden Dimension: {}", self.intermediate_size)?;
        writeln!(f, "Number of Layers: {}", self.num_hidden_layers)?;
        writeln!(f, "Max Position Embeddings: {}", self.max_position_embeddings)?;
        writeln!(f, "Activation: {:?}", self.hidden_act)?;
        write!(f, "Layer Norm Epsilon: {:e}", self.layer_norm_eps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIRED: &str = r#""vocab_size": 100, "hidden_size": 384, "num_hidden_layers": 2, "num_attention_heads": 12,
        "intermediate_size": 1536, "max_position_embeddings": 64"#;

    #[test]
    fn optional_fields_take_bert_base_values_and_aliases_parse() {
        let json = format!(r#"{{{REQUIRED}, "hidden_act": "gelu_pytorch_tanh", "extra": 1}}"#);
        let config: BertConfig = serde_json::from_str(&json).expect("valid json");
        assert_eq!((config.hidden_size, config.num_hidden_layers), (384, 2));
        assert_eq!(config.hidden_act, HiddenAct::GeluNew);
        assert_eq!((config.layer_norm_eps, config.hidden_dropout_prob, config.type_vocab_size), (1e-12, 0.1, 2));
        assert_eq!(config.head_dim(), 32);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn a_config_without_a_required_size_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"vocab_size": 100, "num_hidden_layers": 2}"#).expect("write");
        let err = BertConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("config.json") && err.contains("hidden_size"), "{err}");
    }

    #[test]
    fn values_a_model_cannot_be_built_from_are_named() {
        let base = BertConfig { vocab_size: 100, ..BertConfig::default() };
        let cases = [
            (BertConfig { hidden_dropout_prob: 1.0, ..base.clone() }, "hidden_dropout_prob"),
            (BertConfig { attention_probs_dropout_prob: -0.1, ..base.clone() }, "attention_probs_dropout_prob"),
            (BertConfig { layer_norm_eps: -1e-12, ..base.clone() }, "layer_norm_eps"),
            (BertConfig { layer_norm_eps: f64::NAN, ..base.clone() }, "layer_norm_eps"),
            (BertConfig { initializer_range: f64::INFINITY, ..base.clone() }, "initializer_range"),
            (BertConfig { pad_token_id: 100, ..base.clone() }, "pad_token_id"),
            (BertConfig { vocab_size: 1 << 40, ..base.clone() }, "vocab_size"),
            (BertConfig { num_hidden_layers: 1_000_000, ..base.clone() }, "num_hidden_layers"),
            (BertConfig { type_vocab_size: 0, ..base.clone() }, "type_vocab_size"),
        ];
        for (config, field) in cases {
            let message = config.validate().expect_err(field);
            assert!(message.contains(field), "{field}: {message}");
        }
        assert!(base.validate().is_ok());
    }

    #[test]
    fn parameter_count_matches_a_built_model() {
        let config = BertConfig {
            vocab_size: 50,
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 24,
            max_position_embeddings: 20,
            ..BertConfig::default()
        };
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let _model = crate::BertModel::new(vs.root(), &config);
        let built: i64 = vs.variables().values().map(tch::Tensor::numel).map(|n| n as i64).sum();
        assert_eq!(config.parameter_count(), built as f64);
    }

    #[test]
    fn heads_must_divide_hidden_size() {
        let config = BertConfig { hidden_size: 100, num_attention_heads: 12, ..BertConfig::default() };
        assert!(config.validate().unwrap_err().contains("not a multiple"));
    }

    #[test]
    fn unknown_activation_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(&path, format!(r#"{{{REQUIRED}, "hidden_act": "swish"}}"#)).expect("write");
        let err = BertConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("config.json") && err.contains("swish"), "{err}");
    }
}

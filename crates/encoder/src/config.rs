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

/// A BERT configuration. Unknown fields in `config.json` are ignored; missing ones take bert-base values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
    pub hidden_act: HiddenAct,
    /// Dropout after embeddings, attention output and feed-forward output.
    pub hidden_dropout_prob: f64,
    /// Dropout on the attention probabilities.
    pub attention_probs_dropout_prob: f64,
    /// Number of learned positions: the longest input the model takes.
    pub max_position_embeddings: i64,
    /// Number of token types (segments).
    pub type_vocab_size: i64,
    /// Standard deviation of the weight initialisation.
    pub initializer_range: f64,
    /// Epsilon of every LayerNorm.
    pub layer_norm_eps: f64,
    /// Id of the padding token.
    pub pad_token_id: i64,
}

impl Default for BertConfig {
    /// The `bert-base-uncased` configuration.
    fn default() -> Self {
        Self {
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: HiddenAct::Gelu,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            initializer_range: 0.02,
            layer_norm_eps: 1e-12,
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

    /// Checks the sizes are positive and the hidden size splits evenly into heads.
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
        Ok(())
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

    #[test]
    fn missing_fields_take_bert_base_values_and_aliases_parse() {
        let config: BertConfig =
            serde_json::from_str(r#"{"hidden_size": 384, "hidden_act": "gelu_pytorch_tanh", "extra": 1}"#)
                .expect("valid json");
        assert_eq!(config.hidden_size, 384);
        assert_eq!(config.num_hidden_layers, 12);
        assert_eq!(config.hidden_act, HiddenAct::GeluNew);
        assert_eq!(config.head_dim(), 32);
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
        std::fs::write(&path, r#"{"hidden_act": "swish"}"#).expect("write");
        let err = BertConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("config.json") && err.contains("swish"), "{err}");
    }
}

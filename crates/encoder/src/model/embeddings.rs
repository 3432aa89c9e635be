//! `BertEmbeddings`: word + position + token type embeddings, LayerNorm, dropout.

use super::dropout::dropout;
use crate::config::BertConfig;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// The input embeddings (`embeddings.*` in a checkpoint).
#[derive(Debug)]
pub struct BertEmbeddings {
    word_embeddings: nn::Embedding,
    position_embeddings: nn::Embedding,
    token_type_embeddings: nn::Embedding,
    layer_norm: nn::LayerNorm,
    dropout: f64,
}

impl BertEmbeddings {
    /// Creates the embeddings under `path` (e.g. `root / "embeddings"`).
    pub fn new(path: nn::Path, config: &BertConfig) -> Self {
        let init = nn::EmbeddingConfig {
            ws_init: nn::Init::Randn { mean: 0.0, stdev: config.initializer_range },
            ..Default::default()
        };
        let hidden = config.hidden_size;
        Self {
            word_embeddings: nn::embedding(&path / "word_embeddings", config.vocab_size, hidden, init),
            position_embeddings: nn::embedding(
                &path / "position_embeddings",
                config.max_position_embeddings,
                hidden,
                init,
            ),
            token_type_embeddings: nn::embedding(&path / "token_type_embeddings", config.type_vocab_size, hidden, init),
            layer_norm: nn::layer_norm(
                &path / "LayerNorm",
                vec![hidden],
                nn::LayerNormConfig { eps: config.layer_norm_eps, ..Default::default() },
            ),
            dropout: config.hidden_dropout_prob,
        }
    }

    /// `input_ids` and `token_type_ids` are `[batch, seq]` int64; returns `[batch, seq, hidden]`.
    pub fn forward_t(&self, input_ids: &Tensor, token_type_ids: &Tensor, train: bool) -> Tensor {
        let seq_len = input_ids.size()[1];
        let position_ids = Tensor::arange(seq_len, (Kind::Int64, input_ids.device())).unsqueeze(0);
        let embeddings = self.word_embeddings.forward(input_ids)
            + self.position_embeddings.forward(&position_ids)
            + self.token_type_embeddings.forward(token_type_ids);
        dropout(&self.layer_norm.forward(&embeddings), self.dropout, train)
    }
}

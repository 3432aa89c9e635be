//! `BertIntermediate`, `BertOutput` and `BertLayer` (`encoder.layer.N.*`).

use super::attention::{layer_norm, BertAttention, Packing, Projection};
use super::dropout::dropout;
use crate::config::{BertConfig, HiddenAct};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// The feed-forward expansion with its activation (`intermediate.dense`).
#[derive(Debug)]
pub struct BertIntermediate {
    dense: Projection,
    activation: HiddenAct,
}

impl BertIntermediate {
    /// Creates the layer under `path` (e.g. `... / "layer" / 0 / "intermediate"`).
    pub fn new(path: nn::Path, config: &BertConfig) -> Self {
        Self {
            dense: Projection::new(&path / "dense", config.hidden_size, config.intermediate_size, config),
            activation: config.hidden_act,
        }
    }

    /// activation(dense(hidden)), in the `compute` dtype.
    pub fn forward(&self, hidden: &Tensor, compute: Kind) -> Tensor {
        let projected = self.dense.forward(hidden, compute);
        match self.activation {
            HiddenAct::Gelu => projected.gelu("none"),
            HiddenAct::GeluNew => projected.gelu("tanh"),
            HiddenAct::Relu => projected.relu(),
        }
    }
}

/// The feed-forward contraction, dropout, residual and LayerNorm (`output.{dense,LayerNorm}`).
#[derive(Debug)]
pub struct BertOutput {
    dense: Projection,
    layer_norm: nn::LayerNorm,
    dropout: f64,
}

impl BertOutput {
    /// Creates the layer under `path` (e.g. `... / "layer" / 0 / "output"`).
    pub fn new(path: nn::Path, config: &BertConfig) -> Self {
        Self {
            dense: Projection::new(&path / "dense", config.intermediate_size, config.hidden_size, config),
            layer_norm: layer_norm(&path / "LayerNorm", config),
            dropout: config.hidden_dropout_prob,
        }
    }

    /// LayerNorm(dropout(dense(intermediate)) + residual): the projection in the `compute` dtype, the sum and the
    /// LayerNorm in the residual's (f32).
    pub fn forward_t(&self, intermediate: &Tensor, residual: &Tensor, train: bool, compute: Kind) -> Tensor {
        let projected = dropout(&self.dense.forward(intermediate, compute), self.dropout, train);
        self.layer_norm.forward(&(projected.to_kind(residual.kind()) + residual))
    }
}

/// One transformer layer: attention, then feed-forward (`encoder.layer.N`).
#[derive(Debug)]
pub struct BertLayer {
    attention: BertAttention,
    intermediate: BertIntermediate,
    output: BertOutput,
}

impl BertLayer {
    /// Creates the layer under `path` (e.g. `root / "encoder" / "layer" / 0`).
    pub fn new(path: nn::Path, config: &BertConfig) -> Self {
        Self {
            attention: BertAttention::new(&path / "attention", config),
            intermediate: BertIntermediate::new(&path / "intermediate", config),
            output: BertOutput::new(&path / "output", config),
        }
    }

    /// Runs the layer on the token rows `hidden` (`[tokens, hidden]`, see [`Packing`]), matrix products in the
    /// `compute` dtype.
    pub fn forward_t(&self, hidden: &Tensor, packing: &Packing, train: bool, compute: Kind) -> Tensor {
        let attended = self.attention.forward_t(hidden, packing, train, compute);
        let expanded = self.intermediate.forward(&attended, compute);
        self.output.forward_t(&expanded, &attended, train, compute)
    }

    pub(crate) fn cast_weights(&mut self, compute: Option<Kind>) {
        self.attention.cast_weights(compute);
        self.intermediate.dense.cast_weights(compute);
        self.output.dense.cast_weights(compute);
    }
}

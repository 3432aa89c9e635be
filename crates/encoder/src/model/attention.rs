//! `BertSelfAttention`, `BertSelfOutput` and `BertAttention` (`encoder.layer.N.attention.*`).

use super::dropout::dropout;
use crate::config::BertConfig;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// The dtype the attention itself (`softmax(q k^T / sqrt(d) + mask) v`) computes in, given the `compute` dtype of
/// the matrix products: on CPU always f32, because libtorch's fused CPU attention is slower in bf16 than in f32
/// (measured on MiniLM's shapes in a training step: forward 0.90x, backward 0.57x the f32 speed), while its bf16
/// GEMMs are twice as fast; on CUDA the `compute` dtype, where the fused kernels are fastest in bf16.
pub fn attention_kind(compute: Kind, device: Device) -> Kind {
    match device {
        Device::Cuda(_) => compute,
        _ => Kind::Float,
    }
}

/// Multi-head self-attention (`attention.self.{query,key,value}`).
#[derive(Debug)]
pub struct BertSelfAttention {
    query: Projection,
    key: Projection,
    value: Projection,
    num_heads: i64,
    head_dim: i64,
    dropout: f64,
}

impl BertSelfAttention {
    /// Creates the projections under `path` (e.g. `... / "attention" / "self"`).
    pub fn new(path: nn::Path, config: &BertConfig) -> Self {
        let hidden = config.hidden_size;
        Self {
            query: Projection::new(&path / "query", hidden, hidden, config),
            key: Projection::new(&path / "key", hidden, hidden, config),
            value: Projection::new(&path / "value", hidden, hidden, config),
            num_heads: config.num_attention_heads,
            head_dim: config.head_dim(),
            dropout: config.attention_probs_dropout_prob,
        }
    }

    /// `hidden` holds the real tokens' states as rows, `[tokens, hidden]` (see [`Packing`]); `additive_mask` is
    /// `[batch, 1, 1, seq]`, 0 where a key may be attended and a large negative number at padding, or `None` when
    /// nothing is padded (the kernel's faster path). The projections run on the rows; only the attention itself
    /// sees the padded `[batch, heads, seq, head_dim]` layout. Returns the per-head contexts merged back to rows,
    /// `[tokens, hidden]`, in the `compute` dtype (the dtype of the projections). The attention computes in
    /// [`attention_kind`]; the mask must be of that dtype.
    pub fn forward_t(
        &self,
        hidden: &Tensor,
        packing: &Packing,
        additive_mask: Option<&Tensor>,
        train: bool,
        compute: Kind,
    ) -> Tensor {
        let (batch, seq) = (packing.batch, packing.seq);
        let hidden = hidden.to_kind(compute);
        let attention = attention_kind(compute, hidden.device());
        let heads = |projection: &Projection| {
            packing
                .pad(&projection.forward(&hidden, compute).to_kind(attention))
                .view([batch, seq, self.num_heads, self.head_dim])
                .transpose(1, 2)
        };
        let (query, key, value) = (heads(&self.query), heads(&self.key), heads(&self.value));
        // libtorch's fused kernel computes softmax(q k^T / sqrt(d) + mask) v, with dropout on the probabilities.
        let dropout = if train { self.dropout } else { 0.0 };
        let context =
            Tensor::scaled_dot_product_attention(&query, &key, &value, additive_mask, dropout, false, None, false);
        packing.pack(&context.to_kind(compute).transpose(1, 2).reshape([batch * seq, self.num_heads * self.head_dim]))
    }

    pub(crate) fn cast_weights(&mut self, compute: Option<Kind>) {
        for projection in [&mut self.query, &mut self.key, &mut self.value] {
            projection.cast_weights(compute);
        }
    }
}

/// Where a batch's real tokens sit in its padded `[batch, seq]` layout. Between the attentions, the layers work on
/// the real tokens only, as rows of a `[tokens, hidden]` matrix: padding costs the projections and the feed-forward
/// nothing. Without padding the rows are the padded layout itself, and packing is a reshape. (Measured with
/// `cargo bench -p bertmt --bench server_load`: texts of mixed lengths embedded 32 at a time in arrival order, as a
/// server's requests come, ran 1.6x faster at f32 and 1.2x at bf16 than with the padded layout.)
#[derive(Debug)]
pub struct Packing {
    batch: i64,
    seq: i64,
    /// The flat positions (`b * seq + s`) of the real tokens, in order; `None` when every position is real.
    real: Option<Tensor>,
}

impl Packing {
    /// The packing of a `[batch, seq]` 1/0 mask (`None`: no padding).
    pub fn new(batch: i64, seq: i64, mask: Option<&Tensor>) -> Self {
        let real = mask.map(|mask| mask.reshape([-1]).nonzero().squeeze_dim(1));
        Self { batch, seq, real }
    }

    /// `[batch * seq, width]` (or `[batch, seq, width]`) to the real tokens' rows, `[tokens, width]`.
    pub fn pack(&self, padded: &Tensor) -> Tensor {
        let flat = padded.reshape([self.batch * self.seq, -1]);
        match &self.real {
            Some(real) => flat.index_select(0, real),
            None => flat,
        }
    }

    /// The real tokens' rows, `[tokens, width]`, back to `[batch * seq, width]`, with zeros at padding.
    pub fn pad(&self, rows: &Tensor) -> Tensor {
        match &self.real {
            Some(real) => {
                let width = rows.size()[1];
                Tensor::zeros([self.batch * self.seq, width], (rows.kind(), rows.device())).index_copy(0, real, rows)
            }
            None => rows.shallow_clone(),
        }
    }
}

/// Output projection, dropout, residual and LayerNorm (`attention.output.{dense,LayerNorm}`).
#[derive(Debug)]
pub struct BertSelfOutput {
    dense: Projection,
    layer_norm: nn::LayerNorm,
    dropout: f64,
}

impl BertSelfOutput {
    /// Creates the layer under `path` (e.g. `... / "attention" / "output"`).
    pub fn new(path: nn::Path, config: &BertConfig) -> Self {
        Self {
            dense: Projection::new(&path / "dense", config.hidden_size, config.hidden_size, config),
            layer_norm: layer_norm(&path / "LayerNorm", config),
            dropout: config.hidden_dropout_prob,
        }
    }

    /// LayerNorm(dropout(dense(context)) + residual): the projection in the `compute` dtype, the sum and the
    /// LayerNorm in the residual's (f32).
    pub fn forward_t(&self, context: &Tensor, residual: &Tensor, train: bool, compute: Kind) -> Tensor {
        let projected = dropout(&self.dense.forward(context, compute), self.dropout, train);
        self.layer_norm.forward(&(projected.to_kind(residual.kind()) + residual))
    }

    pub(crate) fn cast_weights(&mut self, compute: Option<Kind>) {
        self.dense.cast_weights(compute);
    }
}

/// Self-attention followed by its output block (`encoder.layer.N.attention`).
#[derive(Debug)]
pub struct BertAttention {
    self_attention: BertSelfAttention,
    output: BertSelfOutput,
}

impl BertAttention {
    /// Creates the block under `path` (e.g. `... / "layer" / 0 / "attention"`).
    pub fn new(path: nn::Path, config: &BertConfig) -> Self {
        Self {
            self_attention: BertSelfAttention::new(&path / "self", config),
            output: BertSelfOutput::new(&path / "output", config),
        }
    }

    /// Attention over the token rows `hidden` (`[tokens, hidden]`, see [`Packing`]) with the additive padding mask
    /// (`None`: no padding), matrix products in `compute`.
    pub fn forward_t(
        &self,
        hidden: &Tensor,
        packing: &Packing,
        additive_mask: Option<&Tensor>,
        train: bool,
        compute: Kind,
    ) -> Tensor {
        let context = self.self_attention.forward_t(hidden, packing, additive_mask, train, compute);
        self.output.forward_t(&context, hidden, train, compute)
    }

    pub(crate) fn cast_weights(&mut self, compute: Option<Kind>) {
        self.self_attention.cast_weights(compute);
        self.output.cast_weights(compute);
    }
}

/// A linear layer (initialised as BERT's: normal weights, zero bias) that computes in the model's precision. In f32
/// it is the layer itself. Otherwise its input, weight and bias are cast to the `compute` dtype at each call (the
/// casts are part of the autograd graph, so training reaches the f32 weights), or, once the model is set up for
/// inference ([`BertModel::cast_weights_for_inference`](super::BertModel::cast_weights_for_inference)), passes that
/// record no gradient (`tch::no_grad`, frozen layers) use copies cast once: a bf16 copy of MiniLM's matrices takes
/// about as long to make as a forward pass of one short sentence.
#[derive(Debug)]
pub struct Projection {
    linear: nn::Linear,
    /// The weight and bias cast once, for passes that do not train.
    cast: Option<(Tensor, Option<Tensor>)>,
}

impl Projection {
    /// Creates the layer's variables under `path` (`weight` `[output, input]`, `bias` `[output]`).
    pub(crate) fn new(path: nn::Path, input: i64, output: i64, config: &BertConfig) -> Self {
        let linear_config = nn::LinearConfig {
            ws_init: nn::Init::Randn { mean: 0.0, stdev: config.initializer_range },
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        };
        Self { linear: nn::linear(path, input, output, linear_config), cast: None }
    }

    /// `linear(input)` in the `compute` dtype.
    pub(crate) fn forward(&self, input: &Tensor, compute: Kind) -> Tensor {
        if compute == self.linear.ws.kind() {
            return self.linear.forward(input);
        }
        let bias = self.linear.bs.as_ref().map(|bias| bias.to_kind(compute));
        // The copies serve only passes that record no gradient for the layer (the bias's cast, a few hundred
        // values, says whether autograd is on for it): a pass whose gradients must reach the f32 weights casts them.
        let records_gradients = bias.as_ref().is_none_or(Tensor::requires_grad);
        if let Some((weight, bias)) =
            self.cast.as_ref().filter(|(weight, _)| !records_gradients && weight.kind() == compute)
        {
            return input.to_kind(compute).linear(weight, bias.as_ref());
        }
        input.to_kind(compute).linear(&self.linear.ws.to_kind(compute), bias.as_ref())
    }

    /// Keeps copies of the weight and bias in `compute` (none when that is their own dtype), or drops them (`None`).
    pub(crate) fn cast_weights(&mut self, compute: Option<Kind>) {
        let _no_grad = tch::no_grad_guard();
        self.cast = compute.filter(|&kind| kind != self.linear.ws.kind()).map(|kind| {
            (self.linear.ws.to_kind(kind).detach(), self.linear.bs.as_ref().map(|bias| bias.to_kind(kind).detach()))
        });
    }
}

/// A LayerNorm over the hidden size with the configured epsilon.
pub(crate) fn layer_norm(path: nn::Path, config: &BertConfig) -> nn::LayerNorm {
    nn::layer_norm(
        path,
        vec![config.hidden_size],
        nn::LayerNormConfig { eps: config.layer_norm_eps, ..Default::default() },
    )
}

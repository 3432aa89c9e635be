//! The BERT encoder, built from parts named after their Hugging Face counterparts, so that every variable's
//! path in the `VarStore` (`embeddings.word_embeddings.weight`, `encoder.layer.0.attention.self.query.weight`, ...)
//! is the checkpoint key it is loaded from.

mod attention;
mod dropout;
mod embeddings;
mod layer;

pub use attention::{attention_kind, BertAttention, BertSelfAttention, BertSelfOutput, Packing, Projection};
pub use dropout::dropout;
pub use embeddings::BertEmbeddings;
pub use layer::{BertIntermediate, BertLayer, BertOutput};

use crate::config::BertConfig;
use crate::error::{EncoderError, Result};
use crate::precision::Precision;
use tch::{nn, Kind, Tensor};

/// The path of the embeddings under the model's root.
const EMBEDDINGS: &str = "embeddings";
/// The path of the layer stack under the model's root.
const ENCODER: &str = "encoder";
/// The path of the layers under the stack.
const LAYER: &str = "layer";

/// The part of the encoder a variable belongs to, read from its name relative to the model's root (the encoder
/// owns its naming scheme; other crates ask here instead of spelling the prefixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EncoderPart {
    /// `embeddings.*`: word, position and token type embeddings and their LayerNorm.
    Embeddings,
    /// `encoder.layer.N.*`: transformer layer N (0-based, from the input).
    Layer(i64),
}

impl EncoderPart {
    /// The part of the variable `name`; `None` when the name is not one of the encoder's.
    ///
    /// ```
    /// use encoder::model::EncoderPart;
    /// assert_eq!(EncoderPart::of_variable("embeddings.word_embeddings.weight"), Some(EncoderPart::Embeddings));
    /// assert_eq!(EncoderPart::of_variable("encoder.layer.11.output.dense.bias"), Some(EncoderPart::Layer(11)));
    /// assert_eq!(EncoderPart::of_variable("ner_head.weight"), None);
    /// ```
    pub fn of_variable(name: &str) -> Option<Self> {
        let (first, rest) = name.split_once('.')?;
        match first {
            EMBEDDINGS => Some(Self::Embeddings),
            ENCODER => {
                let rest = rest.strip_prefix(LAYER)?.strip_prefix('.')?;
                let (index, _) = rest.split_once('.')?;
                index.parse().ok().filter(|&index: &i64| index >= 0).map(Self::Layer)
            }
            _ => None,
        }
    }

    /// The part's path: `embeddings` or `encoder.layer.N`.
    pub fn path(self) -> String {
        match self {
            Self::Embeddings => EMBEDDINGS.to_string(),
            Self::Layer(index) => format!("{ENCODER}.{LAYER}.{index}"),
        }
    }
}

/// The stack of transformer layers (`encoder.layer.*`).
#[derive(Debug)]
pub struct BertEncoder {
    layers: Vec<BertLayer>,
}

impl BertEncoder {
    /// Creates `num_hidden_layers` layers under `path / "layer" / i`.
    pub fn new(path: nn::Path, config: &BertConfig) -> Self {
        let layer_path = &path / LAYER;
        let layers = (0..config.num_hidden_layers).map(|index| BertLayer::new(&layer_path / index, config)).collect();
        Self { layers }
    }

    /// Runs every layer in turn on the token rows `hidden` (`[tokens, hidden]`, see [`Packing`], whose masks are in
    /// the [`attention_kind`] of `compute`), matrix products in `compute`.
    pub fn forward_t(&self, hidden: &Tensor, packing: &Packing, train: bool, compute: Kind) -> Tensor {
        let mut hidden = hidden.shallow_clone();
        for layer in &self.layers {
            hidden = layer.forward_t(&hidden, packing, train, compute);
        }
        hidden
    }

    fn cast_weights(&mut self, compute: Option<Kind>) {
        for layer in &mut self.layers {
            layer.cast_weights(compute);
        }
    }
}

/// What the encoder returns.
#[derive(Debug)]
pub struct BertModelOutput {
    /// The last layer's token states, `[batch, seq, hidden]` (zeros at padding positions; use the mask).
    pub last_hidden_state: Tensor,
}

/// A BERT encoder without a pooler (as the notebook's `SentenceTransformer`).
#[derive(Debug)]
pub struct BertModel {
    embeddings: BertEmbeddings,
    encoder: BertEncoder,
    config: BertConfig,
    precision: Precision,
    /// Whether the matrices are kept cast to the compute dtype for passes that do not train.
    inference_casts: bool,
}

impl BertModel {
    /// Creates a randomly initialised encoder under `path` (`vs.root()`, or a prefix such as `root / "bert"`).
    pub fn new(path: nn::Path, config: &BertConfig) -> Self {
        Self {
            embeddings: BertEmbeddings::new(&path / EMBEDDINGS, config),
            encoder: BertEncoder::new(&path / ENCODER, config),
            config: config.clone(),
            precision: Precision::F32,
            inference_casts: false,
        }
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// Sets the compute precision (see [`crate::precision`]); `Auto` must be resolved for a device first
    /// ([`Precision::resolve`]). The weights stay f32 either way.
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        if precision == Precision::Auto {
            return Err(EncoderError::InvalidInput(
                "precision `auto` must be resolved for a device before it is set (Precision::resolve)".into(),
            ));
        }
        self.precision = precision;
        if self.inference_casts {
            self.encoder.cast_weights(Some(precision.compute_kind()));
        }
        Ok(())
    }

    /// For a model that only infers from here on (an embedder, a predictor, a server): keeps its matrices cast to
    /// the compute precision (bf16) once, instead of at every forward pass (a pass of one short sentence costs about
    /// as much again in casts). Costs a second copy of the matrices in that dtype; nothing at f32. Passes that record
    /// gradients still cast the f32 weights themselves, so gradients reach them; but the copies are not refreshed
    /// if the weights change: call this again (or [`set_precision`](Self::set_precision)) after changing them.
    pub fn cast_weights_for_inference(&mut self) {
        self.inference_casts = true;
        self.encoder.cast_weights(Some(self.precision.compute_kind()));
    }

    /// The compute precision (`F32` or `Bf16`).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Runs the encoder.
    ///
    /// `input_ids`: `[batch, seq]` integer ids. `attention_mask`: `[batch, seq]`, 1 for real tokens and 0 for
    /// padding (all ones when `None`). `token_type_ids`: `[batch, seq]` (all zeros when `None`).
    /// `train` turns dropout on. Shapes, ranks and lengths are checked and reported as errors.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        token_type_ids: Option<&Tensor>,
        train: bool,
    ) -> Result<BertModelOutput> {
        let size = input_ids.size();
        if size.len() != 2 {
            return Err(EncoderError::InvalidInput(format!("input_ids must be [batch, seq], got shape {size:?}")));
        }
        let (batch, seq) = (size[0], size[1]);
        if batch == 0 || seq == 0 {
            return Err(EncoderError::InvalidInput(format!("empty input_ids of shape {size:?}")));
        }
        if seq > self.config.max_position_embeddings {
            return Err(EncoderError::InvalidInput(format!(
                "sequence of {seq} tokens is longer than the model's {} positions: truncate it",
                self.config.max_position_embeddings
            )));
        }
        for (name, tensor) in [("attention_mask", attention_mask), ("token_type_ids", token_type_ids)] {
            if let Some(tensor) = tensor {
                if tensor.size() != size {
                    return Err(EncoderError::InvalidInput(format!(
                        "{name} has shape {:?}, expected {size:?} like input_ids",
                        tensor.size()
                    )));
                }
            }
        }
        let input_ids = input_ids.to_kind(Kind::Int64);
        let token_type_ids = match token_type_ids {
            Some(ids) => ids.to_kind(Kind::Int64),
            None => input_ids.zeros_like(),
        };
        let hidden = self.embeddings.forward_t(&input_ids, &token_type_ids, train);
        let compute = self.precision.compute_kind();
        // A batch without padding needs no mask, and the attention kernel runs faster without one.
        let attention = attention_kind(compute, input_ids.device());
        let padding = attention_mask.filter(|mask| has_padding(mask));
        let packing = Packing::new(batch, seq, padding, attention);
        let rows = self.encoder.forward_t(&packing.pack(&hidden), &packing, train, compute);
        let last_hidden_state = packing.pad(&rows).view([batch, seq, -1]);
        Ok(BertModelOutput { last_hidden_state })
    }
}

/// Whether a `[batch, seq]` 1/0 attention mask has any 0 (padding).
pub fn has_padding(mask: &Tensor) -> bool {
    mask.numel() > 0 && mask.min().int64_value(&[]) == 0
}

/// Turns a `[batch, seq]` 1/0 mask into the `[batch, 1, 1, seq]` additive mask the attention adds to its scores:
/// 0 for real tokens and the dtype's lowest value for padding, so that padding gets zero probability (the lowest
/// finite value, not -inf, keeps a fully padded row finite instead of NaN).
pub fn additive_attention_mask(mask: &Tensor, kind: Kind) -> Tensor {
    let lowest = match kind {
        Kind::Double => f64::MIN,
        Kind::Half => -65504.0,
        // The largest finite bfloat16, (2 - 2^-7) * 2^127: f32::MIN would round to -inf in bf16.
        Kind::BFloat16 => -3.389_531_389_251_535_5e38,
        _ => f64::from(f32::MIN),
    };
    let keep = mask.to_kind(kind).unsqueeze(1).unsqueeze(1);
    (keep.ones_like() - keep) * lowest
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device};

    fn tiny() -> (nn::VarStore, BertModel) {
        tiny_with_positions(12)
    }

    fn tiny_with_positions(max_position_embeddings: i64) -> (nn::VarStore, BertModel) {
        tch::manual_seed(0);
        let config = BertConfig {
            vocab_size: 30,
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 32,
            max_position_embeddings,
            ..BertConfig::default()
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let model = BertModel::new(vs.root(), &config);
        (vs, model)
    }

    fn ids(values: &[i64]) -> Tensor {
        Tensor::from_slice(values).view([1, values.len() as i64])
    }

    #[test]
    fn variables_carry_hugging_face_names() {
        let (vs, _) = tiny();
        let names = vs.variables();
        assert_eq!(names.len(), 5 + 16 * 2);
        for name in [
            "embeddings.word_embeddings.weight",
            "embeddings.LayerNorm.bias",
            "encoder.layer.1.attention.self.query.weight",
            "encoder.layer.1.attention.output.LayerNorm.weight",
            "encoder.layer.0.intermediate.dense.bias",
            "encoder.layer.0.output.dense.weight",
        ] {
            assert!(names.contains_key(name), "{name} missing");
        }
        assert_eq!(names["encoder.layer.0.intermediate.dense.weight"].size(), [32, 16]);
    }

    #[test]
    fn padding_does_not_change_the_states_of_real_tokens() {
        let (_, model) = tiny();
        let alone = model.forward_t(&ids(&[2, 5, 7, 3]), None, None, false).expect("forward").last_hidden_state;
        // The same sequence padded with arbitrary ids, masked out.
        let padded = ids(&[2, 5, 7, 3, 9, 9, 1]);
        let mask = ids(&[1, 1, 1, 1, 0, 0, 0]);
        let batched = model.forward_t(&padded, Some(&mask), None, false).expect("forward").last_hidden_state;
        let diff = (alone - batched.narrow(1, 0, 4)).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "padding changed real tokens by {diff}");
    }

    /// Runs `texts` as one padded batch (in training mode too, for the gradients) and checks that each text gets the
    /// states it gets alone, zeros at its padding, and that gradients reach the weights.
    fn assert_each_text_as_alone(max_position_embeddings: i64, texts: &[Vec<i64>]) {
        let (_, model) = tiny_with_positions(max_position_embeddings);
        let seq = texts.iter().map(Vec::len).max().unwrap_or(0);
        let mut padded = Vec::new();
        let mut mask = Vec::new();
        for text in texts {
            padded.extend(text.iter().copied().chain(std::iter::repeat_n(0, seq - text.len())));
            mask.extend((0..seq).map(|position| i64::from(position < text.len())));
        }
        let shape = [texts.len() as i64, seq as i64];
        let batch = Tensor::from_slice(&padded).view(shape);
        let mask = Tensor::from_slice(&mask).view(shape);
        let states = model.forward_t(&batch, Some(&mask), None, false).expect("forward").last_hidden_state;
        for (row, text) in texts.iter().enumerate() {
            let (row, length) = (row as i64, text.len() as i64);
            if length > 0 {
                let alone = model.forward_t(&ids(text), None, None, false).expect("forward").last_hidden_state;
                let diff = (alone.get(0) - states.get(row).narrow(0, 0, length)).abs().max().double_value(&[]);
                assert!(diff < 1e-5, "text {row} differs by {diff} in a batch");
            }
            let padding = states.get(row).narrow(0, length, seq as i64 - length);
            assert_eq!(padding.abs().sum(Kind::Float).double_value(&[]), 0.0, "padding of text {row} is not zero");
        }
        // Gradients reach the weights through the packed rows and the attention's groups.
        let (vs, model) = tiny_with_positions(max_position_embeddings);
        let states = model.forward_t(&batch, Some(&mask), None, true).expect("forward").last_hidden_state;
        states.sum(Kind::Float).backward();
        for name in ["encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.self.key.weight"] {
            let grad = vs.variables()[name].grad();
            assert!(grad.abs().sum(Kind::Float).double_value(&[]) > 0.0, "{name} has no gradient");
        }
    }

    #[test]
    fn a_batch_of_mixed_lengths_gives_each_text_its_own_states_and_zeros_at_padding() {
        assert_each_text_as_alone(12, &[vec![2, 5, 7, 3], vec![2, 9, 3], vec![2, 4, 6, 8, 1, 3]]);
    }

    #[test]
    fn a_batch_without_a_real_token_gives_zeros() {
        let (_, model) = tiny();
        let ids = Tensor::from_slice(&[2_i64, 5, 7, 3, 9, 1]).view([2, 3]);
        let states = model.forward_t(&ids, Some(&ids.zeros_like()), None, false).expect("forward").last_hidden_state;
        assert_eq!(states.size(), [2, 3, 16]);
        assert_eq!(states.abs().sum(Kind::Float).double_value(&[]), 0.0);
    }

    #[test]
    fn a_batch_whose_attention_runs_in_several_groups_gives_each_text_its_own_states() {
        // Long and short texts, interleaved, and one with no real token: the attention groups the long ones apart
        // from the short ones, and its output rows must come back in the batch's order.
        let text = |length: usize, seed: i64| (0..length as i64).map(|i| (i * 7 + seed) % 29 + 1).collect::<Vec<_>>();
        let texts = [text(3, 1), text(100, 2), text(4, 3), Vec::new(), text(90, 4), text(5, 5)];
        let lengths: Vec<i64> = texts.iter().map(|t| t.len() as i64).collect();
        assert!(attention::attention_groups(&lengths).len() > 1, "the test needs several groups");
        assert_each_text_as_alone(128, &texts);
    }

    #[test]
    fn weights_cast_once_for_inference_give_the_same_states_and_training_still_reaches_the_weights() {
        let (vs, mut model) = tiny();
        model.set_precision(Precision::Bf16).expect("bf16");
        let input = ids(&[2, 5, 7, 3]);
        // Inference records no gradient: the copies serve it.
        let eval = |model: &BertModel| {
            tch::no_grad(|| model.forward_t(&input, None, None, false).expect("forward").last_hidden_state)
        };
        let cast_each_pass = eval(&model);
        model.cast_weights_for_inference();
        assert!(eval(&model).equal(&cast_each_pass), "the copies are the same casts");
        // A pass that records gradients computes from the f32 weights, dropout or not: gradients reach them.
        let mut query = vs.variables()["encoder.layer.0.attention.self.query.weight"].shallow_clone();
        for train in [false, true] {
            query.zero_grad();
            model.forward_t(&input, None, None, train).expect("forward").last_hidden_state.sum(Kind::Float).backward();
            assert!(query.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0, "train {train}");
        }
        // Changed weights reach the copies when the precision is set again.
        tch::no_grad(|| {
            let _ = query.g_mul_scalar_(2.0);
        });
        assert!(eval(&model).equal(&cast_each_pass), "stale until refreshed, as documented");
        model.set_precision(Precision::Bf16).expect("bf16");
        assert!(!eval(&model).equal(&cast_each_pass), "refreshed");
    }

    #[test]
    fn a_mask_without_padding_is_the_same_as_no_mask() {
        let (_, model) = tiny();
        let input = ids(&[2, 5, 7, 3]);
        assert!(!has_padding(&ids(&[1, 1, 1, 1])));
        assert!(has_padding(&ids(&[1, 1, 1, 0])));
        let unmasked = model.forward_t(&input, None, None, false).expect("forward").last_hidden_state;
        let all_ones = model.forward_t(&input, Some(&ids(&[1, 1, 1, 1])), None, false).expect("forward");
        assert!(unmasked.equal(&all_ones.last_hidden_state));
        // A real mask does change the states: the last token is masked out of everyone's attention.
        let masked = model.forward_t(&input, Some(&ids(&[1, 1, 1, 0])), None, false).expect("forward");
        assert!(!unmasked.narrow(1, 0, 3).allclose(&masked.last_hidden_state.narrow(1, 0, 3), 1e-6, 1e-6, false));
    }

    #[test]
    fn dropout_only_in_training_and_token_types_matter() {
        let (_, model) = tiny();
        let input = ids(&[2, 5, 7, 3]);
        let eval =
            |types: Option<&Tensor>| model.forward_t(&input, None, types, false).expect("forward").last_hidden_state;
        assert!(eval(None).equal(&eval(None)));
        let train = model.forward_t(&input, None, None, true).expect("forward").last_hidden_state;
        assert!(!train.equal(&eval(None)));
        let segment_b = input.ones_like();
        assert!(!eval(Some(&segment_b)).equal(&eval(None)));
    }

    #[test]
    fn bad_shapes_are_errors_not_panics() {
        let (_, model) = tiny();
        let flat = Tensor::from_slice(&[1i64, 2, 3]);
        assert!(matches!(model.forward_t(&flat, None, None, false), Err(EncoderError::InvalidInput(_))));
        let mask = ids(&[1, 1]);
        let err = model.forward_t(&ids(&[1, 2, 3]), Some(&mask), None, false).unwrap_err();
        assert!(err.to_string().contains("attention_mask"), "{err}");
        let too_long = Tensor::ones([1, 13], (Kind::Int64, Device::Cpu));
        assert!(model.forward_t(&too_long, None, None, false).is_err());
        let empty = Tensor::zeros([0, 4], (Kind::Int64, Device::Cpu));
        assert!(model.forward_t(&empty, None, None, false).is_err());
    }
}

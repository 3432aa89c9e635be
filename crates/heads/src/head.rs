//! The task heads: dropout then a linear layer, over a pooled sentence vector or over every token state.
//!
//! Both heads take precomputed encoder features as well as fresh ones, so a trainer may cache the (frozen)
//! encoder's outputs and train only the heads.

use crate::error::{HeadsError, Result};
use encoder::Pooling;
use tch::{nn, Tensor};

/// Dropout then `x W^T + b`, with the input width checked.
#[derive(Debug)]
struct Projection {
    weight: Tensor,
    bias: Tensor,
    dropout: f64,
}

impl Projection {
    /// Creates `weight` `[outputs, inputs]` (normal, std `init_std`, as BERT initialises its heads) and a zero
    /// `bias` `[outputs]` under `path`.
    fn new(path: nn::Path, inputs: i64, outputs: i64, dropout: f64, init_std: f64) -> Self {
        let weight = path.var("weight", &[outputs, inputs], nn::Init::Randn { mean: 0.0, stdev: init_std });
        let bias = path.var("bias", &[outputs], nn::Init::Const(0.0));
        Self { weight, bias, dropout }
    }

    fn inputs(&self) -> i64 {
        self.weight.size().get(1).copied().unwrap_or(0)
    }

    fn outputs(&self) -> i64 {
        self.weight.size().first().copied().unwrap_or(0)
    }

    /// Checks that `input` has one of the `ranks` and the head's input width as its last dimension.
    fn check(&self, head: &str, input: &Tensor, ranks: &[usize], expected: &str) -> Result<()> {
        let size = input.size();
        if !ranks.contains(&size.len()) || size.last() != Some(&self.inputs()) {
            return Err(HeadsError::InvalidInput(format!(
                "{head} takes {expected} with hidden = {}, got shape {size:?}",
                self.inputs()
            )));
        }
        Ok(())
    }

    fn f_forward_t(&self, input: &Tensor, train: bool) -> Result<Tensor> {
        let dropped = encoder::model::dropout(input, self.dropout, train);
        Ok(dropped.f_linear(&self.weight, Some(&self.bias))?)
    }
}

/// The sentence classification head (`classification_head.{weight,bias}`): pooling, dropout, linear.
#[derive(Debug)]
pub struct ClassificationHead {
    projection: Projection,
    pooling: Pooling,
}

impl ClassificationHead {
    /// Creates the head under `path` (e.g. `root / "classification_head"`): `hidden` inputs, `classes` outputs,
    /// dropout probability `dropout`, weights drawn from N(0, `init_std`²) and zero bias.
    pub fn new(path: nn::Path, hidden: i64, classes: i64, dropout: f64, pooling: Pooling, init_std: f64) -> Self {
        Self { projection: Projection::new(path, hidden, classes, dropout, init_std), pooling }
    }

    /// How token states are pooled into the sentence vector.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Number of classes.
    pub fn num_outputs(&self) -> i64 {
        self.projection.outputs()
    }

    /// Pools `[batch, seq, hidden]` states into `[batch, hidden]` sentence vectors (`[CLS]` state or the mean over
    /// the tokens whose `mask` (`[batch, seq]`, 1 = real token) is set; padding never counts).
    pub fn f_pool(&self, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let size = hidden.size();
        if size.len() != 3 || size.get(1).is_some_and(|&seq| seq == 0) {
            return Err(HeadsError::InvalidInput(format!(
                "pooling takes [batch, seq, hidden] states with seq > 0, got shape {size:?}"
            )));
        }
        if mask.size() != size[..2] {
            return Err(HeadsError::InvalidInput(format!(
                "attention mask has shape {:?}, the states are {size:?}",
                mask.size()
            )));
        }
        Ok(encoder::pool(hidden, mask, self.pooling))
    }

    /// Logits `[batch, classes]` from pooled sentence vectors `[batch, hidden]` (fresh or cached); `train` turns
    /// dropout on.
    pub fn f_forward_t(&self, pooled: &Tensor, train: bool) -> Result<Tensor> {
        self.projection.check("the classification head", pooled, &[2], "pooled vectors [batch, hidden]")?;
        self.projection.f_forward_t(pooled, train)
    }
}

/// The token classification (NER) head (`ner_head.{weight,bias}`): dropout, then linear on every token state.
#[derive(Debug)]
pub struct TokenClassificationHead {
    projection: Projection,
}

impl TokenClassificationHead {
    /// Creates the head under `path` (e.g. `root / "ner_head"`): `hidden` inputs, `labels` outputs, dropout
    /// probability `dropout`, weights drawn from N(0, `init_std`²) and zero bias.
    pub fn new(path: nn::Path, hidden: i64, labels: i64, dropout: f64, init_std: f64) -> Self {
        Self { projection: Projection::new(path, hidden, labels, dropout, init_std) }
    }

    /// Number of NER labels.
    pub fn num_outputs(&self) -> i64 {
        self.projection.outputs()
    }

    /// Logits `[batch, seq, labels]` from token states `[batch, seq, hidden]`, or `[n, labels]` from `[n, hidden]`
    /// (e.g. cached states of real tokens only); `train` turns dropout on.
    pub fn f_forward_t(&self, token_states: &Tensor, train: bool) -> Result<Tensor> {
        self.projection.check(
            "the NER head",
            token_states,
            &[2, 3],
            "token states [batch, seq, hidden] or [n, hidden]",
        )?;
        self.projection.f_forward_t(token_states, train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn heads_take_cached_features_and_check_their_width() {
        let vs = nn::VarStore::new(Device::Cpu);
        let classify = ClassificationHead::new(vs.root() / "classification_head", 8, 3, 0.1, Pooling::Mean, 0.02);
        let tag = TokenClassificationHead::new(vs.root() / "ner_head", 8, 5, 0.1, 0.02);
        let names = vs.variables();
        for name in ["classification_head.weight", "classification_head.bias", "ner_head.weight", "ner_head.bias"] {
            assert!(names.contains_key(name), "{name}");
        }
        assert_eq!(names["ner_head.weight"].size(), [5, 8]);
        let pooled = Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
        assert_eq!(classify.f_forward_t(&pooled, false).expect("forward").size(), [4, 3]);
        let tokens = Tensor::randn([2, 6, 8], (Kind::Float, Device::Cpu));
        assert_eq!(tag.f_forward_t(&tokens, false).expect("forward").size(), [2, 6, 5]);
        assert_eq!(tag.f_forward_t(&pooled, false).expect("cached states").size(), [4, 5]);
        let narrow = Tensor::randn([4, 7], (Kind::Float, Device::Cpu));
        let err = classify.f_forward_t(&narrow, false).unwrap_err().to_string();
        assert!(err.contains("hidden = 8") && err.contains("[4, 7]"), "{err}");
        assert!(tag.f_forward_t(&Tensor::randn([8], (Kind::Float, Device::Cpu)), false).is_err());
        assert!(classify.f_forward_t(&tokens, false).is_err());
    }

    #[test]
    fn pooling_checks_the_mask_and_dropout_only_trains() {
        let vs = nn::VarStore::new(Device::Cpu);
        let classify = ClassificationHead::new(vs.root() / "classification_head", 8, 2, 0.5, Pooling::Cls, 0.02);
        let hidden = Tensor::randn([2, 3, 8], (Kind::Float, Device::Cpu));
        let mask = Tensor::ones([2, 3], (Kind::Int64, Device::Cpu));
        let pooled = classify.f_pool(&hidden, &mask).expect("pool");
        assert!(pooled.equal(&hidden.select(1, 0)));
        assert!(classify.f_pool(&hidden, &mask.narrow(1, 0, 2)).is_err());
        assert!(classify.f_pool(&pooled, &mask).is_err());
        let logits = |train: bool| classify.f_forward_t(&pooled, train).expect("forward");
        let eval = logits(false);
        assert!(eval.equal(&logits(false)));
        assert!(!eval.equal(&logits(true)));
    }
}

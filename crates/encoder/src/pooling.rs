//! Sentence vectors from token states: `[CLS]` or masked mean, optional L2 normalisation, cosine similarity.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// How a sentence vector is made from the last hidden states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The state of the first token (`[CLS]`).
    Cls,
    /// The mean over real tokens: padding never counts (sentence-transformers' pooling).
    #[default]
    Mean,
}

impl Pooling {
    /// Every pooling, as [`FromStr`](std::str::FromStr) reads and [`Display`](std::fmt::Display) writes it.
    pub const ALL: [Self; 2] = [Self::Cls, Self::Mean];
    /// The accepted names, for error messages.
    pub const NAMES: &'static str = "cls or mean";
}

impl std::str::FromStr for Pooling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cls" => Ok(Self::Cls),
            "mean" => Ok(Self::Mean),
            other => Err(format!("unknown pooling `{other}`: expected {}", Self::NAMES)),
        }
    }
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cls => "cls",
            Self::Mean => "mean",
        })
    }
}

/// Pools `[batch, seq, hidden]` states into `[batch, hidden]`; `mask` is `[batch, seq]` with 1 for real tokens.
pub fn pool(hidden: &Tensor, mask: &Tensor, pooling: Pooling) -> Tensor {
    match pooling {
        Pooling::Cls => hidden.select(1, 0),
        Pooling::Mean => masked_mean(hidden, mask),
    }
}

/// sum(state * mask) / max(sum(mask), 1e-9) over the sequence.
pub fn masked_mean(hidden: &Tensor, mask: &Tensor) -> Tensor {
    let mask = mask.to_kind(hidden.kind()).unsqueeze(-1);
    let summed = (hidden * &mask).sum_dim_intlist(1, false, hidden.kind());
    let counts = mask.sum_dim_intlist(1, false, hidden.kind()).clamp_min(1e-9);
    summed / counts
}

/// Scales each row to unit L2 norm (rows of zeros stay zero).
pub fn l2_normalize(vectors: &Tensor) -> Tensor {
    let norms = vectors.norm_scalaropt_dim(2.0, [-1], true).clamp_min(1e-12);
    vectors / norms
}

/// The `[n, n]` matrix of cosine similarities between the rows of `[n, hidden]`.
pub fn cosine_similarity_matrix(vectors: &Tensor) -> Tensor {
    let unit = l2_normalize(&vectors.to_kind(Kind::Float));
    unit.matmul(&unit.transpose(0, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_ignores_padding_and_cls_takes_the_first_token() {
        // One sequence of 3 positions: two real tokens (1, 3) and padding (100).
        let hidden = Tensor::from_slice(&[1.0f32, 3.0, 100.0]).view([1, 3, 1]);
        let mask = Tensor::from_slice(&[1i64, 1, 0]).view([1, 3]);
        assert_eq!(pool(&hidden, &mask, Pooling::Mean).double_value(&[0, 0]), 2.0);
        assert_eq!(pool(&hidden, &mask, Pooling::Cls).double_value(&[0, 0]), 1.0);
    }

    #[test]
    fn cosine_of_parallel_and_orthogonal_rows() {
        let vectors = Tensor::from_slice(&[1.0f32, 0.0, 2.0, 0.0, 0.0, 3.0]).view([3, 2]);
        let matrix = cosine_similarity_matrix(&vectors);
        assert!((matrix.double_value(&[0, 1]) - 1.0).abs() < 1e-6);
        assert!(matrix.double_value(&[0, 2]).abs() < 1e-6);
        let norms = l2_normalize(&vectors).norm_scalaropt_dim(2.0, [-1], false);
        assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-6);
    }

    #[test]
    fn pooling_parses_from_the_command_line_names() {
        assert_eq!("cls".parse::<Pooling>(), Ok(Pooling::Cls));
        assert!("max".parse::<Pooling>().unwrap_err().contains("max"));
    }
}

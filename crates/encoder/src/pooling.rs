//! Sentence vectors from token states: `[CLS]` or masked mean, optional L2 normalisation, cosine similarity.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// How a sentence vector is made from the last hidden states (sentence-transformers' pooling modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
pub enum Pooling {
    /// The state of the first token (`[CLS]`).
    #[serde(rename = "cls")]
    Cls,
    /// The mean over real tokens: padding never counts.
    #[default]
    #[serde(rename = "mean")]
    Mean,
    /// The element-wise maximum over real tokens.
    #[serde(rename = "max")]
    Max,
    /// The sum over real tokens divided by the square root of their number.
    #[serde(rename = "mean_sqrt_len_tokens")]
    MeanSqrtLen,
    /// The mean over real tokens weighted by position (1, 2, 3, ...), later tokens counting more.
    #[serde(rename = "weightedmean")]
    WeightedMean,
    /// The state of the last real token.
    #[serde(rename = "lasttoken")]
    LastToken,
}

impl Pooling {
    /// Every pooling, as [`FromStr`](std::str::FromStr) reads and [`Display`](std::fmt::Display) writes it.
    pub const ALL: [Self; 6] =
        [Self::Cls, Self::Mean, Self::Max, Self::MeanSqrtLen, Self::WeightedMean, Self::LastToken];
    /// The accepted names, for error messages.
    pub const NAMES: &'static str = "cls, mean, max, mean_sqrt_len_tokens, weightedmean or lasttoken";

    /// The name sentence-transformers and this crate's command line give it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cls => "cls",
            Self::Mean => "mean",
            Self::Max => "max",
            Self::MeanSqrtLen => "mean_sqrt_len_tokens",
            Self::WeightedMean => "weightedmean",
            Self::LastToken => "lasttoken",
        }
    }
}

impl std::str::FromStr for Pooling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|pooling| pooling.name() == s)
            .ok_or_else(|| format!("unknown pooling `{s}`: expected {}", Self::NAMES))
    }
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Pools `[batch, seq, hidden]` states into `[batch, hidden]`; `mask` is `[batch, seq]` with 1 for real tokens
/// (padding at the end of each row), as sentence-transformers' `Pooling` module does.
pub fn pool(hidden: &Tensor, mask: &Tensor, pooling: Pooling) -> Tensor {
    match pooling {
        Pooling::Cls => hidden.select(1, 0),
        Pooling::Mean => masked_mean(hidden, mask),
        Pooling::Max => {
            let padding = mask.eq(0).unsqueeze(-1);
            hidden.masked_fill(&padding, -1e9).amax([1], false)
        }
        Pooling::MeanSqrtLen => {
            let expanded = mask.to_kind(hidden.kind()).unsqueeze(-1);
            let summed = (hidden * &expanded).sum_dim_intlist(1, false, hidden.kind());
            summed / expanded.sum_dim_intlist(1, false, hidden.kind()).clamp_min(1e-9).sqrt()
        }
        Pooling::WeightedMean => {
            let positions = hidden.size().get(1).copied().unwrap_or(0);
            let weights = Tensor::arange_start(1, positions + 1, (hidden.kind(), hidden.device())).view([1, -1, 1]);
            let expanded = mask.to_kind(hidden.kind()).unsqueeze(-1) * weights;
            let summed = (hidden * &expanded).sum_dim_intlist(1, false, hidden.kind());
            summed / expanded.sum_dim_intlist(1, false, hidden.kind()).clamp_min(1e-9)
        }
        Pooling::LastToken => {
            let last = (mask.sum_dim_intlist(1, false, Kind::Int64) - 1).clamp_min(0);
            let size = hidden.size();
            let index = last.view([-1, 1, 1]).expand([size[0], 1, size[2]], false);
            hidden.gather(1, &index, false).squeeze_dim(1)
        }
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
        for pooling in Pooling::ALL {
            assert_eq!(pooling.to_string().parse::<Pooling>(), Ok(pooling));
            assert_eq!(serde_json::to_value(pooling).expect("json"), serde_json::json!(pooling.name()));
        }
        assert!("average".parse::<Pooling>().unwrap_err().contains(Pooling::NAMES));
    }

    #[test]
    fn every_pooling_mode_reads_real_tokens_only_as_sentence_transformers_does() {
        // Two rows of 3 positions, hidden 2: row 0 has tokens [1,2], [3,6] and padding; row 1 three tokens.
        let hidden =
            Tensor::from_slice(&[1.0f32, 2.0, 3.0, 6.0, 100.0, -100.0, 1.0, 0.0, 2.0, 0.0, 4.0, 8.0]).view([2, 3, 2]);
        let mask = Tensor::from_slice(&[1i64, 1, 0, 1, 1, 1]).view([2, 3]);
        let rows =
            |pooling| Vec::<Vec<f64>>::try_from(pool(&hidden, &mask, pooling).to_kind(Kind::Double)).expect("rows");
        let close = |a: Vec<Vec<f64>>, b: [[f64; 2]; 2]| {
            a.iter().flatten().zip(b.iter().flatten()).all(|(x, y)| (x - y).abs() < 1e-6)
        };
        assert!(close(rows(Pooling::Cls), [[1.0, 2.0], [1.0, 0.0]]));
        assert!(close(rows(Pooling::Mean), [[2.0, 4.0], [7.0 / 3.0, 8.0 / 3.0]]), "{:?}", rows(Pooling::Mean));
        assert!(close(rows(Pooling::Max), [[3.0, 6.0], [4.0, 8.0]]));
        let root2 = 2f64.sqrt();
        let sqrt_len = rows(Pooling::MeanSqrtLen);
        assert!((sqrt_len[0][0] - 4.0 / root2).abs() < 1e-6 && (sqrt_len[1][1] - 8.0 / 3f64.sqrt()).abs() < 1e-6);
        // Weights 1, 2 (row 0) and 1, 2, 3 (row 1).
        let weighted = rows(Pooling::WeightedMean);
        assert!((weighted[0][0] - 7.0 / 3.0).abs() < 1e-6 && (weighted[1][0] - 17.0 / 6.0).abs() < 1e-6);
        assert!(close(rows(Pooling::LastToken), [[3.0, 6.0], [4.0, 8.0]]));
    }
}

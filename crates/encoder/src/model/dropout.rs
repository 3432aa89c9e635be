//! Dropout for the encoder's hidden states, with a cheaper random mask on CPU.
//!
//! libtorch's CPU dropout draws one Bernoulli sample per element from its serial generator: on a `[8, 512, 384]`
//! activation that is 10-13 ms (forward and backward about 15 ms), more than the GELU on a tensor four times the
//! size, and a training step runs 13 of them (embeddings, and twice per layer). Here one 64-bit draw of the same
//! generator gives the keep/drop decision of four elements (15 random bits each), which costs about a third as
//! much (4 ms forward, 6 ms with the backward, measured on MiniLM's shapes at 2 threads). Seeding is unchanged:
//! `tch::manual_seed` makes the masks reproducible, as before. On other devices libtorch's fused kernel is used.

use tch::{Device, Kind, Tensor};

/// Random bits used per element: the drop probability is rounded to a multiple of `2^-15`.
const MASK_BITS: u32 = 15;

/// Inverted dropout: in training, each element is zeroed with probability `probability` and the others are scaled
/// by `1 / (1 - probability)`, so the expected value is unchanged; outside training (or with `probability` 0) the
/// input is returned as it is. On CPU the probability is rounded to a multiple of `2^-15` (0.1 becomes
/// 0.100006, and the scaling uses the rounded value); `probability >= 1` zeroes everything. Gradients flow through the kept elements, scaled the same way.
///
/// ```
/// use encoder::model::dropout;
/// use tch::{Device, Kind, Tensor};
/// tch::manual_seed(7);
/// let ones = Tensor::ones([100_000], (Kind::Float, Device::Cpu));
/// let dropped = dropout(&ones, 0.25, true);
/// let kept = dropped.gt(0.0).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
/// assert!((kept - 0.75).abs() < 0.01);
/// assert!((dropped.mean(Kind::Float).double_value(&[]) - 1.0).abs() < 0.02);
/// assert!(dropout(&ones, 0.25, false).equal(&ones));
/// ```
pub fn dropout(input: &Tensor, probability: f64, train: bool) -> Tensor {
    if !train || probability <= 0.0 {
        return input.shallow_clone();
    }
    let levels = f64::from(1u32 << MASK_BITS);
    let threshold = (probability * levels).round();
    if threshold >= levels {
        // Everything is dropped (`probability` at least 1, or within 2^-16 of it).
        return input * 0.0;
    }
    if input.device() != Device::Cpu {
        return input.dropout(probability, true);
    }
    input * keep_mask(input, threshold as i64, 1.0 / (1.0 - threshold / levels))
}

/// `scale` where an element is kept, 0 where it is dropped (its 15 random bits below `threshold`), shaped and typed
/// like `input`. `scale` is `1 / (1 - p)` of the rounded probability, so the expected value is exactly kept.
fn keep_mask(input: &Tensor, threshold: i64, scale: f64) -> Tensor {
    let elements = input.numel() as i64;
    // Each 64-bit draw is read as four 16-bit lanes; `random_` draws in [0, 2^63), so the top lane's sign bit is
    // always 0, and only the low 15 bits of every lane are used.
    let mut words = Tensor::empty([(elements + 3) / 4], (Kind::Int64, Device::Cpu));
    let lanes = words.random_().view_dtype(Kind::Int16).narrow(0, 0, elements).reshape(input.size());
    lanes.bitwise_and((1i64 << MASK_BITS) - 1).ge(threshold).to_kind(input.kind()) * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fraction_kept(dropped: &Tensor) -> f64 {
        dropped.ne(0.0).to_kind(Kind::Float).mean(Kind::Float).double_value(&[])
    }

    #[test]
    fn drops_the_requested_share_and_keeps_the_expected_value() {
        tch::manual_seed(1);
        let ones = Tensor::ones([8, 512, 384], (Kind::Float, Device::Cpu));
        for probability in [0.1, 0.5, 0.9] {
            let dropped = dropout(&ones, probability, true);
            // 1.57 million elements: the standard error of the kept share is below 0.0004.
            assert!((fraction_kept(&dropped) - (1.0 - probability)).abs() < 0.002, "p = {probability}");
            // Kept values are scaled by 1 / (1 - p), p rounded to a multiple of 2^-15 (a relative error below 1e-4).
            let kept_values = dropped.masked_select(&dropped.ne(0.0));
            let expected = 1.0 / (1.0 - probability);
            let error = ((kept_values - expected).abs().max().double_value(&[])) / expected;
            assert!(error < 1e-4, "p = {probability}: relative error {error}");
            assert!((dropped.mean(Kind::Float).double_value(&[]) - 1.0).abs() < 0.01, "p = {probability}");
        }
    }

    #[test]
    fn the_masks_are_independent_across_positions_and_calls() {
        tch::manual_seed(2);
        let ones = Tensor::ones([8, 512, 384], (Kind::Float, Device::Cpu));
        let first = dropout(&ones, 0.5, true).ne(0.0);
        let second = dropout(&ones, 0.5, true).ne(0.0);
        // Independent masks agree on about half of the elements; each of the four lanes of a draw drops its share
        // (393,216 elements per lane: a standard error of 0.0008).
        let agreement = first.eq_tensor(&second).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        assert!((agreement - 0.5).abs() < 0.004, "agreement {agreement}");
        let by_lane = first.view([-1, 4]).to_kind(Kind::Float).mean_dim([0i64].as_slice(), false, Kind::Float);
        for lane in 0..4 {
            let kept = by_lane.double_value(&[lane]);
            assert!((kept - 0.5).abs() < 0.004, "lane {lane} kept {kept}");
        }
    }

    #[test]
    fn gradients_pass_the_kept_elements_scaled() {
        tch::manual_seed(4);
        let input = Tensor::randn([5, 13], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let dropped = dropout(&input, 0.2, true);
        dropped.sum(Kind::Float).backward();
        // 1 / (1 - p), p rounded to a multiple of 2^-15.
        let expected = dropped.detach().ne(0.0).to_kind(Kind::Float) * (1.0 / 0.8);
        assert!((input.grad() - expected).abs().max().double_value(&[]) < 1e-4);
    }

    #[test]
    fn keeps_the_dtype_and_handles_the_edges() {
        let input = Tensor::randn([2, 3, 5], (Kind::BFloat16, Device::Cpu));
        let dropped = dropout(&input, 0.1, true);
        assert_eq!(dropped.kind(), Kind::BFloat16);
        assert_eq!(dropped.size(), input.size());
        assert!(dropout(&input, 0.0, true).equal(&input));
        assert!(dropout(&input, 0.7, false).equal(&input));
        assert_eq!(fraction_kept(&dropout(&input, 1.0, true)), 0.0);
        // An odd element count (not a multiple of the four lanes of a draw).
        let odd = Tensor::ones([7], (Kind::Float, Device::Cpu));
        assert_eq!(dropout(&odd, 0.5, true).size(), vec![7]);
    }
}

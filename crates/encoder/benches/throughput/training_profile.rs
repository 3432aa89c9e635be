//! `--step profile-training`: where a training step's time goes, forward (with autograd recording) and backward,
//! per operation group, next to the model's own forward + backward on the same batches.
//!
//! Each operation runs on fresh leaves (its inputs detached, requiring gradients, as every weight does when the
//! whole encoder trains), so its backward is exactly libtorch's backward of that operation: the gradients of its
//! inputs and weights, the dense `[vocab x hidden]` gradient of the word-embedding table included. The backward is
//! driven through `(output * upstream).sum()` with a random `upstream`; the cost of that product and its own
//! backward, measured on a leaf of the output's shape right after, is subtracted. Dropout is off (as with
//! `train = false`): the profile is of the arithmetic, and the model's pass it is checked against runs the same way;
//! the hidden dropout a training step adds is timed after it, libtorch's against `encoder::model::dropout`.
//! With `--precision bf16` (or `auto` resolving to it) the operations cast as the model does: the matrix products
//! and GELU in bf16 from f32 weights; the attention in `encoder::model::attention_kind` (f32 on CPU); the residual
//! stream and LayerNorms in f32.

use super::{load_encoder, profiled_batches, read_texts, round, Args, ModelWeights};
use anyhow::Result;
use encoder::{pool, Pooling};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Instant;
use tch::{Kind, Tensor};

/// Forward and backward seconds, and forward FLOPs, per operation group.
#[derive(Default)]
struct StepTimer {
    forward: BTreeMap<&'static str, f64>,
    backward: BTreeMap<&'static str, f64>,
    flops: BTreeMap<&'static str, f64>,
    /// The subtracted cost of driving each backward (the product with `upstream` and its backward).
    driver_seconds: f64,
}

impl StepTimer {
    /// Runs `op` on fresh leaves of `inputs`, timing its forward and then its backward; returns its output,
    /// detached (the next operation makes its own leaves).
    fn op(
        &mut self,
        name: &'static str,
        forward_flops: f64,
        inputs: &[&Tensor],
        op: impl FnOnce(&[Tensor]) -> Tensor,
    ) -> Result<Tensor> {
        let leaves: Vec<Tensor> = inputs.iter().map(|t| t.detach().set_requires_grad(true)).collect();
        let start = Instant::now();
        let output = op(&leaves);
        *self.forward.entry(name).or_default() += start.elapsed().as_secs_f64();
        *self.flops.entry(name).or_default() += forward_flops;
        let upstream = Tensor::randn_like(&output);

        let start = Instant::now();
        let root = (&output * &upstream).sum(Kind::Float);
        let gradients = Tensor::f_run_backward(&[root], &leaves, false, false)?;
        let seconds = start.elapsed().as_secs_f64();
        drop(gradients);

        // The driver alone: the same product and backward on a leaf of the output's shape.
        let leaf = output.detach().set_requires_grad(true);
        let start = Instant::now();
        let root = (&leaf * &upstream).sum(Kind::Float);
        let gradients = Tensor::f_run_backward(&[root], &[&leaf], false, false)?;
        let driver = start.elapsed().as_secs_f64();
        drop(gradients);
        self.driver_seconds += driver;
        *self.backward.entry(name).or_default() += (seconds - driver).max(0.0);
        Ok(output.detach())
    }
}

/// A linear layer computing in `compute` from f32 weights, as the model's `encoder::model::Projection` does in a
/// pass that records gradients.
fn linear(input: &Tensor, weight: &Tensor, bias: &Tensor, compute: Kind) -> Tensor {
    input.to_kind(compute).linear(&weight.to_kind(compute), Some(&bias.to_kind(compute)))
}

pub(super) fn profile_training(args: &Args) -> Result<Value> {
    let owned = read_texts(args)?;
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let (encoder, precision) = load_encoder(args)?.with_precision(args.precision)?;
    let compute = precision.precision.compute_kind();
    let config = encoder.config().clone();
    let weights = ModelWeights::of(&encoder)?;
    let batches = profiled_batches(&encoder, &texts, args.batch, args.every)?;
    let trainable: Vec<Tensor> =
        encoder.var_store().trainable_variables().into_iter().filter(Tensor::requires_grad).collect();
    let (h, heads, i) = (config.hidden_size, config.num_attention_heads, config.intermediate_size);
    let head_dim = h / heads;
    let eps = config.layer_norm_eps;

    // The model's own step on the same batches: forward with autograd, mean pooling, backward into every weight.
    let model_step = || -> Result<(f64, f64)> {
        let (mut forward, mut backward) = (0.0, 0.0);
        for (ids, mask) in &batches {
            let start = Instant::now();
            let output = encoder.model().forward_t(ids, Some(mask), None, false)?;
            let pooled = pool(&output.last_hidden_state, mask, Pooling::Mean);
            forward += start.elapsed().as_secs_f64();
            let upstream = Tensor::randn_like(&pooled);
            let start = Instant::now();
            let root = (&pooled * &upstream).sum(Kind::Float);
            let gradients = Tensor::f_run_backward(&[root], &trainable, false, false)?;
            drop(gradients);
            backward += start.elapsed().as_secs_f64();
        }
        Ok((forward, backward))
    };
    // Warm-up on the first batch, then the model's step before and after the operations.
    if let Some((ids, mask)) = batches.first() {
        let output = encoder.model().forward_t(ids, Some(mask), None, false)?;
        let root = pool(&output.last_hidden_state, mask, Pooling::Mean).sum(Kind::Float);
        drop(Tensor::f_run_backward(&[root], &trainable, false, false)?);
    }
    let model_before = model_step()?;

    let mut timer = StepTimer::default();
    for (ids, mask) in &batches {
        let (b, s) = (ids.size()[0], ids.size()[1]);
        let unpadded = mask.min().int64_value(&[]) == 1;
        let tokens = (b * s) as f64;
        let linear_flops = |input: i64, output: i64| 2.0 * tokens * (input * output) as f64;
        let attention = encoder::model::attention_kind(compute, ids.device());
        let additive = encoder::model::additive_attention_mask(mask, attention);
        let positions = Tensor::arange(s, (Kind::Int64, ids.device())).unsqueeze(0);
        let types = ids.zeros_like();
        let words = timer
            .op("word-embedding lookup", 0.0, &[&weights.word], |w| Tensor::embedding(&w[0], ids, -1, false, false))?;
        let mut hidden = timer.op(
            "position/type embeddings + LayerNorm",
            0.0,
            &[&words, &weights.position, &weights.token_type, &weights.embedding_norm.0, &weights.embedding_norm.1],
            |w| {
                let summed = &w[0]
                    + Tensor::embedding(&w[1], &positions, -1, false, false)
                    + Tensor::embedding(&w[2], &types, -1, false, false);
                summed.layer_norm([h], Some(&w[3]), Some(&w[4]), eps, false)
            },
        )?;
        for layer in &weights.layers {
            let project = |timer: &mut StepTimer, (weight, bias): &(Tensor, Tensor), input: &Tensor| {
                timer.op("q/k/v projections (GEMM)", linear_flops(h, h), &[input, weight, bias], |w| {
                    linear(&w[0], &w[1], &w[2], compute).view([b, s, heads, head_dim]).transpose(1, 2)
                })
            };
            let q = project(&mut timer, &layer.query, &hidden)?;
            let k = project(&mut timer, &layer.key, &hidden)?;
            let v = project(&mut timer, &layer.value, &hidden)?;
            // As the model does: no mask for a batch without padding.
            let mask_used = (!unpadded).then_some(&additive);
            let context = timer.op("attention (sdpa)", 4.0 * tokens * (s * h) as f64, &[&q, &k, &v], |w| {
                let (q, k, v) = (w[0].to_kind(attention), w[1].to_kind(attention), w[2].to_kind(attention));
                Tensor::scaled_dot_product_attention(&q, &k, &v, mask_used, 0.0, false, None, false).to_kind(compute)
            })?;
            let context =
                timer.op("merge heads (copy)", 0.0, &[&context], |w| w[0].transpose(1, 2).reshape([b, s, h]))?;
            let (weight, bias) = &layer.attention_out;
            let projected =
                timer.op("attention output (GEMM)", linear_flops(h, h), &[&context, weight, bias], |w| {
                    linear(&w[0], &w[1], &w[2], compute)
                })?;
            let norm = |timer: &mut StepTimer, a: &Tensor, residual: &Tensor, (weight, bias): &(Tensor, Tensor)| {
                timer.op("residual + LayerNorm", 0.0, &[a, residual, weight, bias], |w| {
                    (w[0].to_kind(Kind::Float) + &w[1]).layer_norm([h], Some(&w[2]), Some(&w[3]), eps, false)
                })
            };
            let attended = norm(&mut timer, &projected, &hidden, &layer.attention_norm)?;
            let (weight, bias) = &layer.intermediate;
            let expanded = timer.op("feed-forward in (GEMM)", linear_flops(h, i), &[&attended, weight, bias], |w| {
                linear(&w[0], &w[1], &w[2], compute)
            })?;
            let activated = timer.op("GELU", 0.0, &[&expanded], |w| w[0].gelu("none"))?;
            let (weight, bias) = &layer.output;
            let contracted =
                timer.op("feed-forward out (GEMM)", linear_flops(i, h), &[&activated, weight, bias], |w| {
                    linear(&w[0], &w[1], &w[2], compute)
                })?;
            hidden = norm(&mut timer, &contracted, &attended, &layer.output_norm)?;
        }
        let _pooled = timer.op("mean pooling", 0.0, &[&hidden], |w| pool(&w[0], mask, Pooling::Mean))?;
    }
    let model_after = model_step()?;
    let dropout = dropout_cost(&batches, &config, compute)?;

    let forward_total: f64 = timer.forward.values().sum();
    let backward_total: f64 = timer.backward.values().sum();
    let parts: Vec<Value> = timer
        .forward
        .iter()
        .map(|(&name, &forward)| {
            let backward = timer.backward.get(name).copied().unwrap_or(0.0);
            let flops = timer.flops.get(name).copied().unwrap_or(0.0);
            // A GEMM's backward is two GEMMs of the forward's size (input and weight gradients); attention's is
            // counted the same way.
            let rate = |seconds: f64, factor: f64| (flops > 0.0).then(|| round(factor * flops / seconds / 1e9, 2));
            json!({
                "part": name,
                "forward_seconds": round(forward, 4),
                "backward_seconds": round(backward, 4),
                "backward_share": round(backward / backward_total, 4),
                "step_share": round((forward + backward) / (forward_total + backward_total), 4),
                "forward_gflops": rate(forward, 1.0),
                "backward_gflops": rate(backward, 2.0),
            })
        })
        .collect();
    let tokens: i64 = batches.iter().map(|(ids, _)| ids.numel() as i64).sum();
    let pick = |(forward, backward): (f64, f64)| json!([round(forward, 4), round(backward, 4)]);
    let best = |f: fn(&(f64, f64)) -> f64| round(f(&model_before).min(f(&model_after)), 4);
    Ok(json!({
        "bench": "encoder.profile_training",
        "corpus": args.corpus,
        "max_length": args.max_length,
        "batch": args.batch,
        "every": args.every,
        "batches": batches.len(),
        "padded_tokens": tokens,
        "threads": tch::get_num_threads(),
        "precision": precision.precision.to_string(),
        "trainable_tensors": trainable.len(),
        "model_forward_seconds": best(|t| t.0),
        "model_backward_seconds": best(|t| t.1),
        "model_seconds_before_after": [pick(model_before), pick(model_after)],
        "parts_forward_seconds": round(forward_total, 4),
        "parts_backward_seconds": round(backward_total, 4),
        "driver_seconds_subtracted": round(timer.driver_seconds, 4),
        "parts": parts,
        "dropout": dropout,
    }))
}

/// The hidden dropout a training step runs (after the embeddings, and after each layer's attention output and
/// feed-forward: `1 + 2 x layers` calls on `[batch, seq, hidden]` states in the `compute` dtype), not among the
/// parts (the profile runs without dropout): libtorch's `dropout` against `encoder::model::dropout`, forward and
/// backward, alternating which goes first from call to call.
fn dropout_cost(batches: &[(Tensor, Tensor)], config: &encoder::BertConfig, compute: Kind) -> Result<Value> {
    let probability = config.hidden_dropout_prob;
    let calls = 1 + 2 * config.num_hidden_layers;
    type Dropout = fn(&Tensor, f64) -> Tensor;
    let ways: [(&'static str, Dropout); 2] =
        [("libtorch", |x, p| x.dropout(p, true)), ("ours", |x, p| encoder::model::dropout(x, p, true))];
    let mut timer = StepTimer::default();
    for (index, (ids, _)) in batches.iter().enumerate() {
        let states = Tensor::randn([ids.size()[0], ids.size()[1], config.hidden_size], (compute, ids.device()));
        for call in 0..calls as usize {
            let first = (index + call) % 2;
            for (name, apply) in [ways[first], ways[1 - first]] {
                drop(timer.op(name, 0.0, &[&states], |w| apply(&w[0], probability))?);
            }
        }
    }
    let seconds = |name| {
        json!({
            "forward_seconds": round(timer.forward.get(name).copied().unwrap_or(0.0), 4),
            "backward_seconds": round(timer.backward.get(name).copied().unwrap_or(0.0), 4),
        })
    };
    Ok(json!({
        "probability": probability,
        "calls_per_batch": calls,
        "libtorch": seconds("libtorch"),
        "ours": seconds("ours"),
    }))
}

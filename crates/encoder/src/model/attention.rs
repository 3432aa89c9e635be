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
            dropout: config.attention_probs_dropout_prob,
        }
    }

    /// `hidden` holds the real tokens' states as rows, `[tokens, hidden]` (see [`Packing`]). The projections run on
    /// the rows; only the attention itself ([`Packing::attend`]) sees sequences side by side. Returns the per-head
    /// contexts merged back to rows, `[tokens, hidden]`, in the `compute` dtype (the dtype of the projections). The
    /// attention computes in [`attention_kind`], the dtype `packing`'s masks were built in.
    pub fn forward_t(&self, hidden: &Tensor, packing: &Packing, train: bool, compute: Kind) -> Tensor {
        let hidden = hidden.to_kind(compute);
        let attention = attention_kind(compute, hidden.device());
        let project = |projection: &Projection| projection.forward(&hidden, compute).to_kind(attention);
        let dropout = if train { self.dropout } else { 0.0 };
        packing
            .attend(&project(&self.query), &project(&self.key), &project(&self.value), self.num_heads, dropout)
            .to_kind(compute)
    }

    pub(crate) fn cast_weights(&mut self, compute: Option<Kind>) {
        for projection in [&mut self.query, &mut self.key, &mut self.value] {
            projection.cast_weights(compute);
        }
    }
}

/// Where a batch's real tokens sit in its padded `[batch, seq]` layout, and how the attention groups them. Between
/// the attentions, the layers work on the real tokens only, as rows of a `[tokens, hidden]` matrix: padding costs the
/// projections and the feed-forward nothing. The attention, which needs each sequence's tokens side by side, runs
/// on groups of sequences of similar length, each padded only to its own longest (see [`Packing::attend`]). Without
/// padding the rows are the padded layout itself, packing is a reshape, and the attention is one call without a
/// mask. (Measured with `cargo bench -p bertmt --bench server_load`: texts of mixed lengths embedded 32 at a time in
/// arrival order, as a server's requests come, ran 1.6x faster at f32 and 1.2x at bf16 with packed rows than with
/// the padded layout.)
#[derive(Debug)]
pub struct Packing {
    batch: i64,
    seq: i64,
    /// `None` when every position is real.
    padded: Option<Padded>,
}

/// The packing of a batch with padding.
#[derive(Debug)]
struct Padded {
    /// The flat positions (`b * seq + s`) of the real tokens, in order.
    real: Tensor,
    /// The attention's groups of sequences.
    groups: Vec<AttentionGroup>,
    /// Rows in the groups' order (group after group, each sequence's tokens in order) back to the packed order;
    /// `None` when the two orders are the same.
    restore: Option<Tensor>,
}

/// Sequences whose attention runs in one call, padded to the longest of them.
#[derive(Debug)]
struct AttentionGroup {
    /// Sequences in the group.
    sequences: i64,
    /// Their longest length: the group's padded length.
    length: i64,
    /// For each of the group's `sequences * length` padded slots, the packed row that fills it, or the row count
    /// (one past the last row: a zero row) for padding.
    slots: Tensor,
    /// The slots holding real tokens, in order (`None`: all of them).
    real_slots: Option<Tensor>,
    /// The additive mask `[sequences, 1, 1, length]` for the group's padding (`None`: no padding in the group).
    mask: Option<Tensor>,
}

/// What a separate attention call costs beyond its arithmetic, in the units of [`group_cost`] (one sequence's
/// query-key pair): the call's own fixed work (the gathers, the kernel's set-up, the copies back) is worth about as
/// much as the attention of this many pairs. Chosen on MiniLM's shapes on a 2-core CPU (`cargo bench -p bertmt
/// --bench server_load`, GMB sentences 32 at a time in arrival order): 1024, 4096 and 16384 measured alike within
/// the machine's noise, and all about 1.35x faster than one call padding the batch to its longest sentence.
const GROUP_OVERHEAD: i64 = 4096;

/// The cost of one attention call over `sequences` sequences padded to `length`: its query-key pairs, plus the
/// padded slots' copies, plus the call itself.
fn group_cost(sequences: i64, length: i64) -> i64 {
    sequences * length * (length + 32) + GROUP_OVERHEAD
}

/// Splits sequences of the given lengths into attention groups: sorted longest first, then cut into runs so that
/// the total [`group_cost`] is least (an exact dynamic programme over the cuts; batches are small). Returns each
/// group's sequence indices, longest first. Sequences of length 0 belong to no group.
pub(crate) fn attention_groups(lengths: &[i64]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).filter(|&index| lengths[index] > 0).collect();
    order.sort_by_key(|&index| std::cmp::Reverse(lengths[index]));
    let count = order.len();
    // best[j]: the least cost of grouping order[..j]; cut[j]: where the last of those groups starts.
    let mut best = vec![0_i64; count + 1];
    let mut cut = vec![0_usize; count + 1];
    for end in 1..=count {
        best[end] = i64::MAX;
        for start in 0..end {
            let cost = best[start] + group_cost((end - start) as i64, lengths[order[start]]);
            if cost < best[end] {
                best[end] = cost;
                cut[end] = start;
            }
        }
    }
    let mut groups = Vec::new();
    let mut end = count;
    while end > 0 {
        groups.push(order[cut[end]..end].to_vec());
        end = cut[end];
    }
    groups.reverse();
    groups
}

impl Packing {
    /// The packing of a `[batch, seq]` 1/0 mask (`None`: no padding); group masks are built in `attention_kind`.
    pub fn new(batch: i64, seq: i64, mask: Option<&Tensor>, attention_kind: Kind) -> Self {
        let padded = mask.map(|mask| Padded::new(batch, mask, attention_kind));
        Self { batch, seq, padded }
    }

    /// `[batch * seq, width]` (or `[batch, seq, width]`) to the real tokens' rows, `[tokens, width]`.
    pub fn pack(&self, padded: &Tensor) -> Tensor {
        let flat = padded.reshape([self.batch * self.seq, -1]);
        match &self.padded {
            Some(padding) => flat.index_select(0, &padding.real),
            None => flat,
        }
    }

    /// The real tokens' rows, `[tokens, width]`, back to `[batch * seq, width]`, with zeros at padding.
    pub fn pad(&self, rows: &Tensor) -> Tensor {
        match &self.padded {
            Some(padding) => {
                let width = rows.size()[1];
                Tensor::zeros([self.batch * self.seq, width], (rows.kind(), rows.device())).index_copy(
                    0,
                    &padding.real,
                    rows,
                )
            }
            None => rows.shallow_clone(),
        }
    }

    /// `softmax(q k^T / sqrt(d) + mask) v` per head, each token attending to the real tokens of its own sequence,
    /// with dropout `dropout` on the probabilities: `query`, `key` and `value` are token rows `[tokens, heads *
    /// head_dim]`, and so is the result. Each group of sequences is one call of libtorch's fused kernel, padded to
    /// the group's longest sequence: a batch of mixed lengths pads little, where one call would pad every sequence
    /// to the batch's longest.
    pub fn attend(&self, query: &Tensor, key: &Tensor, value: &Tensor, heads: i64, dropout: f64) -> Tensor {
        let width = query.size()[1];
        let head_dim = width / heads;
        let attention = |query: &Tensor, key: &Tensor, value: &Tensor, sequences: i64, length: i64, mask| {
            let split = |rows: &Tensor| rows.view([sequences, length, heads, head_dim]).transpose(1, 2);
            Tensor::scaled_dot_product_attention(
                &split(query),
                &split(key),
                &split(value),
                mask,
                dropout,
                false,
                None,
                false,
            )
            .transpose(1, 2)
            .reshape([sequences * length, width])
        };
        let Some(padding) = &self.padded else {
            return attention(query, key, value, self.batch, self.seq, None);
        };
        match padding.groups.as_slice() {
            // Not a real token in the batch: no rows, nothing to attend.
            [] => return query.zeros_like(),
            // One group without padding, in the rows' order (equal lengths, or whole rows of padding only): the
            // rows are the group's layout already.
            [group] if group.mask.is_none() && padding.restore.is_none() => {
                return attention(query, key, value, group.sequences, group.length, None);
            }
            _ => {}
        }
        // One zero row past the last: the padded slots read it.
        let with_zero_row =
            |rows: &Tensor| Tensor::cat(&[rows, &Tensor::zeros([1, width], (rows.kind(), rows.device()))], 0);
        let (query, key, value) = (with_zero_row(query), with_zero_row(key), with_zero_row(value));
        let outputs: Vec<Tensor> = padding
            .groups
            .iter()
            .map(|group| {
                let gather = |rows: &Tensor| rows.index_select(0, &group.slots);
                let context = attention(
                    &gather(&query),
                    &gather(&key),
                    &gather(&value),
                    group.sequences,
                    group.length,
                    group.mask.as_ref(),
                );
                match &group.real_slots {
                    Some(real) => context.index_select(0, real),
                    None => context,
                }
            })
            .collect();
        let grouped = if outputs.len() == 1 { outputs[0].shallow_clone() } else { Tensor::cat(&outputs, 0) };
        match &padding.restore {
            Some(restore) => grouped.index_select(0, restore),
            None => grouped,
        }
    }
}

impl Padded {
    fn new(batch: i64, mask: &Tensor, attention_kind: Kind) -> Self {
        let device = mask.device();
        let real = mask.reshape([-1]).nonzero().squeeze_dim(1);
        // Any nonzero value is a real token, as for `real`.
        let sums = mask.ne(0).sum_dim_intlist(1, false, Kind::Int64).to_device(Device::Cpu);
        let lengths: Vec<i64> = (0..batch).map(|sequence| sums.int64_value(&[sequence])).collect();
        let tokens: i64 = lengths.iter().sum();
        // Sequence b's real tokens are rows first_row[b] .. first_row[b] + lengths[b] of the packed rows.
        let first_row: Vec<i64> = lengths
            .iter()
            .scan(0_i64, |next, &length| {
                let first = *next;
                *next += length;
                Some(first)
            })
            .collect();
        let index = |values: Vec<i64>| Tensor::from_slice(&values).to_device(device);
        let mut order = Vec::with_capacity(usize::try_from(tokens).unwrap_or(0));
        let groups = attention_groups(&lengths)
            .into_iter()
            .map(|members| {
                let length = lengths[members[0]];
                let mut slots = Vec::with_capacity(members.len() * length as usize);
                let mut real_slots = Vec::new();
                for &member in &members {
                    for position in 0..length {
                        if position < lengths[member] {
                            real_slots.push(slots.len() as i64);
                            slots.push(first_row[member] + position);
                            order.push(first_row[member] + position);
                        } else {
                            slots.push(tokens);
                        }
                    }
                }
                let padded = real_slots.len() < slots.len();
                let mask = padded.then(|| {
                    let keep: Vec<i64> = slots.iter().map(|&row| i64::from(row < tokens)).collect();
                    let keep = index(keep).view([members.len() as i64, length]);
                    super::additive_attention_mask(&keep, attention_kind)
                });
                AttentionGroup {
                    sequences: members.len() as i64,
                    length,
                    slots: index(slots),
                    real_slots: padded.then(|| index(real_slots)),
                    mask,
                }
            })
            .collect();
        let in_order = order.iter().enumerate().all(|(position, &row)| position as i64 == row);
        let restore = (!in_order).then(|| {
            let mut restore = vec![0_i64; order.len()];
            for (position, &row) in order.iter().enumerate() {
                restore[row as usize] = position as i64;
            }
            index(restore)
        });
        Self { real, groups, restore }
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

    /// Attention over the token rows `hidden` (`[tokens, hidden]`, see [`Packing`]), matrix products in `compute`.
    pub fn forward_t(&self, hidden: &Tensor, packing: &Packing, train: bool, compute: Kind) -> Tensor {
        let context = self.self_attention.forward_t(hidden, packing, train, compute);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_groups_hold_every_real_sequence_once_longest_first() {
        let lengths = [3, 100, 4, 0, 90, 5, 3];
        let groups = attention_groups(&lengths);
        let mut members: Vec<usize> = groups.iter().flatten().copied().collect();
        members.sort_unstable();
        assert_eq!(members, [0, 1, 2, 4, 5, 6], "each sequence with a token once, the empty one in none");
        let in_order: Vec<i64> = groups.iter().flatten().map(|&member| lengths[member]).collect();
        assert!(in_order.windows(2).all(|pair| pair[0] >= pair[1]), "{in_order:?}");
        // The long ones apart from the short ones: one call padding all to 100 would cost more.
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert_eq!(groups[0], [1, 4]);
    }

    #[test]
    fn sequences_of_similar_length_share_one_call() {
        // Splitting costs a call's overhead, more than the little padding it would save.
        assert_eq!(attention_groups(&[20, 18, 19, 17, 20, 16]).len(), 1);
        assert_eq!(attention_groups(&[7; 64]).len(), 1);
        assert!(attention_groups(&[0, 0]).is_empty());
    }
}

//! Adam and AdamW over named parameter groups, each with its own learning rate (for layer-wise rates), with
//! global gradient-norm clipping. Updates follow `torch.optim.Adam` / `torch.optim.AdamW` step for step, in place,
//! with libtorch's fused kernel (`fused=True` in PyTorch): one pass over each parameter, its gradient and moments.
//! Weight decay skips biases and LayerNorm parameters ([`heads::takes_weight_decay`]).

use crate::config::OptimizerKind;
use crate::error::{Result, TrainError};
use heads::{takes_weight_decay, ParamGroup};
use tch::{Kind, Tensor};

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;

/// One parameter with its two moments.
struct ParamState {
    name: String,
    tensor: Tensor,
    first_moment: Tensor,
    second_moment: Tensor,
}

/// Parameters that share a learning rate and a weight decay.
struct UpdateSet {
    weight_decay: f64,
    params: Vec<ParamState>,
}

struct GroupState {
    name: String,
    learning_rate: f64,
    /// The weights that decay, then the biases and LayerNorm parameters (no decay); empty sets are dropped.
    sets: Vec<UpdateSet>,
}

/// Adam or AdamW with per-group learning rates.
pub struct Adam {
    groups: Vec<GroupState>,
    kind: OptimizerKind,
    steps: i64,
}

impl Adam {
    /// An optimizer over the trainable parameters of `groups`.
    pub fn new(groups: Vec<ParamGroup>, kind: OptimizerKind) -> Self {
        let weight_decay = match kind {
            OptimizerKind::Adam { weight_decay } | OptimizerKind::AdamW { weight_decay } => weight_decay,
        };
        let groups = groups
            .into_iter()
            .map(|group| {
                let (decaying, fixed): (Vec<_>, Vec<_>) =
                    group.parameters.into_iter().partition(|(name, _)| takes_weight_decay(name));
                let set = |weight_decay: f64, params: Vec<(String, Tensor)>| UpdateSet {
                    weight_decay,
                    params: params
                        .into_iter()
                        .map(|(name, tensor)| ParamState {
                            name,
                            first_moment: tensor.zeros_like(),
                            second_moment: tensor.zeros_like(),
                            tensor,
                        })
                        .collect(),
                };
                let sets = [set(weight_decay, decaying), set(0.0, fixed)]
                    .into_iter()
                    .filter(|set| !set.params.is_empty())
                    .collect();
                GroupState { name: group.name, learning_rate: group.lr, sets }
            })
            .collect();
        Self { groups, kind, steps: 0 }
    }

    fn params(&self) -> impl Iterator<Item = &ParamState> {
        self.groups.iter().flat_map(|g| &g.sets).flat_map(|s| &s.params)
    }

    /// Number of values the optimizer updates.
    pub fn parameter_count(&self) -> i64 {
        self.params().map(|p| p.tensor.numel() as i64).sum()
    }

    /// The groups' names and base learning rates.
    pub fn learning_rates(&self) -> Vec<(String, f64)> {
        self.groups.iter().map(|g| (g.name.clone(), g.learning_rate)).collect()
    }

    /// Updates taken so far.
    pub fn steps(&self) -> i64 {
        self.steps
    }

    /// Each parameter's name with its first and second moments (the state a resumed run needs, with
    /// [`steps`](Self::steps)).
    pub fn moments(&self) -> Vec<(&str, &Tensor, &Tensor)> {
        self.params().map(|p| (p.name.as_str(), &p.first_moment, &p.second_moment)).collect()
    }

    /// Sets the step count and every parameter's moments from `saved` (name, first or second moment → values),
    /// as [`moments`](Self::moments) gave them.
    pub(crate) fn restore(
        &mut self,
        steps: i64,
        mut saved: impl FnMut(&str, bool, &Tensor) -> Result<()>,
    ) -> Result<()> {
        for param in self.groups.iter_mut().flat_map(|g| &mut g.sets).flat_map(|s| &mut s.params) {
            saved(&param.name, true, &param.first_moment)?;
            saved(&param.name, false, &param.second_moment)?;
        }
        self.steps = steps;
        Ok(())
    }

    /// Clears the gradients.
    pub fn zero_grad(&mut self) {
        for set in self.groups.iter_mut().flat_map(|g| &mut g.sets) {
            for param in &mut set.params {
                param.tensor.zero_grad();
            }
        }
    }

    /// Scales gradients so that their global L2 norm is at most `max_norm`; returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Result<f64> {
        let grads: Vec<Tensor> = self.params().map(|p| p.tensor.grad()).filter(Tensor::defined).collect();
        if grads.is_empty() {
            return Ok(0.0);
        }
        let norms = grads.iter().map(|g| g.f_norm()).collect::<std::result::Result<Vec<_>, _>>()?;
        let norm = Tensor::f_stack(&norms, 0)?.f_norm()?.f_double_value(&[])?;
        if norm > max_norm {
            let scale = max_norm / (norm + 1e-6);
            tch::no_grad(|| grads.into_iter().try_for_each(|mut grad| grad.f_mul_scalar_(scale).map(drop)))?;
        }
        Ok(norm)
    }

    /// One update with each group's learning rate times `lr_factor` (the schedule).
    pub fn step(&mut self, lr_factor: f64) -> Result<()> {
        self.steps += 1;
        let decoupled = matches!(self.kind, OptimizerKind::AdamW { .. });
        let mut step: Option<Tensor> = None;
        for group in &mut self.groups {
            let lr = group.learning_rate * lr_factor;
            for set in &mut group.sets {
                let mut live: Vec<&mut ParamState> = Vec::with_capacity(set.params.len());
                let mut grads = Vec::with_capacity(set.params.len());
                for param in &mut set.params {
                    let grad = param.tensor.grad();
                    if grad.defined() {
                        grads.push(grad);
                        live.push(param);
                    }
                }
                let Some(first) = live.first() else { continue };
                // The step count as the float scalar the kernel reads, on the parameters' device.
                let step = match &step {
                    Some(step) => step,
                    None => step.insert(Tensor::f_full([], self.steps as f64, (Kind::Float, first.tensor.device()))?),
                };
                fused_adam(decoupled, &mut live, &mut grads, step, lr, set.weight_decay)?;
            }
        }
        Ok(())
    }
}

/// Calls libtorch's fused Adam/AdamW kernel (`csrc/fused_adam.cpp`) on `params`.
fn fused_adam(
    decoupled: bool,
    params: &mut [&mut ParamState],
    grads: &mut [Tensor],
    step: &Tensor,
    lr: f64,
    weight_decay: f64,
) -> Result<()> {
    use std::ffi::{c_char, c_int, CStr};
    use torch_sys::C_tensor;

    extern "C" {
        fn bertmt_fused_adam(
            decoupled: c_int,
            params: *const *mut C_tensor,
            grads: *const *mut C_tensor,
            exp_avgs: *const *mut C_tensor,
            exp_avg_sqs: *const *mut C_tensor,
            step: *const C_tensor,
            count: c_int,
            lr: f64,
            beta1: f64,
            beta2: f64,
            weight_decay: f64,
            eps: f64,
        ) -> *mut c_char;
        fn bertmt_free_message(message: *mut c_char);
    }

    let count = c_int::try_from(params.len())
        .map_err(|_| TrainError::InvalidConfig(format!("{} parameters in one optimizer group", params.len())))?;
    let mut tensors: Vec<*mut C_tensor> = Vec::with_capacity(params.len());
    let mut first_moments = Vec::with_capacity(params.len());
    let mut second_moments = Vec::with_capacity(params.len());
    for param in params.iter_mut() {
        tensors.push(param.tensor.as_mut_ptr());
        first_moments.push(param.first_moment.as_mut_ptr());
        second_moments.push(param.second_moment.as_mut_ptr());
    }
    let grads: Vec<*mut C_tensor> = grads.iter_mut().map(Tensor::as_mut_ptr).collect();
    // SAFETY: every pointer is the live `at::Tensor` handle of a `tch::Tensor` borrowed for this call, and the four
    // arrays hold `count` handles each. The kernel updates the tensors' storage in place and keeps no handle.
    let message = unsafe {
        bertmt_fused_adam(
            c_int::from(decoupled),
            tensors.as_ptr(),
            grads.as_ptr(),
            first_moments.as_ptr(),
            second_moments.as_ptr(),
            step.as_ptr(),
            count,
            lr,
            BETA1,
            BETA2,
            weight_decay,
            EPSILON,
        )
    };
    if message.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null result is a NUL-terminated string from malloc, ours to free once.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned();
    unsafe { bertmt_free_message(message) };
    Err(TrainError::Torch(tch::TchError::Torch(format!("fused Adam update: {text}"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn group(tensor: &Tensor, lr: f64) -> Vec<ParamGroup> {
        vec![ParamGroup { name: "g".into(), lr, parameters: vec![("w".into(), tensor.shallow_clone())] }]
    }

    #[test]
    fn first_adam_step_moves_each_weight_by_the_learning_rate() {
        // With bias correction, Adam's first step is lr * sign(grad) (up to epsilon).
        let w = Tensor::from_slice(&[1.0f32, -2.0, 3.0]).set_requires_grad(true);
        let mut adam = Adam::new(group(&w, 0.1), OptimizerKind::default());
        (&w * Tensor::from_slice(&[2.0f32, -3.0, 0.5])).sum(Kind::Float).backward();
        adam.step(1.0).expect("step");
        let expected = Tensor::from_slice(&[0.9f32, -1.9, 2.9]);
        assert!((&w - expected).abs().max().double_value(&[]) < 1e-6);
    }

    #[test]
    fn adam_minimises_a_quadratic_and_clipping_bounds_the_norm() {
        let w = Tensor::from_slice(&[5.0f32, -4.0]).set_requires_grad(true);
        let mut adam = Adam::new(group(&w, 0.1), OptimizerKind::AdamW { weight_decay: 0.0 });
        for _ in 0..300 {
            adam.zero_grad();
            (&w * &w).sum(Kind::Float).backward();
            let norm = adam.clip_grad_norm(1.0).expect("clip");
            assert!(norm >= 0.0);
            let clipped = w.grad().norm().double_value(&[]);
            assert!(clipped <= 1.0 + 1e-4, "clipped norm {clipped}");
            adam.step(1.0).expect("step");
        }
        assert!(w.abs().max().double_value(&[]) < 0.1, "{w:?}");
        let _ = Device::Cpu;
    }

    #[test]
    fn adamw_decays_weights_but_not_biases_and_matches_torch() {
        // torch.optim.AdamW(lr=0.1, weight_decay=0.5), two steps on loss = sum(w * [2, -3]) + sum(b):
        // the weight shrinks by lr * wd before each Adam step, the bias (no decay) only takes the Adam steps.
        let w = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
        let b = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
        let groups = vec![ParamGroup {
            name: "g".into(),
            lr: 0.1,
            parameters: vec![("head.weight".into(), w.shallow_clone()), ("head.bias".into(), b.shallow_clone())],
        }];
        let mut adamw = Adam::new(groups, OptimizerKind::AdamW { weight_decay: 0.5 });
        for _ in 0..2 {
            adamw.zero_grad();
            ((&w * Tensor::from_slice(&[2.0f32, -3.0])).sum(Kind::Float) + b.sum(Kind::Float)).backward();
            adamw.step(1.0).expect("step");
        }
        // Constant gradients: each Adam step is lr * sign(g) (m / sqrt(v) = sign(g) after bias correction).
        let expected_w = [(1.0 * 0.95 - 0.1) * 0.95 - 0.1, (-2.0 * 0.95 + 0.1) * 0.95 + 0.1];
        for (i, expected) in expected_w.iter().enumerate() {
            assert!((w.double_value(&[i as i64]) - expected).abs() < 1e-5, "w[{i}] {w:?}");
        }
        assert!((b.double_value(&[0]) - 0.8).abs() < 1e-5, "the bias took no decay: {b:?}");
    }

    #[test]
    fn parameters_without_gradient_are_left_alone() {
        let w = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
        let mut adam = Adam::new(group(&w, 0.1), OptimizerKind::default());
        adam.step(1.0).expect("step");
        assert_eq!(w.double_value(&[0]), 1.0);
        assert_eq!(adam.parameter_count(), 1);
    }

    /// `torch.optim.Adam`/`AdamW` written out in f64, one value at a time: the oracle for the fused kernel.
    struct Reference {
        value: f64,
        m: f64,
        v: f64,
    }

    impl Reference {
        fn step(&mut self, grad: f64, lr: f64, weight_decay: f64, decoupled: bool, t: i32) {
            let grad = if decoupled {
                self.value *= 1.0 - lr * weight_decay;
                grad
            } else {
                grad + weight_decay * self.value
            };
            self.m = BETA1 * self.m + (1.0 - BETA1) * grad;
            self.v = BETA2 * self.v + (1.0 - BETA2) * grad * grad;
            let m_hat = self.m / (1.0 - BETA1.powi(t));
            let v_hat = self.v / (1.0 - BETA2.powi(t));
            self.value -= lr * m_hat / (v_hat.sqrt() + EPSILON);
        }
    }

    #[test]
    fn fused_updates_match_the_reference_formula_per_group_decay_and_kind() {
        for kind in [OptimizerKind::Adam { weight_decay: 0.1 }, OptimizerKind::AdamW { weight_decay: 0.1 }] {
            let decoupled = matches!(kind, OptimizerKind::AdamW { .. });
            let start = [[0.5f32, -1.5, 2.0], [0.25, 1.0, -0.75], [3.0, -2.0, 1.0]];
            let tensors: Vec<Tensor> =
                start.iter().map(|values| Tensor::from_slice(values).set_requires_grad(true)).collect();
            // Two groups with their own rates; "x.bias" takes no decay.
            let groups = vec![
                ParamGroup {
                    name: "encoder".into(),
                    lr: 0.01,
                    parameters: vec![
                        ("x.weight".into(), tensors[0].shallow_clone()),
                        ("x.bias".into(), tensors[1].shallow_clone()),
                    ],
                },
                ParamGroup {
                    name: "head".into(),
                    lr: 0.05,
                    parameters: vec![("y.weight".into(), tensors[2].shallow_clone())],
                },
            ];
            let settings = [(0.01, 0.1), (0.01, 0.0), (0.05, 0.1)];
            let mut reference: Vec<Vec<Reference>> = start
                .iter()
                .map(|values| {
                    values.iter().map(|&value| Reference { value: f64::from(value), m: 0.0, v: 0.0 }).collect()
                })
                .collect();
            let mut adam = Adam::new(groups, kind);
            let targets = Tensor::from_slice(&[1.0f32, -1.0, 0.5]);
            for t in 1..=5 {
                adam.zero_grad();
                // loss = sum(w^3 * target): gradients change every step.
                let loss: Tensor = tensors.iter().map(|w| (w.pow_tensor_scalar(3) * &targets).sum(Kind::Float)).sum();
                loss.backward();
                let grads: Vec<Vec<f64>> = tensors
                    .iter()
                    .map(|w| Vec::<f64>::try_from(w.grad().to_kind(Kind::Double)).expect("grad"))
                    .collect();
                let factor = 1.0 - 0.1 * f64::from(t); // a decaying schedule
                adam.step(factor).expect("step");
                for ((values, grads), &(lr, weight_decay)) in reference.iter_mut().zip(&grads).zip(&settings) {
                    for (value, &grad) in values.iter_mut().zip(grads) {
                        value.step(grad, lr * factor, weight_decay, decoupled, t);
                    }
                }
                for (tensor, values) in tensors.iter().zip(&reference) {
                    let ours = Vec::<f64>::try_from(tensor.to_kind(Kind::Double)).expect("values");
                    for (ours, theirs) in ours.iter().zip(values) {
                        assert!((ours - theirs.value).abs() < 1e-5, "{kind:?} step {t}: {ours} vs {}", theirs.value);
                    }
                }
            }
        }
    }
}

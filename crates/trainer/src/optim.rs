//! Adam and AdamW over named parameter groups, each with its own learning rate (for layer-wise rates), with
//! global gradient-norm clipping. Updates follow `torch.optim.Adam` / `torch.optim.AdamW` step for step, in place.
//! Weight decay skips biases and LayerNorm parameters ([`heads::takes_weight_decay`]).

use crate::config::OptimizerKind;
use heads::{takes_weight_decay, ParamGroup};
use tch::Tensor;

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;

struct ParamState {
    tensor: Tensor,
    first_moment: Tensor,
    second_moment: Tensor,
    /// Whether weight decay applies.
    decays: bool,
}

struct GroupState {
    name: String,
    learning_rate: f64,
    params: Vec<ParamState>,
}

/// Adam or AdamW with per-group learning rates.
pub struct Adam {
    groups: Vec<GroupState>,
    kind: OptimizerKind,
    steps: i32,
}

impl Adam {
    /// An optimizer over the trainable parameters of `groups`.
    pub fn new(groups: Vec<ParamGroup>, kind: OptimizerKind) -> Self {
        let groups = groups
            .into_iter()
            .map(|group| GroupState {
                name: group.name,
                learning_rate: group.lr,
                params: group
                    .parameters
                    .into_iter()
                    .map(|(name, tensor)| ParamState {
                        first_moment: tensor.zeros_like(),
                        second_moment: tensor.zeros_like(),
                        decays: takes_weight_decay(&name),
                        tensor,
                    })
                    .collect(),
            })
            .collect();
        Self { groups, kind, steps: 0 }
    }

    /// Number of values the optimizer updates.
    pub fn parameter_count(&self) -> i64 {
        self.groups.iter().flat_map(|g| &g.params).map(|p| p.tensor.numel() as i64).sum()
    }

    /// The groups' names and base learning rates.
    pub fn learning_rates(&self) -> Vec<(String, f64)> {
        self.groups.iter().map(|g| (g.name.clone(), g.learning_rate)).collect()
    }

    /// Clears the gradients.
    pub fn zero_grad(&mut self) {
        for param in self.groups.iter_mut().flat_map(|g| &mut g.params) {
            param.tensor.zero_grad();
        }
    }

    /// Scales gradients so that their global L2 norm is at most `max_norm`; returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let grads: Vec<Tensor> =
            self.groups.iter().flat_map(|g| &g.params).map(|p| p.tensor.grad()).filter(Tensor::defined).collect();
        if grads.is_empty() {
            return 0.0;
        }
        let squares: Vec<Tensor> = grads.iter().map(|g| g.pow_tensor_scalar(2).sum(g.kind())).collect();
        let norm = Tensor::stack(&squares, 0).sum(tch::Kind::Float).sqrt().double_value(&[]);
        if norm > max_norm {
            let scale = max_norm / (norm + 1e-6);
            tch::no_grad(|| {
                for mut grad in grads {
                    let _ = grad.g_mul_scalar_(scale);
                }
            });
        }
        norm
    }

    /// One update with each group's learning rate times `lr_factor` (the schedule).
    pub fn step(&mut self, lr_factor: f64) {
        self.steps += 1;
        let bias1 = 1.0 - BETA1.powi(self.steps);
        let bias2_sqrt = (1.0 - BETA2.powi(self.steps)).sqrt();
        let kind = self.kind;
        tch::no_grad(|| {
            for group in &mut self.groups {
                let lr = group.learning_rate * lr_factor;
                for param in &mut group.params {
                    let grad = param.tensor.grad();
                    if !grad.defined() {
                        continue;
                    }
                    let grad = match kind {
                        OptimizerKind::Adam { weight_decay } if weight_decay > 0.0 && param.decays => {
                            &grad + &param.tensor * weight_decay
                        }
                        OptimizerKind::AdamW { weight_decay } if weight_decay > 0.0 && param.decays => {
                            let _ = param.tensor.g_mul_scalar_(1.0 - lr * weight_decay);
                            grad
                        }
                        _ => grad,
                    };
                    // m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= lr / bias1 * m / (sqrt(v) / sqrt(bias2) + eps)
                    let _ = param.first_moment.lerp_(&grad, 1.0 - BETA1);
                    let _ = param.second_moment.g_mul_scalar_(BETA2).addcmul_(&grad, &(&grad * (1.0 - BETA2)));
                    let mut denominator = param.second_moment.sqrt();
                    let _ = denominator.g_div_scalar_(bias2_sqrt).g_add_scalar_(EPSILON);
                    let _ = param.tensor.addcdiv_(&(&param.first_moment * (-lr / bias1)), &denominator);
                }
            }
        });
    }
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
        adam.step(1.0);
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
            let norm = adam.clip_grad_norm(1.0);
            assert!(norm >= 0.0);
            let clipped = w.grad().norm().double_value(&[]);
            assert!(clipped <= 1.0 + 1e-4, "clipped norm {clipped}");
            adam.step(1.0);
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
            adamw.step(1.0);
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
        adam.step(1.0);
        assert_eq!(w.double_value(&[0]), 1.0);
        assert_eq!(adam.parameter_count(), 1);
    }
}

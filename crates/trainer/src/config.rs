//! Training settings.

use serde::{Deserialize, Serialize};

/// One of the two tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Sentence classification.
    Classification,
    /// Named-entity recognition (token classification).
    Ner,
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Classification => "classification",
            Self::Ner => "ner",
        })
    }
}

/// How the two tasks share training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// All classification epochs, then all NER epochs (the notebook's default).
    #[default]
    Separate,
    /// Each step takes one classification batch and one NER batch and optimizes
    /// `w * classification + (1 - w) * ner`. An epoch is as many steps as the longer task has batches: every
    /// example of both tasks is seen at least once, the shorter task cycling (a fresh shuffle each time round).
    Combined,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "separate" => Ok(Self::Separate),
            "combined" => Ok(Self::Combined),
            other => Err(format!("unknown mode `{other}`: expected `separate` or `combined`")),
        }
    }
}

/// The optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum OptimizerKind {
    /// Adam (L2 weight decay added to the gradient, as `torch.optim.Adam`).
    Adam {
        /// L2 penalty.
        weight_decay: f64,
    },
    /// AdamW (decoupled weight decay, as `torch.optim.AdamW`).
    AdamW {
        /// Decoupled weight decay.
        weight_decay: f64,
    },
}

impl Default for OptimizerKind {
    fn default() -> Self {
        Self::Adam { weight_decay: 0.0 }
    }
}

/// The learning-rate schedule, as a factor on each group's learning rate.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Schedule {
    /// The same rate throughout.
    #[default]
    Constant,
    /// Linear warm-up from 0 over `warmup_ratio` of the optimizer steps, then linear decay to 0.
    LinearWarmupDecay {
        /// Fraction of all steps spent warming up, in [0, 1).
        warmup_ratio: f64,
    },
}

impl Schedule {
    /// The factor at optimizer step `step` (0-based) of `total`.
    pub fn factor(&self, step: usize, total: usize) -> f64 {
        match *self {
            Self::Constant => 1.0,
            Self::LinearWarmupDecay { warmup_ratio } => {
                let total = total.max(1) as f64;
                let warmup = (warmup_ratio * total).round();
                let step = step as f64;
                if step < warmup {
                    (step + 1.0) / warmup
                } else {
                    ((total - step) / (total - warmup).max(1.0)).clamp(0.0, 1.0)
                }
            }
        }
    }
}

/// Everything the loop needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Separate or combined tasks.
    pub mode: Mode,
    /// Epochs (per task in separate mode).
    pub epochs: usize,
    /// Examples per batch.
    pub batch_size: usize,
    /// Learning rate (all groups, except under `all_adaptive`, whose groups carry their own).
    pub learning_rate: f64,
    /// Adam or AdamW.
    pub optimizer: OptimizerKind,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Clip the global gradient norm to this value.
    pub max_grad_norm: Option<f64>,
    /// Batches whose gradients are summed before one optimizer step.
    pub gradient_accumulation: usize,
    /// Combined mode: weight `w` of the classification loss (NER gets `1 - w`).
    pub classification_weight: f64,
    /// Seed of head initialisation, dropout and batch order.
    pub seed: u64,
    /// With a frozen encoder, compute its outputs once and train the heads on them.
    pub feature_cache: bool,
    /// Store cached features in half precision (halves their memory; training still runs in f32).
    pub feature_cache_half: bool,
    /// Show progress bars.
    pub progress: bool,
}

impl Default for TrainConfig {
    /// The notebook's Task 4: separate mode, 3 epochs, batch 8, Adam at 5e-4.
    fn default() -> Self {
        Self {
            mode: Mode::Separate,
            epochs: 3,
            batch_size: 8,
            learning_rate: 5e-4,
            optimizer: OptimizerKind::default(),
            schedule: Schedule::Constant,
            max_grad_norm: None,
            gradient_accumulation: 1,
            classification_weight: 0.5,
            seed: 42,
            feature_cache: true,
            feature_cache_half: false,
            progress: true,
        }
    }
}

impl TrainConfig {
    /// Checks the settings are usable.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_size == 0 || self.gradient_accumulation == 0 {
            return Err("batch_size and gradient_accumulation must be at least 1".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(format!("learning rate must be positive, got {}", self.learning_rate));
        }
        if !(0.0..=1.0).contains(&self.classification_weight) {
            return Err(format!("classification_weight must be in [0, 1], got {}", self.classification_weight));
        }
        if let Schedule::LinearWarmupDecay { warmup_ratio } = self.schedule {
            if !(0.0..1.0).contains(&warmup_ratio) {
                return Err(format!("warmup_ratio must be in [0, 1), got {warmup_ratio}"));
            }
        }
        if self.max_grad_norm.is_some_and(|n| n.is_nan() || n <= 0.0) {
            return Err("max_grad_norm must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay() {
        let schedule = Schedule::LinearWarmupDecay { warmup_ratio: 0.2 };
        let factors: Vec<f64> = (0..10).map(|s| schedule.factor(s, 10)).collect();
        assert_eq!(factors[0], 0.5);
        assert_eq!(factors[1], 1.0);
        assert_eq!(factors[2], 1.0, "decay starts from the full rate");
        assert!(factors.windows(2).skip(2).all(|w| w[1] < w[0]));
        assert!(factors[9] > 0.0 && factors[9] <= 0.125 + 1e-12);
        assert_eq!(Schedule::Constant.factor(7, 10), 1.0);
    }

    #[test]
    fn invalid_settings_are_named() {
        let config = TrainConfig { classification_weight: 1.5, ..TrainConfig::default() };
        assert!(config.validate().unwrap_err().contains("classification_weight"));
        assert!(TrainConfig { batch_size: 0, ..TrainConfig::default() }.validate().is_err());
        assert!(TrainConfig::default().validate().is_ok());
    }
}

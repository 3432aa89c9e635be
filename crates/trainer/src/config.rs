//! Training settings, and the named recipes that fill them in.

use encoder::Pooling;
use heads::{FreezeStrategy, LearningRates};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub use heads::Task;

/// What a phase of training trains: one task (separate mode), or every task at once (combined mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// One task's epochs.
    One(Task),
    /// Every task's batches in each step.
    Combined,
}

impl Phase {
    /// The phases a run in `mode` goes through over `tasks` (in [`Task::ALL`] order): each task alone in separate
    /// mode, one combined phase otherwise. One task trains alone in either mode (the two are the same then).
    pub fn plan(mode: Mode, tasks: &[Task]) -> Vec<Phase> {
        match (mode, tasks) {
            (Mode::Combined, [_, _, ..]) => vec![Self::Combined],
            _ => tasks.iter().map(|&task| Self::One(task)).collect(),
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::One(task) => task.fmt(f),
            Self::Combined => f.write_str("combined"),
        }
    }
}

impl std::str::FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "combined" => Ok(Self::Combined),
            task => task
                .parse::<Task>()
                .map(Self::One)
                .map_err(|_| format!("unknown phase `{s}`: expected combined or a task ({})", Task::NAMES)),
        }
    }
}

impl Serialize for Phase {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Phase {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
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

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Separate => "separate",
            Self::Combined => "combined",
        })
    }
}

impl Mode {
    /// Every mode, as [`FromStr`] reads and [`Display`](fmt::Display) writes it.
    pub const ALL: [Self; 2] = [Self::Separate, Self::Combined];
    /// The accepted names, for error messages.
    pub const NAMES: &'static str = "separate or combined";
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "separate" => Ok(Self::Separate),
            "combined" => Ok(Self::Combined),
            other => Err(format!("unknown mode `{other}`: expected {}", Self::NAMES)),
        }
    }
}

/// The optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", deny_unknown_fields)]
pub enum OptimizerKind {
    /// Adam (L2 weight decay added to the gradient, as `torch.optim.Adam`).
    Adam {
        /// L2 penalty (not on biases and LayerNorm parameters).
        weight_decay: f64,
    },
    /// AdamW (decoupled weight decay, as `torch.optim.AdamW`).
    AdamW {
        /// Decoupled weight decay (not on biases and LayerNorm parameters).
        weight_decay: f64,
    },
}

impl OptimizerKind {
    /// The weight decay.
    pub fn weight_decay(&self) -> f64 {
        match *self {
            Self::Adam { weight_decay } | Self::AdamW { weight_decay } => weight_decay,
        }
    }
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
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Separate or combined tasks.
    pub mode: Mode,
    /// Epochs (per task in separate mode); with early stopping, the most epochs.
    pub epochs: usize,
    /// Examples per batch.
    pub batch_size: usize,
    /// Learning rate of the heads, and of the encoder unless `encoder_learning_rate` is set (`all_adaptive` carries
    /// its own rates).
    pub learning_rate: f64,
    /// Learning rate of the encoder (of its top layer under `layer_decay`).
    pub encoder_learning_rate: Option<f64>,
    /// Layer-wise learning-rate decay in (0, 1]: each layer down from the top trains at `layer_decay` times the rate
    /// of the layer above it.
    pub layer_decay: Option<f64>,
    /// Adam or AdamW.
    pub optimizer: OptimizerKind,
    /// Learning-rate schedule (over each task's steps in separate mode).
    pub schedule: Schedule,
    /// Clip the global gradient norm to this value.
    pub max_grad_norm: Option<f64>,
    /// Batches whose gradients are summed before one optimizer step.
    pub gradient_accumulation: usize,
    /// Combined mode: weight `w` of the classification loss (NER gets `1 - w`).
    pub classification_weight: f64,
    /// Stop a task's training after this many epochs without a better validation score (needs validation
    /// examples). With or without it, a run with validation examples keeps its best epoch's weights.
    pub patience: Option<usize>,
    /// Seed of head initialisation, dropout and batch order.
    pub seed: u64,
    /// With a frozen encoder, compute its outputs once and train the heads on them.
    pub feature_cache: bool,
    /// Store cached features in half precision (halves their memory; training still runs in f32).
    pub feature_cache_half: bool,
}

impl Default for TrainConfig {
    /// The notebook's Task 4: separate mode, 3 epochs, batch 8, Adam at 5e-4.
    fn default() -> Self {
        Self {
            mode: Mode::Separate,
            epochs: 3,
            batch_size: 8,
            learning_rate: 5e-4,
            encoder_learning_rate: None,
            layer_decay: None,
            optimizer: OptimizerKind::default(),
            schedule: Schedule::Constant,
            max_grad_norm: None,
            gradient_accumulation: 1,
            classification_weight: 0.5,
            patience: None,
            seed: 42,
            feature_cache: true,
            feature_cache_half: false,
        }
    }
}

impl TrainConfig {
    /// The learning rates of the parameter groups.
    pub fn learning_rates(&self) -> LearningRates {
        LearningRates { heads: self.learning_rate, encoder: self.encoder_learning_rate, layer_decay: self.layer_decay }
    }

    /// Checks the settings are usable, naming the setting and its accepted range.
    pub fn validate(&self) -> Result<(), String> {
        if self.epochs == 0 {
            return Err("epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return Err("batch_size must be at least 1, got 0".into());
        }
        if self.gradient_accumulation == 0 {
            return Err("gradient_accumulation must be at least 1, got 0".into());
        }
        let positive = |name: &str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(format!("{name} must be a positive number, got {value}"))
            }
        };
        positive("the learning rate", self.learning_rate)?;
        if let Some(rate) = self.encoder_learning_rate {
            positive("the encoder learning rate", rate)?;
        }
        if let Some(decay) = self.layer_decay {
            if !(decay > 0.0 && decay <= 1.0) {
                return Err(format!("layer_decay must be in (0, 1], got {decay}"));
            }
        }
        let weight_decay = self.optimizer.weight_decay();
        if !(weight_decay.is_finite() && weight_decay >= 0.0) {
            return Err(format!("weight_decay must be a number >= 0, got {weight_decay}"));
        }
        if !(0.0..=1.0).contains(&self.classification_weight) {
            return Err(format!("classification_weight must be in [0, 1], got {}", self.classification_weight));
        }
        if let Schedule::LinearWarmupDecay { warmup_ratio } = self.schedule {
            if !(0.0..1.0).contains(&warmup_ratio) {
                return Err(format!("warmup_ratio must be in [0, 1), got {warmup_ratio}"));
            }
        }
        if let Some(norm) = self.max_grad_norm {
            positive("max_grad_norm", norm)?;
        }
        if self.patience == Some(0) {
            return Err("patience must be at least 1 epoch".into());
        }
        Ok(())
    }
}

/// A named set of training settings: `notebook` (what the notebook did) or `finetune` (a recipe that trains the
/// encoder and reaches published quality).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recipe {
    /// The notebook's Task 4: heads only, separate mode, 3 epochs, Adam 5e-4, batch 8, no validation.
    #[default]
    Notebook,
    /// Fine-tuning: every layer trains on both tasks at once (combined mode), AdamW (weight decay 0.01) with the
    /// encoder at 1e-4 and the heads at 1e-3, 10% linear warm-up then linear decay, gradient clipping at 1.0,
    /// batch 16, no attention dropout, a 10% validation split that keeps the best epoch, and early stopping after
    /// 2 epochs without improvement (at most 3).
    Finetune,
}

/// Everything a run's training was given, in one typed record: a recipe's settings with the caller's changes
/// applied ([`Settings::with`]). It is what a run writes into its configuration and reads back to run again (unknown
/// keys are an error naming them), like Hugging Face's `TrainingArguments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The recipe the settings started from.
    pub recipe: Recipe,
    /// Which variables train.
    pub strategy: FreezeStrategy,
    /// Fraction of the training examples held out for validation when no validation data is given (0: none).
    pub validation_fraction: f64,
    /// Dropout on the attention probabilities, replacing the model's own (`None`: the model's).
    pub attention_dropout: Option<f64>,
    /// How the classification head pools the token states.
    #[serde(default = "default_pooling")]
    pub pooling: Pooling,
    /// NER: tell the model which words were capitalized, through its token types
    /// (`datasets::EncodeOptions::case_types`); an uncased vocabulary loses that cue otherwise.
    #[serde(default)]
    pub ner_case_types: bool,
    /// The loop's settings.
    pub train: TrainConfig,
}

fn default_pooling() -> Pooling {
    Pooling::Mean
}

/// Changes to a recipe's settings, one per setting a user can give (`None`: keep the recipe's). The values that
/// mean "off" on a command line are read as such: a warm-up ratio of 0 (constant rate), a gradient norm of 0 (no
/// clipping), a patience of 0 (no early stopping).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// [`Settings::strategy`].
    pub strategy: Option<FreezeStrategy>,
    /// [`TrainConfig::mode`].
    pub mode: Option<Mode>,
    /// [`TrainConfig::epochs`].
    pub epochs: Option<usize>,
    /// [`TrainConfig::learning_rate`].
    pub learning_rate: Option<f64>,
    /// [`TrainConfig::encoder_learning_rate`].
    pub encoder_learning_rate: Option<f64>,
    /// [`TrainConfig::layer_decay`].
    pub layer_decay: Option<f64>,
    /// [`TrainConfig::batch_size`].
    pub batch_size: Option<usize>,
    /// Adam (`false`) or AdamW (`true`).
    pub decoupled_weight_decay: Option<bool>,
    /// The optimizer's weight decay.
    pub weight_decay: Option<f64>,
    /// Linear warm-up ratio (0: a constant rate).
    pub warmup_ratio: Option<f64>,
    /// [`TrainConfig::max_grad_norm`] (0: no clipping).
    pub max_grad_norm: Option<f64>,
    /// [`TrainConfig::gradient_accumulation`].
    pub gradient_accumulation: Option<usize>,
    /// [`TrainConfig::classification_weight`].
    pub classification_weight: Option<f64>,
    /// [`TrainConfig::patience`] (0: no early stopping).
    pub patience: Option<usize>,
    /// [`TrainConfig::seed`].
    pub seed: Option<u64>,
    /// [`TrainConfig::feature_cache`].
    pub feature_cache: Option<bool>,
    /// [`TrainConfig::feature_cache_half`].
    pub feature_cache_half: Option<bool>,
    /// [`Settings::validation_fraction`].
    pub validation_fraction: Option<f64>,
    /// [`Settings::attention_dropout`].
    pub attention_dropout: Option<f64>,
    /// [`Settings::pooling`].
    pub pooling: Option<Pooling>,
    /// [`Settings::ner_case_types`].
    pub ner_case_types: Option<bool>,
}

impl Settings {
    /// These settings with `changes` applied. Switching to `all_adaptive` drops an encoder rate and layer decay
    /// that came from the settings (it carries its own rates); ones given in `changes` stay (and fail validation).
    pub fn with(self, changes: &Overrides) -> Self {
        let Settings { recipe, strategy, validation_fraction, attention_dropout, pooling, ner_case_types, train } =
            self;
        let strategy = changes.strategy.unwrap_or(strategy);
        let adaptive = matches!(strategy, FreezeStrategy::AllAdaptive { .. }) && changes.strategy.is_some();
        let weight_decay = changes.weight_decay.unwrap_or(train.optimizer.weight_decay());
        let decoupled =
            changes.decoupled_weight_decay.unwrap_or(matches!(train.optimizer, OptimizerKind::AdamW { .. }));
        let optimizer =
            if decoupled { OptimizerKind::AdamW { weight_decay } } else { OptimizerKind::Adam { weight_decay } };
        let off_if_zero = |given: Option<f64>, current: Option<f64>| match given {
            Some(0.0) => None,
            Some(value) => Some(value),
            None => current,
        };
        let train = TrainConfig {
            mode: changes.mode.unwrap_or(train.mode),
            epochs: changes.epochs.unwrap_or(train.epochs),
            batch_size: changes.batch_size.unwrap_or(train.batch_size),
            learning_rate: changes.learning_rate.unwrap_or(train.learning_rate),
            encoder_learning_rate: changes.encoder_learning_rate.or(if adaptive {
                None
            } else {
                train.encoder_learning_rate
            }),
            layer_decay: changes.layer_decay.or(if adaptive { None } else { train.layer_decay }),
            optimizer,
            schedule: match changes.warmup_ratio {
                Some(0.0) => Schedule::Constant,
                Some(warmup_ratio) => Schedule::LinearWarmupDecay { warmup_ratio },
                None => train.schedule,
            },
            max_grad_norm: off_if_zero(changes.max_grad_norm, train.max_grad_norm),
            gradient_accumulation: changes.gradient_accumulation.unwrap_or(train.gradient_accumulation),
            classification_weight: changes.classification_weight.unwrap_or(train.classification_weight),
            patience: match changes.patience {
                Some(0) => None,
                Some(patience) => Some(patience),
                None => train.patience,
            },
            seed: changes.seed.unwrap_or(train.seed),
            feature_cache: changes.feature_cache.unwrap_or(train.feature_cache),
            feature_cache_half: changes.feature_cache_half.unwrap_or(train.feature_cache_half),
        };
        Settings {
            recipe,
            strategy,
            validation_fraction: changes.validation_fraction.unwrap_or(validation_fraction),
            attention_dropout: changes.attention_dropout.or(attention_dropout),
            pooling: changes.pooling.unwrap_or(pooling),
            ner_case_types: changes.ner_case_types.unwrap_or(ner_case_types),
            train,
        }
    }

    /// Checks every setting, naming the first that cannot work and its accepted range.
    pub fn validate(&self) -> Result<(), String> {
        self.train.validate()?;
        if !(0.0..1.0).contains(&self.validation_fraction) {
            return Err(format!("validation_fraction must be in [0, 1), got {}", self.validation_fraction));
        }
        if let Some(p) = self.attention_dropout {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("attention_dropout must be in [0, 1), got {p}"));
            }
        }
        if matches!(self.strategy, FreezeStrategy::AllAdaptive { .. })
            && (self.train.encoder_learning_rate.is_some() || self.train.layer_decay.is_some())
        {
            return Err(
                "all_adaptive carries its own learning rates: an encoder learning rate or layer decay does not apply"
                    .into(),
            );
        }
        Ok(())
    }
}

impl Recipe {
    /// The valid names, for error messages.
    pub const NAMES: &'static str = "notebook or finetune";

    /// The recipe's settings.
    pub fn settings(self) -> Settings {
        match self {
            Self::Notebook => Settings {
                recipe: self,
                strategy: FreezeStrategy::HeadsOnly,
                train: TrainConfig::default(),
                validation_fraction: 0.0,
                attention_dropout: None,
                pooling: Pooling::Mean,
                ner_case_types: false,
            },
            Self::Finetune => Settings {
                recipe: self,
                strategy: FreezeStrategy::All,
                train: TrainConfig {
                    mode: Mode::Combined,
                    epochs: 3,
                    batch_size: 16,
                    learning_rate: 1e-3,
                    encoder_learning_rate: Some(1e-4),
                    optimizer: OptimizerKind::AdamW { weight_decay: 0.01 },
                    schedule: Schedule::LinearWarmupDecay { warmup_ratio: 0.1 },
                    max_grad_norm: Some(1.0),
                    patience: Some(2),
                    ..TrainConfig::default()
                },
                validation_fraction: 0.1,
                attention_dropout: Some(0.0),
                pooling: Pooling::Mean,
                ner_case_types: true,
            },
        }
    }
}

impl fmt::Display for Recipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Notebook => "notebook",
            Self::Finetune => "finetune",
        })
    }
}

impl FromStr for Recipe {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "notebook" => Ok(Self::Notebook),
            "finetune" => Ok(Self::Finetune),
            other => Err(format!("unknown recipe `{other}`: expected {}", Self::NAMES)),
        }
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
        assert!(TrainConfig { batch_size: 0, ..TrainConfig::default() }.validate().unwrap_err().contains("batch_size"));
        let nan_decay =
            TrainConfig { optimizer: OptimizerKind::AdamW { weight_decay: f64::NAN }, ..Default::default() };
        assert!(nan_decay.validate().unwrap_err().contains("weight_decay"));
        let negative = TrainConfig { optimizer: OptimizerKind::Adam { weight_decay: -0.1 }, ..Default::default() };
        assert!(negative.validate().unwrap_err().contains("weight_decay"));
        let warmup =
            TrainConfig { schedule: Schedule::LinearWarmupDecay { warmup_ratio: f64::NAN }, ..Default::default() };
        assert!(warmup.validate().unwrap_err().contains("warmup_ratio"));
        let encoder = TrainConfig { encoder_learning_rate: Some(0.0), ..Default::default() };
        assert!(encoder.validate().unwrap_err().contains("encoder learning rate"));
        assert!(TrainConfig { layer_decay: Some(1.2), ..Default::default() }.validate().is_err());
        assert!(TrainConfig { patience: Some(0), ..Default::default() }.validate().is_err());
        assert!(TrainConfig { epochs: 0, ..Default::default() }.validate().is_err());
        assert!(TrainConfig::default().validate().is_ok());
    }

    #[test]
    fn recipes_parse_print_and_hold_valid_settings() {
        for recipe in [Recipe::Notebook, Recipe::Finetune] {
            assert_eq!(recipe.to_string().parse::<Recipe>(), Ok(recipe));
            let settings = recipe.settings();
            assert_eq!(settings.recipe, recipe);
            assert!(settings.train.validate().is_ok(), "{recipe}");
        }
        assert_eq!(Recipe::Notebook.settings().train, TrainConfig::default());
        assert_eq!(Recipe::Notebook.settings().strategy, FreezeStrategy::HeadsOnly);
        let finetune = Recipe::Finetune.settings();
        assert_eq!(finetune.strategy, FreezeStrategy::All);
        assert!(finetune.validation_fraction > 0.0 && finetune.train.patience.is_some());
        assert!("fast".parse::<Recipe>().unwrap_err().contains(Recipe::NAMES));
    }

    #[test]
    fn overrides_change_only_what_they_name_and_zero_turns_a_setting_off() {
        let finetune = Recipe::Finetune.settings();
        assert_eq!(finetune.clone().with(&Overrides::default()), finetune);
        let changes = Overrides {
            epochs: Some(5),
            warmup_ratio: Some(0.0),
            max_grad_norm: Some(0.0),
            patience: Some(0),
            decoupled_weight_decay: Some(false),
            ..Overrides::default()
        };
        let changed = finetune.clone().with(&changes);
        assert_eq!(changed.train.epochs, 5);
        assert_eq!(changed.train.schedule, Schedule::Constant);
        assert_eq!((changed.train.max_grad_norm, changed.train.patience), (None, None));
        assert_eq!(changed.train.optimizer, OptimizerKind::Adam { weight_decay: 0.01 });
        assert_eq!(changed.train.learning_rate, finetune.train.learning_rate);
        let adaptive = finetune
            .with(&Overrides { strategy: Some("all_adaptive".parse().expect("strategy")), ..Overrides::default() });
        assert_eq!((adaptive.train.encoder_learning_rate, adaptive.train.layer_decay), (None, None));
        assert!(adaptive.validate().is_ok());
    }

    #[test]
    fn settings_read_back_as_written_and_unknown_keys_are_named() {
        for recipe in [Recipe::Notebook, Recipe::Finetune] {
            let settings = recipe.settings();
            let json = serde_json::to_value(&settings).expect("json");
            assert_eq!(serde_json::from_value::<Settings>(json).expect("reads back"), settings);
        }
        let mut json = serde_json::to_value(Recipe::Finetune.settings()).expect("json");
        json["train"]["epochz"] = 3.into();
        let error = serde_json::from_value::<Settings>(json).unwrap_err().to_string();
        assert!(error.contains("unknown field `epochz`"), "{error}");
        let mut json = serde_json::to_value(Recipe::Finetune.settings()).expect("json");
        json["train"]["optimizer"]["momentum"] = 0.9.into();
        assert!(serde_json::from_value::<Settings>(json).is_err());
        let bad = Settings { validation_fraction: 1.0, ..Recipe::Finetune.settings() };
        assert!(bad.validate().unwrap_err().contains("validation_fraction"));
    }

    #[test]
    fn every_user_typed_choice_prints_as_it_parses_and_errors_list_the_names() {
        for mode in Mode::ALL {
            assert_eq!(mode.to_string().parse::<Mode>(), Ok(mode));
            assert!(Mode::NAMES.contains(&mode.to_string()));
        }
        for recipe in [Recipe::Notebook, Recipe::Finetune] {
            assert_eq!(recipe.to_string().parse::<Recipe>().map(|r| r.to_string()), Ok(recipe.to_string()));
            assert!(Recipe::NAMES.contains(&recipe.to_string()));
        }
        for pooling in encoder::Pooling::ALL {
            assert_eq!(pooling.to_string().parse::<encoder::Pooling>(), Ok(pooling));
            assert!(encoder::Pooling::NAMES.contains(&pooling.to_string()));
        }
        for precision in [encoder::Precision::Auto, encoder::Precision::F32, encoder::Precision::Bf16] {
            assert_eq!(precision.to_string().parse::<encoder::Precision>(), Ok(precision));
        }
        for strategy in ["none", "heads_only", "output_layers:2", "all", "all_adaptive:0.0001:0.001"] {
            let parsed: heads::FreezeStrategy = strategy.parse().expect("parses");
            assert_eq!(parsed.to_string().parse::<heads::FreezeStrategy>().expect("reparses"), parsed);
        }
        assert!("sideways".parse::<Mode>().unwrap_err().contains(Mode::NAMES));
        assert!("median".parse::<encoder::Pooling>().unwrap_err().contains(encoder::Pooling::NAMES));
        assert!("both".parse::<Mode>().unwrap_err().contains("separate or combined"));
    }
}

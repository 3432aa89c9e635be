//! Freezing strategies (the notebook's Task 3 `set_requires_grad`): which variables train, and at which
//! learning rate.
//!
//! | strategy | trains |
//! |---|---|
//! | `none` | nothing (baseline: pretrained encoder, random heads) |
//! | `heads_only` | both heads |
//! | `output_layers[:n]` | the last `n` encoder layers (default 3) and both heads |
//! | `all` | everything, at one learning rate |
//! | `all_adaptive[:input_lr:output_lr]` | everything, with learning rates rising geometrically from the embeddings (`input_lr`, default 1e-6) through each encoder layer to the heads (`output_lr`, default 1e-4) |

use crate::error::{HeadsError, Result};
use crate::model::MultiTaskModel;
use crate::task::Task;
use encoder::model::EncoderPart;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use tch::Tensor;

/// Number of encoder layers `output_layers` trains when no number is given (the notebook's layers 9-11).
pub const DEFAULT_OUTPUT_LAYERS: usize = 3;
/// Learning rate of the embeddings under `all_adaptive` when none is given.
pub const DEFAULT_INPUT_LR: f64 = 1e-6;
/// Learning rate of the heads under `all_adaptive` when none is given.
pub const DEFAULT_OUTPUT_LR: f64 = 1e-4;

/// Which variables of a [`MultiTaskModel`] train (Task 3's candidates, plus the frozen baseline).
///
/// Parses from and prints as `none`, `heads_only`, `output_layers` (or `output_layers:2`), `all`, `all_adaptive`
/// (or `all_adaptive:1e-6:1e-4`); serialises as that string.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FreezeStrategy {
    /// Everything frozen: the baseline of a pretrained encoder with untrained heads.
    None,
    /// Only the two heads train (the notebook's pick).
    #[default]
    HeadsOnly,
    /// The last `n` encoder layers and the heads train.
    OutputLayers(usize),
    /// Everything trains at one learning rate.
    All,
    /// Everything trains, with layer-wise learning rates rising geometrically from `input_lr` (embeddings) to
    /// `output_lr` (heads).
    AllAdaptive {
        /// Learning rate of the embeddings.
        input_lr: f64,
        /// Learning rate of the heads.
        output_lr: f64,
    },
}

/// One optimizer parameter group: trainable variables sharing a learning rate.
#[derive(Debug)]
pub struct ParamGroup {
    /// `embeddings`, `encoder.layer.N` or `heads` under `all_adaptive`; the strategy's name otherwise.
    pub name: String,
    /// The group's learning rate.
    pub lr: f64,
    /// The variables, sorted by name (shallow clones sharing storage with the model's `VarStore`).
    pub parameters: Vec<(String, Tensor)>,
}

impl ParamGroup {
    /// Number of values in the group.
    pub fn numel(&self) -> i64 {
        self.parameters.iter().map(|(_, tensor)| tensor.numel() as i64).sum()
    }

    /// The group restricted to the encoder's variables and the heads of `tasks` (shallow clones): what trains in a
    /// phase that trains those tasks, so another task's head is never moved by the optimizer meanwhile.
    pub fn for_tasks(&self, tasks: &[Task]) -> ParamGroup {
        ParamGroup {
            name: self.name.clone(),
            lr: self.lr,
            parameters: self
                .parameters
                .iter()
                .filter(|(name, _)| Task::of_variable(name).is_none_or(|task| tasks.contains(&task)))
                .map(|(name, tensor)| (name.clone(), tensor.shallow_clone()))
                .collect(),
        }
    }
}

/// Whether the variable `name` takes weight decay: everything but biases and LayerNorm parameters (the usual
/// BERT fine-tuning rule, as in Hugging Face's `Trainer`).
pub fn takes_weight_decay(name: &str) -> bool {
    !(name.ends_with(".bias") || name.contains("LayerNorm."))
}

/// The learning rates of the trainable parts, for every strategy but `all_adaptive` (which carries its own).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LearningRates {
    /// The heads' rate.
    pub heads: f64,
    /// The encoder's rate (of its top layer under `layer_decay`); `None`: the heads' rate.
    pub encoder: Option<f64>,
    /// Layer-wise decay in (0, 1]: of `L` layers, layer `l` trains at `encoder * decay^(L-1-l)` and the embeddings
    /// at `encoder * decay^L`; `None`: one rate for the whole encoder.
    pub layer_decay: Option<f64>,
}

impl From<f64> for LearningRates {
    /// One rate for everything.
    fn from(rate: f64) -> Self {
        Self { heads: rate, encoder: None, layer_decay: None }
    }
}

impl LearningRates {
    /// Checks that every rate is positive and the decay in (0, 1].
    pub fn validate(&self) -> Result<()> {
        check_lr("the learning rate", self.heads)?;
        if let Some(encoder) = self.encoder {
            check_lr("the encoder learning rate", encoder)?;
        }
        if let Some(decay) = self.layer_decay {
            if !(decay > 0.0 && decay <= 1.0) {
                return Err(HeadsError::InvalidStrategy(format!("layer_decay must be in (0, 1], got {decay}")));
            }
        }
        Ok(())
    }

    /// Whether everything trains at one rate.
    fn uniform(&self) -> bool {
        self.encoder.is_none_or(|encoder| encoder == self.heads) && self.layer_decay.is_none_or(|decay| decay == 1.0)
    }

    /// The rate of a part of a model with `num_layers` layers.
    fn of(&self, part: Part, num_layers: i64) -> f64 {
        let encoder = self.encoder.unwrap_or(self.heads);
        let decay = self.layer_decay.unwrap_or(1.0);
        match part {
            Part::Head => self.heads,
            Part::Encoder(EncoderPart::Layer(layer)) => {
                encoder * decay.powi(i32::try_from(num_layers - 1 - layer).unwrap_or(0))
            }
            Part::Encoder(EncoderPart::Embeddings) => encoder * decay.powi(i32::try_from(num_layers).unwrap_or(0)),
        }
    }
}

/// Trainable and total numbers of values under one strategy (a line of the notebook's `demo_unfreeze_strategy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterCount {
    /// The strategy, as [`FreezeStrategy`] prints it.
    pub strategy: String,
    /// Values that train.
    pub trainable: i64,
    /// All values of the model.
    pub total: i64,
}

/// Which part of the model a variable belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Encoder(EncoderPart),
    Head,
}

impl Part {
    /// The name of the part's parameter group: `embeddings`, `encoder.layer.N` or `heads`.
    fn group_name(self) -> String {
        match self {
            Self::Encoder(part) => part.path(),
            Self::Head => "heads".to_string(),
        }
    }
}

/// The part of a variable, from its name; `None` for a name that is not one of the model's.
fn part_of(name: &str) -> Option<Part> {
    EncoderPart::of_variable(name).map(Part::Encoder).or_else(|| Task::of_variable(name).map(|_| Part::Head))
}

fn check_lr(what: &str, lr: f64) -> Result<()> {
    if lr.is_finite() && lr > 0.0 {
        Ok(())
    } else {
        Err(HeadsError::InvalidStrategy(format!("{what} must be a positive number, got {lr}")))
    }
}

impl FreezeStrategy {
    /// `all_adaptive` with the default learning rates (1e-6 for the embeddings, 1e-4 for the heads).
    pub const fn all_adaptive() -> Self {
        Self::AllAdaptive { input_lr: DEFAULT_INPUT_LR, output_lr: DEFAULT_OUTPUT_LR }
    }

    /// `output_layers` with the default 3 layers.
    pub const fn output_layers() -> Self {
        Self::OutputLayers(DEFAULT_OUTPUT_LAYERS)
    }

    /// Every strategy, with default parameters (`none`, `heads_only`, `all_adaptive`, `output_layers`, `all`).
    pub fn all_strategies() -> [Self; 5] {
        [Self::None, Self::HeadsOnly, Self::all_adaptive(), Self::output_layers(), Self::All]
    }

    /// The strategy's name without parameters (`output_layers`, `all_adaptive`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::HeadsOnly => "heads_only",
            Self::OutputLayers(_) => "output_layers",
            Self::All => "all",
            Self::AllAdaptive { .. } => "all_adaptive",
        }
    }

    /// Checks the strategy against a model with `num_layers` encoder layers: `output_layers` may not ask for more
    /// layers than there are, and `all_adaptive`'s learning rates must be positive and rising.
    pub fn validate(&self, num_layers: i64) -> Result<()> {
        match *self {
            Self::OutputLayers(n) => {
                if i64::try_from(n).map_or(true, |n| n > num_layers) {
                    return Err(HeadsError::InvalidStrategy(format!(
                        "output_layers:{n} asks for more layers than the encoder's {num_layers}"
                    )));
                }
            }
            Self::AllAdaptive { input_lr, output_lr } => {
                check_lr("input_lr", input_lr)?;
                check_lr("output_lr", output_lr)?;
                if input_lr > output_lr {
                    return Err(HeadsError::InvalidStrategy(format!(
                        "all_adaptive learning rates rise from the input to the output: input_lr {input_lr} is above \
                         output_lr {output_lr}"
                    )));
                }
            }
            Self::None | Self::HeadsOnly | Self::All => {}
        }
        Ok(())
    }

    /// Whether the variable `name` trains under this strategy, in a model with `num_layers` encoder layers.
    pub fn trains(&self, name: &str, num_layers: i64) -> Result<bool> {
        let part = part_of(name)
            .ok_or_else(|| HeadsError::InvalidInput(format!("`{name}` is not a variable of a multi-task model")))?;
        Ok(self.trains_part(part, num_layers))
    }

    fn trains_part(&self, part: Part, num_layers: i64) -> bool {
        match *self {
            Self::None => false,
            Self::HeadsOnly => part == Part::Head,
            Self::OutputLayers(n) => match part {
                Part::Head => true,
                Part::Encoder(EncoderPart::Layer(index)) => i64::try_from(n).is_ok_and(|n| index >= num_layers - n),
                Part::Encoder(EncoderPart::Embeddings) => false,
            },
            Self::All | Self::AllAdaptive { .. } => true,
        }
    }

    /// The learning rates of `all_adaptive`'s groups for `num_layers` encoder layers: embeddings, each layer, heads
    /// (`input_lr * (output_lr / input_lr)^(k / (groups - 1))`, ending exactly at `output_lr`); `None` for other
    /// strategies.
    pub fn layer_learning_rates(&self, num_layers: i64) -> Option<Vec<f64>> {
        let Self::AllAdaptive { input_lr, output_lr } = *self else { return None };
        let last = num_layers.max(0) + 1;
        let ratio = output_lr / input_lr;
        Some(
            (0..=last)
                .map(|k| if k == last { output_lr } else { input_lr * ratio.powf(k as f64 / last as f64) })
                .collect(),
        )
    }

    /// Sets `requires_grad` on every variable of `model` (false for frozen ones, so they get no gradient) and
    /// returns the optimizer groups of the trainable ones.
    ///
    /// `none` gives no group. `all_adaptive` gives one group per part, `embeddings`, `encoder.layer.0` ...
    /// `encoder.layer.{L-1}`, `heads`, at the rates of [`layer_learning_rates`](Self::layer_learning_rates)
    /// (`rates` is not used). The other strategies give one group named after the strategy when `rates` is one rate
    /// (`apply(&model, 1e-4)`); otherwise `heads` at the heads' rate and the encoder's trainable parts as one
    /// `encoder` group, or, under a layer decay, as `embeddings` and `encoder.layer.N` groups.
    ///
    /// A frozen variable that already has a gradient (from training under another strategy) has it zeroed and
    /// detached; libtorch offers no way to free it from here, so apply the strategy before the first backward pass.
    pub fn apply(&self, model: &MultiTaskModel, rates: impl Into<LearningRates>) -> Result<Vec<ParamGroup>> {
        let rates = rates.into();
        let num_layers = model.config().encoder.num_hidden_layers;
        self.validate(num_layers)?;
        if !matches!(self, Self::None | Self::AllAdaptive { .. }) {
            rates.validate()?;
        }
        let adaptive = self.layer_learning_rates(num_layers);
        // The group of each part: (name, learning rate), in the order groups are listed.
        let group_of = |part: Part| -> (String, f64) {
            if let Some(adaptive) = &adaptive {
                let index = match part {
                    Part::Encoder(EncoderPart::Embeddings) => 0,
                    Part::Encoder(EncoderPart::Layer(layer)) => usize::try_from(layer + 1).unwrap_or(usize::MAX),
                    Part::Head => adaptive.len().saturating_sub(1),
                };
                return (part.group_name(), adaptive.get(index).copied().unwrap_or(f64::NAN));
            }
            if rates.uniform() {
                return (self.name().to_string(), rates.heads);
            }
            let name = match (part, rates.layer_decay.is_some()) {
                (Part::Head, _) | (_, true) => part.group_name(),
                (_, false) => "encoder".to_string(),
            };
            (name, rates.of(part, num_layers))
        };
        // Each group with its place: embeddings, the layers in order, then the heads (the variables come sorted by
        // name, which puts the classification head first and `encoder.layer.10` before `encoder.layer.2`).
        let mut placed: Vec<(i64, ParamGroup)> = Vec::new();
        let mut trainable = 0i64;
        let mut total = 0i64;
        for (name, tensor) in model.named_parameters() {
            let part = part_of(&name)
                .ok_or_else(|| HeadsError::InvalidInput(format!("`{name}` is not a variable of a multi-task model")))?;
            let trains = self.trains_part(part, num_layers);
            let _ = tensor.set_requires_grad(trains);
            total += tensor.numel() as i64;
            if !trains {
                tch::no_grad(|| tensor.shallow_clone().zero_grad());
                continue;
            }
            trainable += tensor.numel() as i64;
            let (group_name, lr) = group_of(part);
            match placed.iter_mut().find(|(_, group)| group.name == group_name) {
                Some((_, group)) => group.parameters.push((name, tensor)),
                None => {
                    let place = match part {
                        Part::Encoder(EncoderPart::Embeddings) => -1,
                        Part::Encoder(EncoderPart::Layer(layer)) => layer,
                        Part::Head => i64::MAX,
                    };
                    placed.push((place, ParamGroup { name: group_name, lr, parameters: vec![(name, tensor)] }));
                }
            }
        }
        placed.sort_by_key(|(place, _)| *place);
        let groups: Vec<ParamGroup> = placed.into_iter().map(|(_, group)| group).collect();
        tracing::info!(
            strategy = %self,
            trainable,
            total,
            groups = ?groups.iter().map(|g| (g.name.as_str(), g.lr)).collect::<Vec<_>>(),
            "freezing strategy applied"
        );
        Ok(groups)
    }
}

impl fmt::Display for FreezeStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OutputLayers(n) if n != DEFAULT_OUTPUT_LAYERS => write!(f, "output_layers:{n}"),
            Self::AllAdaptive { input_lr, output_lr }
                if input_lr != DEFAULT_INPUT_LR || output_lr != DEFAULT_OUTPUT_LR =>
            {
                write!(f, "all_adaptive:{input_lr:e}:{output_lr:e}")
            }
            _ => f.write_str(self.name()),
        }
    }
}

impl FromStr for FreezeStrategy {
    type Err = HeadsError;

    fn from_str(text: &str) -> Result<Self> {
        let text = text.trim();
        let (name, arguments) = match text.split_once(':') {
            Some((name, arguments)) => (name, Some(arguments)),
            None => (text, None),
        };
        let strategy = match (name, arguments) {
            ("none", None) => Self::None,
            ("heads_only", None) => Self::HeadsOnly,
            ("all", None) => Self::All,
            ("output_layers", None) => Self::output_layers(),
            ("output_layers", Some(n)) => Self::OutputLayers(n.trim().parse().map_err(|_| {
                HeadsError::InvalidStrategy(format!("`{text}`: the number of layers must be a whole number"))
            })?),
            ("all_adaptive", None) => Self::all_adaptive(),
            ("all_adaptive", Some(rates)) => {
                let parse = |rate: &str| {
                    rate.trim()
                        .parse::<f64>()
                        .map_err(|_| HeadsError::InvalidStrategy(format!("`{text}`: `{rate}` is not a learning rate")))
                };
                let (input, output) = rates.split_once(':').ok_or_else(|| {
                    HeadsError::InvalidStrategy(format!(
                        "`{text}`: expected all_adaptive:INPUT_LR:OUTPUT_LR, e.g. all_adaptive:1e-6:1e-4"
                    ))
                })?;
                let strategy = Self::AllAdaptive { input_lr: parse(input)?, output_lr: parse(output)? };
                strategy.validate(0)?;
                strategy
            }
            _ => {
                return Err(HeadsError::InvalidStrategy(format!(
                    "unknown strategy `{text}`: expected none, heads_only, output_layers[:N], all or \
                     all_adaptive[:INPUT_LR:OUTPUT_LR]"
                )))
            }
        };
        Ok(strategy)
    }
}

impl TryFrom<String> for FreezeStrategy {
    type Error = HeadsError;
    fn try_from(text: String) -> Result<Self> {
        text.parse()
    }
}

impl From<FreezeStrategy> for String {
    fn from(strategy: FreezeStrategy) -> Self {
        strategy.to_string()
    }
}

/// Trainable and total values of `model` under every strategy (the notebook's `demo_unfreeze_strategy`), without
/// changing the model. `output_layers` counts the last 3 layers, or all of them in a shallower encoder.
pub fn parameter_table(model: &MultiTaskModel) -> Vec<ParameterCount> {
    let num_layers = model.config().encoder.num_hidden_layers;
    let parts: Vec<(Option<Part>, i64)> =
        model.named_parameters().iter().map(|(name, tensor)| (part_of(name), tensor.numel() as i64)).collect();
    let total = parts.iter().map(|(_, numel)| numel).sum();
    FreezeStrategy::all_strategies()
        .into_iter()
        .map(|strategy| match strategy {
            FreezeStrategy::OutputLayers(n) => {
                FreezeStrategy::OutputLayers(n.min(usize::try_from(num_layers).unwrap_or(0)))
            }
            other => other,
        })
        .map(|strategy| {
            let trainable = parts
                .iter()
                .filter(|(part, _)| part.is_some_and(|part| strategy.trains_part(part, num_layers)))
                .map(|(_, numel)| numel)
                .sum();
            ParameterCount { strategy: strategy.to_string(), trainable, total }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MultiTaskConfig;
    use crate::model::tests::{batch, tiny};
    use encoder::{BertConfig, Pooling};
    use std::collections::{BTreeMap, HashMap};
    use tch::{Device, Kind};

    /// The expected trainability of a tiny (2-layer) model's variable, written independently of `trains`.
    fn expected_trainable(strategy: &FreezeStrategy, name: &str) -> bool {
        let head = name.starts_with("classification_head.") || name.starts_with("ner_head.");
        match strategy {
            FreezeStrategy::None => false,
            FreezeStrategy::HeadsOnly => head,
            FreezeStrategy::OutputLayers(1) => head || name.starts_with("encoder.layer.1."),
            FreezeStrategy::OutputLayers(2) => head || name.starts_with("encoder.layer."),
            FreezeStrategy::OutputLayers(_) => head,
            FreezeStrategy::All | FreezeStrategy::AllAdaptive { .. } => true,
        }
    }

    /// A loss on both heads: cross-entropy of the sentence classes and of the tags of every token.
    fn joint_loss(model: &MultiTaskModel) -> Tensor {
        let (ids, mask) = batch();
        let output = model.forward_t(&ids, &mask, None, false).expect("forward");
        let classes = Tensor::from_slice(&[2i64, 0]);
        let tags = Tensor::from_slice(&[0i64, 1, 2, 0, 3, 0, 0, 4, 0, 0, 0, 0]);
        output.classification_logits.expect("classification").cross_entropy_for_logits(&classes)
            + output.ner_logits.expect("ner").view([-1, 5]).cross_entropy_for_logits(&tags)
    }

    #[test]
    fn each_strategy_trains_exactly_its_variables() {
        let strategies = [
            FreezeStrategy::None,
            FreezeStrategy::HeadsOnly,
            FreezeStrategy::OutputLayers(0),
            FreezeStrategy::OutputLayers(1),
            FreezeStrategy::OutputLayers(2),
            FreezeStrategy::All,
            FreezeStrategy::all_adaptive(),
            FreezeStrategy::AllAdaptive { input_lr: 1e-3, output_lr: 1e-1 },
        ];
        for strategy in strategies {
            let model = tiny(Pooling::Mean);
            let groups = strategy.apply(&model, 1e-2).expect("apply");
            let before: BTreeMap<String, Tensor> =
                model.named_parameters().into_iter().map(|(name, tensor)| (name, tensor.copy())).collect();
            let lr_of: HashMap<String, f64> = groups
                .iter()
                .flat_map(|group| group.parameters.iter().map(|(name, _)| (name.clone(), group.lr)))
                .collect();
            let grouped = groups.iter().map(|group| group.parameters.len()).sum::<usize>();
            assert_eq!(grouped, lr_of.len(), "{strategy}: a variable in two groups");
            for name in before.keys() {
                assert_eq!(lr_of.contains_key(name), expected_trainable(&strategy, name), "{strategy}: {name}");
            }

            let loss = joint_loss(&model);
            if strategy == FreezeStrategy::None {
                assert!(groups.is_empty());
                assert!(!loss.requires_grad(), "nothing trains, so the loss has no graph");
            } else {
                loss.backward();
            }
            // One Adam-like step (the first Adam step is lr * sign(grad)) on every variable that got a gradient.
            tch::no_grad(|| {
                for (name, tensor) in model.named_parameters() {
                    let grad = tensor.grad();
                    if !grad.defined() {
                        continue;
                    }
                    let lr = lr_of.get(&name).copied().unwrap_or_else(|| panic!("{strategy}: {name} has a gradient"));
                    let step = &grad / (grad.abs() + 1e-12) * lr;
                    let _ = tensor.shallow_clone().f_sub_(&step).expect("update");
                }
            });
            for (name, tensor) in model.named_parameters() {
                let unchanged = tensor.equal(&before[&name]);
                if lr_of.contains_key(&name) {
                    assert!(tensor.requires_grad(), "{strategy}: {name}");
                    assert!(!unchanged, "{strategy}: trainable {name} did not change");
                } else {
                    assert!(!tensor.requires_grad(), "{strategy}: {name} requires grad");
                    assert!(!tensor.grad().defined(), "{strategy}: frozen {name} has a gradient");
                    assert!(unchanged, "{strategy}: frozen {name} changed");
                }
            }
        }
    }

    #[test]
    fn single_groups_use_the_base_learning_rate() {
        let model = tiny(Pooling::Cls);
        let groups = FreezeStrategy::OutputLayers(1).apply(&model, 3e-4).expect("apply");
        assert_eq!(groups.len(), 1);
        assert_eq!((groups[0].name.as_str(), groups[0].lr), ("output_layers", 3e-4));
        let names: Vec<&str> = groups[0].parameters.iter().map(|(name, _)| name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), 16 + 4);
        assert!(FreezeStrategy::HeadsOnly.apply(&model, 0.0).is_err());
        assert!(FreezeStrategy::All.apply(&model, f64::NAN).is_err());
    }

    #[test]
    fn adaptive_rates_rise_from_the_embeddings_to_the_heads() {
        let model = tiny(Pooling::Mean);
        for (input_lr, output_lr) in [(DEFAULT_INPUT_LR, DEFAULT_OUTPUT_LR), (2e-5, 5e-3)] {
            let groups = FreezeStrategy::AllAdaptive { input_lr, output_lr }.apply(&model, 1.0).expect("apply");
            let names: Vec<&str> = groups.iter().map(|group| group.name.as_str()).collect();
            assert_eq!(names, ["embeddings", "encoder.layer.0", "encoder.layer.1", "heads"]);
            assert_eq!(groups[0].lr, input_lr);
            assert_eq!(groups[3].lr, output_lr);
            assert!(groups.windows(2).all(|pair| pair[0].lr < pair[1].lr), "{:?}", groups);
            // Geometric: equal ratios between neighbours.
            let ratio = (output_lr / input_lr).powf(1.0 / 3.0);
            for pair in groups.windows(2) {
                assert!((pair[1].lr / pair[0].lr - ratio).abs() < 1e-9);
            }
            for group in &groups {
                let prefix = match group.name.as_str() {
                    "heads" => "",
                    name => name,
                };
                for (name, _) in &group.parameters {
                    let head = name.starts_with("classification_head.") || name.starts_with("ner_head.");
                    assert!(if prefix.is_empty() { head } else { name.starts_with(&format!("{prefix}.")) }, "{name}");
                }
            }
            assert_eq!(
                groups.iter().map(|g| g.numel()).sum::<i64>(),
                model.named_parameters().iter().map(|(_, t)| t.numel() as i64).sum::<i64>()
            );
        }
    }

    #[test]
    fn encoder_and_heads_rates_and_layer_decay_make_their_groups() {
        let model = tiny(Pooling::Mean);
        let rates = LearningRates { heads: 1e-3, encoder: Some(1e-4), layer_decay: None };
        let groups = FreezeStrategy::All.apply(&model, rates).expect("apply");
        let summary: Vec<(&str, f64)> = groups.iter().map(|g| (g.name.as_str(), g.lr)).collect();
        assert_eq!(summary, [("encoder", 1e-4), ("heads", 1e-3)]);
        assert_eq!(groups[1].parameters.len(), 4);

        // Layer decay 0.5 over 2 layers: layer 1 at the encoder rate, layer 0 at half, the embeddings at a quarter.
        let rates = LearningRates { heads: 1e-3, encoder: Some(1e-4), layer_decay: Some(0.5) };
        let groups = FreezeStrategy::All.apply(&model, rates).expect("apply");
        let summary: Vec<(&str, f64)> = groups.iter().map(|g| (g.name.as_str(), g.lr)).collect();
        assert_eq!(
            summary,
            [("embeddings", 2.5e-5), ("encoder.layer.0", 5e-5), ("encoder.layer.1", 1e-4), ("heads", 1e-3)]
        );
        for group in &groups {
            for (name, _) in &group.parameters {
                let expected = if group.name == "heads" { "_head." } else { group.name.as_str() };
                assert!(name.contains(expected), "{name} in {}", group.name);
            }
        }
        // Only the trainable parts get groups.
        let groups = FreezeStrategy::OutputLayers(1).apply(&model, rates).expect("apply");
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["encoder.layer.1", "heads"]);
        let bad = LearningRates { heads: 1e-3, encoder: Some(1e-4), layer_decay: Some(1.5) };
        assert!(FreezeStrategy::All.apply(&model, bad).unwrap_err().to_string().contains("layer_decay"));
        let bad = LearningRates { heads: 1e-3, encoder: Some(-1.0), layer_decay: None };
        assert!(FreezeStrategy::All.apply(&model, bad).unwrap_err().to_string().contains("encoder learning rate"));
    }

    #[test]
    fn a_group_for_some_tasks_and_the_weight_decay_rule() {
        let model = tiny(Pooling::Mean);
        let groups = FreezeStrategy::All.apply(&model, 1e-3).expect("apply");
        let all: Vec<String> = groups[0].parameters.iter().map(|(n, _)| n.clone()).collect();
        let without_ner: Vec<String> =
            groups[0].for_tasks(&[Task::Classification]).parameters.into_iter().map(|(n, _)| n).collect();
        assert_eq!(without_ner.len(), all.len() - 2);
        assert!(without_ner.iter().all(|n| !n.starts_with("ner_head.")));
        assert!(without_ner.iter().any(|n| n.starts_with("classification_head.")));
        assert_eq!(groups[0].for_tasks(&Task::ALL).parameters.len(), all.len());
        assert!(takes_weight_decay("encoder.layer.0.attention.self.query.weight"));
        assert!(takes_weight_decay("ner_head.weight"));
        assert!(!takes_weight_decay("encoder.layer.0.attention.self.query.bias"));
        assert!(!takes_weight_decay("embeddings.LayerNorm.weight"));
        assert!(!takes_weight_decay("encoder.layer.0.output.LayerNorm.weight"));
        assert_eq!(Task::of_variable("ner_head.bias"), Some(Task::Ner));
        assert_eq!(Task::of_variable("encoder.layer.0.output.dense.bias"), None);
    }

    #[test]
    fn reapplying_refreezes_and_clears_old_gradients() {
        let model = tiny(Pooling::Mean);
        FreezeStrategy::All.apply(&model, 1e-3).expect("apply");
        joint_loss(&model).backward();
        FreezeStrategy::HeadsOnly.apply(&model, 1e-3).expect("apply");
        for (name, tensor) in model.named_parameters() {
            let head = name.contains("_head.");
            assert_eq!(tensor.requires_grad(), head, "{name}");
            if !head {
                assert_eq!(tensor.grad().abs().sum(Kind::Float).double_value(&[]), 0.0, "{name}");
            }
        }
    }

    #[test]
    fn invalid_strategies_are_errors() {
        let model = tiny(Pooling::Cls);
        let err = FreezeStrategy::OutputLayers(3).apply(&model, 1e-3).unwrap_err().to_string();
        assert!(err.contains("output_layers:3") && err.contains('2'), "{err}");
        let reversed = FreezeStrategy::AllAdaptive { input_lr: 1e-3, output_lr: 1e-5 };
        assert!(reversed.apply(&model, 1e-3).is_err());
        let negative = FreezeStrategy::AllAdaptive { input_lr: -1e-3, output_lr: 1e-5 };
        assert!(negative.apply(&model, 1e-3).is_err());
        assert!(FreezeStrategy::HeadsOnly.trains("pooler.dense.weight", 2).is_err());
    }

    #[test]
    fn names_parse_print_and_serialise() {
        let cases = [
            ("none", FreezeStrategy::None),
            ("heads_only", FreezeStrategy::HeadsOnly),
            ("output_layers", FreezeStrategy::OutputLayers(3)),
            ("output_layers:2", FreezeStrategy::OutputLayers(2)),
            ("all", FreezeStrategy::All),
            ("all_adaptive", FreezeStrategy::AllAdaptive { input_lr: 1e-6, output_lr: 1e-4 }),
            ("all_adaptive:2e-5:3e-3", FreezeStrategy::AllAdaptive { input_lr: 2e-5, output_lr: 3e-3 }),
        ];
        for (text, strategy) in cases {
            assert_eq!(text.parse::<FreezeStrategy>().expect(text), strategy);
            assert_eq!(strategy.to_string(), text);
            let json = serde_json::to_string(&strategy).expect("serialise");
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<FreezeStrategy>(&json).expect("deserialise"), strategy);
        }
        assert_eq!("output_layers:3".parse::<FreezeStrategy>().expect("parse").to_string(), "output_layers");
        for bad in ["heads", "output_layers:x", "all_adaptive:1e-4", "all_adaptive:1e-3:1e-5", "all:2", ""] {
            let err = bad.parse::<FreezeStrategy>().unwrap_err();
            assert!(matches!(err, HeadsError::InvalidStrategy(_)), "{bad}: {err}");
        }
        assert!(serde_json::from_str::<FreezeStrategy>("\"frozen\"").is_err());
    }

    #[test]
    fn bert_base_counts_match_the_notebook() {
        let labels = |n: usize| (0..n).map(|i| format!("L{i}")).collect::<Vec<_>>();
        let config = MultiTaskConfig::new(BertConfig::default(), labels(2), labels(17), Pooling::Cls);
        let model = MultiTaskModel::new(config, Device::Cpu).expect("bert-base");
        let table = parameter_table(&model);
        let counts: HashMap<&str, (i64, i64)> =
            table.iter().map(|row| (row.strategy.as_str(), (row.trainable, row.total))).collect();
        assert_eq!(counts["none"], (0, 108_906_259));
        assert_eq!(counts["heads_only"], (14_611, 108_906_259));
        assert_eq!(counts["output_layers"], (21_278_227, 108_906_259));
        assert_eq!(counts["all"], (108_906_259, 108_906_259));
        assert_eq!(counts["all_adaptive"], (108_906_259, 108_906_259));
        // Counting changed nothing.
        assert!(model.named_parameters().iter().all(|(_, tensor)| tensor.requires_grad()));
    }

    #[test]
    fn shallow_encoders_count_all_their_layers_as_output_layers() {
        let model = tiny(Pooling::Cls);
        let table = parameter_table(&model);
        let output = table.iter().find(|row| row.strategy.starts_with("output_layers")).expect("row");
        assert_eq!(output.strategy, "output_layers:2");
        let all = table.iter().find(|row| row.strategy == "all").expect("row");
        let embeddings: i64 = model
            .named_parameters()
            .iter()
            .filter(|(name, _)| name.starts_with("embeddings."))
            .map(|(_, tensor)| tensor.numel() as i64)
            .sum();
        assert_eq!(output.trainable, all.trainable - embeddings);
    }
}

//! The configuration of a multi-task model: the encoder's, the label sets of both tasks, pooling and head dropout.

use crate::error::{HeadsError, Result};
use crate::task::Task;
use encoder::{BertConfig, Pooling};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Everything needed to build a [`MultiTaskModel`](crate::MultiTaskModel) (and saved in its checkpoints).
///
/// The number of outputs of each head is the number of its labels: label `i` is output `i`. A task with no labels
/// has no head (a model trained on the other task only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiTaskConfig {
    /// The shared encoder.
    pub encoder: BertConfig,
    /// The sentence classes, in output order (empty: no classification head).
    #[serde(default)]
    pub classification_labels: Vec<String>,
    /// The NER tags (e.g. `O`, `B-PER`, `I-PER`, ...), in output order (empty: no NER head).
    #[serde(default)]
    pub ner_labels: Vec<String>,
    /// How the classification head pools the token states into a sentence vector.
    pub pooling: Pooling,
    /// Dropout probability applied to the heads' inputs during training.
    pub head_dropout: f64,
    /// NER: the model reads capitalized words with token type 1 (`text_prep::case_types`); inference must mark
    /// them the same way.
    #[serde(default)]
    pub ner_case_types: bool,
}

impl MultiTaskConfig {
    /// A configuration whose head dropout is the encoder's `hidden_dropout_prob`.
    pub fn new(
        encoder: BertConfig,
        classification_labels: Vec<String>,
        ner_labels: Vec<String>,
        pooling: Pooling,
    ) -> Self {
        let head_dropout = encoder.hidden_dropout_prob;
        Self { encoder, classification_labels, ner_labels, pooling, head_dropout, ner_case_types: false }
    }

    /// The configuration of a pretrained Hugging Face BERT directory (its `config.json`) with these heads.
    pub fn for_pretrained(
        model_dir: &std::path::Path,
        classification_labels: Vec<String>,
        ner_labels: Vec<String>,
        pooling: Pooling,
    ) -> Result<Self> {
        let files = encoder::ModelFiles::locate(model_dir)?;
        let encoder = BertConfig::from_file(&files.config)?;
        Ok(Self::new(encoder, classification_labels, ner_labels, pooling))
    }

    /// The labels of `task`'s head, in output order (empty when the model has no head for it).
    pub fn labels(&self, task: Task) -> &[String] {
        match task {
            Task::Classification => &self.classification_labels,
            Task::Ner => &self.ner_labels,
        }
    }

    /// Whether the model has a head for `task` (it has labels).
    pub fn has_task(&self, task: Task) -> bool {
        !self.labels(task).is_empty()
    }

    /// The tasks with a head, in [`Task::ALL`] order.
    pub fn tasks(&self) -> Vec<Task> {
        Task::ALL.into_iter().filter(|&task| self.has_task(task)).collect()
    }

    /// Number of sentence classes (outputs of the classification head).
    pub fn num_classes(&self) -> i64 {
        self.classification_labels.len() as i64
    }

    /// Number of NER tags (outputs of the NER head).
    pub fn num_ner_labels(&self) -> i64 {
        self.ner_labels.len() as i64
    }

    /// Checks the encoder configuration, that at least one task has labels, that no label list has duplicates,
    /// and that the head dropout is a probability in `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        self.encoder.validate().map_err(|message| HeadsError::InvalidConfig(format!("encoder: {message}")))?;
        if self.tasks().is_empty() {
            return Err(HeadsError::InvalidConfig(
                "no labels for any task: a model needs classification labels, NER labels, or both".into(),
            ));
        }
        for task in Task::ALL {
            let labels = self.labels(task);
            let mut seen = HashSet::with_capacity(labels.len());
            if let Some(duplicate) = labels.iter().find(|label| !seen.insert(label.as_str())) {
                return Err(HeadsError::InvalidConfig(format!("{} label `{duplicate}` appears twice", task.title())));
            }
        }
        if !(0.0..1.0).contains(&self.head_dropout) {
            return Err(HeadsError::InvalidConfig(format!(
                "head_dropout must be in [0, 1), got {}",
                self.head_dropout
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn head_dropout_defaults_to_the_encoder_dropout_and_sizes_follow_the_labels() {
        let encoder = BertConfig { hidden_dropout_prob: 0.25, ..BertConfig::default() };
        let config = MultiTaskConfig::new(encoder, labels(&["neg", "pos"]), labels(&["O", "B-X", "I-X"]), Pooling::Cls);
        assert_eq!(config.head_dropout, 0.25);
        assert_eq!((config.num_classes(), config.num_ner_labels()), (2, 3));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn bad_label_sets_and_dropout_are_rejected() {
        let base = MultiTaskConfig::new(BertConfig::default(), labels(&["a"]), labels(&["O"]), Pooling::Mean);
        let one_task = MultiTaskConfig { ner_labels: vec![], ..base.clone() };
        assert_eq!(one_task.tasks(), [Task::Classification]);
        assert!(one_task.validate().is_ok());
        let empty = MultiTaskConfig { classification_labels: vec![], ..one_task };
        assert!(empty.validate().unwrap_err().to_string().contains("no labels for any task"));
        let duplicate = MultiTaskConfig { classification_labels: labels(&["a", "b", "a"]), ..base.clone() };
        assert!(duplicate.validate().unwrap_err().to_string().contains("`a` appears twice"));
        let dropout = MultiTaskConfig { head_dropout: 1.0, ..base.clone() };
        assert!(dropout.validate().unwrap_err().to_string().contains("head_dropout"));
        let encoder = MultiTaskConfig { encoder: BertConfig { hidden_size: 10, ..BertConfig::default() }, ..base };
        assert!(encoder.validate().unwrap_err().to_string().contains("encoder"));
    }
}

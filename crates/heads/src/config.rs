//! The configuration of a multi-task model: the encoder's, the label sets of both tasks, pooling and head dropout.

use crate::error::{HeadsError, Result};
use encoder::{BertConfig, Pooling};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Everything needed to build a [`MultiTaskModel`](crate::MultiTaskModel) (and saved in its checkpoints).
///
/// The number of outputs of each head is the number of its labels: label `i` is output `i`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiTaskConfig {
    /// The shared encoder.
    pub encoder: BertConfig,
    /// The sentence classes, in output order.
    pub classification_labels: Vec<String>,
    /// The NER tags (e.g. `O`, `B-PER`, `I-PER`, ...), in output order.
    pub ner_labels: Vec<String>,
    /// How the classification head pools the token states into a sentence vector.
    pub pooling: Pooling,
    /// Dropout probability applied to the heads' inputs during training.
    pub head_dropout: f64,
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
        Self { encoder, classification_labels, ner_labels, pooling, head_dropout }
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

    /// Number of sentence classes (outputs of the classification head).
    pub fn num_classes(&self) -> i64 {
        self.classification_labels.len() as i64
    }

    /// Number of NER tags (outputs of the NER head).
    pub fn num_ner_labels(&self) -> i64 {
        self.ner_labels.len() as i64
    }

    /// Checks the encoder configuration, that both label lists are non-empty without duplicates, and that the
    /// head dropout is a probability in `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        self.encoder.validate().map_err(|message| HeadsError::InvalidConfig(format!("encoder: {message}")))?;
        for (task, labels) in [("classification", &self.classification_labels), ("NER", &self.ner_labels)] {
            if labels.is_empty() {
                return Err(HeadsError::InvalidConfig(format!("no {task} labels: the head needs at least one")));
            }
            let mut seen = HashSet::with_capacity(labels.len());
            if let Some(duplicate) = labels.iter().find(|label| !seen.insert(label.as_str())) {
                return Err(HeadsError::InvalidConfig(format!("{task} label `{duplicate}` appears twice")));
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
        let empty = MultiTaskConfig { ner_labels: vec![], ..base.clone() };
        assert!(empty.validate().unwrap_err().to_string().contains("no NER labels"));
        let duplicate = MultiTaskConfig { classification_labels: labels(&["a", "b", "a"]), ..base.clone() };
        assert!(duplicate.validate().unwrap_err().to_string().contains("`a` appears twice"));
        let dropout = MultiTaskConfig { head_dropout: 1.0, ..base.clone() };
        assert!(dropout.validate().unwrap_err().to_string().contains("head_dropout"));
        let encoder = MultiTaskConfig { encoder: BertConfig { hidden_size: 10, ..BertConfig::default() }, ..base };
        assert!(encoder.validate().unwrap_err().to_string().contains("encoder"));
    }
}

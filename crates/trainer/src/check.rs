//! Checks, before any work, that prepared data fits the model: label sets, token ids, token types, lengths and label
//! ids (a dataset cache whose checksum was recomputed, or data prepared for another model, would otherwise fail deep
//! inside libtorch; split indices are in range by construction of `PreparedDataset`). Warns when a task's training examples cannot teach anything (one class only;
//! NER with only `O` tags).

use crate::config::Task;
use crate::data::TaskData;
use crate::error::{Result, TrainError};
use datasets::{PreparedDataset, Target, IGNORE_INDEX};
use heads::MultiTaskModel;

/// The tag that marks words outside every entity.
const OUTSIDE_TAG: &str = "O";

/// Checks every present task's data against `model`.
pub(crate) fn check_data_fits(model: &MultiTaskModel, data: TaskData<'_>) -> Result<()> {
    for (task, dataset) in data.iter() {
        check_task(model, task, dataset)?;
    }
    Ok(())
}

/// Warns, per present task, when its training examples hold one class only, or (NER) no entity tag at all.
pub(crate) fn warn_if_nothing_to_learn(data: TaskData<'_>) {
    for (task, dataset) in data.iter() {
        warn_for_task(task, dataset);
    }
}

fn check_task(model: &MultiTaskModel, task: Task, dataset: &PreparedDataset) -> Result<()> {
    let fail = |message: String| TrainError::DataMismatch { task, message };
    let config = model.config();
    let labels = config.labels(task);
    if dataset.label_names() != labels {
        return Err(fail(format!(
            "its labels {:?} are not the model's {:?}",
            preview(dataset.label_names()),
            preview(labels)
        )));
    }
    let examples = dataset.examples();
    let encoder = &config.encoder;
    let classes = labels.len();
    for (index, example) in examples.iter().enumerate() {
        let at = |what: String| fail(format!("example {index}: {what}"));
        if example.longest_row() as i64 > encoder.max_position_embeddings {
            return Err(at(format!(
                "{} tokens in a row, more than the model's {} positions",
                example.longest_row(),
                encoder.max_position_embeddings
            )));
        }
        if let Some(id) = example.input_ids.iter().find(|&&id| i64::from(id) >= encoder.vocab_size) {
            return Err(at(format!("token id {id} is outside the model's vocabulary of {}", encoder.vocab_size)));
        }
        if let Some(id) = example.type_ids.iter().find(|&&id| i64::from(id) >= encoder.type_vocab_size) {
            return Err(at(format!("token type {id} is outside the model's {} types", encoder.type_vocab_size)));
        }
        if example.type_ids.len() != example.input_ids.len() {
            return Err(at(format!("{} token types for {} tokens", example.type_ids.len(), example.input_ids.len())));
        }
        match (&example.target, task) {
            (Target::Class(label), Task::Classification) => {
                if *label as usize >= classes {
                    return Err(at(format!("class {label} is not one of the {classes} labels")));
                }
            }
            (Target::Tokens(targets), Task::Ner) => {
                if targets.labels.len() != example.input_ids.len() {
                    return Err(at(format!(
                        "{} token labels for {} tokens",
                        targets.labels.len(),
                        example.input_ids.len()
                    )));
                }
                let out_of_range = |label: i64| label < 0 || label as usize >= classes;
                if let Some(label) =
                    targets.labels.iter().find(|&&label| label != IGNORE_INDEX && out_of_range(i64::from(label)))
                {
                    return Err(at(format!("token label {label} is not one of the {classes} tags")));
                }
                if let Some(label) = targets.word_labels.iter().find(|&&label| out_of_range(i64::from(label))) {
                    return Err(at(format!("word label {label} is not one of the {classes} tags")));
                }
            }
            (Target::Class(_), Task::Ner) => return Err(at("a sentence class where NER needs token tags".into())),
            (Target::Tokens(_), Task::Classification) => {
                return Err(at("token tags where classification needs a class".into()))
            }
        }
    }
    Ok(())
}

fn warn_for_task(task: Task, dataset: &PreparedDataset) {
    let examples = dataset.examples();
    let names = &dataset.label_names();
    let mut train = dataset.train().iter().filter_map(|&index| examples.get(index));
    match task {
        Task::Classification => {
            let mut seen = std::collections::BTreeSet::new();
            for example in train {
                if let Target::Class(label) = example.target {
                    seen.insert(label);
                }
            }
            if seen.len() == 1 && !dataset.train().is_empty() {
                let class = seen.first().and_then(|&label| names.get(label as usize)).cloned().unwrap_or_default();
                tracing::warn!(
                    examples = dataset.train().len(),
                    class,
                    "every classification training example has the same class: the head can only learn to predict it"
                );
            }
        }
        Task::Ner => {
            let entity_tag = |label: u32| names.get(label as usize).is_some_and(|name| name != OUTSIDE_TAG);
            let has_entity = train.any(|example| match &example.target {
                Target::Tokens(targets) => targets.word_labels.iter().any(|&label| entity_tag(label)),
                Target::Class(_) => false,
            });
            if !has_entity && !dataset.train().is_empty() {
                tracing::warn!(
                    sentences = dataset.train().len(),
                    "no NER training sentence has an entity tag (every word is O): the head cannot learn entities"
                );
            }
        }
    }
}

/// The first few labels, for messages.
fn preview(labels: &[String]) -> Vec<&str> {
    let mut shown: Vec<&str> = labels.iter().take(8).map(String::as_str).collect();
    if labels.len() > shown.len() {
        shown.push("…");
    }
    shown
}

//! Evaluation on held-out examples: accuracy and a classification report for sentences; seqeval-style strict IOB2
//! entity scores for NER, scored per word (the prediction at each word's first sub-token), as seqeval sees words.

use crate::check::check_data_fits;
use crate::data::{Split, TaskData};
use crate::error::Result;
use crate::features::{ClassificationFeatures, FeatureCache, NerFeatures, TaskFeatures};
use datasets::{PreparedDataset, Target};
use heads::{MultiTaskModel, Task};
use metrics::{
    accuracy_interval, classification_report, entity_counts_per_sequence, entity_report, macro_f1_interval,
    micro_f1_interval, BootstrapOptions, ClassificationReport, ConfidenceInterval, EntityMode, EntityReport, Scheme,
};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Scores of each task present at one point in time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Evaluation {
    /// Classification scores.
    pub classification: Option<ClassificationEvaluation>,
    /// NER scores.
    pub ner: Option<NerEvaluation>,
    /// Seconds the evaluation took.
    pub seconds: f64,
}

impl Evaluation {
    /// The score that selects the best epoch for `task`: accuracy for classification, strict micro-F1 for NER.
    pub fn metric(&self, task: Task) -> Option<f64> {
        match task {
            Task::Classification => self.classification.as_ref().map(|c| c.report.accuracy),
            Task::Ner => self.ner.as_ref().map(|n| n.report.micro_avg.f1),
        }
    }
}

/// Scores each task of `data` on its `split` examples, in batches of at least 32 (`batch_size` if larger): from the
/// cached features when `cache` is given (built on the same model and data), else running the encoder.
pub fn evaluate(
    model: &MultiTaskModel,
    data: TaskData<'_>,
    split: Split,
    batch_size: usize,
    cache: Option<&FeatureCache>,
) -> Result<Evaluation> {
    check_data_fits(model, data)?;
    if let Some(cache) = cache {
        cache.check_serves(data)?;
    }
    score(model, data, split, batch_size, cache)
}

/// Scores each task of `data` on its `split` examples, in batches of at least 32 (`batch_size` if larger): from the
/// cached features of the task when `cache` holds them (built on the same model and data, checked by the caller),
/// else running the encoder.
pub(crate) fn score(
    model: &MultiTaskModel,
    data: TaskData<'_>,
    split: Split,
    batch_size: usize,
    cache: Option<&FeatureCache>,
) -> Result<Evaluation> {
    let started = Instant::now();
    let batch = batch_size.max(32);
    let mut evaluation = Evaluation::default();
    for (task, dataset) in data.iter() {
        let indices = split.of(dataset);
        match (task, cache.and_then(|c| c.get(task))) {
            (Task::Classification, features) => {
                let backbone = match features {
                    Some(TaskFeatures::Classification(f)) => Backbone::Cached(f),
                    _ => Backbone::Live,
                };
                evaluation.classification = Some(evaluate_classification(model, dataset, indices, batch, backbone)?);
            }
            (Task::Ner, features) => {
                let backbone = match features {
                    Some(TaskFeatures::Ner(f)) => Backbone::Cached(f),
                    _ => Backbone::Live,
                };
                evaluation.ner = Some(evaluate_ner(model, dataset, indices, batch, backbone)?);
            }
        }
    }
    evaluation.seconds = started.elapsed().as_secs_f64();
    Ok(evaluation)
}

/// Where the encoder's outputs come from during evaluation.
pub enum Backbone<'a, F> {
    /// Run the encoder on each batch.
    Live,
    /// Read precomputed features (frozen encoder).
    Cached(&'a F),
}

/// Scores of the classification task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassificationEvaluation {
    /// Examples scored.
    pub examples: usize,
    /// Accuracy, per-class scores, averages and the confusion matrix.
    pub report: ClassificationReport,
    /// 95% bootstrap confidence interval of the accuracy (over the examples).
    pub accuracy_interval: ConfidenceInterval,
    /// 95% bootstrap confidence interval of the macro-average F1 (over the examples).
    pub macro_f1_interval: ConfidenceInterval,
}

/// Scores of the NER task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NerEvaluation {
    /// Sentences scored.
    pub sentences: usize,
    /// Words scored.
    pub words: usize,
    /// Entity-level scores (strict IOB2).
    pub report: EntityReport,
    /// 95% bootstrap confidence interval of the micro-average F1 (over the sentences).
    pub micro_f1_interval: ConfidenceInterval,
    /// The first test sentence's gold and predicted tags (the notebook prints them).
    pub first_example: Option<(Vec<String>, Vec<String>)>,
}

/// Classifies `indices` of `data` and scores the predictions.
pub fn evaluate_classification(
    model: &MultiTaskModel,
    data: &PreparedDataset,
    indices: &[usize],
    batch_size: usize,
    backbone: Backbone<'_, ClassificationFeatures>,
) -> Result<ClassificationEvaluation> {
    let mut gold = Vec::with_capacity(indices.len());
    let mut predicted = Vec::with_capacity(indices.len());
    let _guard = tch::no_grad_guard();
    let batches = data.eval_batches(indices, batch_size)?;
    for batch_indices in batches {
        let (logits, labels) = match backbone {
            Backbone::Cached(features) => {
                let (pooled, labels) = features.batch(&batch_indices);
                (model.f_classification_head(&pooled, false)?, labels)
            }
            Backbone::Live => {
                let batch = data.batch(&batch_indices)?.to_tensors(model.var_store().device())?;
                let logits =
                    model.classify_t(&batch.input_ids, &batch.attention_mask, Some(&batch.token_type_ids), false)?;
                (logits, batch.labels)
            }
        };
        predicted.extend(to_usize(&logits.argmax(-1, false))?);
        gold.extend(to_usize(&labels)?);
    }
    let report = classification_report(&gold, &predicted, data.label_names())?;
    let options = BootstrapOptions::default();
    let accuracy_interval = accuracy_interval(&gold, &predicted, &options)?;
    let macro_f1_interval = macro_f1_interval(&gold, &predicted, data.label_names().len(), &options)?;
    Ok(ClassificationEvaluation { examples: gold.len(), report, accuracy_interval, macro_f1_interval })
}

/// Tags `indices` of `data` and scores the entities, word by word.
pub fn evaluate_ner(
    model: &MultiTaskModel,
    data: &PreparedDataset,
    indices: &[usize],
    batch_size: usize,
    backbone: Backbone<'_, NerFeatures>,
) -> Result<NerEvaluation> {
    let tags = &data.label_names();
    let tag = |id: i64| usize::try_from(id).ok().and_then(|i| tags.get(i)).cloned().unwrap_or_else(|| "O".into());
    let mut gold_sentences = Vec::with_capacity(indices.len());
    let mut predicted_sentences = Vec::with_capacity(indices.len());
    let mut order = Vec::with_capacity(indices.len());
    let _guard = tch::no_grad_guard();
    let batches = data.eval_batches(indices, batch_size)?;
    for batch_indices in batches {
        // For each example: the predicted tag id of each word (None: no token survived truncation).
        let per_word: Vec<Vec<Option<i64>>> = match backbone {
            Backbone::Cached(features) => {
                let (states, _) = features.batch(&batch_indices);
                let predicted =
                    Vec::<i64>::try_from(model.f_ner_head(&states, false)?.argmax(-1, false).to_device(Device::Cpu))?;
                let mut offset = 0usize;
                batch_indices
                    .iter()
                    .map(|&index| {
                        let (start, len) = features.span(index).unwrap_or((0, 0));
                        let words = word_count(data, index);
                        let mut out = vec![None; words];
                        for row in 0..len as usize {
                            if let Some(Some(word)) = features.first_of_word.get(start as usize + row) {
                                if let Some(slot) = out.get_mut(*word as usize) {
                                    *slot = predicted.get(offset + row).copied();
                                }
                            }
                        }
                        offset += len as usize;
                        out
                    })
                    .collect()
            }
            Backbone::Live => {
                let batch = data.batch(&batch_indices)?.to_tensors(model.var_store().device())?;
                let logits =
                    model.tag_t(&batch.input_ids, &batch.attention_mask, Some(&batch.token_type_ids), false)?;
                let predicted: Vec<Vec<i64>> =
                    Vec::<Vec<i64>>::try_from(logits.argmax(-1, false).to_device(Device::Cpu))?;
                // Each word takes the prediction at its first sub-token, from the row (window) that owns it.
                let mut words: std::collections::HashMap<usize, Vec<Option<i64>>> =
                    batch_indices.iter().map(|&index| (index, vec![None; word_count(data, index)])).collect();
                for (batch_row, row) in batch.rows.iter().zip(predicted) {
                    let Some(Target::Tokens(targets)) = data.examples().get(batch_row.example).map(|e| &e.target)
                    else {
                        continue;
                    };
                    let starts: Vec<Option<u32>> = datasets::word_starts(&targets.word_ids).collect();
                    let Some(out) = words.get_mut(&batch_row.example) else { continue };
                    for (column, owned) in batch_row.owned.iter().enumerate() {
                        let Some(Some(word)) = owned.and_then(|position| starts.get(position).copied()) else {
                            continue;
                        };
                        if let Some(slot) = out.get_mut(word as usize) {
                            *slot = row.get(column).copied();
                        }
                    }
                }
                batch_indices.iter().map(|index| words.remove(index).unwrap_or_default()).collect()
            }
        };
        for (&index, words) in batch_indices.iter().zip(per_word) {
            let gold: Vec<String> = match data.examples().get(index).map(|e| &e.target) {
                Some(Target::Tokens(targets)) => targets.word_labels.iter().map(|&id| tag(i64::from(id))).collect(),
                _ => Vec::new(),
            };
            // A word without a token (nothing left of it after normalisation) has no prediction: it counts as `O`.
            let predicted: Vec<String> = words.into_iter().map(|id| id.map_or_else(|| "O".into(), tag)).collect();
            order.push(index);
            gold_sentences.push(gold);
            predicted_sentences.push(predicted);
        }
    }
    // Report in the order of `indices`, so the first example is the first test sentence.
    let mut by_index: Vec<(usize, Vec<String>, Vec<String>)> =
        order.into_iter().zip(gold_sentences).zip(predicted_sentences).map(|((i, g), p)| (i, g, p)).collect();
    let position: std::collections::HashMap<usize, usize> = indices.iter().enumerate().map(|(p, &i)| (i, p)).collect();
    by_index.sort_by_key(|(i, _, _)| position.get(i).copied().unwrap_or(usize::MAX));
    let first_example = by_index.first().map(|(_, g, p)| (g.clone(), p.clone()));
    let (gold, predicted): (Vec<Vec<String>>, Vec<Vec<String>>) = by_index.into_iter().map(|(_, g, p)| (g, p)).unzip();
    let words = gold.iter().map(Vec::len).sum();
    let mode = EntityMode::Strict(Scheme::Iob2);
    let report = entity_report(&gold, &predicted, mode)?;
    let counts = entity_counts_per_sequence(&gold, &predicted, mode)?;
    let micro_f1_interval = micro_f1_interval(&counts, &BootstrapOptions::default())?;
    Ok(NerEvaluation { sentences: gold.len(), words, report, micro_f1_interval, first_example })
}

fn word_count(data: &PreparedDataset, index: usize) -> usize {
    match data.examples().get(index).map(|e| &e.target) {
        Some(Target::Tokens(targets)) => targets.word_labels.len(),
        _ => 0,
    }
}

fn to_usize(tensor: &Tensor) -> Result<Vec<usize>> {
    let values = Vec::<i64>::try_from(tensor.to_kind(Kind::Int64).to_device(Device::Cpu))?;
    Ok(values.into_iter().map(|v| usize::try_from(v).unwrap_or(0)).collect())
}

//! What the command line shows and writes: report text, progress bars, run directories, plots.

pub mod plots;
pub mod progress;
pub mod run_dir;
pub mod transcript;
pub mod vectors;

use trainer::{EpochRecord, Evaluation};

/// One line for an epoch: loss, batches, time, and its validation scores (`(best so far)` on the epoch kept so far).
pub fn epoch_line(epoch: &EpochRecord) -> String {
    let validation = epoch.validation.as_ref().map_or_else(String::new, |v| {
        let scores: Vec<String> = [("accuracy", v.classification_accuracy), ("NER F1", v.ner_f1)]
            .into_iter()
            .filter_map(|(name, value)| value.map(|value| format!("{name} {value:.4}")))
            .collect();
        format!("; validation {}{}", scores.join(", "), if v.best { " (best so far)" } else { "" })
    });
    format!(
        "{} epoch {}: mean loss {:.4}, {} batches, {:.1} s{}{validation}",
        epoch.phase,
        epoch.epoch,
        epoch.mean_loss,
        epoch.batches,
        epoch.seconds,
        if epoch.cached { " (cached features)" } else { "" }
    )
}

/// The reports of an evaluation as text, in scikit-learn's and seqeval's layouts, with 95% bootstrap intervals.
pub fn evaluation_text(evaluation: &Evaluation) -> String {
    let mut text = String::new();
    if let Some(classification) = &evaluation.classification {
        text.push_str(&format!(
            "Classification ({} examples)\nAccuracy: {:.4}, 95% CI [{:.4}, {:.4}]; macro F1 {:.4}, 95% CI [{:.4}, {:.4}]\n{}\n",
            classification.examples,
            classification.report.accuracy,
            classification.accuracy_interval.low,
            classification.accuracy_interval.high,
            classification.report.macro_avg.f1,
            classification.macro_f1_interval.low,
            classification.macro_f1_interval.high,
            classification.report
        ));
    }
    if let Some(ner) = &evaluation.ner {
        text.push_str(&format!(
            "NER ({} sentences, {} words; entity level, strict IOB2)\nMicro F1: {:.4}, 95% CI [{:.4}, {:.4}]\n{}\n",
            ner.sentences,
            ner.words,
            ner.report.micro_avg.f1,
            ner.micro_f1_interval.low,
            ner.micro_f1_interval.high,
            ner.report
        ));
    }
    text
}

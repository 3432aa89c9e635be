//! What the command line shows and writes: report text, progress bars, run directories, plots.

pub mod plots;
pub mod progress;
pub mod run_dir;
pub mod transcript;
pub mod vectors;

use heads::ParameterCount;
use trainer::{EpochRecord, Evaluation};

/// Trainable and total values per freezing strategy, as an aligned table with thousands separators.
pub fn parameter_table_text(rows: &[ParameterCount]) -> String {
    let width = rows.iter().map(|row| row.strategy.len()).chain(["strategy".len()]).max().unwrap_or(0);
    let mut text = format!("{:<width$}  {:>13}  {:>13}\n", "strategy", "trainable", "total");
    for row in rows {
        text.push_str(&format!(
            "{:<width$}  {:>13}  {:>13}\n",
            row.strategy,
            thousands(row.trainable),
            thousands(row.total)
        ));
    }
    text
}

/// `108906259` → `108,906,259`.
fn thousands(value: i64) -> String {
    let digits: Vec<char> = value.unsigned_abs().to_string().chars().collect();
    // The leading group has 1 to 3 digits (`to_string` gives at least one digit).
    let (first, rest) = digits.split_at((digits.len().max(1) - 1) % 3 + 1);
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        grouped.push('-');
    }
    grouped.extend(first);
    for group in rest.chunks(3) {
        grouped.push(',');
        grouped.extend(group);
    }
    grouped
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameter_table_aligns_and_groups_thousands() {
        let rows = [
            ParameterCount { strategy: "none".into(), trainable: 0, total: 108_906_259 },
            ParameterCount { strategy: "heads_only".into(), trainable: 14_611, total: 108_906_259 },
        ];
        let text = parameter_table_text(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2], "heads_only         14,611    108,906,259");
        assert!(lines.iter().all(|line| line.len() == lines[0].len()), "{text}");
        assert_eq!((thousands(0), thousands(999), thousands(1_000)), ("0".into(), "999".into(), "1,000".into()));
        assert_eq!(thousands(-1_234_567), "-1,234,567");
    }
}

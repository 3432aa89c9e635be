//! What the command line shows and writes: report text, progress bars, run directories, plots.

pub mod plots;
pub mod progress;
pub mod run_dir;

use anyhow::{Context, Result};
use std::path::Path;
use trainer::{EpochRecord, Evaluation};

/// Writes `content` to `path` so that a reader sees the old file or the new one, never half of one: a unique
/// temporary file in the same directory, fsync, rename over `path`, fsync of the directory.
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    write_atomic_with(path, |file| {
        std::fs::write(file, content).with_context(|| format!("cannot write {}", file.display()))
    })
}

/// [`write_atomic`] for writers that take a path: `write` fills the temporary file at the path it is given.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    write(temporary.path())?;
    let synced = std::fs::File::open(temporary.path()).and_then(|file| file.sync_all());
    synced.with_context(|| format!("cannot sync {}", temporary.path().display()))?;
    temporary.persist(path).with_context(|| format!("cannot write {}", path.display()))?;
    if let Ok(directory) = std::fs::File::open(dir) {
        // Makes the rename durable; not every file system supports syncing a directory.
        let _ = directory.sync_all();
    }
    Ok(())
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
        epoch.task,
        epoch.epoch,
        epoch.mean_loss,
        epoch.steps,
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
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("report.md");
        write_atomic(&path, b"first").expect("write");
        write_atomic(&path, b"second").expect("rewrite");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "second");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["report.md"]);
        let error = write_atomic(&dir.path().join("missing/report.md"), b"x").unwrap_err();
        assert!(format!("{error:#}").contains("missing"), "{error:#}");
    }
}

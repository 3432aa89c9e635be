//! A run directory: the configuration, per-step and per-epoch JSON lines, the before/after reports as text and
//! JSON, and plots (SVG) of the loss curves, the before/after scores and the confusion matrix.

use crate::error::{Result, TrainError};
use crate::fit::{EpochRecord, Evaluation, Observer, StepRecord, TrainOutcome};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Files of one run, under `runs/<name>/`.
pub struct RunDirectory {
    path: PathBuf,
    steps: BufWriter<File>,
    epochs: BufWriter<File>,
    step_records: Vec<StepRecord>,
    failed_write: Option<std::io::Error>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io { path: path.to_path_buf(), source }
}

/// Writes `content` through a temporary file and a rename.
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, content).map_err(io(&temporary))?;
    std::fs::rename(&temporary, path).map_err(io(path))
}

impl RunDirectory {
    /// Creates the directory (and its parents) and starts the JSON-lines logs.
    pub fn create(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        std::fs::create_dir_all(&path).map_err(io(&path))?;
        let open = |name: &str| -> Result<BufWriter<File>> {
            let file = path.join(name);
            let handle = OpenOptions::new().create(true).write(true).truncate(true).open(&file).map_err(io(&file))?;
            Ok(BufWriter::new(handle))
        };
        Ok(Self {
            steps: open("steps.jsonl")?,
            epochs: open("epochs.jsonl")?,
            path,
            step_records: Vec::new(),
            failed_write: None,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes any serializable value as pretty JSON (atomically).
    pub fn write_json(&self, name: &str, value: &impl Serialize) -> Result<()> {
        let json = serde_json::to_vec_pretty(value)
            .map_err(|e| TrainError::Io { path: self.path.join(name), source: std::io::Error::other(e) })?;
        write_atomic(&self.path.join(name), &json)
    }

    /// Writes a text file (atomically).
    pub fn write_text(&self, name: &str, text: &str) -> Result<()> {
        write_atomic(&self.path.join(name), text.as_bytes())
    }

    /// Flushes the logs and writes the reports and plots of a finished run.
    pub fn finish(mut self, outcome: &TrainOutcome) -> Result<()> {
        self.steps.flush().map_err(io(&self.path))?;
        self.epochs.flush().map_err(io(&self.path))?;
        if let Some(error) = self.failed_write.take() {
            return Err(TrainError::Io { path: self.path.join("steps.jsonl"), source: error });
        }
        self.write_json("before.json", &outcome.before)?;
        self.write_json("after.json", &outcome.after)?;
        self.write_text("before.txt", &evaluation_text(&outcome.before))?;
        self.write_text("after.txt", &evaluation_text(&outcome.after))?;
        crate::plots::loss_curves(&self.path.join("loss.svg"), &self.step_records)?;
        crate::plots::before_after(&self.path.join("scores.svg"), &outcome.before, &outcome.after)?;
        if let Some(classification) = &outcome.after.classification {
            crate::plots::confusion_matrix(&self.path.join("confusion_matrix.svg"), &classification.report)?;
        }
        Ok(())
    }

    fn append(writer: &mut BufWriter<File>, failed: &mut Option<std::io::Error>, value: &impl Serialize) {
        let result = serde_json::to_writer(&mut *writer, value)
            .map_err(std::io::Error::other)
            .and_then(|()| writer.write_all(b"\n"));
        if let (Err(error), None) = (result, failed.as_ref()) {
            *failed = Some(error);
        }
    }
}

impl Observer for RunDirectory {
    fn on_step(&mut self, record: &StepRecord) {
        Self::append(&mut self.steps, &mut self.failed_write, record);
        self.step_records.push(record.clone());
    }

    fn on_epoch(&mut self, record: &EpochRecord) {
        Self::append(&mut self.epochs, &mut self.failed_write, record);
        let _ = self.epochs.flush();
    }
}

/// The reports of an evaluation as text, in scikit-learn's and seqeval's layouts.
pub fn evaluation_text(evaluation: &Evaluation) -> String {
    let mut text = String::new();
    if let Some(classification) = &evaluation.classification {
        text.push_str(&format!(
            "Classification ({} examples)\nAccuracy: {:.4}\n{}\n",
            classification.examples, classification.report.accuracy, classification.report
        ));
    }
    if let Some(ner) = &evaluation.ner {
        text.push_str(&format!(
            "NER ({} sentences, {} words; entity level, strict IOB2)\n{}\n",
            ner.sentences, ner.words, ner.report
        ));
    }
    text
}

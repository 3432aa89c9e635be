//! A run directory: the configuration, per-step and per-epoch JSON lines, the before/after reports as text and
//! JSON, and plots (SVG) of the loss curves, the before/after scores and the confusion matrix.

use super::{evaluation_text, plots};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use trainer::{EpochRecord, Observer, StepRecord, TrainOutcome};

/// Step records are flushed to `steps.jsonl` at least every this many steps (and at every epoch).
const FLUSH_EVERY_STEPS: usize = 50;

/// Claims `runs_dir/name` for a new run and returns its path.
///
/// The name must be one plain path component (no separators, not `.` or `..`), so a run never writes outside
/// `runs_dir`. The directory is created here and must not exist yet: creating it is atomic, so two processes never
/// share one run directory, and a run never touches another run's files. With `overwrite`, an existing directory
/// that holds a run is deleted first; a directory that does not look like a run (no `config.json` of ours, or one
/// that is a model directory) is never deleted.
pub fn claim(runs_dir: &Path, name: &str, overwrite: bool) -> Result<PathBuf> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && Path::new(name).components().count() == 1;
    if !plain {
        bail!(
            "--name `{name}` must be a plain name (no `/`, `\\`, `.` or `..`): runs live directly under {}",
            runs_dir.display()
        );
    }
    std::fs::create_dir_all(runs_dir).with_context(|| format!("cannot create {}", runs_dir.display()))?;
    let path = runs_dir.join(name);
    match std::fs::create_dir(&path) {
        Ok(()) => return Ok(path),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error).with_context(|| format!("cannot create {}", path.display())),
    }
    if !overwrite {
        bail!("{} already exists: pick another --name, or pass --overwrite to replace that run", path.display());
    }
    if !is_run_directory(&path) {
        bail!(
            "--overwrite refuses to delete {}: it does not look like a run directory (no run `config.json`, or it \
             holds model weights)",
            path.display()
        );
    }
    std::fs::remove_dir_all(&path).with_context(|| format!("cannot delete the previous run at {}", path.display()))?;
    std::fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(path)
}

/// Removes the directory of a run that failed before training began (it holds its `config.json` at most); a run
/// that got further keeps its logs for inspection.
pub fn remove_unstarted(path: &Path) {
    let Ok(entries) = std::fs::read_dir(path) else { return };
    let only_config = entries.filter_map(|e| e.ok()).all(|e| e.file_name() == "config.json");
    if only_config {
        let _ = std::fs::remove_file(path.join("config.json"));
        let _ = std::fs::remove_dir(path);
    } else {
        tracing::debug!("kept {}: the run wrote more than its configuration", path.display());
    }
}

/// Whether `path` looks like a run of ours: a `config.json` with a `settings` entry and no model weights beside it
/// (an empty directory counts too).
fn is_run_directory(path: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(path) else { return false };
    let names: Vec<String> =
        entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    if names.is_empty() {
        return true;
    }
    if names.iter().any(|n| n.ends_with(".safetensors") || n.ends_with(".bin") || n == "vocab.txt") {
        return false;
    }
    std::fs::read(path.join("config.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|config| config.get("settings").is_some())
}

/// Files of one run, under `runs/<name>/`.
pub struct RunDirectory {
    path: PathBuf,
    steps: BufWriter<File>,
    epochs: BufWriter<File>,
    step_records: Vec<StepRecord>,
    failed_write: Option<(PathBuf, std::io::Error)>,
}

impl RunDirectory {
    /// Starts the JSON-lines logs in a directory [`claim`]ed for this run.
    pub fn create(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let open = |name: &str| -> Result<BufWriter<File>> {
            let file = path.join(name);
            let handle = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&file)
                .with_context(|| format!("cannot create {}", file.display()))?;
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

    /// Writes any serializable value as pretty JSON (atomically).
    pub fn write_json(&self, name: &str, value: &impl Serialize) -> Result<()> {
        let json = serde_json::to_vec_pretty(value)?;
        Ok(atomic_files::write(&self.path.join(name), &json)?)
    }

    /// Writes a text file (atomically).
    pub fn write_text(&self, name: &str, text: &str) -> Result<()> {
        Ok(atomic_files::write(&self.path.join(name), text.as_bytes())?)
    }

    /// Flushes the logs and writes the reports and plots of a finished run.
    pub fn finish(mut self, outcome: &TrainOutcome) -> Result<()> {
        for (writer, name) in [(&mut self.steps, "steps.jsonl"), (&mut self.epochs, "epochs.jsonl")] {
            writer.flush().with_context(|| format!("cannot write {}", self.path.join(name).display()))?;
        }
        if let Some((file, error)) = self.failed_write.take() {
            return Err(error).with_context(|| format!("cannot write {}", file.display()));
        }
        self.write_json("before.json", &outcome.before)?;
        self.write_json("after.json", &outcome.after)?;
        self.write_text("before.txt", &evaluation_text(&outcome.before))?;
        self.write_text("after.txt", &evaluation_text(&outcome.after))?;
        plots::loss_curves(&self.path.join("loss.svg"), &self.step_records)?;
        plots::before_after(&self.path.join("scores.svg"), &outcome.before, &outcome.after)?;
        if let Some(classification) = &outcome.after.classification {
            plots::confusion_matrix(&self.path.join("confusion_matrix.svg"), &classification.report)?;
        }
        Ok(())
    }

    /// Appends one JSON line; the first failure is kept and reported by [`finish`](Self::finish).
    fn append(&mut self, name: &str, value: &impl Serialize, flush: bool) {
        let writer = if name == "steps.jsonl" { &mut self.steps } else { &mut self.epochs };
        let result = serde_json::to_writer(&mut *writer, value)
            .map_err(std::io::Error::other)
            .and_then(|()| writer.write_all(b"\n"))
            .and_then(|()| if flush { writer.flush() } else { Ok(()) });
        if let (Err(error), None) = (result, self.failed_write.as_ref()) {
            self.failed_write = Some((self.path.join(name), error));
        }
    }
}

impl Observer for RunDirectory {
    fn on_step(&mut self, record: &StepRecord) {
        let flush = record.global_step.is_multiple_of(FLUSH_EVERY_STEPS);
        self.append("steps.jsonl", record, flush);
        self.step_records.push(record.clone());
    }

    fn on_epoch(&mut self, record: &EpochRecord) {
        self.append("epochs.jsonl", record, true);
        if let Err(error) = self.steps.flush() {
            self.failed_write.get_or_insert((self.path.join("steps.jsonl"), error));
        }
    }
}

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

/// The lock file every running run holds in its directory.
const LOCK_FILE: &str = ".lock";

/// A run directory this process holds: the lock on it lasts as long as this value (the system releases it when
/// the process ends, however it ends), so no other process can replace or resume the run meanwhile.
#[derive(Debug)]
pub struct ClaimedRun {
    path: PathBuf,
    _lock: File,
}

impl ClaimedRun {
    /// The run's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes the lock of the run in `path`, or names the process-independent reason it cannot.
fn lock(path: &Path) -> Result<File> {
    let lock_path = path.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot create the lock file {}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "the run in {} is still running (another process holds {}): wait for it to end, or stop it first",
            path.display(),
            lock_path.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("cannot lock {}", lock_path.display()))
        }
    }
}

/// Claims `runs_dir/name` for a new run, locked for as long as the returned value lives.
///
/// The name must be one plain path component (no separators, not `.` or `..`), so a run never writes outside
/// `runs_dir`. The directory is created here and must not exist yet: creating it is atomic, so two processes never
/// share one run directory, and a run never touches another run's files. With `overwrite`, an existing directory
/// that holds a run is deleted first, unless that run is still running (it holds its lock); a directory that does
/// not look like a run (no `config.json` of ours, or one that is a model directory) is never deleted.
pub fn claim(runs_dir: &Path, name: &str, overwrite: bool) -> Result<ClaimedRun> {
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
        Ok(()) => return Ok(ClaimedRun { _lock: lock(&path)?, path }),
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
    // Holding the old run's lock proves nobody runs it; deleting the directory drops that lock file with it.
    let old_lock = lock(&path).context("--overwrite refuses to replace a running run")?;
    std::fs::remove_dir_all(&path).with_context(|| format!("cannot delete the previous run at {}", path.display()))?;
    drop(old_lock);
    std::fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(ClaimedRun { _lock: lock(&path)?, path })
}

/// Locks the existing run in `path` to continue it (`--resume`); refused while another process runs it.
pub fn reopen(path: &Path) -> Result<ClaimedRun> {
    if !path.is_dir() {
        bail!("{} is not a run directory: it does not exist", path.display());
    }
    if !is_run_directory(path) {
        bail!("{} is not a run directory (no run `config.json`)", path.display());
    }
    Ok(ClaimedRun { _lock: lock(path)?, path: path.to_path_buf() })
}

/// Removes the directory of a run that failed before training began (it holds its `config.json` at most); a run
/// that got further keeps its logs for inspection.
pub fn remove_unstarted(run: ClaimedRun) {
    let path = run.path.clone();
    let Ok(entries) = std::fs::read_dir(&path) else { return };
    let only_config =
        entries.filter_map(|e| e.ok()).all(|e| e.file_name() == "config.json" || e.file_name() == LOCK_FILE);
    if only_config {
        let _ = std::fs::remove_file(path.join("config.json"));
        let _ = std::fs::remove_file(path.join(LOCK_FILE));
        drop(run);
        let _ = std::fs::remove_dir(&path);
    } else {
        tracing::debug!("kept {}: the run wrote more than its configuration", path.display());
    }
}

/// Whether `path` looks like a run of ours: a `config.json` with a `settings` entry and no model weights beside it
/// (an empty directory counts too).
fn is_run_directory(path: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(path) else { return false };
    let names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != LOCK_FILE)
        .collect();
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

    /// Continues the logs of a run resumed at optimizer step `global_step` after `epochs` whole epochs: the records
    /// written after that point (by the process that was stopped or killed) are dropped, the rest kept.
    pub fn resume(path: impl Into<PathBuf>, global_step: usize, epochs: usize) -> Result<Self> {
        let path = path.into();
        let read = |name: &str| -> Result<Vec<String>> {
            match std::fs::read_to_string(path.join(name)) {
                Ok(text) => Ok(text.lines().filter(|line| !line.trim().is_empty()).map(str::to_string).collect()),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(error) => Err(error).with_context(|| format!("cannot read {}", path.join(name).display())),
            }
        };
        // A line cut by a kill does not parse: it is after the saved point, and dropped like the rest.
        let step_records: Vec<StepRecord> = read("steps.jsonl")?
            .iter()
            .filter_map(|line| serde_json::from_str::<StepRecord>(line).ok())
            .filter(|record| record.global_step <= global_step)
            .collect();
        let epoch_lines: Vec<String> = read("epochs.jsonl")?
            .into_iter()
            .filter(|line| serde_json::from_str::<EpochRecord>(line).is_ok())
            .take(epochs)
            .collect();
        let mut steps_text = String::new();
        for record in &step_records {
            steps_text.push_str(&serde_json::to_string(record)?);
            steps_text.push('\n');
        }
        atomic_files::write(&path.join("steps.jsonl"), steps_text.as_bytes())?;
        let epochs_text: String = epoch_lines.iter().map(|line| format!("{line}\n")).collect();
        atomic_files::write(&path.join("epochs.jsonl"), epochs_text.as_bytes())?;
        let append = |name: &str| -> Result<BufWriter<File>> {
            let file = path.join(name);
            let handle = OpenOptions::new()
                .append(true)
                .open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            Ok(BufWriter::new(handle))
        };
        Ok(Self {
            steps: append("steps.jsonl")?,
            epochs: append("epochs.jsonl")?,
            path,
            step_records,
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
        if let Some(before) = &outcome.before {
            self.write_json("before.json", before)?;
            self.write_text("before.txt", &evaluation_text(before))?;
        }
        self.write_json("after.json", &outcome.after)?;
        self.write_text("after.txt", &evaluation_text(&outcome.after))?;
        plots::loss_curves(&self.path.join("loss.svg"), &self.step_records)?;
        plots::before_after(&self.path.join("scores.svg"), outcome.before.as_ref(), &outcome.after)?;
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
    fn on_stage(&mut self, stage: trainer::Stage) {
        // The records on disk reach the point the state saves, so a resumed run misses none of them.
        if stage == trainer::Stage::SavingState {
            for (writer, name) in [(&mut self.steps, "steps.jsonl"), (&mut self.epochs, "epochs.jsonl")] {
                if let Err(error) = writer.flush() {
                    self.failed_write.get_or_insert((self.path.join(name), error));
                }
            }
        }
    }

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

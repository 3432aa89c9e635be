//! The resumable state of a run, written after every epoch (and when a run is asked to stop): the weights, the
//! optimizer's moments and step count, the best epoch's weights, where training stands (phase, epoch, batch, the
//! schedule's step), the records so far, the scores before training, and a fingerprint of the settings and data.
//!
//! Nothing random needs saving: the batches of an epoch are a function of the seed and the epoch, and the dropout
//! generator is reseeded before every batch from the seed and the batch's place (see `batch_seed`), so a run
//! resumed from a state ends with the weights a run that was never interrupted ends with.
//!
//! A state is a directory of two files, `state.json` and `tensors.safetensors`, written whole through
//! [`atomic_files::StagedDir`]: a crash while saving leaves the previous state.

use super::{Evaluation, PhaseOutcome};
use crate::error::{Result, TrainError};
use crate::observer::{EpochRecord, EpochTiming};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// The state format this build writes and reads.
pub const STATE_FORMAT_VERSION: u32 = 1;
const STATE_FILE: &str = "state.json";
const TENSORS_FILE: &str = "tensors.safetensors";

/// Named values that must be equal for a run to resume: its settings and a hash of each task's splits.
///
/// Keys are dotted paths (`train.epochs`, `data.ner.test`); values their JSON text or a hash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint(BTreeMap<String, String>);

impl Fingerprint {
    /// An empty fingerprint.
    pub fn new() -> Self {
        Self::default()
    }

    /// The leaves of `value` under `prefix`, one entry per scalar (`prefix.field.subfield`; array elements as
    /// `prefix.field.0`).
    pub fn of_json(prefix: &str, value: &serde_json::Value) -> Self {
        let mut fingerprint = Self::new();
        fingerprint.add_json(prefix, value);
        fingerprint
    }

    /// Adds the leaves of `value` under `prefix` (see [`of_json`](Self::of_json)).
    pub fn add_json(&mut self, prefix: &str, value: &serde_json::Value) {
        let key = |name: &str| if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") };
        match value {
            serde_json::Value::Object(map) => {
                for (name, value) in map {
                    self.add_json(&key(name), value);
                }
            }
            serde_json::Value::Array(items) if !items.is_empty() => {
                for (index, value) in items.iter().enumerate() {
                    self.add_json(&key(&index.to_string()), value);
                }
            }
            leaf => {
                self.0.insert(prefix.to_string(), leaf.to_string());
            }
        }
    }

    /// A fingerprint of these entries.
    pub fn from_entries(entries: BTreeMap<String, String>) -> Self {
        Self(entries)
    }

    /// The entries whose keys `leave_out` does not pick.
    pub fn without(&self, leave_out: impl Fn(&str) -> bool) -> Self {
        Self(self.0.iter().filter(|(key, _)| !leave_out(key)).map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// Sets one entry.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    /// Adds every entry of `other` (its values win).
    pub fn extend(&mut self, other: Fingerprint) {
        self.0.extend(other.0);
    }

    /// The entries.
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// The first key (in key order) whose value differs, with the value here and in `now` (`None`: absent).
    pub fn first_difference(&self, now: &Fingerprint) -> Option<(String, Option<String>, Option<String>)> {
        let keys: std::collections::BTreeSet<&String> = self.0.keys().chain(now.0.keys()).collect();
        keys.into_iter().find_map(|key| {
            let (was, is) = (self.0.get(key), now.0.get(key));
            (was != is).then(|| (key.clone(), was.cloned(), is.cloned()))
        })
    }
}

/// Where training stands: the next batch to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The phase (0-based index in the run's plan); the plan's length when every phase is done.
    pub phase: usize,
    /// The epoch of that phase (1-based).
    pub epoch: usize,
    /// Batches of that epoch already trained on.
    pub batch: usize,
    /// Optimizer steps done in that phase (the schedule's position).
    pub phase_step: usize,
    /// Optimizer steps done in the run.
    pub global_step: usize,
}

/// The sums of an epoch interrupted part-way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PartialEpoch {
    pub(crate) loss_sum: f64,
    pub(crate) examples: usize,
    pub(crate) timing: EpochTiming,
    pub(crate) seconds: f64,
}

/// The best epoch of the current phase so far (its weights are among the state's tensors).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct BestEpoch {
    pub(crate) epoch: usize,
    pub(crate) metric: f64,
}

/// What `state.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateRecord {
    pub(crate) format_version: u32,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) next: Position,
    pub(crate) partial_epoch: Option<PartialEpoch>,
    pub(crate) epochs: Vec<EpochRecord>,
    pub(crate) phases: Vec<PhaseOutcome>,
    pub(crate) best: Option<BestEpoch>,
    pub(crate) before: Option<Evaluation>,
    pub(crate) training_seconds: f64,
    pub(crate) optimizer_steps: i64,
}

/// Prefixes of the tensors in `tensors.safetensors`.
pub(crate) mod prefix {
    /// The model's variables.
    pub const MODEL: &str = "model/";
    /// The optimizer's first moments.
    pub const FIRST_MOMENT: &str = "optimizer/exp_avg/";
    /// The optimizer's second moments.
    pub const SECOND_MOMENT: &str = "optimizer/exp_avg_sq/";
    /// The best epoch's trained weights.
    pub const BEST: &str = "best/";
}

/// A saved state, read back to resume a run. Its tensors are handed over as the run restores them (each once), so
/// that a resumed run does not hold a second copy of the weights and moments.
pub struct ResumeState {
    pub(crate) record: StateRecord,
    tensors: std::cell::RefCell<HashMap<String, Tensor>>,
    dir: PathBuf,
}

impl std::fmt::Debug for ResumeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumeState").field("dir", &self.dir).field("next", &self.record.next).finish()
    }
}

impl ResumeState {
    /// Reads the state saved in `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        let invalid = |message: String| TrainError::State { path: dir.to_path_buf(), message };
        let meta_path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&meta_path).map_err(|error| {
            invalid(if error.kind() == std::io::ErrorKind::NotFound {
                format!("no {STATE_FILE}: not a saved training state")
            } else {
                format!("cannot read {STATE_FILE}: {error}")
            })
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|error| invalid(format!("{STATE_FILE} is not JSON: {error}")))?;
        let version = value.get("format_version").and_then(serde_json::Value::as_u64);
        if version != Some(u64::from(STATE_FORMAT_VERSION)) {
            return Err(invalid(format!(
                "state format version {} is not the one this build reads ({STATE_FORMAT_VERSION})",
                version.map_or_else(|| "(none)".to_string(), |v| v.to_string())
            )));
        }
        let record: StateRecord =
            serde_json::from_value(value).map_err(|error| invalid(format!("{STATE_FILE}: {error}")))?;
        let tensors_path = dir.join(TENSORS_FILE);
        let tensors = std::cell::RefCell::new(
            Tensor::read_safetensors(&tensors_path)
                .map_err(|error| invalid(format!("cannot read {TENSORS_FILE}: {error}")))?
                .into_iter()
                .collect(),
        );
        Ok(Self { record, tensors, dir: dir.to_path_buf() })
    }

    /// Where it was read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where training stands.
    pub fn position(&self) -> Position {
        self.record.next
    }

    /// The epochs finished so far.
    pub fn epochs(&self) -> &[EpochRecord] {
        &self.record.epochs
    }

    /// The settings and data the run was started with.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.record.fingerprint
    }

    /// An error naming the first setting or data split that differs from the saved run's.
    pub fn check(&self, now: &Fingerprint) -> Result<()> {
        match self.record.fingerprint.first_difference(now) {
            None => Ok(()),
            Some((key, was, is)) => Err(TrainError::ResumeMismatch {
                dir: self.dir.clone(),
                key,
                was: was.unwrap_or_else(|| "(not set)".into()),
                now: is.unwrap_or_else(|| "(not set)".into()),
            }),
        }
    }

    /// Takes the saved tensor `name` (once), an error naming it when it is missing, already taken, or has another
    /// shape than `like`.
    pub(crate) fn take(&self, name: &str, like: &Tensor) -> Result<Tensor> {
        let tensor = self.tensors.borrow_mut().remove(name).ok_or_else(|| TrainError::State {
            path: self.dir.clone(),
            message: format!("{TENSORS_FILE} lacks `{name}` (or the state was resumed from already)"),
        })?;
        if tensor.size() != like.size() {
            return Err(TrainError::State {
                path: self.dir.clone(),
                message: format!(
                    "`{name}` has shape {:?} in {TENSORS_FILE}, the model needs {:?}",
                    tensor.size(),
                    like.size()
                ),
            });
        }
        Ok(tensor)
    }

    /// Copies the saved tensor `name` into `target` (and lets the state's copy go).
    pub(crate) fn restore(&self, name: &str, target: &Tensor) -> Result<()> {
        let saved = self.take(name, target)?.f_to_kind(target.kind())?.f_to_device(target.device())?;
        let mut target = target.shallow_clone();
        tch::no_grad(|| target.f_copy_(&saved))?;
        Ok(())
    }
}

/// Writes a state into `dir` (replacing the previous one whole).
pub(crate) fn write_state(dir: &Path, record: &StateRecord, tensors: Vec<(String, Tensor)>) -> Result<()> {
    let failed = |message: String| TrainError::State { path: dir.to_path_buf(), message };
    let staging = atomic_files::StagedDir::new(dir).map_err(|error| failed(error.to_string()))?;
    let tensors = tensors
        .into_iter()
        .map(|(name, tensor)| Ok((name, tensor.f_to_device(Device::Cpu)?.f_contiguous()?)))
        .collect::<Result<Vec<_>>>()?;
    Tensor::write_safetensors(&tensors, staging.path().join(TENSORS_FILE))
        .map_err(|error| failed(format!("cannot write {TENSORS_FILE}: {error}")))?;
    staging.sync_file(TENSORS_FILE).map_err(|error| failed(error.to_string()))?;
    let json = serde_json::to_vec_pretty(record).map_err(|error| failed(error.to_string()))?;
    staging.write(STATE_FILE, &json).map_err(|error| failed(error.to_string()))?;
    staging.commit().map_err(|error| failed(error.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_flatten_json_and_name_the_first_difference() {
        let was = Fingerprint::of_json("train", &serde_json::json!({"epochs": 3, "optimizer": {"kind": "adamw"}}));
        assert_eq!(was.entries().get("train.optimizer.kind").map(String::as_str), Some("\"adamw\""));
        let now = Fingerprint::of_json("train", &serde_json::json!({"epochs": 4, "optimizer": {"kind": "adamw"}}));
        assert_eq!(was.first_difference(&now), Some(("train.epochs".into(), Some("3".into()), Some("4".into()))));
        assert_eq!(was.first_difference(&was), None);
        let mut more = was.clone();
        more.insert("data.ner.test", "abc");
        assert_eq!(was.first_difference(&more), Some(("data.ner.test".into(), None, Some("abc".into()))));
    }
}

//! The run file `runs/bench/<stamp>.json`: its typed structure, its stamp and date, reading and writing it, and
//! finding a result in the latest earlier run.
//!
//! The file used to be written from a `serde_json::Value`, whose maps keep their keys sorted: the structs below
//! declare their fields in alphabetical order, so that a run file is written byte for byte as before. Every field
//! has a default, so that a file that lacks some (an older or a hand-written one) still reads and renders, with `?`
//! or `—` where a figure is missing, as it did when it was read as a `Value`; unknown fields are ignored. The
//! children's JSON lines (`results`) stay `Value`s: each bench binary has its own fields.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;
use std::time::SystemTime;
use time::OffsetDateTime;

/// One run of `cargo xtask bench`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct RunRecord {
    /// The command line, `cargo xtask bench ...`.
    pub(super) command: Option<String>,
    /// The real data's directory (`--data-dir`).
    pub(super) data_dir: String,
    /// When the run ended, `2025-01-31 12:05 UTC`.
    pub(super) date: Option<String>,
    /// `[section] command: why`, one per failed process or failed check.
    pub(super) failures: Vec<String>,
    pub(super) machine: Machine,
    /// `--max-load`.
    pub(super) max_load: Option<f64>,
    /// The Python peers' interpreter, with `--peer`.
    pub(super) peer_python: Option<String>,
    /// A `--quick` run: not for docs/benchmarks.md.
    pub(super) quick: bool,
    /// The children's JSON lines, each with `section`, `command`, `wall_seconds`, `load_before`, `other_cpu_load`
    /// and `exit_code` added by the runner.
    pub(super) results: Vec<Value>,
    /// The sections that ran, in order, with the load before each.
    pub(super) section_loads: Vec<SectionLoad>,
    /// The sections that did not run (missing data).
    pub(super) skipped: Vec<Skipped>,
    /// When the run started, `20250131T120501Z`: the file's name.
    pub(super) stamp: Option<String>,
}

/// A section that ran and the 1-minute load average before it.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct SectionLoad {
    pub(super) load_before: Option<f64>,
    /// [`super::Section::key`].
    pub(super) section: String,
}

/// A section that did not run, and why.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Skipped {
    pub(super) section: String,
    pub(super) why: String,
}

/// The machine's facts.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Machine {
    /// `std::thread::available_parallelism()`.
    pub(super) available_parallelism: Option<usize>,
    /// The CPU's model name.
    pub(super) cpu: Option<String>,
    pub(super) kernel: Option<String>,
    /// `tch::get_num_threads()` as the bench binaries reported it.
    pub(super) libtorch_threads: Option<i64>,
    /// Processors in `/proc/cpuinfo`.
    pub(super) logical_cpus: Option<usize>,
    pub(super) memory_gib: Option<f64>,
    /// The model directory.
    pub(super) model: Option<String>,
    /// The CPU's SIMD flags among avx2, fma, avx512f, avx512_bf16 and amx_tile.
    pub(super) simd: Vec<String>,
    pub(super) versions: Versions,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Versions {
    pub(super) libtorch: Option<String>,
    /// The Python peer's versions (`python`, `torch`, `transformers`) as its JSON line gave them.
    pub(super) peer: Option<Value>,
    /// `rustc -V`.
    pub(super) rustc: Option<String>,
    pub(super) tch: Option<String>,
    pub(super) tokenizers: Option<String>,
}

/// Reads a run file.
pub(super) fn read(file: &Path) -> Result<RunRecord> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let value: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    serde_json::from_value(value)
        .with_context(|| format!("{} is not a run file of `cargo xtask bench`", file.display()))
}

/// Writes a run file (pretty-printed).
pub(super) fn write(file: &Path, record: &RunRecord) -> Result<()> {
    Ok(atomic_files::write(file, serde_json::to_string_pretty(record)?.as_bytes())?)
}

/// The most recent full run in `dir` (`runs/bench`) from before `stamp` with a result matching `predicate`: (its
/// stamp, the result). `--quick` runs (`<stamp>-quick.json`) are not considered, nor files that do not read.
pub(super) fn latest_earlier_result(
    dir: &Path,
    stamp: &str,
    predicate: impl Fn(&Value) -> bool,
) -> Option<(String, Value)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with("Z.json") && n.as_str() < format!("{stamp}.json").as_str())
        .collect();
    names.sort();
    names.iter().rev().find_map(|name| {
        let record: RunRecord = serde_json::from_str(&std::fs::read_to_string(dir.join(name)).ok()?).ok()?;
        let found = record.results.into_iter().find(|r| predicate(r))?;
        Some((record.stamp.unwrap_or_else(|| name.clone()), found))
    })
}

/// `20250131T120501Z`.
pub(super) fn utc_stamp(time: SystemTime) -> String {
    let t = OffsetDateTime::from(time);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `2025-01-31 12:05 UTC`.
pub(super) fn iso_date(time: SystemTime) -> String {
    let t = OffsetDateTime::from(time);
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn dates_are_utc_civil_dates() {
        let time = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(utc_stamp(time), "20240229T123456Z");
        assert_eq!(iso_date(time), "2024-02-29 12:34 UTC");
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        // The last second of a year, and sub-second parts are dropped.
        let time = UNIX_EPOCH + Duration::from_millis(1_767_225_599_999);
        assert_eq!(utc_stamp(time), "20251231T235959Z");
        assert_eq!(iso_date(time), "2025-12-31 23:59 UTC");
    }

    /// A run file as the untyped code wrote it (keys sorted, `null` for what was missing).
    const OLD_RUN_FILE: &str = r#"{
  "command": "cargo xtask bench --only training --max-load 0.8",
  "data_dir": "/work/main/../shared/data",
  "date": "2026-12-03 09:39 UTC",
  "failures": [
    "[training] cargo bench -p trainer: exited with exit status: 1"
  ],
  "machine": {
    "available_parallelism": 2,
    "cpu": "AMD EPYC",
    "kernel": "6.18.44",
    "libtorch_threads": null,
    "logical_cpus": 2,
    "memory_gib": 23.5,
    "model": "/cache/models/all-MiniLM-L6-v2",
    "simd": [
      "avx2",
      "fma"
    ],
    "versions": {
      "libtorch": "2.13.0+cu130",
      "peer": {
        "python": "3.12.1",
        "torch": "2.13.0",
        "transformers": "4.57.0"
      },
      "rustc": "rustc 1.95.0 (59807616e 2026-04-14)",
      "tch": "0.26.0",
      "tokenizers": "0.23.2"
    }
  },
  "max_load": 0.8,
  "peer_python": null,
  "quick": false,
  "results": [
    {
      "bench": "trainer.optimizer",
      "section": "training",
      "speedup": 6.5
    }
  ],
  "section_loads": [
    {
      "load_before": 0.48,
      "section": "training"
    },
    {
      "load_before": null,
      "section": "peer"
    }
  ],
  "skipped": [
    {
      "section": "pipeline",
      "why": "no data"
    }
  ],
  "stamp": "20261203T090616Z"
}"#;

    #[test]
    fn run_files_read_and_write_as_before() {
        let record: RunRecord = serde_json::from_str(OLD_RUN_FILE).expect("a run file");
        assert_eq!(record.stamp.as_deref(), Some("20261203T090616Z"));
        assert_eq!(record.section_loads[1].load_before, None);
        assert_eq!(record.machine.simd, ["avx2", "fma"]);
        assert!(record.machine.versions.peer.as_ref().is_some_and(Value::is_object));
        assert_eq!(serde_json::to_string_pretty(&record).expect("serializes"), OLD_RUN_FILE);
        // What the untyped code wrote for the same content: the same bytes.
        let untyped: Value = serde_json::from_str(OLD_RUN_FILE).expect("JSON");
        assert_eq!(serde_json::to_string_pretty(&untyped).expect("serializes"), OLD_RUN_FILE);
    }

    #[test]
    fn sparse_run_files_still_read() {
        let record: RunRecord =
            serde_json::from_str(r#"{"stamp": "20240101T000000Z", "machine": {"cpu": "X"}, "extra": 1}"#)
                .expect("missing fields take their defaults, unknown ones are ignored");
        assert_eq!(record.machine.cpu.as_deref(), Some("X"));
        assert!(record.results.is_empty() && record.section_loads.is_empty() && !record.quick);
        assert_eq!(record.date, None);
    }

    #[test]
    fn earlier_runs_are_searched_latest_first() {
        let dir = std::env::temp_dir().join(format!("bertmt-bench-record-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let run = |stamp: &str, value: i64| {
            serde_json::json!({"stamp": stamp, "results": [{"bench": "encoder.gemm", "value": value}]}).to_string()
        };
        std::fs::write(dir.join("20240101T000000Z.json"), run("20240101T000000Z", 1)).expect("written");
        std::fs::write(dir.join("20240201T000000Z.json"), run("20240201T000000Z", 2)).expect("written");
        std::fs::write(dir.join("20240215T000000Z-quick.json"), run("20240215T000000Z", 3)).expect("written");
        std::fs::write(dir.join("20240220T000000Z.json"), "not JSON").expect("written");
        std::fs::write(dir.join("20240301T000000Z.json"), run("20240301T000000Z", 4)).expect("written");
        let is_gemm = |r: &Value| r["bench"] == "encoder.gemm";
        let (stamp, result) = latest_earlier_result(&dir, "20240301T000000Z", is_gemm).expect("found");
        assert_eq!((stamp.as_str(), result["value"].as_i64()), ("20240201T000000Z", Some(2)));
        assert_eq!(latest_earlier_result(&dir, "20240101T000000Z", is_gemm), None);
        assert_eq!(latest_earlier_result(&dir, "20250101T000000Z", |r| r["bench"] == "other"), None);
        std::fs::remove_dir_all(&dir).expect("removed");
    }
}

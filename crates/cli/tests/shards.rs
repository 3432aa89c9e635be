//! `bertmt embed --shard K/N` and `--merge-shards N`: a merge checks what it joins, and sizes are checked before
//! anything is computed or allocated. Each test writes a tiny random model and its own texts.

use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::write_tiny_model;

fn bertmt(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bertmt")).current_dir(dir).args(args).output().expect("bertmt runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A work directory with the tiny model, `texts.txt` and `other.txt` (11 texts each, all different).
fn work_dir() -> tempfile::TempDir {
    let work = tempfile::tempdir().expect("tempdir");
    write_tiny_model(&work.path().join("tiny-bert"));
    let texts: Vec<String> = (0..11).map(|i| format!("the movie {i} was {}", ["great", "awful"][i % 2])).collect();
    std::fs::write(work.path().join("texts.txt"), texts.join("\n")).expect("texts");
    let other: Vec<String> = (0..11).map(|i| format!("john visited paris {i} {}", ["!", "."][i % 2])).collect();
    std::fs::write(work.path().join("other.txt"), other.join("\n")).expect("texts");
    work
}

/// `embed` of `file` with the test's settings (`--precision f32` unless `extra` says otherwise), then `extra`.
fn embed(dir: &Path, file: &str, extra: &[&str]) -> Output {
    let args = ["embed", "--model", "tiny-bert", "--device", "cpu", "--file", file, "--batch-size", "1"];
    let precision: &[&str] = if extra.contains(&"--precision") { &[] } else { &["--precision", "f32"] };
    bertmt(dir, &[&args[..], &["--pooling", "mean"], precision, extra].concat())
}

/// Embeds `file` in `count` shards for `output`.
fn shard(dir: &Path, file: &str, output: &str, count: usize, extra: &[&str]) {
    for index in 1..=count {
        let shard = format!("{index}/{count}");
        let run = embed(dir, file, &[&["--output", output, "--shard", &shard], extra].concat());
        assert!(run.status.success(), "shard {shard}: {}", stderr(&run));
    }
}

fn merge(dir: &Path, output: &str, count: usize) -> Output {
    bertmt(dir, &["embed", "--merge-shards", &count.to_string(), "--output", output])
}

/// Runs a merge that must fail: its error holds every one of `expected`, and `output` is as it was.
fn refused(dir: &Path, output: &str, count: usize, expected: &[&str]) {
    let before = std::fs::read(dir.join(output)).ok();
    let run = merge(dir, output, count);
    let error = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "the merge must fail with an error: {error}");
    for part in expected {
        assert!(error.contains(part), "`{part}` missing from: {error}");
    }
    assert_eq!(std::fs::read(dir.join(output)).ok(), before, "a refused merge writes nothing");
    let partials: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().contains(".partial-"))
        .collect();
    assert!(partials.is_empty(), "{partials:?}");
}

#[test]
fn a_merge_refuses_shards_made_at_different_precisions() {
    let work = work_dir();
    let dir = work.path();
    let first = embed(dir, "texts.txt", &["--output", "parts.npy", "--shard", "1/2"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let second = embed(dir, "texts.txt", &["--output", "parts.npy", "--shard", "2/2", "--precision", "bf16"]);
    assert!(second.status.success(), "{}", stderr(&second));
    let manifest = std::fs::read_to_string(dir.join("parts.shard-2-of-2.json")).expect("manifest");
    assert!(manifest.contains("\"precision\": \"bf16\""), "the manifest records the precision run at: {manifest}");
    refused(dir, "parts.npy", 2, &["parts.shard-2-of-2.npy", "precision bf16 against f32", "rerun shard 2/2"]);
    // At one precision, the merge goes through.
    shard(dir, "texts.txt", "parts.npy", 2, &[]);
    let merged = merge(dir, "parts.npy", 2);
    assert!(merged.status.success(), "{}", stderr(&merged));
}

#[test]
fn a_merge_refuses_damaged_shard_files_and_broken_coverage() {
    let work = work_dir();
    let dir = work.path();
    shard(dir, "texts.txt", "parts.npy", 3, &[]);
    shard(dir, "texts.txt", "parts.jsonl", 3, &[]);
    for output in ["parts.npy", "parts.jsonl"] {
        let merged = merge(dir, output, 3);
        assert!(merged.status.success(), "{}", stderr(&merged));
    }
    // Each damage in turn, then the shard as it was: a refused merge leaves the merged file of before.
    let damage = |name: &str, damaged: &[u8], expected: &[&str], output: &str| {
        let path = dir.join(name);
        let good = std::fs::read(&path).expect("read");
        std::fs::write(&path, damaged).expect("damage");
        refused(dir, output, 3, expected);
        std::fs::write(&path, good).expect("restore");
    };

    let npy = std::fs::read(dir.join("parts.shard-2-of-3.npy")).expect("read");
    let header = 10 + usize::from(u16::from_le_bytes([npy[8], npy[9]]));
    // A .npy cut right after its header (it declares 4 × 16 values).
    damage("parts.shard-2-of-3.npy", &npy[..header], &["parts.shard-2-of-3.npy is cut short", "4 × 16"], "parts.npy");
    // A .npy cut inside its values.
    damage("parts.shard-2-of-3.npy", &npy[..npy.len() - 10], &["parts.shard-2-of-3.npy is cut short"], "parts.npy");

    // A shard rewritten as float64 (same values, twice the bytes).
    let shard_1 = dir.join("parts.shard-1-of-3.npy");
    let good = std::fs::read(&shard_1).expect("read");
    tch::Tensor::read_npy(&shard_1).expect("read").to_kind(tch::Kind::Double).write_npy(&shard_1).expect("float64");
    let float64 = std::fs::read(&shard_1).expect("read");
    std::fs::write(&shard_1, &good).expect("restore");
    damage("parts.shard-1-of-3.npy", &float64, &["parts.shard-1-of-3.npy holds float64 values ('<f8')"], "parts.npy");

    // A .jsonl cut inside its last line, or holding a line more than its manifest says.
    let jsonl = std::fs::read(dir.join("parts.shard-3-of-3.jsonl")).expect("read");
    damage(
        "parts.shard-3-of-3.jsonl",
        &jsonl[..jsonl.len() - 7],
        &["parts.shard-3-of-3.jsonl is cut inside its last line (line 4"],
        "parts.jsonl",
    );
    let first_line = jsonl.iter().position(|&byte| byte == b'\n').expect("a line") + 1;
    let longer = [&jsonl[..], &jsonl[..first_line]].concat();
    damage("parts.shard-3-of-3.jsonl", &longer, &["parts.shard-3-of-3.jsonl holds 5 vectors", "says 4"], "parts.jsonl");

    // Manifests whose slices leave a gap or overlap (edited by hand).
    let manifest = dir.join("parts.shard-2-of-3.json");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    assert!(text.contains("\"first\": 3,"), "{text}");
    damage(
        "parts.shard-2-of-3.json",
        text.replace("\"first\": 3,", "\"first\": 4,").as_bytes(),
        &["the texts 3..4 are in no shard", "parts.shard-2-of-3.npy starts at text 4"],
        "parts.npy",
    );
    damage(
        "parts.shard-2-of-3.json",
        text.replace("\"first\": 3,", "\"first\": 2,").as_bytes(),
        &["parts.shard-2-of-3.npy overlaps the shards before it"],
        "parts.npy",
    );

    // Everything restored: both merges go through again.
    for output in ["parts.npy", "parts.jsonl"] {
        let merged = merge(dir, output, 3);
        assert!(merged.status.success(), "{}", stderr(&merged));
    }
}

#[test]
fn npy_shards_of_one_input_beside_jsonl_shards_of_another_are_never_mixed() {
    let work = work_dir();
    let dir = work.path();
    shard(dir, "texts.txt", "parts.npy", 3, &[]);
    shard(dir, "other.txt", "parts.jsonl", 3, &[]);
    // The manifests now describe the .jsonl shards of other.txt: the .npy shards of texts.txt have none.
    refused(dir, "parts.npy", 3, &["shard 1 of 3 has no .npy vectors", "parts.shard-1-of-3.jsonl"]);
    let merged = merge(dir, "parts.jsonl", 3);
    assert!(merged.status.success(), "{}", stderr(&merged));
    let whole = embed(dir, "other.txt", &["--output", "whole.jsonl"]);
    assert!(whole.status.success(), "{}", stderr(&whole));
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("jsonl");
    assert_eq!(read("parts.jsonl"), read("whole.jsonl"), "the merge holds other.txt, whole");

    // Both formats of one run share their manifests, and both merge.
    shard(dir, "texts.txt", "both.npy", 2, &[]);
    shard(dir, "texts.txt", "both.jsonl", 2, &[]);
    for output in ["both.npy", "both.jsonl"] {
        let merged = merge(dir, output, 2);
        assert!(merged.status.success(), "{}", stderr(&merged));
    }
}

#[test]
fn a_shard_rerun_on_a_new_input_and_killed_before_its_manifest_is_refused() {
    let work = work_dir();
    let dir = work.path();
    shard(dir, "texts.txt", "parts.npy", 3, &[]);
    // Shard 2 again, on another input of the same size, killed after its vectors and before its manifest: the
    // manifest left is the first run's.
    let manifest = dir.join("parts.shard-2-of-3.json");
    let first_run = std::fs::read(&manifest).expect("manifest");
    let rerun = embed(dir, "other.txt", &["--output", "parts.npy", "--shard", "2/3"]);
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    std::fs::write(&manifest, first_run).expect("the first run's manifest");
    refused(
        dir,
        "parts.npy",
        3,
        &["parts.shard-2-of-3.npy is not the file its manifest", "SHA-256 differs", "rerun shard 2/3"],
    );
}

#[test]
fn sizes_are_checked_before_anything_is_computed_or_allocated() {
    let work = work_dir();
    let dir = work.path();
    let huge = usize::MAX / 3;
    for huge_shard in [format!("1/{huge}"), format!("{huge}/{huge}"), format!("{}/{huge}", huge / 2)] {
        let run = embed(dir, "texts.txt", &["--output", "parts.npy", "--shard", &huge_shard]);
        assert_eq!(run.status.code(), Some(2), "{huge_shard}: a usage error, not a panic: {}", stderr(&run));
        assert!(stderr(&run).contains("more than the 100000"), "{}", stderr(&run));
    }

    let run = merge(dir, "parts.npy", 1_000_000_000_000);
    assert_eq!(run.status.code(), Some(2), "a usage error, not an abort: {}", stderr(&run));
    assert!(stderr(&run).contains("at most 100000"), "{}", stderr(&run));

    // The most shards allowed: the merge stops at the first missing manifest.
    let run = merge(dir, "parts.npy", 100_000);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert!(stderr(&run).contains("shard 1 of 100000 is missing or unfinished"), "{}", stderr(&run));

    // More shards than texts: a shard may hold none.
    let run = embed(dir, "texts.txt", &["--output", "parts.npy", "--shard", "50000/100000"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("texts 5..5 of 11"),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
}

//! `bertmt embed --output`: the file written keeps its mode and its symbolic link, and a write that fails names
//! the file it could not write. Each test writes a tiny random model and its own texts.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::write_tiny_model;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
}

/// A work directory with the tiny model and `texts.txt` (60 texts: their vectors take more than 2 KiB).
fn work_dir() -> tempfile::TempDir {
    let work = tempfile::tempdir().expect("tempdir");
    write_tiny_model(&work.path().join("tiny-bert"));
    let texts: Vec<String> = (0..60).map(|i| format!("the movie {i} was {}", ["great", "awful"][i % 2])).collect();
    std::fs::write(work.path().join("texts.txt"), texts.join("\n")).expect("texts");
    work
}

const EMBED: [&str; 9] =
    ["embed", "--model", "tiny-bert", "--device", "cpu", "--file", "texts.txt", "--pooling", "mean"];

/// `bertmt embed` of `texts.txt`, then `extra`.
fn embed(dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bertmt")).current_dir(dir).args(EMBED).args(extra).output().expect("bertmt runs")
}

#[test]
fn outputs_keep_their_mode_and_their_symbolic_link() {
    let work = work_dir();
    let dir = work.path();
    // A new output gets the mode a plain create gives here (the test's umask is bertmt's).
    let reference = dir.join("reference");
    std::fs::File::create(&reference).expect("create");
    let run = embed(dir, &["--output", "new.jsonl"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(mode(&dir.join("new.jsonl")), mode(&reference));

    // An output replaced keeps its mode; one reached through a symbolic link is written where the link points.
    let store = dir.join("store");
    std::fs::create_dir(&store).expect("mkdir");
    let target = store.join("vectors.npy");
    std::fs::write(&target, b"old").expect("write");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o664)).expect("chmod");
    std::os::unix::fs::symlink("store/vectors.npy", dir.join("vectors.npy")).expect("symlink");
    let run = embed(dir, &["--output", "vectors.npy"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(std::fs::symlink_metadata(dir.join("vectors.npy")).expect("lstat").file_type().is_symlink());
    assert_eq!(tch::Tensor::read_npy(&target).expect("the target holds the vectors").size(), [60, 16]);
    assert_eq!(mode(&target), 0o664, "the replaced file keeps its mode");
}

/// `bertmt` with files limited to 2 blocks (1 or 2 KiB) and SIGXFSZ ignored: a write past the limit fails with
/// EFBIG, as a full disk fails one with ENOSPC.
fn limited(dir: &Path, args: &[&str]) -> Output {
    Command::new("sh")
        .current_dir(dir)
        .arg("-c")
        .arg(r#"ulimit -f 2 && trap '' XFSZ && exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_bertmt"))
        .args(args)
        .output()
        .expect("sh runs")
}

#[test]
fn a_write_that_fails_names_the_file_it_could_not_write() {
    let work = work_dir();
    let dir = work.path();
    for output in ["vectors.npy", "vectors.jsonl"] {
        let run = limited(dir, &[&EMBED[..], &["--output", output]].concat());
        let error = stderr(&run);
        assert_eq!(run.status.code(), Some(1), "{error}");
        assert!(error.contains(&format!("cannot write {output}: File too large (os error 27)")), "{error}");
        assert!(!dir.join(output).exists());
    }
    // A merge too.
    for index in 1..=2 {
        let run = embed(dir, &["--output", "parts.npy", "--shard", &format!("{index}/2")]);
        assert!(run.status.success(), "{}", stderr(&run));
    }
    let run = limited(dir, &["embed", "--merge-shards", "2", "--output", "parts.npy"]);
    let error = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{error}");
    assert!(error.contains("cannot write parts.npy: File too large (os error 27)"), "{error}");
    let left: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".partial-") || name == "parts.npy")
        .collect();
    assert!(left.is_empty(), "nothing half-written is left: {left:?}");
}

//! `bertmt reproduce` and `bertmt embed` end to end on a tiny random model and tiny data the test writes itself.

use std::path::Path;
use std::process::Command;

mod common;

use common::{write_model, write_tiny_model};

fn write_data(dir: &Path) {
    let mut csv = String::from("review,sentiment\n");
    for i in 0..24 {
        let (text, label) = if i % 2 == 0 {
            ("The movie was great, I loved it!<br /><br />A great film.", "positive")
        } else {
            ("The movie was awful. I hated it.", "negative")
        };
        csv.push_str(&format!("\"{text} {i}\",{label}\n"));
    }
    csv.push_str("\"no label here\",\n");
    std::fs::write(dir.join("reviews.csv"), csv).expect("csv");
    let mut conll = String::new();
    for i in 0..20 {
        if i % 2 == 0 {
            conll.push_str("John\tB-PER\nvisited\tO\nParis\tB-LOC\n.\tO\n\t\n");
        } else {
            conll.push_str("the\tO\nfilm\tO\nin\tO\nLondon\tB-LOC\n\n");
        }
    }
    std::fs::write(dir.join("ner.conll"), conll).expect("conll");
}

#[test]
fn reproduce_runs_all_four_tasks_and_writes_its_report() {
    let work = tempfile::tempdir().expect("tempdir");
    write_tiny_model(&work.path().join("tiny-bert"));
    write_data(work.path());
    let output = Command::new(env!("CARGO_BIN_EXE_bertmt"))
        .current_dir(work.path())
        .args(["reproduce", "--model", "tiny-bert", "--classification", "reviews.csv", "--ner", "ner.conll"])
        .args([
            "--epochs",
            "1",
            "--test-size",
            "6",
            "--batch-size",
            "4",
            "--name",
            "tiny",
            "--quiet",
            "--device",
            "cpu",
        ])
        .output()
        .expect("bertmt runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "reproduce failed:\n{stdout}\n{stderr}");
    for heading in
        ["== Task 1", "== Task 2", "== Task 3", "== Task 4", "Metrics before training", "Metrics after training"]
    {
        assert!(stdout.contains(heading), "missing {heading} in:\n{stdout}");
    }
    assert!(stdout.contains("dropped 1 rows: 1 missing sentiment"), "{stdout}");

    let run = work.path().join("runs/tiny");
    for file in [
        "report.md",
        "metrics.json",
        "config.json",
        "steps.jsonl",
        "epochs.jsonl",
        "before.txt",
        "after.json",
        "loss.svg",
        "scores.svg",
        "confusion_matrix.svg",
        "checkpoint/checkpoint.json",
        "checkpoint/model.safetensors",
        "checkpoint/vocab.txt",
    ] {
        assert!(run.join(file).is_file(), "{file} missing from the run directory");
    }
    let report = std::fs::read_to_string(run.join("report.md")).expect("report");
    for section in ["## Task 1", "## Task 2", "## Task 3", "## Task 4"] {
        assert!(report.contains(section), "report.md lacks {section}");
    }

    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).expect("metrics")).expect("json");
    let task2 = &metrics["task2"];
    assert_eq!(task2["classification"]["examples"], 24);
    assert_eq!(task2["classification"]["test"], 6);
    assert_eq!(task2["ner"]["examples"], 20);
    assert_eq!(task2["ner"]["labels"], serde_json::json!(["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]));
    let strategies: Vec<&str> =
        metrics["task3"].as_array().expect("table").iter().filter_map(|r| r["strategy"].as_str()).collect();
    assert!(strategies.contains(&"heads_only") && strategies.contains(&"all"), "{strategies:?}");
    let outcome = &metrics["task4"]["outcome"];
    assert_eq!(outcome["epochs"].as_array().map(Vec::len), Some(2), "one epoch per task in separate mode");
    for stage in ["before", "after"] {
        let accuracy = outcome[stage]["classification"]["report"]["accuracy"].as_f64().expect("accuracy");
        assert!((0.0..=1.0).contains(&accuracy), "{stage} accuracy {accuracy}");
        let f1 = outcome[stage]["ner"]["report"]["micro_avg"]["f1"].as_f64().expect("ner f1");
        assert!((0.0..=1.0).contains(&f1), "{stage} f1 {f1}");
        assert_eq!(outcome[stage]["ner"]["sentences"], 6);
    }
    // The features computed once in Task 2 score the untrained model and serve Task 4: same numbers, one pass.
    assert_eq!(task2["feature_cache"]["tasks"]["classification"]["rows"], 24);
    assert_eq!(outcome["feature_cache"]["seconds"], task2["feature_cache"]["seconds"]);
    assert_eq!(task2["untrained"]["classification"]["report"], outcome["before"]["classification"]["report"]);
    assert_eq!(task2["untrained"]["ner"]["report"], outcome["before"]["ner"]["report"]);
    let loss = outcome["epochs"][0]["mean_loss"].as_f64().expect("loss");
    assert!(loss.is_finite() && loss > 0.0);
    assert!(metrics["task1"]["parity"].is_null(), "no reference outputs for a random model");
    let steps = std::fs::read_to_string(run.join("steps.jsonl")).expect("steps");
    assert_eq!(steps.lines().count(), 5 + 4, "18 + 14 training examples in batches of 4");

    // The same name again: refused, and the finished run is left exactly as it was.
    let again = Command::new(env!("CARGO_BIN_EXE_bertmt"))
        .current_dir(work.path())
        .args(["reproduce", "--model", "tiny-bert", "--classification", "reviews.csv", "--ner", "ner.conll"])
        .args(["--epochs", "1", "--test-size", "6", "--name", "tiny", "--quiet", "--device", "cpu"])
        .output()
        .expect("bertmt runs");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--overwrite"));
    assert_eq!(std::fs::read_to_string(run.join("steps.jsonl")).expect("steps"), steps);
}

fn bertmt(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bertmt")).current_dir(dir).args(args).output().expect("bertmt runs")
}

#[test]
fn run_names_stay_under_the_runs_directory_and_never_replace_what_is_not_a_run() {
    let work = tempfile::tempdir().expect("tempdir");
    write_tiny_model(&work.path().join("tiny-bert"));
    write_data(work.path());
    let data = ["--model", "tiny-bert", "--classification", "reviews.csv", "--ner", "ner.conll", "--quiet"];
    for name in ["../escape", "/tmp/escape", "a/b", "..", ""] {
        let output = bertmt(work.path(), &[&["reproduce", "--name", name], &data[..]].concat());
        assert!(!output.status.success(), "--name {name:?} was accepted");
        assert!(String::from_utf8_lossy(&output.stderr).contains("plain name"), "--name {name:?}");
    }
    assert!(!work.path().join("escape").exists());

    // A model directory is not a run: --overwrite refuses to delete it.
    let model_config = std::fs::read(work.path().join("tiny-bert/config.json")).expect("config");
    let args = [&["reproduce", "--runs-dir", ".", "--name", "tiny-bert", "--overwrite"], &data[..]].concat();
    let output = bertmt(work.path(), &args);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not look like a run directory"));
    assert_eq!(std::fs::read(work.path().join("tiny-bert/config.json")).expect("config"), model_config);

    // A run that fails before training leaves no directory behind.
    let output = bertmt(
        work.path(),
        &[
            "reproduce",
            "--model",
            "tiny-bert",
            "--classification",
            "nope.csv",
            "--ner",
            "ner.conll",
            "--name",
            "failed",
        ],
    );
    assert!(!output.status.success());
    assert!(!work.path().join("runs/failed").exists(), "the failed run left its directory");
}

#[test]
fn embed_keeps_its_input_and_refuses_non_finite_vectors() {
    let work = tempfile::tempdir().expect("tempdir");
    write_tiny_model(&work.path().join("tiny-bert"));
    let lines: Vec<String> = (0..30).map(|i| format!("the movie {i} was great")).collect();
    std::fs::write(work.path().join("texts.txt"), lines.join("\n")).expect("texts");
    let embed = ["embed", "--model", "tiny-bert", "--device", "cpu", "--file", "texts.txt"];

    let output = bertmt(work.path(), &[&embed[..], &["--output", "./texts.txt"]].concat());
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is the input --file"));
    assert_eq!(std::fs::read_to_string(work.path().join("texts.txt")).expect("texts"), lines.join("\n"));

    // 30 texts: vectors written, no similarity matrix (it is shown for at most 20 texts).
    let output = bertmt(work.path(), &[&embed[..], &["--output", "vectors.jsonl", "--pooling", "mean"]].concat());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(!stdout.contains("Cosine similarity"), "{stdout}");
    let written = std::fs::read_to_string(work.path().join("vectors.jsonl")).expect("vectors");
    assert_eq!(written.lines().count(), 30);

    // While another process holds the output's lock, embed refuses at once and leaves the file alone.
    let lock = std::fs::File::create(work.path().join(".vectors.jsonl.lock")).expect("lock file");
    lock.try_lock().expect("the test takes the lock");
    let output = bertmt(work.path(), &[&embed[..], &["--output", "vectors.jsonl", "--pooling", "cls"]].concat());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("another process is writing"), "{stderr}");
    assert_eq!(std::fs::read_to_string(work.path().join("vectors.jsonl")).expect("vectors"), written);
    drop(lock);
    let output = bertmt(work.path(), &[&embed[..], &["--output", "vectors.jsonl", "--pooling", "cls"]].concat());
    assert!(output.status.success(), "the lock is free again: {}", String::from_utf8_lossy(&output.stderr));

    write_model(&work.path().join("nan-bert"), |tensors| {
        for (name, tensor) in tensors.iter_mut() {
            if name == "encoder.layer.1.output.LayerNorm.weight" {
                *tensor = tensor.fill(f64::NAN);
            }
        }
    });
    let output =
        bertmt(work.path(), &["embed", "--model", "nan-bert", "--device", "cpu", "a text", "--output", "nan.npy"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("NaN or infinite"), "{stderr}");
    assert!(!work.path().join("nan.npy").exists());
}

#[test]
fn reproduce_names_a_missing_data_file() {
    let work = tempfile::tempdir().expect("tempdir");
    write_tiny_model(&work.path().join("tiny-bert"));
    write_data(work.path());
    let output = Command::new(env!("CARGO_BIN_EXE_bertmt"))
        .current_dir(work.path())
        .args(["reproduce", "--model", "tiny-bert", "--classification", "nope.csv", "--ner", "ner.conll", "--quiet"])
        .output()
        .expect("bertmt runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nope.csv"), "{stderr}");
}

#[test]
fn a_killed_run_leaves_whole_records_and_its_name_stays_claimed() {
    let work = tempfile::tempdir().expect("tempdir");
    write_tiny_model(&work.path().join("tiny-bert"));
    write_data(work.path());
    let args = ["reproduce", "--model", "tiny-bert", "--classification", "reviews.csv", "--ner", "ner.conll"];
    // Far more epochs than the test waits for: the run is killed while it trains.
    let settings = ["--epochs", "5000", "--test-size", "6", "--batch-size", "4", "--name", "killed", "--quiet"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_bertmt"))
        .current_dir(work.path())
        .args(args)
        .args(settings)
        .args(["--device", "cpu", "--strategy", "all"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("bertmt starts");
    let run = work.path().join("runs/killed");
    let steps_file = run.join("steps.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    // Records reach the file in flushes of 50 steps: wait for a few flushes.
    while std::fs::read_to_string(&steps_file).map_or(0, |s| s.lines().count()) < 100 {
        assert!(child.try_wait().expect("poll").is_none(), "the run ended before it was killed");
        assert!(std::time::Instant::now() < deadline, "no step records after 300 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    // Every record that reached the file is a whole JSON line; only the last may be cut off mid-write.
    let steps = std::fs::read_to_string(&steps_file).expect("steps");
    let lines: Vec<&str> = steps.lines().collect();
    let whole = if steps.ends_with('\n') { lines.len() } else { lines.len() - 1 };
    assert!(whole >= 100, "{whole} whole records");
    for (index, line) in lines[..whole].iter().enumerate() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("line {index}: {e}"));
        assert_eq!(record["global_step"], index + 1, "records in order, none lost before the last flush");
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).expect("config")).expect("json");
    assert_eq!(config["settings"]["train"]["epochs"], 5000, "the killed run's settings are on disk");

    // The name stays claimed by the killed run; `--overwrite` replaces it with a finished one.
    let again = bertmt(work.path(), &[&args[..], &settings[..], &["--device", "cpu"]].concat());
    assert!(!again.status.success(), "reused a killed run's name");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--overwrite"));
    let replaced = bertmt(
        work.path(),
        &[
            &args[..],
            &["--epochs", "1", "--test-size", "6", "--batch-size", "4", "--name", "killed", "--quiet"],
            &["--overwrite"],
        ]
        .concat(),
    );
    assert!(replaced.status.success(), "{}", String::from_utf8_lossy(&replaced.stderr));
    let steps = std::fs::read_to_string(&steps_file).expect("steps");
    assert_eq!(steps.lines().count(), 5 + 4, "only the new run's records");
    assert!(run.join("checkpoint/checkpoint.json").is_file());
}

#[test]
fn embedding_in_shards_then_merging_equals_one_run() {
    let work = tempfile::tempdir().expect("tempdir");
    write_tiny_model(&work.path().join("tiny-bert"));
    let lines: Vec<String> = (0..11).map(|i| format!("the movie {i} was {}", ["great", "awful"][i % 2])).collect();
    std::fs::write(work.path().join("texts.txt"), lines.join("\n")).expect("texts");
    // One text a batch: every vector is computed alone, so the shards' batches cannot change its bits.
    let embed = ["embed", "--model", "tiny-bert", "--device", "cpu", "--file", "texts.txt", "--batch-size", "1"];
    for output in ["whole.npy", "whole.jsonl"] {
        let run = bertmt(work.path(), &[&embed[..], &["--pooling", "mean", "--output", output]].concat());
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    }
    // Shards in any order, one file each, each under its own process.
    for output in ["parts.npy", "parts.jsonl"] {
        for shard in ["3/3", "1/3", "2/3"] {
            let run = bertmt(
                work.path(),
                &[&embed[..], &["--pooling", "mean", "--output", output, "--shard", shard]].concat(),
            );
            assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        }
        assert!(!work.path().join(output).exists(), "shards write beside the output, not to it");
    }
    // A shard without its manifest (still running, or killed) stops the merge, naming it.
    let manifest = work.path().join("parts.shard-2-of-3.json");
    std::fs::rename(&manifest, work.path().join("aside.json")).expect("set aside");
    let unfinished = bertmt(work.path(), &["embed", "--merge-shards", "3", "--output", "parts.npy"]);
    let stderr = String::from_utf8_lossy(&unfinished.stderr);
    assert!(!unfinished.status.success() && stderr.contains("shard 2 of 3 is missing or unfinished"), "{stderr}");
    assert!(!work.path().join("parts.npy").exists());
    std::fs::rename(work.path().join("aside.json"), &manifest).expect("restored");

    for output in ["parts.npy", "parts.jsonl"] {
        let merged = bertmt(work.path(), &["embed", "--merge-shards", "3", "--output", output]);
        assert!(merged.status.success(), "{}", String::from_utf8_lossy(&merged.stderr));
        assert!(String::from_utf8_lossy(&merged.stdout).contains("merged 3 shards: 11 vectors"));
    }
    let whole = tch::Tensor::read_npy(work.path().join("whole.npy")).expect("whole");
    let parts = tch::Tensor::read_npy(work.path().join("parts.npy")).expect("parts");
    assert_eq!(whole.size(), [11, 16]);
    assert!(whole.equal(&parts), "the merged vectors are bit for bit those of one run");
    let read = |name: &str| std::fs::read_to_string(work.path().join(name)).expect("jsonl");
    assert_eq!(read("whole.jsonl"), read("parts.jsonl"));

    // A shard made from another input is refused.
    std::fs::write(work.path().join("other.txt"), lines[..10].join("\n")).expect("texts");
    let other = ["embed", "--model", "tiny-bert", "--device", "cpu", "--file", "other.txt", "--batch-size", "1"];
    let run =
        bertmt(work.path(), &[&other[..], &["--pooling", "mean", "--output", "parts.npy", "--shard", "2/3"]].concat());
    assert!(run.status.success());
    let mixed = bertmt(work.path(), &["embed", "--merge-shards", "3", "--output", "parts.npy"]);
    let stderr = String::from_utf8_lossy(&mixed.stderr);
    assert!(!mixed.status.success() && stderr.contains("different inputs"), "{stderr}");
}

/// A port nothing listens on right now (the OS picks it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("an ephemeral port")
}

/// `bertmt reproduce` as rank `rank` of 2 (the variables torchrun sets), its output piped.
fn reproduce_rank(dir: &Path, rank: usize, port: u16, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_bertmt"))
        .current_dir(dir)
        .args(["reproduce", "--model", "tiny-bert", "--classification", "reviews.csv", "--ner", "ner.conll"])
        .args(["--test-size", "6", "--batch-size", "2", "--name", "tiny", "--quiet", "--device", "cpu"])
        .args(args)
        .env("WORLD_SIZE", "2")
        .env("RANK", rank.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("bertmt starts")
}

/// Waits for a child, killing it after `limit`; returns its output.
fn wait_at_most(mut child: std::process::Child, limit: std::time::Duration) -> std::process::Output {
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().expect("poll bertmt").is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait_with_output().expect("bertmt's output")
}

#[test]
fn two_ranks_reproduce_one_run_that_rank_zero_shows_and_writes() {
    let work = tempfile::tempdir().expect("tempdir");
    write_tiny_model(&work.path().join("tiny-bert"));
    write_data(work.path());
    let port = free_port();
    let args = ["--epochs", "2", "--strategy", "all", "--attention-dropout", "0"];
    let ranks: Vec<_> = (0..2).map(|rank| reproduce_rank(work.path(), rank, port, &args)).collect();
    let outputs: Vec<_> = ranks.into_iter().map(|c| wait_at_most(c, std::time::Duration::from_secs(240))).collect();
    for (rank, output) in outputs.iter().enumerate() {
        let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "rank {rank} failed:\n{stdout}\n{stderr}");
        assert!(stderr.contains(&format!("rank {rank} of 2: batch 2 per process, 4 per step")), "{stderr}");
    }
    // Rank 0 shows the run; rank 1 shows nothing of it.
    let shown = String::from_utf8_lossy(&outputs[0].stdout);
    assert!(shown.contains("== Task 4: training") && shown.contains("batch 2 per process x 2 processes"), "{shown}");
    assert!(String::from_utf8_lossy(&outputs[1].stdout).trim().is_empty());

    // One run directory, rank 0's, with everything a run writes.
    let runs: Vec<_> = std::fs::read_dir(work.path().join("runs")).expect("runs").collect();
    assert_eq!(runs.len(), 1);
    let run = work.path().join("runs/tiny");
    for file in ["report.md", "metrics.json", "config.json", "steps.jsonl", "checkpoint/model.safetensors"] {
        assert!(run.join(file).is_file(), "missing {file}");
    }
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("metrics.json")).expect("metrics")).expect("json");
    assert_eq!(metrics["task4"]["settings"]["train"]["batch_size"], 2, "the batch is per process");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).expect("config")).expect("json");
    assert_eq!(config["resolved"]["processes"], 2);
    // 18 + 14 training examples in global batches of 4, per epoch.
    let steps = std::fs::read_to_string(run.join("steps.jsonl")).expect("steps");
    assert_eq!(steps.lines().count(), 2 * (5 + 4), "{steps}");
}

#[test]
fn a_killed_rank_stops_reproduce_on_the_other_without_a_checkpoint() {
    let work = tempfile::tempdir().expect("tempdir");
    write_tiny_model(&work.path().join("tiny-bert"));
    write_data(work.path());
    let port = free_port();
    // Enough epochs that rank 1 is killed long before training could end.
    let args = ["--epochs", "200", "--strategy", "all"];
    let survivor = reproduce_rank(work.path(), 0, port, &args);
    let mut victim = reproduce_rank(work.path(), 1, port, &args);
    // Rank 1 says it joined the group on its first line; kill it a moment after.
    let mut first_line = String::new();
    let stderr = victim.stderr.take().expect("piped stderr");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stderr), &mut first_line).expect("rank 1's stderr");
    assert!(first_line.contains("rank 1 of 2"), "{first_line}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    victim.kill().expect("SIGKILL rank 1");
    let _ = victim.wait();
    let killed_at = std::time::Instant::now();

    let output = wait_at_most(survivor, std::time::Duration::from_secs(60));
    let noticed = killed_at.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "rank 0 finished although rank 1 was killed:\n{stderr}");
    assert!(noticed < std::time::Duration::from_secs(30), "rank 0 took {noticed:?} to stop");
    assert!(stderr.contains("data-parallel training stopped"), "{stderr}");
    // Training never finished: no checkpoint, whole or partial, and no report.
    let run = work.path().join("runs/tiny");
    let left: Vec<String> = std::fs::read_dir(&run)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(!left.iter().any(|name| name.contains("checkpoint") || name == "report.md"), "{left:?}");
}

#[test]
fn reproduce_names_a_bad_torchrun_variable_before_joining_anything() {
    let work = tempfile::tempdir().expect("tempdir");
    write_tiny_model(&work.path().join("tiny-bert"));
    write_data(work.path());
    // RANK 2 of a world of 2.
    let rank = reproduce_rank(work.path(), 2, free_port(), &[]);
    let output = wait_at_most(rank, std::time::Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("RANK") && stderr.contains('2'), "{stderr}");
    assert!(!work.path().join("runs/tiny").exists(), "a run directory was claimed");
}

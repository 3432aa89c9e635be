//! `bertmt train` and `bertmt evaluate` end to end on a tiny random model and data the tests write themselves: one
//! task or two, given splits, `--config`, `--resume` after a kill or a Ctrl-C, and bad input.

mod common;

use common::write_tiny_model;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bertmt(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bertmt")).current_dir(dir).args(args).output().expect("bertmt runs")
}

fn ok(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// The tensors of a checkpoint, sorted by name.
fn weights(checkpoint: &Path) -> Vec<(String, tch::Tensor)> {
    let mut tensors = tch::Tensor::read_safetensors(checkpoint.join("model.safetensors")).expect("weights");
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .expect("json")
}

/// `n` reviews as JSON lines with `text` and `label` (integers: 1 positive, 0 negative), starting at `from`.
fn reviews_jsonl(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| {
            let (text, label) =
                if i % 2 == 0 { ("the movie was great, loved it", 1) } else { ("awful film, hated it", 0) };
            format!("{{\"text\": \"{text} {i}\", \"label\": {label}}}\n")
        })
        .collect()
}

/// `n` CoNLL-2003 sentences (four columns, `-DOCSTART-`), starting at `from`.
fn conll(from: usize, n: usize) -> String {
    let mut text = String::from("-DOCSTART- -X- -X- O\n\n");
    for i in from..from + n {
        if i % 2 == 0 {
            text.push_str(&format!("John NNP B-NP B-PER\nvisited VBD B-VP O\nParis NNP B-NP B-LOC\n{i} CD I-NP O\n\n"));
        } else {
            text.push_str(&format!(
                "the DT B-NP O\nfilm NN I-NP O\nin IN B-PP O\nLondon NNP B-NP B-LOC\n{i} CD I-NP O\n\n"
            ));
        }
    }
    text
}

/// A tiny model and data files in a fresh directory.
fn workspace() -> tempfile::TempDir {
    let work = tempfile::tempdir().expect("tempdir");
    write_tiny_model(&work.path().join("tiny-bert"));
    let write = |name: &str, text: String| std::fs::write(work.path().join(name), text).expect("data");
    write("train.jsonl", reviews_jsonl(0, 40));
    write("dev.jsonl", reviews_jsonl(40, 8));
    write("test.jsonl", reviews_jsonl(48, 10));
    write("train.conll", conll(0, 30));
    write("dev.conll", conll(30, 6));
    write("test.conll", conll(36, 8));
    work
}

/// Small and quick: 2 epochs, batch 4, the whole model.
const QUICK: [&str; 10] =
    ["--model", "tiny-bert", "--device", "cpu", "--quiet", "--epochs", "2", "--batch-size", "4", "--seed"];

fn train(work: &Path, name: &str, args: &[&str]) -> Output {
    bertmt(work, &[&["train", "--name", name], &QUICK[..], &["7"], args].concat())
}

#[test]
fn one_task_or_two_each_write_a_run_whose_checkpoint_has_their_heads() {
    let work = workspace();
    let dir = work.path();
    for (name, data, tasks) in [
        ("classes", vec!["--classification", "train.jsonl"], vec!["classification"]),
        ("tags", vec!["--ner", "train.conll"], vec!["ner"]),
        ("both", vec!["--classification", "train.jsonl", "--ner", "train.conll"], vec!["classification", "ner"]),
    ] {
        let stdout = ok(&train(dir, name, &data));
        let run = dir.join("runs").join(name);
        for file in ["report.md", "metrics.json", "config.json", "steps.jsonl", "epochs.jsonl", "loss.svg"] {
            assert!(run.join(file).is_file(), "{name}: {file} missing");
        }
        assert!(!run.join("resume").exists(), "{name}: a finished run keeps no resumable state");
        let metrics = json(&run.join("metrics.json"));
        let data_tasks: Vec<&str> = metrics["data"].as_object().expect("data").keys().map(String::as_str).collect();
        assert_eq!(data_tasks, tasks, "{name}");
        let checkpoint = json(&run.join("checkpoint/checkpoint.json"));
        assert_eq!(
            checkpoint["classification_labels"].as_array().map(Vec::len),
            Some(if tasks.contains(&"classification") { 2 } else { 0 })
        );
        assert_eq!(
            !checkpoint["ner_labels"].as_array().expect("ner labels").is_empty(),
            tasks.contains(&"ner"),
            "{name}"
        );
        // The drawn test split: 10% of the training file.
        if tasks.contains(&"classification") {
            assert_eq!(metrics["data"]["classification"]["test"], 4, "{name}");
            assert_eq!(metrics["data"]["classification"]["labels"], serde_json::json!(["0", "1"]));
            assert!(stdout.contains("Classification ("), "{stdout}");
        }
        if tasks.contains(&"ner") {
            assert_eq!(metrics["data"]["ner"]["labels"], serde_json::json!(["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]));
            // The finetune recipe marks capitalized words, and the checkpoint says so for inference.
            assert_eq!(checkpoint["ner_case_types"], true, "{name}");
        }
        // Prediction on the checkpoint gives exactly the trained tasks.
        let predicted = ok(&bertmt(
            dir,
            &[
                "predict",
                "--checkpoint",
                run.to_str().expect("path"),
                "--device",
                "cpu",
                "--json",
                "John visited Paris",
            ],
        ));
        let prediction: Value = serde_json::from_str(predicted.trim()).expect("json line");
        assert_eq!(prediction.get("class").is_some(), tasks.contains(&"classification"), "{prediction}");
        assert_eq!(prediction.get("entities").is_some(), tasks.contains(&"ner"), "{prediction}");
    }
    // Combined mode needs two tasks: the finetune recipe trains one task in separate mode without being told.
    let config = json(&dir.join("runs/tags/config.json"));
    assert_eq!(config["settings"]["recipe"], "finetune");
}

#[test]
fn given_splits_are_used_as_they_are_and_evaluate_reproduces_the_run_test_scores() {
    let work = workspace();
    let dir = work.path();
    ok(&train(
        dir,
        "given",
        &[
            "--classification",
            "train.jsonl",
            "--classification-validation",
            "dev.jsonl",
            "--classification-test",
            "test.jsonl",
            "--ner",
            "train.conll",
            "--ner-validation",
            "dev.conll",
            "--ner-test",
            "test.conll",
            "--sample-ratio",
            "0.5",
        ],
    ));
    let run = dir.join("runs/given");
    let metrics = json(&run.join("metrics.json"));
    let data = &metrics["data"];
    // Given splits whole; the sample ratio took half of the training examples only.
    assert_eq!(
        (
            data["classification"]["train"].as_u64(),
            data["classification"]["validation"].as_u64(),
            data["classification"]["test"].as_u64()
        ),
        (Some(20), Some(8), Some(10))
    );
    assert_eq!(
        (data["ner"]["train"].as_u64(), data["ner"]["validation"].as_u64(), data["ner"]["test"].as_u64()),
        (Some(15), Some(6), Some(8))
    );

    let evaluated = ok(&bertmt(
        dir,
        &[
            "evaluate",
            "--checkpoint",
            "runs/given",
            "--classification",
            "test.jsonl",
            "--ner",
            "test.conll",
            "--device",
            "cpu",
            "--json",
        ],
    ));
    let evaluation: Value = serde_json::from_str(&evaluated).expect("json");
    let after = &metrics["outcome"]["after"];
    for key in ["report", "accuracy_interval", "macro_f1_interval", "examples"] {
        assert_eq!(evaluation["classification"][key], after["classification"][key], "classification {key}");
    }
    for key in ["report", "micro_f1_interval", "sentences", "words"] {
        assert_eq!(evaluation["ner"][key], after["ner"][key], "ner {key}");
    }
    // A label the model never learnt is an error naming it, the file and the line.
    std::fs::write(
        dir.join("odd.jsonl"),
        "{\"text\": \"the movie\", \"label\": 1}\n{\"text\": \"a film\", \"label\": 7}\n",
    )
    .expect("odd");
    let output =
        bertmt(dir, &["evaluate", "--checkpoint", "runs/given", "--classification", "odd.jsonl", "--device", "cpu"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("odd.jsonl") && stderr.contains('7'), "{stderr}");
}

#[test]
fn a_config_reruns_its_run_and_unknown_keys_are_named() {
    let work = workspace();
    let dir = work.path();
    ok(&train(dir, "first", &["--ner", "train.conll"]));
    ok(&bertmt(dir, &["train", "--config", "runs/first/config.json", "--name", "again", "--device", "cpu", "--quiet"]));
    let run_weights = |run: &str| weights(&dir.join("runs").join(run).join("checkpoint"));
    let (first, again) = (run_weights("first"), run_weights("again"));
    assert_eq!(first.len(), again.len());
    for ((name, a), (_, b)) in first.iter().zip(&again) {
        assert!(a.equal(b), "{name} differs between a run and its rerun");
    }
    // A flag still overrides the configuration.
    ok(&bertmt(
        dir,
        &["train", "--config", "runs/first", "--name", "longer", "--epochs", "3", "--device", "cpu", "--quiet"],
    ));
    assert_eq!(json(&dir.join("runs/longer/config.json"))["settings"]["train"]["epochs"], 3);

    let mut config = json(&dir.join("runs/first/config.json"));
    config["settings"]["train"]["learning_rat"] = 0.1.into();
    std::fs::write(dir.join("bad.json"), config.to_string()).expect("bad config");
    let output = bertmt(dir, &["train", "--config", "bad.json", "--name", "bad", "--device", "cpu"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("learning_rat"), "{stderr}");
    assert!(!dir.join("runs/bad").exists());
}

/// Starts a long training run, waits for its first saved state, and stops it with `signal`.
fn start_and_stop(dir: &Path, name: &str, signal: &str) -> std::process::ExitStatus {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bertmt"))
        .current_dir(dir)
        .args(["train", "--name", name, "--classification", "train.jsonl", "--ner", "train.conll"])
        .args(LONG)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bertmt starts");
    let state = dir.join("runs").join(name).join("resume/state.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !state.is_file() {
        assert!(child.try_wait().expect("poll").is_none(), "{name}: the run ended before it saved a state");
        assert!(Instant::now() < deadline, "{name}: no state after 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = Command::new("kill").args([signal, &child.id().to_string()]).status();
    child.wait().expect("reaped")
}

/// Enough epochs that the run is still training when the test stops it.
const LONG: [&str; 15] = [
    "--model",
    "tiny-bert",
    "--device",
    "cpu",
    "--quiet",
    "--epochs",
    "40",
    "--batch-size",
    "4",
    "--patience",
    "0",
    "--seed",
    "3",
    "--mode",
    "separate",
];

#[test]
fn a_run_killed_or_stopped_with_ctrl_c_resumes_to_the_weights_of_an_uninterrupted_run() {
    let work = workspace();
    let dir = work.path();
    ok(&bertmt(
        dir,
        &[&["train", "--name", "whole", "--classification", "train.jsonl", "--ner", "train.conll"], &LONG[..]].concat(),
    ));
    let reference = weights(&dir.join("runs/whole/checkpoint"));

    for (name, signal, exit) in [("interrupted", "-INT", Some(130)), ("killed", "-KILL", None)] {
        let status = start_and_stop(dir, name, signal);
        assert_eq!(status.code(), exit, "{name}: {status}");
        let run = format!("runs/{name}");
        // Resuming with other settings is refused, naming the setting.
        let output = bertmt(dir, &["train", "--resume", &run, "--lr", "0.5", "--quiet"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains("learning_rate"), "{name}: {stderr}");

        let stdout = ok(&bertmt(dir, &["train", "--resume", &run, "--quiet"]));
        assert!(stdout.contains("Resumed from the state saved at"), "{name}: {stdout}");
        let resumed = weights(&dir.join(&run).join("checkpoint"));
        assert_eq!(resumed.len(), reference.len());
        let mut largest = 0f64;
        for ((name_a, a), (name_b, b)) in reference.iter().zip(&resumed) {
            assert_eq!(name_a, name_b);
            largest = largest.max((a - b).abs().max().double_value(&[]));
        }
        assert!(largest <= 1e-6, "{name}: the resumed run's weights differ by {largest}");
        let records = std::fs::read_to_string(dir.join(&run).join("epochs.jsonl")).expect("epochs");
        assert_eq!(records.lines().count(), 80, "{name}: one record per epoch, none twice");
        // Resuming a finished run says so and succeeds.
        let again = ok(&bertmt(dir, &["train", "--resume", &run]));
        assert!(again.contains("finished already"), "{again}");
    }
    let output = bertmt(dir, &["train", "--resume", "tiny-bert"]);
    assert!(!output.status.success());
}

#[test]
fn bad_input_is_named_and_a_failed_run_leaves_nothing() {
    let work = workspace();
    let dir = work.path();
    std::fs::write(dir.join("columns.csv"), "sentence,polarity\nhello,1\n").expect("csv");
    let output = train(dir, "columns", &["--classification", "columns.csv"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("sentence") && stderr.contains("polarity"), "{stderr}");
    assert!(!dir.join("runs/columns").exists(), "the failed run left its directory");
    // The same file passed as training and test data: a warning counts the leak.
    let stdout = ok(&train(dir, "leaky", &["--classification", "train.jsonl", "--classification-test", "train.jsonl"]));
    assert!(stdout.contains("leakage"), "{stdout}");
    let output = train(dir, "nothing", &[]);
    assert!(!output.status.success() && String::from_utf8_lossy(&output.stderr).contains("no training data"));
    let output = train(dir, "orphan", &["--ner-test", "test.conll"]);
    assert!(!output.status.success() && String::from_utf8_lossy(&output.stderr).contains("--ner"));
}

#[test]
fn a_running_run_cannot_be_resumed_and_a_run_without_state_starts_over_with_the_flags_given() {
    let work = workspace();
    let dir = work.path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bertmt"))
        .current_dir(dir)
        .args(["train", "--name", "busy", "--classification", "train.jsonl"])
        .args(LONG)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bertmt starts");
    let state = dir.join("runs/busy/resume/state.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !state.is_file() {
        assert!(child.try_wait().expect("poll").is_none() && Instant::now() < deadline, "no state saved");
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = bertmt(dir, &["train", "--resume", "runs/busy", "--quiet"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("still running"), "{stderr}");
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    // Without a state (as when a run dies in its first epoch) it starts over, and the flags given describe it.
    std::fs::remove_dir_all(dir.join("runs/busy/resume")).expect("state removed");
    let output = bertmt(dir, &["train", "--resume", "runs/busy", "--epochs", "1", "--quiet"]);
    ok(&output);
    assert!(String::from_utf8_lossy(&output.stderr).contains("starting it over"));
    assert_eq!(json(&dir.join("runs/busy/config.json"))["settings"]["train"]["epochs"], 1);
    assert_eq!(json(&dir.join("runs/busy/metrics.json"))["outcome"]["epochs"].as_array().map(Vec::len), Some(1));
}

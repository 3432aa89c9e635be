//! `bertmt predict` end to end on a tiny checkpoint whose weights are set by hand, so its predictions are known.
//!
//! Every encoder weight is zero and every LayerNorm the identity, so each token's final state is
//! `LayerNorm(word embedding)`; each word embedding is one-hot on the dimension of the tag its token should get
//! (0: O, 1: B-LOC, 2: I-LOC, 3: B-PER, 4: I-PER; 5: the positive word "great"). The NER head reads that dimension;
//! the classification head (mean pooling) says "positive" only when "great" is there.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tch::{Device, Tensor};

/// The vocabulary, with the dimension each token's embedding is one-hot on.
const VOCAB: &[(&str, usize)] = &[
    ("[PAD]", 0),
    ("[UNK]", 0),
    ("[CLS]", 0),
    ("[SEP]", 0),
    ("[MASK]", 0),
    ("john", 3),
    ("smith", 4),
    ("new", 1),
    ("york", 2),
    ("paris", 1),
    ("##s", 4),
    ("lives", 0),
    ("in", 0),
    ("the", 0),
    ("film", 0),
    ("was", 0),
    ("great", 5),
    (".", 0),
    ("!", 0),
    ("met", 0),
    ("is", 0),
    ("big", 0),
];
const HIDDEN: i64 = 16;
const NER_LABELS: [&str; 5] = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"];

fn labels(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

fn matrix(rows: usize, cells: &[(usize, usize, f32)]) -> Tensor {
    let mut values = vec![0f32; rows * HIDDEN as usize];
    for &(row, column, value) in cells {
        values[row * HIDDEN as usize + column] = value;
    }
    Tensor::from_slice(&values).view([rows as i64, HIDDEN])
}

/// Saves the hand-set checkpoint into `root/run/checkpoint` and returns that directory.
fn write_checkpoint(root: &Path) -> PathBuf {
    let tokenizer_dir = root.join("tokenizer");
    std::fs::create_dir_all(&tokenizer_dir).expect("tokenizer dir");
    let vocab: Vec<&str> = VOCAB.iter().map(|(token, _)| *token).collect();
    std::fs::write(tokenizer_dir.join("vocab.txt"), vocab.join("\n")).expect("vocab");
    std::fs::write(tokenizer_dir.join("tokenizer_config.json"), r#"{"do_lower_case": true}"#).expect("config");
    let encoder = encoder::BertConfig {
        vocab_size: VOCAB.len() as i64,
        hidden_size: HIDDEN,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 32,
        max_position_embeddings: 64,
        ..encoder::BertConfig::default()
    };
    let config = heads::MultiTaskConfig::new(
        encoder,
        labels(&["negative", "positive"]),
        labels(&NER_LABELS),
        encoder::Pooling::Mean,
    );
    let model = heads::MultiTaskModel::new(config, Device::Cpu).expect("tiny model");
    let embeddings: Vec<(usize, usize, f32)> = VOCAB.iter().enumerate().map(|(id, &(_, dim))| (id, dim, 1.0)).collect();
    let mut ner: Vec<(usize, usize, f32)> = (0..NER_LABELS.len()).map(|tag| (tag, tag, 10.0)).collect();
    ner.push((0, 5, 10.0));
    tch::no_grad(|| {
        for (name, mut tensor) in model.named_parameters() {
            let value = match name.as_str() {
                "embeddings.word_embeddings.weight" => Some(matrix(VOCAB.len(), &embeddings)),
                "ner_head.weight" => Some(matrix(NER_LABELS.len(), &ner)),
                "classification_head.weight" => Some(matrix(2, &[(1, 5, 20.0)])),
                _ => None,
            };
            match value {
                Some(value) => tensor.copy_(&value),
                None if name.ends_with("LayerNorm.weight") => _ = tensor.fill_(1.0),
                None => _ = tensor.zero_(),
            }
        }
    });
    let dir = root.join("run").join("checkpoint");
    model.save(&dir, &tokenizer_dir, None).expect("save");
    dir
}

fn bertmt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bertmt"))
        .args(args)
        .args(["--device", "cpu"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run bertmt")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "bertmt failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

/// Runs `bertmt` expecting it to fail; returns its stderr.
fn failure(args: &[&str]) -> String {
    let output = bertmt(args);
    assert_eq!(output.status.code(), Some(1), "expected exit 1, stdout: {}", String::from_utf8_lossy(&output.stdout));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|line| serde_json::from_str(line).expect("one JSON object a line")).collect()
}

fn entity(value: &Value) -> (String, u64, u64, String, u64, u64) {
    (
        value["type"].as_str().expect("type").to_string(),
        value["start_word"].as_u64().expect("start_word"),
        value["end_word"].as_u64().expect("end_word"),
        value["text"].as_str().expect("text").to_string(),
        value["start_char"].as_u64().expect("start_char"),
        value["end_char"].as_u64().expect("end_char"),
    )
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().expect("array").iter().map(|v| v.as_str().expect("string")).collect()
}

#[test]
fn json_output_gives_classes_and_strict_iob2_entities_over_words() {
    let temp = tempfile::tempdir().expect("tempdir");
    let checkpoint = write_checkpoint(temp.path());
    let texts = ["John Smith lives in New York.", "The film was great!", "Zoë met Pariss.", "York is big"];
    let mut args = vec!["predict", "--json", "--checkpoint", checkpoint.to_str().expect("utf-8 path")];
    args.extend(texts);
    let lines = json_lines(&stdout(&bertmt(&args)));
    assert_eq!(lines.len(), 4);
    for (line, text) in lines.iter().zip(texts) {
        assert_eq!(line["text"], text);
        let probability = line["class"]["probability"].as_f64().expect("probability");
        assert!(probability > 0.5 && probability <= 1.0, "{probability}");
        let all = line["class"]["probabilities"].as_object().expect("probabilities");
        let sum: f64 = all.values().map(|p| p.as_f64().expect("number")).sum();
        assert!((sum - 1.0).abs() < 1e-9, "{sum}");
        assert_eq!(all[line["class"]["label"].as_str().expect("label")].as_f64(), Some(probability));
        assert_eq!(strings(&line["words"]).len(), strings(&line["tags"]).len());
    }
    let [people, film, zoe, york] = &lines[..] else { panic!("four lines") };

    assert_eq!(people["class"]["label"], "negative");
    assert!((people["class"]["probability"].as_f64().expect("p") - 0.9943).abs() < 1e-3);
    assert_eq!(strings(&people["words"]), ["John", "Smith", "lives", "in", "New", "York", "."]);
    assert_eq!(strings(&people["tags"]), ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O"]);
    let found: Vec<_> = people["entities"].as_array().expect("entities").iter().map(entity).collect();
    assert_eq!(
        found,
        [("PER".into(), 0, 2, "John Smith".into(), 0, 10), ("LOC".into(), 4, 6, "New York".into(), 20, 28)]
    );

    assert_eq!(film["class"]["label"], "positive");
    assert!((film["class"]["probability"].as_f64().expect("p") - 0.9987).abs() < 1e-3);
    assert_eq!(film["entities"], serde_json::json!([]));

    // "Pariss" is `paris ##s`: the word takes its first sub-token's B-LOC, not `##s`'s I-PER; offsets count chars.
    assert_eq!(strings(&zoe["tags"]), ["O", "O", "B-LOC", "O"]);
    let found: Vec<_> = zoe["entities"].as_array().expect("entities").iter().map(entity).collect();
    assert_eq!(found, [("LOC".into(), 2, 3, "Pariss".into(), 8, 14)]);

    // Strict IOB2: an I- tag with no B- before it is no entity.
    assert_eq!(strings(&york["tags"]), ["I-LOC", "O", "O"]);
    assert_eq!(york["entities"], serde_json::json!([]));
}

#[test]
fn text_output_from_a_file_and_a_run_directory() {
    let temp = tempfile::tempdir().expect("tempdir");
    let checkpoint = write_checkpoint(temp.path());
    let run_dir = checkpoint.parent().expect("run dir");
    let file = temp.path().join("texts.txt");
    std::fs::write(&file, "\nJohn Smith lives in New York.\n   \nThe film was great!\r\n\n").expect("texts");
    let out = stdout(&bertmt(&[
        "predict",
        "--checkpoint",
        run_dir.to_str().expect("utf-8 path"),
        "--file",
        file.to_str().expect("utf-8 path"),
        "--batch-size",
        "1",
    ]));
    let expected = "1. \"John Smith lives in New York.\"\n   class: negative (0.99)\n   \
                    entities: John Smith [PER] (words 0-2), New York [LOC] (words 4-6)\n\
                    2. \"The film was great!\"\n   class: positive (1.00)\n   entities: none\n";
    assert!(out.ends_with(expected), "{out}");
    assert!(out.starts_with("Checkpoint: "), "{out}");
}

#[test]
fn a_text_longer_than_the_model_is_read_in_windows_and_every_word_is_tagged() {
    let temp = tempfile::tempdir().expect("tempdir");
    let checkpoint = write_checkpoint(temp.path());
    let long = vec!["John"; 80].join(" ");
    for aggregation in ["first", "average", "max"] {
        let out = stdout(&bertmt(&[
            "predict",
            "--json",
            "--aggregation",
            aggregation,
            "--checkpoint",
            checkpoint.to_str().expect("path"),
            &long,
        ]));
        let lines = json_lines(&out);
        let tags = strings(&lines[0]["tags"]);
        // 64 positions hold 62 words: the rest come from a second window, none is lost.
        assert_eq!(tags.len(), 80);
        assert!(tags.iter().all(|tag| *tag == "B-PER"), "{aggregation}: {tags:?}");
        assert_eq!(lines[0]["entities"].as_array().expect("entities").len(), 80);
    }
    let output = bertmt(&["predict", "--aggregation", "mean", "--checkpoint", checkpoint.to_str().expect("path"), "x"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("first, average or max"), "{stderr}");
}

#[test]
fn missing_or_incomplete_checkpoints_fail_naming_the_problem() {
    let temp = tempfile::tempdir().expect("tempdir");
    let missing = temp.path().join("no-such-run");
    let stderr = failure(&["predict", "--checkpoint", missing.to_str().expect("path"), "hello"]);
    assert!(stderr.contains("no-such-run") && stderr.contains("does not exist"), "{stderr}");

    let empty = temp.path().join("empty");
    std::fs::create_dir_all(&empty).expect("dir");
    let stderr = failure(&["predict", "--checkpoint", empty.to_str().expect("path"), "hello"]);
    assert!(stderr.contains("empty") && stderr.contains("checkpoint.json"), "{stderr}");

    // A run directory whose checkpoint/ lacks checkpoint.json.
    let run = temp.path().join("run-without-json");
    std::fs::create_dir_all(run.join("checkpoint")).expect("dir");
    let stderr = failure(&["predict", "--checkpoint", run.to_str().expect("path"), "hello"]);
    assert!(stderr.contains("run-without-json") && stderr.contains("missing checkpoint.json"), "{stderr}");
}

#[test]
fn corrupt_or_incompatible_checkpoints_fail_naming_the_file_and_tensor() {
    let temp = tempfile::tempdir().expect("tempdir");
    let checkpoint = write_checkpoint(temp.path());
    let path = checkpoint.to_str().expect("path").to_string();

    let meta_path = checkpoint.join("checkpoint.json");
    let original = std::fs::read_to_string(&meta_path).expect("meta");
    let mut meta: Value = serde_json::from_str(&original).expect("json");
    meta["ner_labels"].as_array_mut().expect("labels").push("B-MISC".into());
    std::fs::write(&meta_path, meta.to_string()).expect("meta");
    let stderr = failure(&["predict", "--checkpoint", &path, "hello"]);
    assert!(stderr.contains("model.safetensors") && stderr.contains("ner_head.bias"), "{stderr}");
    assert!(stderr.contains("[5]") && stderr.contains("[6]"), "{stderr}");

    std::fs::write(&meta_path, "{ not json").expect("meta");
    let stderr = failure(&["predict", "--checkpoint", &path, "hello"]);
    assert!(stderr.contains("checkpoint.json") && stderr.contains("invalid JSON"), "{stderr}");

    std::fs::write(&meta_path, original).expect("meta");
    std::fs::write(checkpoint.join("model.safetensors"), b"garbage").expect("weights");
    let stderr = failure(&["predict", "--checkpoint", &path, "hello"]);
    assert!(stderr.contains("model.safetensors") && stderr.contains("cannot read the weights"), "{stderr}");
}

#[test]
fn empty_input_fails() {
    let temp = tempfile::tempdir().expect("tempdir");
    let checkpoint = write_checkpoint(temp.path());
    let path = checkpoint.to_str().expect("path");
    let stderr = failure(&["predict", "--checkpoint", path]);
    assert!(stderr.contains("no texts to predict"), "{stderr}");

    let blank = temp.path().join("blank.txt");
    std::fs::write(&blank, "\n  \n\t\n").expect("file");
    let stderr = failure(&["predict", "--checkpoint", path, "--file", blank.to_str().expect("path")]);
    assert!(stderr.contains("no texts to predict"), "{stderr}");

    let absent = temp.path().join("absent.txt");
    let stderr = failure(&["predict", "--checkpoint", path, "--file", absent.to_str().expect("path")]);
    assert!(stderr.contains("absent.txt"), "{stderr}");
}

//! `bertmt serve` end to end with a real HTTP client on a tiny random model: every route, equality with `embed`,
//! bad input, the bounded queue (429), and draining on SIGTERM.

mod common;

use common::write_tiny_model;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running server and its base address.
struct Server {
    child: Child,
    base: String,
    /// The server's stdout, kept open so that its last lines do not hit a closed pipe.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Server {
    /// Starts `bertmt serve` in `dir` with `args` on a free port, and waits until it says where it listens.
    fn start(dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bertmt"))
            .current_dir(dir)
            .args(["serve", "--port", "0", "--device", "cpu"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("bertmt serve starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the first line");
        let base = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split(':').take(2).collect::<Vec<_>>().get(..2).map(|p| p.join(":")))
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Self { child, base: format!("http://{base}"), _stdout: stdout }
    }

    fn url(&self, route: &str) -> String {
        format!("{}{route}", self.base)
    }

    /// POSTs `body` (raw) to `route`: the status and the JSON answer.
    fn post_raw(&self, route: &str, body: &str) -> (u16, Value, Option<String>) {
        let answer = ureq::post(&self.url(route)).set("Content-Type", "application/json").send_string(body);
        let response = match answer {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("POST {route}: {error}"),
        };
        let status = response.status();
        let retry = response.header("Retry-After").map(str::to_string);
        let text = response.into_string().expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), retry)
    }

    fn post(&self, route: &str, body: &Value) -> (u16, Value) {
        let (status, value, _) = self.post_raw(route, &body.to_string());
        (status, value)
    }

    fn get(&self, route: &str) -> (u16, String) {
        match ureq::get(&self.url(route)).call() {
            Ok(response) => (response.status(), response.into_string().expect("body")),
            Err(ureq::Error::Status(status, response)) => (status, response.into_string().unwrap_or_default()),
            Err(error) => panic!("GET {route}: {error}"),
        }
    }

    /// Sends SIGTERM and waits for the exit.
    fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        self.child.wait().expect("the server exits")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn vectors(value: &Value) -> Vec<Vec<f64>> {
    serde_json::from_value(value.clone()).expect("a list of vectors")
}

#[test]
fn every_route_answers_as_tei_and_openai_clients_expect_and_matches_embed() {
    let work = tempfile::tempdir().expect("tempdir");
    write_tiny_model(&work.path().join("tiny-bert"));
    let server = Server::start(work.path(), &["--model", "tiny-bert"]);

    assert_eq!(server.get("/health").0, 200);
    let info: Value = serde_json::from_str(&server.get("/info").1).expect("info json");
    assert_eq!((info["dimension"].as_i64(), info["max_input_length"].as_i64()), (Some(16), Some(64)));
    assert_eq!(info["pooling"], json!(["mean"]));

    // TEI's /embed, unnormalized, equals `bertmt embed` on the same texts.
    let texts = ["the movie was great", "john visited london .", ""];
    let (status, answer) = server.post("/embed", &json!({ "inputs": texts, "normalize": false }));
    assert_eq!(status, 200, "{answer}");
    let served = vectors(&answer);
    let output = Command::new(env!("CARGO_BIN_EXE_bertmt"))
        .current_dir(work.path())
        .args(["embed", "--model", "tiny-bert", "--device", "cpu", "--output", "offline.jsonl"])
        .args(texts)
        .output()
        .expect("embed runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let offline: Vec<Vec<f64>> = std::fs::read_to_string(work.path().join("offline.jsonl"))
        .expect("vectors")
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("json line")["embedding"].clone())
        .map(|v| serde_json::from_value(v).expect("vector"))
        .collect();
    assert_eq!(served.len(), 3);
    for (a, b) in served.iter().zip(&offline) {
        let largest = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        assert!(largest < 1e-5, "served and offline vectors differ by {largest}");
    }
    // normalize (TEI's default) gives unit vectors; one string is one input.
    let (_, answer) = server.post("/embed", &json!({ "inputs": "the movie was great" }));
    let unit = &vectors(&answer)[0];
    assert!((unit.iter().map(|v| v * v).sum::<f64>().sqrt() - 1.0).abs() < 1e-5);
    // Concurrent requests batched together, some normalized and some not, each get their own text's vector.
    std::thread::scope(|scope| {
        let answers: Vec<_> = (0..24)
            .map(|request| {
                let (server, text, normalize) = (&server, request % 3, request % 2 == 0);
                scope.spawn(move || {
                    let (status, answer) =
                        server.post("/embed", &json!({ "inputs": [texts[text]], "normalize": normalize }));
                    assert_eq!(status, 200, "{answer}");
                    (text, normalize, vectors(&answer).remove(0))
                })
            })
            .collect();
        for answer in answers {
            let (text, normalize, vector) = answer.join().expect("client thread");
            let norm = offline[text].iter().map(|v| v * v).sum::<f64>().sqrt();
            let scale = if normalize && norm > 0.0 { norm } else { 1.0 };
            let largest = vector.iter().zip(&offline[text]).map(|(x, y)| (x - y / scale).abs()).fold(0.0, f64::max);
            assert!(largest < 1e-5, "text {text} (normalize {normalize}) differs by {largest}");
        }
    });

    // OpenAI's /v1/embeddings.
    let (status, answer) = server.post("/v1/embeddings", &json!({ "input": ["a film", "paris"], "model": "tiny" }));
    assert_eq!(status, 200, "{answer}");
    assert_eq!((answer["object"].as_str(), answer["model"].as_str()), (Some("list"), Some("tiny")));
    let data = answer["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    assert_eq!((data[1]["index"].as_u64(), data[1]["object"].as_str()), (Some(1), Some("embedding")));
    assert_eq!(answer["usage"]["prompt_tokens"].as_u64(), Some(4 + 3), "[CLS] a film [SEP], [CLS] paris [SEP]");
    // The official `openai` clients ask for base64 (little-endian f32 bytes) unless told otherwise.
    let floats = vectors(&json!(data.iter().map(|d| d["embedding"].clone()).collect::<Vec<_>>()));
    let (status, encoded) = server.post(
        "/v1/embeddings",
        &json!({ "input": ["a film", "paris"], "model": "tiny", "encoding_format": "base64", "dimensions": 16 }),
    );
    assert_eq!(status, 200, "{encoded}");
    for (item, expected) in encoded["data"].as_array().expect("data").iter().zip(&floats) {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(item["embedding"].as_str().expect("a base64 string"))
            .expect("base64");
        let decoded: Vec<f32> = bytes.chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        // The JSON numbers are the f32 values written shortest: read back as f32 they are the same values.
        let expected: Vec<f32> = expected.iter().map(|&v| v as f32).collect();
        assert_eq!(decoded, expected, "base64 carries the same values as floats");
    }
    let (status, answer) = server.post("/v1/embeddings", &json!({ "input": "a film", "encoding_format": null }));
    assert_eq!(status, 200, "null is the default format: {answer}");
    let (status, answer) = server.post("/v1/embeddings", &json!({ "input": "a film", "dimensions": 8 }));
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("16 values")), "{answer}");
    let (status, answer) = server.post("/v1/embeddings", &json!({ "input": [[101, 2023]] }));
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("token ids")), "{answer}");

    // Bad input: JSON errors with a status and a kind, never a panic.
    for (body, expected) in
        [("{not json", 400), (r#"{"inputs": 7}"#, 422), (r#"{"inputs": []}"#, 422), (r#"{"inputs": [1, 2, 3]}"#, 422)]
    {
        let (status, answer, _) = server.post_raw("/embed", body);
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(answer["error"].is_string() && answer["error_type"].is_string(), "{body}: {answer}");
    }
    let many: Vec<&str> = vec!["a"; 65];
    assert_eq!(server.post("/embed", &json!({ "inputs": many })).0, 413);
    let long = vec!["film"; 80].join(" ");
    let (status, answer) = server.post("/embed", &json!({ "inputs": long }));
    assert_eq!(status, 413, "{answer}");
    assert_eq!(server.post("/embed", &json!({ "inputs": long, "truncate": true })).0, 200);
    assert_eq!(server.post("/predict", &json!({ "inputs": "a film" })).0, 422, "no heads to predict with");
    assert_eq!(server.get("/nowhere").0, 404);

    let (status, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains(r#"bertmt_requests_total{route="/embed",status="200"}"#), "{metrics}");
    assert!(metrics.contains("bertmt_batch_tokens_bucket"), "{metrics}");
    assert!(server.stop().success());
}

#[test]
fn a_full_queue_answers_429_and_sigterm_lets_requests_in_flight_finish() {
    let work = tempfile::tempdir().expect("tempdir");
    write_tiny_model(&work.path().join("tiny-bert"));
    let server = Server::start(
        work.path(),
        &["--model", "tiny-bert", "--max-queue", "1", "--max-batch-requests", "1", "--batch-size", "1"],
    );
    let base = server.base.clone();
    // Many clients at once against a queue of one: some are turned away with 429 and Retry-After, none fails else.
    let body = json!({ "inputs": vec!["the movie was great and john visited london"; 64], "truncate": true });
    let clients: Vec<_> = (0..24)
        .map(|_| {
            let (url, body) = (format!("{base}/embed"), body.to_string());
            std::thread::spawn(move || {
                match ureq::post(&url).set("Content-Type", "application/json").send_string(&body) {
                    Ok(response) => (response.status(), None),
                    Err(ureq::Error::Status(status, response)) => {
                        (status, response.header("Retry-After").map(str::to_string))
                    }
                    Err(error) => panic!("{error}"),
                }
            })
        })
        .collect();
    let answers: Vec<(u16, Option<String>)> = clients.into_iter().map(|c| c.join().expect("client")).collect();
    assert!(answers.iter().all(|(status, _)| *status == 200 || *status == 429), "{answers:?}");
    assert!(answers.iter().any(|(status, _)| *status == 200), "{answers:?}");
    assert!(
        answers.iter().any(|(status, retry)| *status == 429 && retry.as_deref() == Some("1")),
        "no request was turned away: {answers:?}"
    );

    // SIGTERM while requests are in flight: they are answered, then the server exits 0.
    // Each client reports its answer's status, or 0 when it got none (refused before the server read it).
    let in_flight: Vec<_> = (0..3)
        .map(|_| {
            let body = json!({ "inputs": vec!["the movie was great and john visited london"; 64], "truncate": true });
            let (url, body) = (format!("{base}/embed"), body.to_string());
            std::thread::spawn(move || -> u16 {
                match ureq::post(&url).set("Content-Type", "application/json").send_string(&body) {
                    Ok(response) => response.status(),
                    Err(ureq::Error::Status(status, _)) => status,
                    Err(ureq::Error::Transport(_)) => 0,
                }
            })
        })
        .collect();
    // Long enough for the requests to reach the server on loopback; each takes 64 forward passes to answer.
    std::thread::sleep(Duration::from_millis(300));
    let status = server.stop();
    assert!(status.success(), "the server exited with {status}");
    let statuses: Vec<u16> = in_flight.into_iter().map(|request| request.join().expect("client")).collect();
    // The queue of one may turn a request away (a whole answer, 429); none is cut off.
    assert!(statuses.iter().all(|s| [0, 200, 429].contains(s)), "{statuses:?}");
    let answered = statuses.iter().filter(|&&s| s == 200).count();
    assert!(answered > 0, "no request in flight was answered");
}

#[test]
fn a_checkpoint_serves_predictions_with_entities_and_classes() {
    let work = tempfile::tempdir().expect("tempdir");
    write_tiny_model(&work.path().join("tiny-bert"));
    let mut reviews = String::new();
    for i in 0..20 {
        let (text, label) = if i % 2 == 0 { ("the movie was great", 1) } else { ("awful film", 0) };
        reviews.push_str(&format!("{{\"text\": \"{text} {i}\", \"label\": {label}}}\n"));
    }
    std::fs::write(work.path().join("reviews.jsonl"), reviews).expect("reviews");
    std::fs::write(work.path().join("tags.conll"), "John B-PER\nvisited O\nParis B-LOC\n\n".repeat(12)).expect("tags");
    let trained = Command::new(env!("CARGO_BIN_EXE_bertmt"))
        .current_dir(work.path())
        .args(["train", "--model", "tiny-bert", "--classification", "reviews.jsonl", "--ner", "tags.conll"])
        .args(["--epochs", "1", "--device", "cpu", "--name", "run", "--quiet"])
        .output()
        .expect("train runs");
    assert!(trained.status.success(), "{}", String::from_utf8_lossy(&trained.stderr));
    let server = Server::start(work.path(), &["--checkpoint", "runs/run"]);
    let (status, answer) = server.post("/predict", &json!({ "inputs": ["John visited Paris", "a film"] }));
    assert_eq!(status, 200, "{answer}");
    let predictions = answer.as_array().expect("predictions");
    assert_eq!(predictions.len(), 2);
    for prediction in predictions {
        assert!(prediction["class"]["label"].is_string(), "{prediction}");
        assert!(prediction["entities"].is_array() && prediction["tags"].is_array(), "{prediction}");
    }
    let info: Value = serde_json::from_str(&server.get("/info").1).expect("info");
    assert_eq!(info["tasks"], json!(["classification", "ner"]));
    assert_eq!(server.post("/embed", &json!({ "inputs": "a film" })).0, 200, "a checkpoint embeds too");
    assert!(server.stop().success());
}

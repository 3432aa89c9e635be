//! The markdown blocks of docs/benchmarks.md from a run record: the machine block here, one file per section's
//! tables and targets, and the number formatting they share.

mod encoder;
mod gemm;
mod peer;
mod pipeline;
mod server;
mod training;

use super::record::{self, RunRecord};
use super::Section;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// A run's blocks; `root` is the project root, whose `runs/bench` holds the earlier runs that some blocks fall back to.
pub(super) struct Report<'a> {
    pub(super) record: &'a RunRecord,
    pub(super) root: &'a Path,
    pub(super) stamp: &'a str,
}

/// A JSON number with `digits` decimals, `—` when it is not a number.
fn f(value: &Value, digits: usize) -> String {
    value.as_f64().map_or_else(|| "—".into(), |x| format!("{x:.digits$}"))
}

/// A figure with `digits` decimals, `—` when missing.
fn opt(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "—".into(), |x| format!("{x:.digits$}"))
}

/// A figure with `digits` decimals, `—` when not finite.
fn num(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "—".into()
    }
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}%", 100.0 * x)
    } else {
        "—".into()
    }
}

/// As JSON shows it: `null` when missing.
fn or_null(value: Option<impl std::fmt::Display>) -> String {
    value.map_or_else(|| "null".into(), |x| x.to_string())
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**met**",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

impl Report<'_> {
    fn results(&self) -> impl Iterator<Item = &Value> {
        self.record.results.iter()
    }

    fn find(&self, predicate: impl Fn(&Value) -> bool) -> Option<&Value> {
        self.results().find(|r| predicate(r))
    }

    /// The most recent earlier full run with a result matching `predicate`: (stamp, result).
    fn previous(&self, predicate: impl Fn(&Value) -> bool) -> Option<(String, Value)> {
        record::latest_earlier_result(&self.root.join("runs/bench"), self.stamp, predicate)
    }

    /// The machine block and one block per section that ran (in `section_loads`, which skipped sections lack).
    pub(super) fn blocks(&self) -> Vec<(String, String)> {
        let mut blocks = vec![("machine".to_owned(), self.machine_block())];
        for section in Section::ALL {
            if self.record.section_loads.iter().any(|l| l.section == section.key()) {
                blocks.push((section.key().to_owned(), self.section_block(section)));
            }
        }
        blocks
    }

    fn measured_line(&self, section: Section) -> String {
        let loads: Vec<String> =
            self.results().filter(|r| r["section"] == section.key()).map(|r| f(&r["other_cpu_load"], 2)).collect();
        let section_load = self
            .record
            .section_loads
            .iter()
            .find(|x| x.section == section.key())
            .map_or_else(|| "—".into(), |x| opt(x.load_before, 2));
        format!(
            "Measured {} (run `{}`, `runs/bench/{}.json`) with `{}`. 1-minute load average before the section: {}; \
             CPU used by other processes during each measurement (cores, in order): {}.\n\n",
            self.record.date.as_deref().unwrap_or("?"),
            self.stamp,
            self.stamp,
            self.record.command.as_deref().unwrap_or("?"),
            section_load,
            if loads.is_empty() { "—".into() } else { loads.join(", ") },
        )
    }

    fn machine_block(&self) -> String {
        let m = &self.record.machine;
        let v = &m.versions;
        let mut out = String::new();
        let _ = writeln!(out, "| | |\n|---|---|");
        let _ = writeln!(
            out,
            "| CPU | {} ({} logical CPUs; {}) |",
            m.cpu.as_deref().unwrap_or("?"),
            or_null(m.logical_cpus),
            m.simd.join(", ")
        );
        let _ = writeln!(out, "| Memory | {} GiB |", opt(m.memory_gib, 1));
        let _ = writeln!(out, "| Kernel | {} |", m.kernel.as_deref().unwrap_or("?"));
        let _ = writeln!(out, "| libtorch threads (`tch::get_num_threads()`) | {} |", or_null(m.libtorch_threads));
        let _ = writeln!(
            out,
            "| Versions | {}; tch {}; libtorch {}; tokenizers {} |",
            v.rustc.as_deref().unwrap_or("?"),
            v.tch.as_deref().unwrap_or("?"),
            v.libtorch.as_deref().unwrap_or("?"),
            v.tokenizers.as_deref().unwrap_or("?")
        );
        if let Some(peer) = v.peer.as_ref().filter(|p| p.is_object()) {
            let _ = writeln!(
                out,
                "| Peer | Python {}, torch {}, transformers {} (`{}`) |",
                peer["python"].as_str().unwrap_or("?"),
                peer["torch"].as_str().unwrap_or("?"),
                peer["transformers"].as_str().unwrap_or("?"),
                self.record.peer_python.as_deref().unwrap_or("?")
            );
        }
        let _ = writeln!(out, "| Model | {} |", m.model.as_deref().unwrap_or("?"));
        let _ = writeln!(
            out,
            "| Last run | {} (`{}`) |",
            self.record.date.as_deref().unwrap_or("?"),
            self.record.command.as_deref().unwrap_or("?")
        );
        out
    }

    fn section_block(&self, section: Section) -> String {
        let mut out = self.measured_line(section);
        match section {
            Section::Gemm => self.gemm(&mut out),
            Section::Encoder => {
                self.encoder(&mut out);
                self.training_profile(&mut out);
            }
            Section::Training => {
                self.training(&mut out);
                self.optimizer_step(&mut out);
                self.training_peer(&mut out);
            }
            Section::Pipeline => self.pipeline(&mut out),
            Section::Peer => self.peer(&mut out),
            Section::Server => self.server(&mut out),
        }
        let prefix = format!("[{}]", section.key());
        let failures: Vec<&str> =
            self.record.failures.iter().map(String::as_str).filter(|f| f.starts_with(&prefix)).collect();
        if !failures.is_empty() {
            let _ = writeln!(out, "\nFailed runs: {}", failures.join("; "));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A run record of one section from its results, read the way a run file is.
    fn record(section: &str, results: Value) -> RunRecord {
        serde_json::from_value(json!({
            "stamp": "20240229T123456Z",
            "date": "2024-02-29 12:34 UTC",
            "command": "cargo xtask bench --only training",
            "section_loads": [{"section": section, "load_before": 0.25}],
            "failures": ["[training] cargo bench -p trainer --bench epoch_cost: exited with exit status: 101"],
            "machine": {"cpu": "Test CPU", "logical_cpus": 4, "simd": ["avx2", "fma"], "memory_gib": 15.6},
            "results": results,
        }))
        .expect("a run record")
    }

    fn report(record: &RunRecord) -> Vec<(String, String)> {
        // No earlier runs: a root without runs/bench.
        let root = std::env::temp_dir().join("bertmt-bench-render-test-no-runs");
        Report { record, root: &root, stamp: record.stamp.as_deref().expect("stamp") }.blocks()
    }

    fn epoch(cache: bool, batch: i64, epoch_seconds: f64, later: Option<f64>) -> Value {
        json!({
            "bench": "trainer.epoch", "section": "training", "other_cpu_load": 0.014,
            "strategy": "heads_only", "feature_cache": cache, "batch": batch, "reviews": 2000, "test": 500,
            "train_tokens": 600000, "trainable_parameters": 1234,
            "epochs": [{"forward_seconds": 60.0, "backward_seconds": 15.0, "optimizer_seconds": 5.0}],
            "cache_fill_seconds": if cache { json!(75.25) } else { Value::Null },
            "first_epoch_seconds": epoch_seconds, "later_epochs_median_seconds": later, "epoch_seconds": epoch_seconds,
        })
    }

    #[test]
    fn training_section_renders_from_a_hand_written_record() {
        let record = record(
            "training",
            json!([
                epoch(false, 8, 80.0, None),
                epoch(true, 8, 0.8, Some(0.4)),
                {
                    "bench": "trainer.optimizer", "section": "training", "other_cpu_load": 0.02,
                    "values": 22713216, "tensors": 101, "model": "all-MiniLM-L6-v2", "steps": 20, "threads": 4,
                    "fused_ms": 12.34, "per_op_ms": 80.2, "speedup": 6.5, "clip_ms": 3.21,
                },
            ]),
        );
        let blocks = report(&record);
        let keys: Vec<&str> = blocks.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["machine", "training"]);
        let machine = &blocks[0].1;
        assert!(machine.contains("| CPU | Test CPU (4 logical CPUs; avx2, fma) |\n"), "{machine}");
        assert!(machine.contains("| Memory | 15.6 GiB |\n| Kernel | ? |\n"), "{machine}");
        assert!(machine.contains("| libtorch threads (`tch::get_num_threads()`) | null |\n"), "{machine}");
        let block = &blocks[1].1;
        assert!(block.starts_with(
            "Measured 2024-02-29 12:34 UTC (run `20240229T123456Z`, `runs/bench/20240229T123456Z.json`) with \
             `cargo xtask bench --only training`. 1-minute load average before the section: 0.25; CPU used by other \
             processes during each measurement (cores, in order): 0.01, 0.01, 0.02.\n\n"
        ));
        assert!(block.contains("the next 500 reviews as the test split"));
        let lines: Vec<&str> = block.lines().collect();
        assert!(lines.contains(
            &"| heads_only | f32 | — | adam | off | 8 | 2000 | 600000 | 1 | — | 80.000 | — | 60.0 | 15.0 | 5.0 | 25.00 | 1234 |"
        ));
        assert!(lines.contains(
            &"| heads_only | f32 | — | adam | on | 8 | 2000 | 600000 | 1 | 75.2 | 0.800 | 0.4000 | 60.0 | 15.0 | 5.0 | 2500 | 1234 |"
        ));
        assert!(lines.contains(
            &"- batch 8: uncached epoch 80.0 s, cached epoch 0.4000 s (after a one-off fill of 75.2 s): 200 x, **met**."
        ));
        assert!(lines.contains(
            &"- batch 32: uncached epoch — s, cached epoch — s (after a one-off fill of — s): — x, not measured."
        ));
        // No `all` rows: no fine-tuning lines.
        assert!(!block.contains("Full fine-tuning"));
        assert!(block.contains(
            "\nOne AdamW step over all 22713216 values (101 tensors) of all-MiniLM-L6-v2 (`trainer::Adam`, \
             `crates/trainer/benches/optimizer_step.rs`, median of 20 steps, 4 threads): libtorch's fused kernel 12.3 \
             ms against 80.2 ms"
        ));
        assert!(block.contains(": 6.50 x. Clipping the global gradient norm: 3.2 ms."));
        assert!(block.ends_with(
            "\nFailed runs: [training] cargo bench -p trainer --bench epoch_cost: exited with exit status: 101\n"
        ));
    }

    #[test]
    fn the_training_peer_is_compared_with_our_run_of_the_same_settings() {
        let ours = |precision: &str, seconds: f64| {
            json!({
                "bench": "trainer.epoch", "section": "training", "strategy": "all", "optimizer": "adamw",
                "precision": precision, "attention_dropout": 0.0, "batch": 8, "reviews": 2000, "test": 32,
                "train_tokens": 515316, "epoch_seconds": seconds,
                "epochs": [{"seconds": seconds, "forward_seconds": 100.0, "backward_seconds": 150.0, "optimizer_seconds": 5.0}],
            })
        };
        let peer = |precision: &str, seconds: f64, tokens: i64| {
            json!({
                "bench": "peer.training", "section": "training", "precision": precision, "examples": 2000,
                "train_tokens": tokens, "seconds": seconds, "forward_seconds": 120.0, "backward_seconds": 160.0,
                "optimizer_seconds": 6.0, "versions": {"torch": "2.13.0", "transformers": "5.24.0"},
            })
        };
        let record = record(
            "training",
            json!([ours("f32", 300.0), peer("f32", 330.0, 515316), ours("bf16", 200.0), peer("bf16", 180.0, 1)]),
        );
        let block = &report(&record)[1].1;
        assert!(block.contains("transformers 5.24.0 `BertModel`, sdpa attention, torch 2.13.0"), "{block}");
        let lines: Vec<&str> = block.lines().collect();
        assert!(
            lines.contains(
                &"| f32 | 300.0 (100.0 / 150.0 / 5.0) | 330.0 (120.0 / 160.0 / 6.0) | yes | 1.10 x (**met**) |"
            ),
            "{block}"
        );
        assert!(
            lines.contains(
                &"| bf16 | 200.0 (100.0 / 150.0 / 5.0) | 180.0 (120.0 / 160.0 / 6.0) | **no** | 0.90 x (**missed**) |"
            ),
            "{block}"
        );
    }

    #[test]
    fn precisions_that_took_turns_are_compared_turn_by_turn() {
        let run = |precision: &str, dropout: f64, steps: Option<Vec<f64>>| {
            let seconds = steps.as_ref().map_or(500.0, |s| s.iter().sum());
            json!({
                "bench": "trainer.epoch", "section": "training", "strategy": "all", "strategy_arg": "all",
                "optimizer": "adamw", "precision": precision, "attention_dropout": dropout, "batch": 8,
                "reviews": 2000, "test": 32, "train_tokens": 515316, "epoch_seconds": seconds,
                "taking_turns": steps.as_ref().map(|_| ["f32", "bf16"]),
                "turn_batches": steps.as_ref().map(|_| 2), "step_seconds": steps.map(|s| vec![s]),
                "epochs": [{"seconds": seconds, "forward_seconds": 1.0, "backward_seconds": 2.0, "optimizer_seconds": 0.1}],
            })
        };
        // Turns of 2 batches: f32 turns of 4, 4, 6 s and a last turn of one batch (1 s); bf16 2, 2.5, 4 and 1 s.
        let record = record(
            "training",
            json!([
                run("f32", 0.1, None),
                run("f32", 0.0, Some(vec![2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 1.0])),
                run("bf16", 0.0, Some(vec![1.0, 1.0, 1.25, 1.25, 2.0, 2.0, 1.0])),
            ]),
        );
        let block = &report(&record)[1].1;
        let lines: Vec<&str> = block.lines().collect();
        assert!(lines.iter().any(|l| l.starts_with("| all | f32 (in turns) | 0.00 | adamw |")), "{block}");
        assert!(lines.iter().any(|l| l.starts_with("| all | f32 | 0.10 | adamw |")), "{block}");
        assert!(block.contains("- f32, attention dropout 0, AdamW: 15.0 s against 500.0 s, 33.33 x"), "{block}");
        assert!(block.contains("- bf16 (same settings): 9.5 s, 1.58 x over f32"), "{block}");
        // Per-turn ratios 2.0, 1.6, 1.5, 1.0: median 1.55, quartiles at ranks 0.75 and 2.25.
        assert!(
            block.contains(
                "the turn passed every 2 batches): bf16 / f32 speed per turn of the same batches: median 1.55 x, \
                 quartiles 1.38-1.70 x, range 1.00-2.00 x over 4 turns."
            ),
            "{block}"
        );
    }

    #[test]
    fn ours_at_auto_is_compared_with_the_fastest_peer_of_the_same_texts() {
        let run = |implementation: &str, precision: Option<&str>, rate: f64, tokens: i64| {
            json!({
                "bench": "encoder.encode", "section": "encoder", "impl": implementation, "method": "sorted",
                "precision": precision, "corpus": "imdb", "max_length": 256, "batch": 32, "texts": 2000,
                "real_tokens": tokens, "sentences_per_s": rate, "threads": 2, "attn_implementation": "sdpa",
                "min_cosine_to_fp32": if implementation == "ort" { json!(0.9999998) } else { Value::Null },
                "max_abs_diff_to_fp32": if implementation == "ort" { json!(3e-7) } else { Value::Null },
                "fused_operators": {"Attention": 6}, "onnxruntime": "1.32.0",
            })
        };
        let first = record(
            "peer",
            json!([
                run("rust", Some("f32"), 30.0, 500),
                run("rust", Some("bf16"), 50.0, 500),
                run("hf", None, 28.0, 500),
                run("hf-bf16", None, 45.0, 500),
                run("ort", None, 32.0, 500),
            ]),
        );
        let block = &report(&first)[1].1;
        let lines: Vec<&str> = block.lines().collect();
        assert!(lines.contains(&"| imdb | 256 | 32 | 2000 | 30.00 | 50.00 | 28.00 | 45.00 | 32.00 | PyTorch bf16 autocast | 1.07 | 1.11 |"), "{block}");
        assert!(
            block.contains("ours auto / fastest peer (PyTorch bf16 autocast) 1.11 x (target >= 1.0: **met**)"),
            "{block}"
        );
        assert!(block.contains("ours auto (bf16) / ours f32 1.67 x (target a further >= 1.6x: **met**)"), "{block}");
        assert!(
            block.contains(
                "ONNX Runtime fp32: pooled embeddings of the warm-up texts against PyTorch fp32: min cosine 0.9999998"
            ),
            "{block}"
        );
        assert!(!block.contains("NOT see the same real tokens"), "{block}");

        // A peer that tokenized differently is called out; without a bf16 run, `auto` is f32.
        let second = record(
            "peer",
            json!([run("rust", Some("f32"), 30.0, 500), run("hf", None, 28.0, 500), run("ort", None, 40.0, 499)]),
        );
        let block = &report(&second)[1].1;
        assert!(
            block.contains("imdb at 256, batch 32: the implementations did NOT see the same real tokens"),
            "{block}"
        );
        assert!(
            block.contains("ours auto / fastest peer (ONNX Runtime fp32) 0.75 x (target >= 1.0: **missed**)"),
            "{block}"
        );
    }

    #[test]
    fn sections_without_results_say_so() {
        let record = record("gemm", json!([]));
        let blocks = report(&record);
        assert_eq!(blocks.len(), 2);
        assert!(blocks[1].1.ends_with("(cores, in order): —.\n\nNo result (see the failures in the run file).\n"));
    }

    #[test]
    fn server_section_renders_rows_and_the_target_from_a_hand_written_record() {
        let server = |clients: i64, rate: f64, ratio: f64| {
            json!({
                "bench": "cli.server_load", "section": "server", "other_cpu_load": 0.01, "mode": "server",
                "precision": "f32",
                "clients": clients, "texts": 2000, "texts_per_s": rate, "ratio_to_offline": ratio, "p50_ms": 12.345,
                "offline_texts_per_s": 290.0,
                "p99_ms": 20.5, "max_ms": 25.0, "mean_batch_requests": 7.5, "errors": 0, "client_cpu_s": 0.12,
            })
        };
        let record = record(
            "server",
            json!([
                {
                    "bench": "cli.server_load", "section": "server", "other_cpu_load": 0.02, "mode": "offline",
                    "texts": 2000, "batch": 32, "precision": "f32", "texts_per_s": 300.0, "reps": 3, "threads": 2,
                    "groups_of_32_texts_per_s": 280.0,
                },
                server(1, 100.0, 0.333),
                server(64, 250.0, 0.8333),
                {
                    "bench": "cli.server_load", "section": "server", "other_cpu_load": 0.0, "mode": "summary",
                    "clients": 64, "server_texts_per_s": 250.0, "offline_texts_per_s": 300.0,
                    "ratio_to_offline": 0.8333, "p99_ms": 20.5, "max_abs_difference_to_offline": 1.5e-7,
                    "min_cosine_to_offline": 1.0, "check": "ok", "precision": "f32",
                },
                {
                    "bench": "cli.server_load", "section": "server", "other_cpu_load": 0.02, "mode": "offline",
                    "texts": 1000, "batch": 32, "precision": "bf16", "texts_per_s": 800.0, "reps": 3, "threads": 2,
                    "groups_of_32_texts_per_s": 500.0,
                },
                {
                    "bench": "cli.server_load", "section": "server", "other_cpu_load": 0.0, "mode": "summary",
                    "clients": 64, "server_texts_per_s": 400.0, "offline_texts_per_s": 800.0,
                    "ratio_to_offline": 0.5, "p99_ms": 99.0, "max_abs_difference_to_offline": 8e-4,
                    "min_cosine_to_offline": 0.99999, "check": "ok", "precision": "bf16",
                },
            ]),
        );
        let blocks = report(&record);
        assert_eq!(blocks[1].0, "server");
        let block = &blocks[1].1;
        assert!(block.contains("precision f32"), "{block}");
        assert!(block.contains(": 300.0 sentences/s (median of 3 passes, 2 libtorch threads)"), "{block}");
        assert!(block.contains("one call each (what batching requests as they arrive costs, without a server): 280.0"));
        let lines: Vec<&str> = block.lines().collect();
        assert!(lines.contains(&"| 1 | 100.0 | 290.0 | 33% | 12.3 | 20.5 | 25.0 | 7.5 | 0 | 0.12 |"), "{block}");
        assert!(lines.contains(&"| 64 | 250.0 | 290.0 | 83% | 12.3 | 20.5 | 25.0 | 7.5 | 0 | 0.12 |"), "{block}");
        assert!(block.contains("250.0 sentences/s against 300.0 (medians; the median ratio of the passes) = 83%, **met**; p99 latency 20.5 ms"), "{block}");
        assert!(block.contains("least cosine similarity 1.000000 (ok)"), "{block}");
        // A second precision gets its own paragraph, without the first one's rows.
        assert!(block.contains("precision bf16"), "{block}");
        assert!(block.contains("400.0 sentences/s against 800.0 (medians; the median ratio of the passes) = 50%, **missed**; p99 latency 99.0 ms"), "{block}");
        assert_eq!(block.matches("| 64 | 250.0 |").count(), 1, "{block}");
    }
}

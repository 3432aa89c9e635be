//! Section 2: encoder throughput on the real data, ours and the notebook's way, the targets, and the per-operation profile.

use super::{f, num, pct, verdict, Report};
use serde_json::Value;
use std::fmt::Write as _;

/// The precision a result computed in: `f32` for runs from before the field existed.
pub(super) fn precision(r: &Value) -> &str {
    r["precision"].as_str().unwrap_or("f32")
}

impl Report<'_> {
    pub(super) fn encoder(&self, out: &mut String) {
        let rows: Vec<&Value> =
            self.results().filter(|r| r["bench"] == "encoder.encode" && r["impl"] == "rust").collect();
        if rows.is_empty() {
            out.push_str("No result (see the failures in the run file).\n");
            return;
        }
        let ceiling = self.ceiling();
        let bf16_ceiling = self.bf16_ceiling();
        let fma_peak = self.fma_peak();
        let _ = writeln!(
            out,
            "`sorted` = `SentenceEncoder::encode` (length-sorted batches, dynamic padding, mean pooling); `notebook` = the \
             notebook's way (input order, every batch padded to 512). Tokenization is inside the timed pass. FLOPs per \
             layer and token: `2*(4h^2 + 2hi)` + attention `4sh` (`s` = padded length of the token's batch); GFLOP/s \
             (real) counts real tokens only, (computed) every padded position. % of ceiling: of the GEMM ceiling of the \
             row's precision ({} fp32, {} bf16); % of FMA peak: of the hardware's fp32 limit ({}). A bf16 row is \
             `--precision auto` where the CPU computes bf16 natively.\n",
            ceiling.as_ref().map_or_else(|| "none measured yet".into(), |(c, from)| format!("{c:.1} GFLOP/s from {from}")),
            bf16_ceiling.as_ref().map_or_else(|| "none measured".into(), |(c, from)| format!("{c:.1} GFLOP/s from {from}")),
            fma_peak.as_ref().map_or_else(|| "none measured yet".into(), |(c, from)| format!("{c:.1} GFLOP/s from {from}")),
        );
        let _ = writeln!(out, "| corpus | method | precision | trunc. | batch | texts | truncated | reps | s (median) | sentences/s | real tokens/s | padding overhead | GFLOP/s real | % of ceiling | % of FMA peak | GFLOP/s computed |");
        let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let share_of = |limit: &Option<(f64, String)>, r: &Value| {
            limit.as_ref().and_then(|(c, _)| r["gflops_real"].as_f64().map(|g| g / c)).unwrap_or(f64::NAN)
        };
        for r in &rows {
            let share = share_of(if precision(r) == "bf16" { &bf16_ceiling } else { &ceiling }, r);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r["corpus"].as_str().unwrap_or("?"),
                r["method"].as_str().unwrap_or("?"),
                precision(r),
                r["max_length"],
                r["batch"],
                r["texts"],
                r["truncated_texts"],
                r["reps"],
                f(&r["seconds"], 1),
                f(&r["sentences_per_s"], 2),
                f(&r["real_tokens_per_s"], 0),
                r["padding_overhead"].as_f64().map_or_else(|| "—".into(), pct),
                f(&r["gflops_real"], 1),
                pct(share),
                pct(share_of(&fma_peak, r)),
                f(&r["gflops_computed"], 1),
            );
        }
        let pick = |corpus: &str, method: &str, trunc: i64| {
            rows.iter().find(|r| {
                r["corpus"] == corpus && r["method"] == method && r["max_length"] == trunc && precision(r) == "f32"
            })
        };
        let rate = |r: Option<&&Value>| r.and_then(|r| r["sentences_per_s"].as_f64()).unwrap_or(f64::NAN);
        let _ = writeln!(
            out,
            "\nSpeed-ups (sentences/s; the notebook's way timed on the first {} IMDB / {} GMB texts):\n",
            pick("imdb", "notebook", 512).map_or_else(|| "—".into(), |r| r["texts"].to_string()),
            pick("gmb", "notebook", 512).map_or_else(|| "—".into(), |r| r["texts"].to_string())
        );
        let _ = writeln!(
            out,
            "- IMDB, both truncated at 512 (the fair pair): ours {} x the notebook's way.",
            num(rate(pick("imdb", "sorted", 512)) / rate(pick("imdb", "notebook", 512)), 2)
        );
        let _ = writeln!(
            out,
            "- IMDB, ours truncated at 256 vs the notebook's way at 512 (different work): {} x.",
            num(rate(pick("imdb", "sorted", 256)) / rate(pick("imdb", "notebook", 512)), 2)
        );
        let _ = writeln!(
            out,
            "- GMB: ours (batch 64) {} x the notebook's way (batch 8, padded to 512).",
            num(rate(pick("gmb", "sorted", 512)) / rate(pick("gmb", "notebook", 512)), 2)
        );

        let _ = writeln!(out, "\nTargets:\n");
        for trunc in [256, 512] {
            let r = pick("imdb", "sorted", trunc);
            let share = match (r.and_then(|r| r["gflops_real"].as_f64()), &ceiling) {
                (Some(g), Some((c, _))) => g / c,
                _ => f64::NAN,
            };
            let _ = writeln!(
                out,
                "- Encoder forward at batch 32, IMDB truncated at {trunc} (sequences >= 128): {} of the GEMM ceiling, target >= 75%: {}.",
                pct(share),
                verdict(share.is_finite().then_some(share >= 0.75))
            );
        }
        for trunc in [256, 512] {
            let overhead = pick("imdb", "sorted", trunc).and_then(|r| r["padding_overhead"].as_f64());
            let _ = writeln!(
                out,
                "- Padding overhead, IMDB truncated at {trunc}, batch 32: {}, target <= 10%: {}.",
                overhead.map_or_else(|| "—".into(), pct),
                verdict(overhead.map(|o| o <= 0.10))
            );
        }
        if let Some(p) = self.find(|r| r["bench"] == "encoder.profile") {
            let before_after: Vec<String> =
                p["model_forward_seconds_before_after"].as_array().into_iter().flatten().map(|x| f(x, 2)).collect();
            let _ = writeln!(
                out,
                "\nWhere the time goes (IMDB truncated at {}, batch {}, every {}th batch of the sorted schedule: {} batches, \
                 {} padded tokens). The operations are timed one by one with the model's weights and the same libtorch \
                 calls; their sum is {} s against {} s for the model's own forward on the same batches (timed before and \
                 after the operations). GFLOP/s here count every position the kernel ran on.\n",
                p["max_length"],
                p["batch"],
                p["every"],
                p["batches"],
                p["padded_tokens"],
                f(&p["parts_seconds"], 2),
                before_after.join(" and "),
            );
            let _ = writeln!(out, "| operation | seconds | share | GFLOP/s |\n|---|---:|---:|---:|");
            let mut parts: Vec<&Value> = p["parts"].as_array().into_iter().flatten().collect();
            parts.sort_by(|a, b| b["seconds"].as_f64().unwrap_or(0.0).total_cmp(&a["seconds"].as_f64().unwrap_or(0.0)));
            for part in parts {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    part["part"].as_str().unwrap_or("?"),
                    f(&part["seconds"], 3),
                    part["share"].as_f64().map_or_else(|| "—".into(), pct),
                    f(&part["gflops"], 1)
                );
            }
            let _ = writeln!(
                out,
                "\nOn the {} profiled batches without padding, the attention took {} s with an all-zero mask and {} s \
                 without one: the model passes no mask when a batch has no padding (as Hugging Face does).",
                p["unpadded_batches"],
                f(&p["unpadded_attention_seconds_with_mask"], 3),
                f(&p["unpadded_attention_seconds_without_mask"], 3)
            );
        }
    }
}

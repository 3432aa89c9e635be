//! Section 6: `bertmt serve` under concurrent clients, against the offline embedder on the same sentences.

use super::{f, num, verdict, Report};
use serde_json::Value;
use std::fmt::Write as _;

impl Report<'_> {
    pub(super) fn server(&self, out: &mut String) {
        let offline: Vec<&Value> =
            self.results().filter(|r| r["bench"] == "cli.server_load" && r["mode"] == "offline").collect();
        if offline.is_empty() {
            out.push_str("No server result (see the failures in the run file).\n");
        }
        for (index, offline) in offline.into_iter().enumerate() {
            if index > 0 {
                out.push('\n');
            }
            self.server_run(offline, out);
        }
    }

    /// One precision's run: its offline line, then the server's rows and target with the same precision.
    fn server_run(&self, offline: &Value, out: &mut String) {
        let same = |r: &Value, mode: &str| {
            r["bench"] == "cli.server_load"
                && r["mode"] == mode
                && (r["precision"] == offline["precision"] || r["precision"].is_null())
        };
        let _ = writeln!(
            out,
            "`crates/cli/benches/server_load.rs`: the release `bertmt serve` with its defaults (batches of up to 32 \
             requests / 16,384 tokens, a queue of 256) on the default model, precision {}; every client thread sends \
             one GMB sentence a request to `/embed` (TEI's request) over its own keep-alive connection until all {} \
             sentences are sent. Offline is the library call `bertmt embed` makes (`encoder::Embedder::embed`, batch \
             {}) on the same sentences, sorted by length as it sorts them: {} sentences/s (median of {} passes, {} \
             libtorch threads); the same sentences in groups of 32 in input order, one call each (what batching \
             requests as they arrive costs, without a server): {} sentences/s. Server rows: the median pass of {} by throughput; latency per request over that pass; mean \
             batch from the server's own `/metrics`. Each server pass follows an offline pass over all the sentences, \
             run right before it with the server idle, and \"of offline\" is the median over the passes of the server \
             pass's throughput over that offline pass's (this VM's speed drifts by 20% and more within minutes, so \
             figures minutes apart are not compared). The client threads share the machine's cores with the server \
             (their CPU seconds per pass are shown).\n",
            offline["precision"].as_str().unwrap_or("?"),
            offline["texts"],
            offline["batch"],
            f(&offline["texts_per_s"], 1),
            offline["reps"],
            f(&offline["threads"], 0),
            f(&offline["groups_of_32_texts_per_s"], 1),
            offline["reps"],
        );
        let _ = writeln!(
            out,
            "| clients | sentences/s | offline right before | of offline | p50 ms | p99 ms | max ms | mean batch (requests) | errors | client CPU s |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let rows: Vec<&Value> = self.results().filter(|r| same(r, "server")).collect();
        for r in &rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r["clients"],
                f(&r["texts_per_s"], 1),
                f(&r["offline_texts_per_s"], 1),
                r["ratio_to_offline"].as_f64().map_or_else(|| "—".into(), |x| format!("{:.0}%", 100.0 * x)),
                f(&r["p50_ms"], 1),
                f(&r["p99_ms"], 1),
                f(&r["max_ms"], 1),
                f(&r["mean_batch_requests"], 1),
                r["errors"],
                f(&r["client_cpu_s"], 2),
            );
        }
        let Some(summary) = self.find(|r| same(r, "summary")) else { return };
        let ratio = summary["ratio_to_offline"].as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(
            out,
            "\nTarget: at {} clients, >= 80% of the offline throughput: {} sentences/s against {} (medians; the median \
             ratio of the passes) = {}, {}; p99 latency \
             {} ms. The server's vectors against the offline ones (first 16 sentences): largest absolute difference \
             {}, least cosine similarity {} ({}).",
            summary["clients"],
            f(&summary["server_texts_per_s"], 1),
            f(&summary["offline_texts_per_s"], 1),
            if ratio.is_finite() { format!("{:.0}%", 100.0 * ratio) } else { "—".into() },
            verdict(ratio.is_finite().then_some(ratio >= 0.8)),
            f(&summary["p99_ms"], 1),
            num(summary["max_abs_difference_to_offline"].as_f64().unwrap_or(f64::NAN), 7),
            num(summary["min_cosine_to_offline"].as_f64().unwrap_or(f64::NAN), 6),
            summary["check"].as_str().unwrap_or("?"),
        );
    }
}

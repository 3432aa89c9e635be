//! Section 4: the datasets pipeline against pandas, and the entity scorer.

use super::{f, num, verdict, Report};
use serde_json::Value;
use std::fmt::Write as _;

impl Report<'_> {
    pub(super) fn pipeline(&self, out: &mut String) {
        let step = |implementation: &str, name: &str| self.find(|r| r["impl"] == implementation && r["step"] == name);
        if let Some(r) = self.find(|r| r["bench"] == "metrics.entity_scoring") {
            let strict = r["strict_iob2_median_s"].as_f64().unwrap_or(f64::NAN);
            let _ = writeln!(
                out,
                "Entity scoring (`metrics::entity_report`, {} sentences x {} tags, median of {}): strict IOB2 {} s, default \
                 mode {} s; target well under a second: {}.\n",
                r["sentences"], r["tags_per_sentence"], r["runs"], num(strict, 3), f(&r["default_median_s"], 3),
                verdict(strict.is_finite().then_some(strict < 1.0))
            );
        }
        let rust_rows: Vec<&Value> =
            self.results().filter(|r| r["impl"] == "rust" && r.get("step").is_some()).collect();
        if rust_rows.is_empty() {
            out.push_str("No pipeline result (see the failures in the run file).\n");
            return;
        }
        let _ = writeln!(
            out,
            "The datasets crate's `pipeline` bench (built with `--no-default-features`, so without libtorch), one step per \
             process (peak memory = VmHWM of that process), median of the runs; the pandas script \
             (`crates/datasets/benches/python/pandas_pipeline.py`, the notebook's code) on the same files{}. \
             `read-ner` in Rust streams the rows without keeping them; pandas builds the DataFrame.\n",
            if step("pandas", "read-imdb").is_some() { "" } else { " was not run (`--peer` runs it)" }
        );
        let _ = writeln!(out, "| step | Rust s | Rust peak MiB | Rust check | pandas s | pandas peak MiB | speed-up | memory ratio (pandas/Rust) |");
        let _ = writeln!(out, "|---|---:|---:|---|---:|---:|---:|---:|");
        for name in ["read-imdb", "clean-imdb", "tokenize-imdb", "read-ner", "group-ner", "cache-hit"] {
            let (rust, pandas) = (step("rust", name), step("pandas", name));
            let get = |r: Option<&Value>, key: &str| r.and_then(|r| r[key].as_f64()).unwrap_or(f64::NAN);
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} | {} |",
                num(get(rust, "seconds"), 3),
                num(get(rust, "peak_rss_mib"), 0),
                rust.and_then(|r| r["check"].as_str()).unwrap_or("—"),
                num(get(pandas, "seconds"), 2),
                num(get(pandas, "peak_rss_mib"), 0),
                num(get(pandas, "seconds") / get(rust, "seconds"), 1),
                num(get(pandas, "peak_rss_mib") / get(rust, "peak_rss_mib"), 1),
            );
        }
        let seconds = |implementation: &str, names: &[&str]| -> f64 {
            names.iter().map(|n| step(implementation, n).and_then(|r| r["seconds"].as_f64()).unwrap_or(f64::NAN)).sum()
        };
        let ratio = |names: &[&str]| seconds("pandas", names) / seconds("rust", names);
        let full = ratio(&["clean-imdb", "group-ner"]);
        let _ = writeln!(out, "\nTargets:\n");
        let _ = writeln!(
            out,
            "- Read + clean + group of both files (clean-imdb + group-ner) >= 15x faster than pandas: {} x, {}.",
            num(full, 1),
            verdict(full.is_finite().then_some(full >= 15.0))
        );
        for (name, file) in [("read-imdb", "IMDB"), ("read-ner", "GMB")] {
            let read = ratio(&[name]);
            let _ = writeln!(
                out,
                "- Reading the {file} file >= 20x faster than `read_excel`: {} x, {}.",
                num(read, 1),
                verdict(read.is_finite().then_some(read >= 20.0))
            );
        }
        let lower: Vec<bool> = ["read-imdb", "clean-imdb", "read-ner", "group-ner"]
            .iter()
            .filter_map(|n| {
                let rust = step("rust", n)?["peak_rss_mib"].as_f64()?;
                let pandas = step("pandas", n)?["peak_rss_mib"].as_f64()?;
                Some(rust < pandas)
            })
            .collect();
        let _ = writeln!(
            out,
            "- Lower peak memory than pandas on every step: {}.",
            verdict((!lower.is_empty()).then(|| lower.iter().all(|&x| x)))
        );
        let hit = step("rust", "cache-hit").and_then(|r| r["seconds"].as_f64());
        let _ = writeln!(
            out,
            "- Cache hit < 1 s: {} s, {}.",
            hit.map_or_else(|| "—".into(), |x| num(x, 3)),
            verdict(hit.map(|h| h < 1.0))
        );
    }
}

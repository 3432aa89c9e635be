//! Section 5: the peers on the same texts (PyTorch fp32, PyTorch bf16 autocast, ONNX Runtime fp32 with its BERT
//! optimizer) against ours at f32 and at `--precision auto` (from this run or the latest earlier one).

use super::encoder::precision;
use super::{f, num, verdict, Report};
use serde_json::Value;
use std::fmt::Write as _;

/// The peers, in table order: (impl, column heading).
const PEERS: [(&str, &str); 3] =
    [("hf", "PyTorch fp32"), ("hf-bf16", "PyTorch bf16 autocast"), ("ort", "ONNX Runtime fp32")];

impl Report<'_> {
    /// Our sorted run of the same texts as `peer` at `precision`: (result, " (ours from run X)" or "").
    fn ours_for(&self, peer: &Value, wanted: &str) -> Option<(Value, String)> {
        let matches = |r: &Value| {
            r["bench"] == "encoder.encode"
                && r["impl"] == "rust"
                && r["method"] == "sorted"
                && precision(r) == wanted
                && r["corpus"] == peer["corpus"]
                && r["max_length"] == peer["max_length"]
                && r["batch"] == peer["batch"]
                && r["texts"] == peer["texts"]
        };
        match self.find(matches) {
            Some(r) => Some((r.clone(), String::new())),
            None => self.previous(matches).map(|(stamp, r)| (r, format!(" (ours from run {stamp})"))),
        }
    }

    pub(super) fn peer(&self, out: &mut String) {
        let runs: Vec<&Value> =
            self.results().filter(|r| r["bench"] == "encoder.encode" && r["impl"] == "hf").collect();
        if runs.is_empty() {
            out.push_str("No peer result (see the failures in the run file).\n");
            return;
        }
        let peer_of = |run: &Value, name: &str| {
            self.find(|r| {
                r["bench"] == "encoder.encode"
                    && r["impl"] == name
                    && r["corpus"] == run["corpus"]
                    && r["max_length"] == run["max_length"]
                    && r["batch"] == run["batch"]
                    && r["texts"] == run["texts"]
            })
        };
        let _ = writeln!(
            out,
            "On the same texts (the JSON file our `texts` step wrote), batched the same way (`xtask/peer/hf_peer.py`), \
             each right after ours, `{}` threads: Hugging Face `BertModel` ({} attention) under `torch.inference_mode()` \
             in fp32 and under `torch.autocast(\"cpu\", bfloat16)` (only where the CPU computes bf16 natively); ONNX \
             Runtime {} (CPU provider) on the model exported to ONNX and rewritten by its BERT optimizer ({}). Ours from \
             section 2: `f32`, and `auto` (bf16 here when the CPU has avx512_bf16). Sentences/s:\n",
            runs[0]["threads"],
            runs[0]["attn_implementation"].as_str().unwrap_or("?"),
            runs.iter().find_map(|r| peer_of(r, "ort")?["onnxruntime"].as_str()).unwrap_or("—"),
            runs.iter()
                .find_map(|r| peer_of(r, "ort")?["fused_operators"].as_object().cloned())
                .map_or_else(
                    || "not run".into(),
                    |fused| fused.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
                ),
        );
        let headings: Vec<&str> = PEERS.iter().map(|(_, heading)| *heading).collect();
        let _ = writeln!(
            out,
            "| corpus | trunc. | batch | texts | ours f32 | ours auto | {} | fastest peer | ours f32 / PyTorch fp32 | ours auto / fastest peer |",
            headings.join(" | ")
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|");
        let mut verdicts = Vec::new();
        let mut agreement = Vec::new();
        for run in &runs {
            let rate = |r: Option<&Value>| r.and_then(|r| r["sentences_per_s"].as_f64()).unwrap_or(f64::NAN);
            let (ours_f32, from) = self.ours_for(run, "f32").map_or((None, String::new()), |(r, from)| (Some(r), from));
            let ours_bf16 = self.ours_for(run, "bf16").map(|(r, _)| r);
            // `auto` is bf16 where that was measured, f32 elsewhere.
            let ours_auto = ours_bf16.as_ref().or(ours_f32.as_ref());
            let peers: Vec<(&str, Option<&Value>)> = PEERS.iter().map(|(name, h)| (*h, peer_of(run, name))).collect();
            let fastest = peers
                .iter()
                .filter(|(_, r)| r.is_some())
                .max_by(|a, b| rate(a.1).total_cmp(&rate(b.1)))
                .map(|(heading, r)| (*heading, rate(*r)));
            let same_tokens = peers
                .iter()
                .filter_map(|(_, r)| *r)
                .chain(ours_f32.as_ref())
                .all(|r| r["real_tokens"] == run["real_tokens"]);
            let vs_pytorch = rate(ours_f32.as_ref()) / rate(Some(run));
            let vs_fastest = rate(ours_auto) / fastest.map_or(f64::NAN, |(_, r)| r);
            let label =
                format!("{} at {}, batch {}", run["corpus"].as_str().unwrap_or("?"), run["max_length"], run["batch"]);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                run["corpus"].as_str().unwrap_or("?"),
                run["max_length"],
                run["batch"],
                run["texts"],
                num(rate(ours_f32.as_ref()), 2),
                ours_bf16.as_ref().map_or_else(|| "= f32".into(), |r| num(rate(Some(r)), 2)),
                peers
                    .iter()
                    .map(|(_, r)| r.map_or_else(|| "—".into(), |r| f(&r["sentences_per_s"], 2)))
                    .collect::<Vec<_>>()
                    .join(" | "),
                fastest.map_or("—", |(heading, _)| heading),
                num(vs_pytorch, 2),
                num(vs_fastest, 2),
            );
            if !same_tokens {
                verdicts.push(format!("{label}: the implementations did NOT see the same real tokens"));
            }
            verdicts.push(format!(
                "{label}: ours f32 / PyTorch fp32 {} x (target >= 1.0: {}); ours auto / fastest peer ({}) {} x \
                 (target >= 1.0: {}){from}",
                num(vs_pytorch, 2),
                verdict(vs_pytorch.is_finite().then_some(vs_pytorch >= 1.0)),
                fastest.map_or("—", |(heading, _)| heading),
                num(vs_fastest, 2),
                verdict(vs_fastest.is_finite().then_some(vs_fastest >= 1.0)),
            ));
            if let (Some(f32_run), Some(bf16_run)) = (&ours_f32, &ours_bf16) {
                let gain = rate(Some(bf16_run)) / rate(Some(f32_run));
                verdicts.push(format!(
                    "{label}: ours auto (bf16) / ours f32 {} x (target a further >= 1.6x: {})",
                    num(gain, 2),
                    verdict(gain.is_finite().then_some(gain >= 1.6))
                ));
            }
            for (heading, r) in &peers {
                if let Some(r) = r.filter(|r| r["min_cosine_to_fp32"].is_number()) {
                    agreement.push(format!(
                        "{label}, {heading}: pooled embeddings of the warm-up texts against PyTorch fp32: min cosine \
                         {}, max abs difference {}",
                        f(&r["min_cosine_to_fp32"], 7),
                        r["max_abs_diff_to_fp32"].as_f64().map_or_else(|| "—".into(), |d| format!("{d:.1e}"))
                    ));
                }
            }
        }
        let _ = writeln!(out, "\nTargets (`ours auto` equals `ours f32` where the CPU has no native bf16):\n");
        for line in verdicts {
            let _ = writeln!(out, "- {line}");
        }
        if !agreement.is_empty() {
            let _ = writeln!(out, "\nAgreement (checked in each peer's run):\n");
            for line in agreement {
                let _ = writeln!(out, "- {line}");
            }
        }
    }
}

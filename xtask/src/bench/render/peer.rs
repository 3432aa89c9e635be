//! Section 5: Hugging Face `transformers` on the same texts, against ours (from this run or the latest earlier one).

use super::{f, num, verdict, Report};
use serde_json::Value;
use std::fmt::Write as _;

impl Report<'_> {
    pub(super) fn peer(&self, out: &mut String) {
        let peers: Vec<&Value> =
            self.results().filter(|r| r["bench"] == "encoder.encode" && r["impl"] == "hf").collect();
        if peers.is_empty() {
            out.push_str("No peer result (see the failures in the run file).\n");
            return;
        }
        let _ = writeln!(
            out,
            "Hugging Face `BertModel` ({} attention, `torch.inference_mode()`, `torch.set_num_threads({})`) on the same texts \
             (the JSON file our `texts` step wrote), batched the same way (`xtask/peer/hf_peer.py`); ours from section 2.\n",
            peers[0]["attn_implementation"].as_str().unwrap_or("?"),
            peers[0]["threads"]
        );
        let _ = writeln!(out, "| corpus | trunc. | batch | texts | ours sentences/s | peer sentences/s | ours / peer | ours real tokens/s | peer real tokens/s | same real tokens | peer GFLOP/s real |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|");
        let mut verdicts = Vec::new();
        for p in &peers {
            let matches = |r: &Value| {
                r["bench"] == "encoder.encode"
                    && r["impl"] == "rust"
                    && r["method"] == "sorted"
                    && r["corpus"] == p["corpus"]
                    && r["max_length"] == p["max_length"]
                    && r["batch"] == p["batch"]
                    && r["texts"] == p["texts"]
            };
            let (ours, from) = match self.find(matches) {
                Some(r) => (Some(r.clone()), String::new()),
                None => match self.previous(matches) {
                    Some((stamp, r)) => (Some(r), format!(" (ours from run {stamp})")),
                    None => (None, String::new()),
                },
            };
            let rate = |r: Option<&Value>| r.and_then(|r| r["sentences_per_s"].as_f64()).unwrap_or(f64::NAN);
            let ratio = rate(ours.as_ref()) / rate(Some(p));
            verdicts.push(format!(
                "{} at {}, batch {}: {} x, {}{from}",
                p["corpus"].as_str().unwrap_or("?"),
                p["max_length"],
                p["batch"],
                num(ratio, 2),
                verdict(ratio.is_finite().then_some(ratio >= 1.0))
            ));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                p["corpus"].as_str().unwrap_or("?"),
                p["max_length"],
                p["batch"],
                p["texts"],
                num(rate(ours.as_ref()), 2),
                f(&p["sentences_per_s"], 2),
                num(ratio, 2),
                ours.as_ref().map_or_else(|| "—".into(), |r| f(&r["real_tokens_per_s"], 0)),
                f(&p["real_tokens_per_s"], 0),
                ours.as_ref().map_or("—", |r| if r["real_tokens"] == p["real_tokens"] { "yes" } else { "NO" }),
                f(&p["gflops_real"], 1),
            );
        }
        let _ = writeln!(out, "\nTarget: ours / peer >= 1.0x.\n");
        for line in verdicts {
            let _ = writeln!(out, "- {line}");
        }
    }
}

//! Section 3: training cost per epoch by freezing strategy, cache, precision and optimizer, and the optimizer step.

use super::{f, num, verdict, Report};
use serde_json::Value;
use std::fmt::Write as _;

impl Report<'_> {
    pub(super) fn training(&self, out: &mut String) {
        let rows: Vec<&Value> = self.results().filter(|r| r["bench"] == "trainer.epoch").collect();
        if rows.is_empty() {
            out.push_str("No result (see the failures in the run file).\n");
            return;
        }
        let _ = writeln!(
            out,
            "`trainer::train_and_evaluate` (separate mode, classification only) on the first N cleaned IMDB \
             reviews tokenized at 512 (train split), the next {} reviews as the test split (scored before and after, \
             not part of the epochs). Epoch seconds from `TrainOutcome.epochs`, split into forward (batching, forward \
             pass, loss), backward and optimizer (clipping, update, clearing gradients) by `EpochRecord.timing`; with \
             the cache, the one-off encoder pass is the fill time, and the per-epoch figure is the median of the epochs \
             after the first.\n",
            rows[0]["test"]
        );
        let _ = writeln!(out, "| strategy | precision | attention dropout | optimizer | feature cache | batch | reviews | train tokens | epochs | cache fill s | first epoch s | later epochs s (median) | forward s | backward s | optimizer s | examples/s | trainable values |");
        let _ = writeln!(out, "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &rows {
            let first = &r["epochs"][0];
            let _ = writeln!(
                out,
                "| {} | {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r["strategy_arg"].as_str().or(r["strategy"].as_str()).unwrap_or("?"),
                r["precision"].as_str().unwrap_or("f32"),
                if r["taking_turns"].is_array() { " (in turns)" } else { "" },
                f(&r["attention_dropout"], 2),
                r["optimizer"].as_str().unwrap_or("adam"),
                if r["feature_cache"] == true { "on" } else { "off" },
                r["batch"],
                r["reviews"],
                r["train_tokens"],
                r["epochs"].as_array().map_or(0, Vec::len),
                f(&r["cache_fill_seconds"], 1),
                f(&r["first_epoch_seconds"], 3),
                f(&r["later_epochs_median_seconds"], 4),
                f(&first["forward_seconds"], 1),
                f(&first["backward_seconds"], 1),
                f(&first["optimizer_seconds"], 1),
                match (r["reviews"].as_f64(), r["epoch_seconds"].as_f64()) {
                    (Some(n), Some(s)) if n / s < 100.0 => num(n / s, 2),
                    (Some(n), Some(s)) => num(n / s, 0),
                    _ => "—".into(),
                },
                r["trainable_parameters"],
            );
        }
        let _ = writeln!(
            out,
            "\nTarget: heads-only epochs after the first with the cache at least 50x faster than uncached epochs.\n"
        );
        for batch in [8, 32] {
            let pick = |cache: bool| {
                rows.iter()
                    .find(|r| r["strategy"] == "heads_only" && r["feature_cache"] == cache && r["batch"] == batch)
            };
            let uncached = pick(false).and_then(|r| r["epoch_seconds"].as_f64());
            let cached = pick(true).and_then(|r| r["later_epochs_median_seconds"].as_f64());
            let speedup = match (uncached, cached) {
                (Some(u), Some(c)) if c > 0.0 => u / c,
                _ => f64::NAN,
            };
            let fill = pick(true).and_then(|r| r["cache_fill_seconds"].as_f64());
            let _ = writeln!(
                out,
                "- batch {batch}: uncached epoch {} s, cached epoch {} s (after a one-off fill of {} s): {} x, {}.",
                uncached.map_or_else(|| "—".into(), |x| num(x, 1)),
                cached.map_or_else(|| "—".into(), |x| num(x, 4)),
                fill.map_or_else(|| "—".into(), |x| num(x, 1)),
                num(speedup, 0),
                verdict(speedup.is_finite().then_some(speedup >= 50.0))
            );
        }
        // Full fine-tuning: each variant against the former default (f32, the model's attention dropout, Adam),
        // measured in the same run.
        let finetune = |precision: &str, dropout_zero: bool| {
            rows.iter().find(|r| {
                r["strategy"] == "all"
                    && r["precision"].as_str().unwrap_or("f32") == precision
                    && (r["attention_dropout"].as_f64() == Some(0.0)) == dropout_zero
            })
        };
        let seconds = |r: Option<&&Value>| r.and_then(|r| r["epoch_seconds"].as_f64());
        if let Some(baseline) = seconds(finetune("f32", false)) {
            let _ = writeln!(
                out,
                "\nFull fine-tuning (`all`, batch 8), epoch time against f32 with the model's attention dropout (the \
                 former default), same run. Targets: at least 2x at f32, and a further 1.6x with bf16 where the CPU \
                 has avx512_bf16.\n"
            );
            let f32_fast = seconds(finetune("f32", true));
            let bf16_fast = seconds(finetune("bf16", true));
            if let Some(fast) = f32_fast {
                let ratio = baseline / fast;
                let _ = writeln!(
                    out,
                    "- f32, attention dropout 0, AdamW: {} s against {} s, {} x (target 2x: {}).",
                    num(fast, 1),
                    num(baseline, 1),
                    num(ratio, 2),
                    verdict(Some(ratio >= 2.0))
                );
            }
            if let (Some(fast), Some(bf16)) = (f32_fast, bf16_fast) {
                let ratio = fast / bf16;
                let _ = writeln!(
                    out,
                    "- bf16 (same settings): {} s, {} x over f32 with the same settings and {} x over the former \
                     default (target a further 1.6x: {}).",
                    num(bf16, 1),
                    num(ratio, 2),
                    num(baseline / bf16, 2),
                    verdict(Some(ratio >= 1.6))
                );
            }
            if let (Some(f32_run), Some(bf16_run)) = (finetune("f32", true), finetune("bf16", true)) {
                Self::turns(f32_run, bf16_run, out);
            }
        }
    }

    /// bf16 against f32 turn by turn, when the two took turns in one run (`epoch_cost --precision f32,bf16`).
    fn turns(f32_run: &Value, bf16_run: &Value, out: &mut String) {
        let (Some(turn), Some(f32_steps), Some(bf16_steps)) = (
            f32_run["turn_batches"].as_u64().filter(|&t| t > 0),
            f32_run["step_seconds"][0].as_array(),
            bf16_run["step_seconds"][0].as_array(),
        ) else {
            return;
        };
        let sums = |steps: &[Value]| -> Vec<f64> {
            steps.chunks(turn as usize).map(|chunk| chunk.iter().filter_map(Value::as_f64).sum()).collect()
        };
        let mut ratios: Vec<f64> =
            sums(f32_steps).iter().zip(sums(bf16_steps)).map(|(f32_turn, bf16_turn)| f32_turn / bf16_turn).collect();
        if ratios.is_empty() || f32_steps.len() != bf16_steps.len() {
            return;
        }
        ratios.sort_by(f64::total_cmp);
        // Linear interpolation between the nearest ranks.
        let quartile = |q: f64| {
            let position = (ratios.len() - 1) as f64 * q;
            let (low, high) = (ratios[position.floor() as usize], ratios[position.ceil() as usize]);
            low + (high - low) * position.fract()
        };
        let _ = writeln!(
            out,
            "- The two precisions took turns in one run (one process each, the same batches, the turn passed every \
             {turn} batches): bf16 / f32 speed per turn of the same batches: median {} x, quartiles {}-{} x, range \
             {}-{} x over {} turns.",
            num(quartile(0.5), 2),
            num(quartile(0.25), 2),
            num(quartile(0.75), 2),
            num(ratios[0], 2),
            num(ratios[ratios.len() - 1], 2),
            ratios.len(),
        );
    }

    /// The PyTorch training loop on the same batches (`peer.training`), against our run with the same settings.
    pub(super) fn training_peer(&self, out: &mut String) {
        let peers: Vec<&Value> = self.results().filter(|r| r["bench"] == "peer.training").collect();
        let Some(first) = peers.first() else { return };
        let _ = writeln!(
            out,
            "\nThe PyTorch training loop on the same batches (`xtask/peer/hf_train_peer.py`: transformers {} \
             `BertModel`, sdpa attention, torch {}, the same mean-pooling head, AdamW with `fused=True`, the same rate, \
             weight decay and dropouts; bf16 by `torch.autocast`), run right after ours with the same thread count. \
             Target: ours at least 1.0x the peer.\n",
            first["versions"]["transformers"].as_str().unwrap_or("?"),
            first["versions"]["torch"].as_str().unwrap_or("?"),
        );
        let _ = writeln!(out, "| precision | ours epoch s (forward / backward / optimizer) | PyTorch epoch s (forward / backward / optimizer) | same batches | ours / PyTorch speed |");
        let _ = writeln!(out, "|---|---:|---:|---|---:|");
        for peer in &peers {
            let precision = peer["precision"].as_str().unwrap_or("f32");
            let ours = self.results().find(|r| {
                r["bench"] == "trainer.epoch"
                    && r["strategy"] == "all"
                    && r["optimizer"] == "adamw"
                    && r["precision"].as_str().unwrap_or("f32") == precision
            });
            let Some(ours) = ours else { continue };
            let epoch = &ours["epochs"][0];
            let split = |r: &Value| {
                format!(
                    "{} ({} / {} / {})",
                    f(&r["seconds"], 1),
                    f(&r["forward_seconds"], 1),
                    f(&r["backward_seconds"], 1),
                    f(&r["optimizer_seconds"], 1)
                )
            };
            let same = ours["train_tokens"] == peer["train_tokens"] && ours["reviews"] == peer["examples"];
            let ratio = match (peer["seconds"].as_f64(), epoch["seconds"].as_f64()) {
                (Some(theirs), Some(ours)) if ours > 0.0 => theirs / ours,
                _ => f64::NAN,
            };
            let _ = writeln!(
                out,
                "| {precision} | {} | {} | {} | {} x ({}) |",
                split(epoch),
                split(peer),
                if same { "yes" } else { "**no**" },
                num(ratio, 2),
                verdict(ratio.is_finite().then_some(ratio >= 1.0))
            );
        }
    }

    /// The optimizer step on its own (`trainer.optimizer`): the fused update against the former per-op one.
    pub(super) fn optimizer_step(&self, out: &mut String) {
        let Some(r) = self.find(|r| r["bench"] == "trainer.optimizer") else { return };
        let _ = writeln!(
            out,
            "\nOne AdamW step over all {} values ({} tensors) of {} (`trainer::Adam`, `crates/trainer/benches/\
             optimizer_step.rs`, median of {} steps, {} threads): libtorch's fused kernel {} ms against {} ms for the \
             former update written as one libtorch call per elementwise operation, same process: {} x. Clipping the \
             global gradient norm: {} ms.",
            r["values"],
            r["tensors"],
            r["model"].as_str().unwrap_or("the model"),
            r["steps"],
            r["threads"],
            f(&r["fused_ms"], 1),
            f(&r["per_op_ms"], 1),
            f(&r["speedup"], 2),
            f(&r["clip_ms"], 1),
        );
    }

    /// Where a training step's time goes (`encoder.profile_training`): forward and backward per operation group.
    pub(super) fn training_profile(&self, out: &mut String) {
        let Some(p) = self.find(|r| r["bench"] == "encoder.profile_training") else { return };
        let pair = |i: usize| -> String {
            let x = &p["model_seconds_before_after"][i];
            format!("{} + {}", f(&x[0], 2), f(&x[1], 2))
        };
        let (forward, backward) = (
            p["parts_forward_seconds"].as_f64().unwrap_or(f64::NAN),
            p["parts_backward_seconds"].as_f64().unwrap_or(f64::NAN),
        );
        let _ = writeln!(
            out,
            "\nWhere a training step's time goes (`--step profile-training` of `crates/encoder/benches/throughput`: \
             IMDB truncated at {}, batch {}, every {}th batch of the sorted schedule: {} batches, {} padded tokens; \
             {}, dropout off, every weight trainable). Each operation runs on fresh leaves and its backward is \
             libtorch's autograd of that operation alone (input and weight gradients, the word-embedding table's dense \
             gradient included), driven through `(output * upstream).sum()` whose own cost ({} s in all) is \
             subtracted. Sum of the parts: forward {} s, backward {} s (backward / forward {} x); the model's own \
             forward + backward on the same batches: {} s before and {} s after the parts. GFLOP/s: forward FLOPs as \
             in section 2, backward counted as twice the forward's (input and weight gradients).\n",
            p["max_length"],
            p["batch"],
            p["every"],
            p["batches"],
            p["padded_tokens"],
            p["precision"].as_str().unwrap_or("f32"),
            f(&p["driver_seconds_subtracted"], 2),
            num(forward, 2),
            num(backward, 2),
            num(backward / forward, 2),
            pair(0),
            pair(1),
        );
        let _ = writeln!(
            out,
            "| operation | forward s | backward s | share of backward | share of step | forward GFLOP/s | backward GFLOP/s |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        let mut parts: Vec<&Value> = p["parts"].as_array().into_iter().flatten().collect();
        let key =
            |v: &Value| v["backward_seconds"].as_f64().unwrap_or(0.0) + v["forward_seconds"].as_f64().unwrap_or(0.0);
        parts.sort_by(|a, b| key(b).total_cmp(&key(a)));
        for part in parts {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                part["part"].as_str().unwrap_or("?"),
                f(&part["forward_seconds"], 3),
                f(&part["backward_seconds"], 3),
                part["backward_share"].as_f64().map_or_else(|| "—".into(), super::pct),
                part["step_share"].as_f64().map_or_else(|| "—".into(), super::pct),
                f(&part["forward_gflops"], 1),
                f(&part["backward_gflops"], 1),
            );
        }
        Self::dropout_cost(p, forward + backward, out);
    }

    /// The hidden dropout's cost, ours against libtorch's, from the same profile run.
    fn dropout_cost(p: &Value, parts_seconds: f64, out: &mut String) {
        let d = &p["dropout"];
        let total = |who: &str| {
            d[who]["forward_seconds"].as_f64().unwrap_or(f64::NAN)
                + d[who]["backward_seconds"].as_f64().unwrap_or(f64::NAN)
        };
        let (libtorch, ours) = (total("libtorch"), total("ours"));
        if !libtorch.is_finite() || !ours.is_finite() {
            return;
        }
        let _ = writeln!(
            out,
            "\nDropout, which the parts leave out (a training step runs it {} times, at p = {} on every \
             `[batch, seq, hidden]` state the model drops), timed on the same batches' shapes in {}: libtorch's \
             `dropout` {} s forward + {} s backward, `encoder::model::dropout` (one 64-bit draw of the generator for \
             four elements' masks) {} + {} s: {} x faster, saving {} s, {} of a step (the parts plus libtorch's dropout).",
            d["calls_per_batch"],
            d["probability"],
            p["precision"].as_str().unwrap_or("f32"),
            f(&d["libtorch"]["forward_seconds"], 3),
            f(&d["libtorch"]["backward_seconds"], 3),
            f(&d["ours"]["forward_seconds"], 3),
            f(&d["ours"]["backward_seconds"], 3),
            num(libtorch / ours, 2),
            num(libtorch - ours, 2),
            super::pct((libtorch - ours) / (parts_seconds + libtorch)),
        );
    }
}

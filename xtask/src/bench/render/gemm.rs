//! Section 1: the machine's ceilings: the measured FMA peak (the hardware's limit), libtorch's GEMM on the model's
//! shapes in fp32 (the ceiling section 2 measures itself against) and bf16, and numpy's (OpenBLAS) GEMM beside it.

use super::{f, num, pct, Report};
use serde_json::Value;
use std::fmt::Write as _;

/// Our GEMM result: `bench` "encoder.gemm" without an `impl` (older runs) or with `impl` "rust".
fn is_ours(r: &Value) -> bool {
    r["bench"] == "encoder.gemm" && (r["impl"].is_null() || r["impl"] == "rust")
}

impl Report<'_> {
    /// A figure of our GEMM result of this run or of the latest earlier one: (value, where from).
    fn gemm_figure(&self, figure: impl Fn(&Value) -> Option<f64>) -> Option<(f64, String)> {
        if let Some(r) = self.find(is_ours) {
            return figure(r).map(|c| (c, "section 1 of this run".into()));
        }
        let (stamp, r) = self.previous(|r| is_ours(r) && figure(r).is_some())?;
        figure(&r).map(|c| (c, format!("section 1 of run {stamp}")))
    }

    /// The fp32 GEMM ceiling: (GFLOP/s, where from).
    pub(super) fn ceiling(&self) -> Option<(f64, String)> {
        self.gemm_figure(|r| r["ceiling_gflops"].as_f64())
    }

    /// The bf16 GEMM ceiling, where the CPU computes bf16 natively: (GFLOP/s, where from).
    pub(super) fn bf16_ceiling(&self) -> Option<(f64, String)> {
        self.gemm_figure(|r| r["bf16"]["ceiling_gflops"].as_f64())
    }

    /// The measured fp32 FMA peak: (GFLOP/s, where from).
    pub(super) fn fma_peak(&self) -> Option<(f64, String)> {
        self.gemm_figure(|r| r["fma_peak"]["gflops_median"].as_f64())
    }

    pub(super) fn gemm(&self, out: &mut String) {
        let Some(r) = self.find(is_ours) else {
            out.push_str("No result (see the failures in the run file).\n");
            return;
        };
        let numpy = self.find(|r| r["bench"] == "encoder.gemm" && r["impl"] == "numpy");
        let peak = &r["fma_peak"];
        if peak["gflops_median"].is_number() {
            let all: Vec<String> = peak["gflops_all"].as_array().into_iter().flatten().map(|x| f(x, 1)).collect();
            let _ = writeln!(
                out,
                "**FMA peak: {} GFLOP/s** ({}). A register-only kernel of {} independent fp32 FMA chains of {} lanes \
                 ({}) on each of {} threads at once: no memory traffic, so only the FMA units limit it; median of \
                 {} repetitions of about 0.5 s. The kernel reports {} MHz, which gives {} FLOP per cycle and thread \
                 (turbo runs above the reported clock, so this is an upper bound on FLOP/cycle).\n",
                f(&peak["gflops_median"], 1),
                all.join(", "),
                peak["accumulators"],
                peak["lanes"],
                peak["kernel"].as_str().unwrap_or("?"),
                peak["threads"],
                all.len(),
                f(&peak["clock_mhz"], 0),
                f(&peak["flops_per_cycle_per_thread"], 1),
            );
        } else {
            let _ = writeln!(out, "FMA peak: not measured ({}).\n", peak["why"].as_str().unwrap_or("no result"));
        }
        let bf16 = r["bf16"]["shapes"].as_array();
        let _ = writeln!(
            out,
            "`Tensor::matmul` of random matrices, {} threads; median of {} repetitions of about 0.5 s each after 3 \
             warm-up calls. bf16: {}. numpy: {}.\n",
            r["threads"],
            r["reps"],
            if bf16.is_some() {
                "the same shapes in bf16".to_owned()
            } else {
                format!("not measured, {} (emulated bf16 is far slower)", r["bf16_hardware"].as_str().unwrap_or("?"))
            },
            numpy.map_or_else(
                || "not measured (needs `--peer`)".to_owned(),
                |n| format!(
                    "`a @ b` in numpy {} ({} {}), same shapes, threads and timing (`xtask/peer/gemm_peer.py`)",
                    n["numpy"].as_str().unwrap_or("?"),
                    n["blas"]["name"].as_str().unwrap_or("?"),
                    n["blas"]["version"].as_str().unwrap_or("?")
                )
            ),
        );
        let _ = writeln!(
            out,
            "| shape `[m x k] @ [k x n]` | libtorch fp32 GFLOP/s (median) | all repetitions | % of FMA peak | numpy fp32 | libtorch bf16 |\n|---|---:|---|---:|---:|---:|"
        );
        let peak_gflops = peak["gflops_median"].as_f64().unwrap_or(f64::NAN);
        let median_of = |rows: Option<&Vec<Value>>, name: &Value| {
            rows.and_then(|rows| rows.iter().find(|row| &row["shape"] == name))
                .map_or_else(|| "—".to_owned(), |row| f(&row["gflops_median"], 1))
        };
        for shape in r["shapes"].as_array().into_iter().flatten() {
            let all: Vec<String> = shape["gflops_all"].as_array().into_iter().flatten().map(|x| f(x, 1)).collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                shape["shape"].as_str().unwrap_or("?"),
                f(&shape["gflops_median"], 1),
                all.join(", "),
                pct(shape["gflops_median"].as_f64().unwrap_or(f64::NAN) / peak_gflops),
                median_of(numpy.and_then(|n| n["shapes"].as_array()), &shape["shape"]),
                median_of(bf16, &shape["shape"]),
            );
        }
        let ceiling = r["ceiling_gflops"].as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(
            out,
            "\nCeiling used in section 2: **{} GFLOP/s** ({}), {} of the FMA peak.",
            num(ceiling, 1),
            r["ceiling_definition"].as_str().unwrap_or(""),
            pct(ceiling / peak_gflops),
        );
        if let Some(n) = numpy {
            let best = n["ceiling_gflops"].as_f64().unwrap_or(f64::NAN);
            let _ = writeln!(
                out,
                "numpy's best on the model's shapes: {} GFLOP/s, {} x libtorch's: {}.",
                num(best, 1),
                num(best / ceiling, 2),
                if best > ceiling * 1.03 {
                    "numpy's GEMM is the better one here"
                } else {
                    "libtorch's GEMM is as good as any here"
                }
            );
        }
        if let Some(best) = r["bf16"]["ceiling_gflops"].as_f64() {
            let _ = writeln!(
                out,
                "bf16 GEMM on the model's shapes: {} GFLOP/s, {} x fp32 ({} x the fp32 FMA peak).",
                num(best, 1),
                num(best / ceiling, 2),
                num(best / peak_gflops, 2)
            );
        }
    }
}

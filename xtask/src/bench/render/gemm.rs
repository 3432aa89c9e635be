//! Section 1: the fp32 GEMM ceiling, which section 2 measures itself against.

use super::{f, Report};
use serde_json::Value;
use std::fmt::Write as _;

impl Report<'_> {
    /// The GEMM ceiling of this run or of the latest earlier one: (GFLOP/s, where from).
    pub(super) fn ceiling(&self) -> Option<(f64, String)> {
        let is_gemm = |r: &Value| r["bench"] == "encoder.gemm";
        if let Some(r) = self.find(is_gemm) {
            return r["ceiling_gflops"].as_f64().map(|c| (c, "section 1 of this run".into()));
        }
        let (stamp, r) = self.previous(is_gemm)?;
        r["ceiling_gflops"].as_f64().map(|c| (c, format!("section 1 of run {stamp}")))
    }

    pub(super) fn gemm(&self, out: &mut String) {
        let Some(r) = self.find(|r| r["bench"] == "encoder.gemm") else {
            out.push_str("No result (see the failures in the run file).\n");
            return;
        };
        let _ = writeln!(out, "`Tensor::matmul` of random fp32 matrices, {} threads; median of {} repetitions of about 0.5 s each after 3 warm-up calls.\n", r["threads"], r["reps"]);
        let _ = writeln!(out, "| shape `[m x k] @ [k x n]` | GFLOP/s (median) | all repetitions |\n|---|---:|---|");
        for shape in r["shapes"].as_array().into_iter().flatten() {
            let all: Vec<String> = shape["gflops_all"].as_array().into_iter().flatten().map(|x| f(x, 1)).collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                shape["shape"].as_str().unwrap_or("?"),
                f(&shape["gflops_median"], 1),
                all.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "\nCeiling used in section 2: **{} GFLOP/s** ({}).",
            f(&r["ceiling_gflops"], 1),
            r["ceiling_definition"].as_str().unwrap_or("")
        );
    }
}

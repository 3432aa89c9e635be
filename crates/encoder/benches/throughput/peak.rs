//! The machine's arithmetic limit, measured rather than assumed: a register-only kernel of independent fp32 FMAs
//! on every thread (no memory traffic, so nothing but the FMA units limits it), the clock the kernel reports, and
//! libtorch's bf16 GEMM on the model's shapes where the CPU computes bf16 natively.

use super::{median, round};
use serde_json::{json, Value};
use std::time::Instant;

/// Independent accumulators per thread: more than FMA latency x FMA pipes (4 x 2 on current x86), so the pipes
/// never wait on a result.
const ACCUMULATORS: usize = 12;

/// Runs `iterations` rounds of `ACCUMULATORS` independent FMAs of 16 lanes; returns a sum so the work is kept.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fma_rounds_avx512(iterations: u64) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_set1_ps(1.0); ACCUMULATORS];
    let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    for _ in 0..iterations {
        for x in acc.iter_mut() {
            *x = _mm512_fmadd_ps(*x, a, b);
        }
    }
    acc.iter().map(|&x| _mm512_reduce_add_ps(x)).sum()
}

/// The same with 8 lanes (AVX2 + FMA).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_rounds_avx2(iterations: u64) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_ps(1.0); ACCUMULATORS];
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    for _ in 0..iterations {
        for x in acc.iter_mut() {
            *x = _mm256_fmadd_ps(*x, a, b);
        }
    }
    let mut lanes = [0f32; 8];
    acc.iter()
        .map(|&x| {
            // SAFETY: `lanes` holds 8 f32, the width of one __m256.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), x) };
            lanes.iter().sum::<f32>()
        })
        .sum()
}

/// An FMA kernel: its name, its f32 lanes, and the function that runs it for a number of rounds.
type FmaKernel = (&'static str, u64, fn(u64) -> f32);

/// The widest FMA kernel this CPU runs.
#[cfg(target_arch = "x86_64")]
fn widest_kernel() -> Option<FmaKernel> {
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: avx512f was detected at run time.
        return Some(("avx512f", 16, |n| unsafe { fma_rounds_avx512(n) }));
    }
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: avx2 and fma were detected at run time.
        return Some(("avx2+fma", 8, |n| unsafe { fma_rounds_avx2(n) }));
    }
    None
}

#[cfg(not(target_arch = "x86_64"))]
fn widest_kernel() -> Option<FmaKernel> {
    None
}

/// The mean "cpu MHz" of /proc/cpuinfo (the clock the kernel reports; turbo may run above it).
fn reported_clock_mhz() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let clocks: Vec<f64> = text
        .lines()
        .filter(|line| line.starts_with("cpu MHz"))
        .filter_map(|line| line.split(':').nth(1)?.trim().parse().ok())
        .collect();
    (!clocks.is_empty()).then(|| clocks.iter().sum::<f64>() / clocks.len() as f64)
}

/// fp32 FMA peak of `threads` threads at once: median GFLOP/s of `reps` repetitions of about half a second.
pub(super) fn fma_peak(threads: usize, reps: usize) -> Value {
    let Some((kernel, lanes, rounds)) = widest_kernel() else {
        return json!({"kernel": null, "why": "no AVX2/AVX-512 FMA kernel for this CPU"});
    };
    let flops_per_round = (ACCUMULATORS as u64 * lanes * 2) as f64;
    // Calibrate one thread to about half a second.
    let start = Instant::now();
    std::hint::black_box(rounds(std::hint::black_box(1_000_000)));
    let per_round = start.elapsed().as_secs_f64() / 1e6;
    let iterations = ((0.5 / per_round) as u64).max(1_000_000);
    let rates: Vec<f64> = (0..reps.max(3))
        .map(|_| {
            let start = Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(|| std::hint::black_box(rounds(std::hint::black_box(iterations))));
                }
            });
            flops_per_round * iterations as f64 * threads as f64 / start.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    let peak = median(rates.clone());
    let clock = reported_clock_mhz();
    json!({
        "kernel": kernel,
        "lanes": lanes,
        "accumulators": ACCUMULATORS,
        "threads": threads,
        "gflops_median": round(peak, 1),
        "gflops_all": rates.iter().map(|&r| round(r, 1)).collect::<Vec<_>>(),
        "clock_mhz": clock.map(|c| round(c, 0)),
        "flops_per_cycle_per_thread": clock.map(|c| round(peak * 1e3 / c / threads as f64, 1)),
    })
}

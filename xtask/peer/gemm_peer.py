#!/usr/bin/env python3
"""The GEMM peer of `crates/encoder/benches/throughput --step gemm`: numpy's `matmul` (the OpenBLAS its wheel ships)
on the same fp32 shapes, with the same timing (3 warm-up calls, then `--reps` repetitions of about half a second),
so that the ceiling of section 1 is the best GEMM any library reaches here, not libtorch's alone.

Usage: python gemm_peer.py --threads 2 [--reps 3]
Prints one JSON line (`bench`: "encoder.gemm", `impl`: "numpy").
"""
import argparse
import json
import os
import statistics
import time

# The (m, k, n) shapes of the Rust step, by the same names.
SHAPES = [
    ("ffn_in 4096x384 @ 384x1536", 4096, 384, 1536),
    ("ffn_out 4096x1536 @ 1536x384", 4096, 1536, 384),
    ("proj 4096x384 @ 384x384", 4096, 384, 384),
    ("reference 768x768 @ 768x3072", 768, 768, 3072),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)
    import numpy  # after the thread variables: OpenBLAS reads them when it loads

    config = numpy.show_config(mode="dicts") if hasattr(numpy, "show_config") else {}
    blas = (config or {}).get("Build Dependencies", {}).get("blas", {})
    rng = numpy.random.default_rng(0)
    rows = []
    for name, m, k, n in SHAPES:
        a = rng.standard_normal((m, k), dtype=numpy.float32)
        b = rng.standard_normal((k, n), dtype=numpy.float32)
        flops = 2.0 * m * k * n
        start = time.perf_counter()
        for _ in range(3):
            a @ b
        per_call = (time.perf_counter() - start) / 3
        calls = min(max(int(0.5 / per_call + 0.999), 3), 10_000)
        rates = []
        for _ in range(max(args.reps, 3)):
            start = time.perf_counter()
            for _ in range(calls):
                a @ b
            rates.append(flops * calls / (time.perf_counter() - start) / 1e9)
        rows.append({
            "shape": name, "m": m, "k": k, "n": n, "calls_per_rep": calls,
            "gflops_median": round(statistics.median(rates), 2),
            "gflops_all": [round(r, 2) for r in rates],
        })
    model_shapes = [r["gflops_median"] for r in rows if not r["shape"].startswith("reference")]
    print(json.dumps({
        "bench": "encoder.gemm",
        "impl": "numpy",
        "threads": args.threads,
        "reps": max(args.reps, 3),
        "shapes": rows,
        "ceiling_gflops": max(model_shapes),
        "blas": {"name": blas.get("name"), "version": blas.get("version")},
        "numpy": numpy.__version__,
    }))


if __name__ == "__main__":
    main()

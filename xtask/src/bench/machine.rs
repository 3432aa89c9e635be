//! The machine: its facts for the run file (CPU model and SIMD flags, cores, memory, kernel, versions) and its load
//! (`/proc`), which the runner reads around every measurement.

use super::record::{Machine, Versions};
use super::round;
use crate::setup;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Whether this CPU computes bf16 natively (avx512_bf16), as `encoder::native_bf16` decides for `--precision auto`.
pub(super) fn native_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The 1-minute load average (NaN when `/proc/loadavg` cannot be read).
pub(super) fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().and_then(|l| l.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Busy CPU ticks of the whole machine (user, nice, system, irq, softirq, steal) from /proc/stat.
pub(super) fn machine_busy_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else { return 0 };
    let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| fields.get(i)).sum()
}

/// CPU ticks of this process's waited-for children and their descendants (cutime + cstime of /proc/self/stat).
pub(super) fn own_children_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 16 and 17 (1-based) of the whole line: cutime, cstime; `fields[0]` is field 3.
    [13, 14].iter().filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok())).sum()
}

/// The machine's facts; `results` (the run's JSON lines) give libtorch's thread count and the peer's versions.
pub(super) fn facts(env: &setup::Environment, results: &[Value], root: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown".into());
    let processors = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let flags = cpuinfo.lines().find_map(|l| l.strip_prefix("flags")).unwrap_or("");
    let simd: Vec<String> = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|x| x == *f))
        .map(str::to_owned)
        .collect();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .and_then(|kb| super::finite(round(kb / 1024.0 / 1024.0, 1)));
    let threads = results.iter().find_map(|r| r["threads"].as_i64());
    let peer_versions = results.iter().find_map(|r| r.get("versions").cloned());
    let libtorch_version = std::fs::read_to_string(env.libtorch.join("version.py"))
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| l.strip_prefix("__version__ = ").map(|v| v.trim_matches(['\'', '"']).to_owned()))
        })
        .unwrap_or_else(|| setup::TORCH_VERSION.into());
    Machine {
        available_parallelism: std::thread::available_parallelism().map(|n| n.get()).ok(),
        cpu: Some(cpu),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).ok(),
        libtorch_threads: threads,
        logical_cpus: Some(processors),
        memory_gib,
        model: Some(env.model_dir.display().to_string()),
        simd,
        versions: Versions {
            libtorch: Some(libtorch_version),
            peer: peer_versions,
            rustc: command_output("rustc", &["-V"]),
            tch: lock_version(root, "tch"),
            tokenizers: lock_version(root, "tokenizers"),
        },
    }
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// A package's version in Cargo.lock.
fn lock_version(root: &Path, package: &str) -> Option<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{package}\"") {
            return lines.next()?.strip_prefix("version = ").map(|v| v.trim_matches('"').to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_figures_parse() {
        assert!(load_average() >= 0.0);
        assert!(machine_busy_ticks() > 0);
        let _ = own_children_ticks();
    }

    #[test]
    fn lock_versions_are_read_from_cargo_lock() {
        let root = setup::project_root();
        assert!(lock_version(&root, "serde_json").is_some_and(|v| v.starts_with("1.")));
        assert_eq!(lock_version(&root, "no-such-package-here"), None);
    }
}

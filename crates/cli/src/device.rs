//! Parsing `--device`.

use anyhow::{bail, Result};
use tch::Device;

/// `auto` picks CUDA when libtorch sees a GPU, else the CPU.
pub fn parse(name: &str) -> Result<Device> {
    let device = match name {
        "auto" => Device::cuda_if_available(),
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) {
            Some(index) => Device::Cuda(index),
            None => bail!("unknown device `{other}`: expected auto, cpu, cuda or cuda:N"),
        },
    };
    if let Device::Cuda(index) = device {
        let available = tch::Cuda::device_count();
        if index as i64 >= available {
            bail!("device cuda:{index} requested but libtorch sees {available} CUDA device(s)");
        }
    }
    Ok(device)
}

/// A short description for reports: `cpu (2 threads)` or `cuda:0`.
pub fn describe(device: Device) -> String {
    match device {
        Device::Cuda(index) => format!("cuda:{index}"),
        _ => format!("cpu ({} threads)", tch::get_num_threads()),
    }
}

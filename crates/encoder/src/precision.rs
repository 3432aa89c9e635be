//! Compute precision of the encoder: f32 throughout, or bf16 matrix products with f32 weights.
//!
//! With [`Precision::Bf16`] the encoder keeps its weights, LayerNorms and residual stream in f32 and runs the
//! linear layers, GELU and attention in bfloat16 (as `torch.autocast('cpu', torch.bfloat16)` does): the weights
//! are cast on the fly, so gradients flow back to the f32 weights and an optimizer updates f32 master copies.
//!
//! bf16 pays only where the hardware computes it natively: CUDA, or a CPU with the `avx512_bf16` instructions
//! (AMX CPUs have them too). Elsewhere libtorch emulates bf16 and is many times slower than f32, so
//! [`Precision::Auto`] picks bf16 only on such hardware.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use tch::{Device, Kind};

/// The precision setting a user chooses: `auto`, `f32` or `bf16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// bf16 where the device computes it natively, f32 elsewhere.
    #[default]
    Auto,
    /// f32 throughout.
    F32,
    /// bf16 matrix products, f32 weights, LayerNorms and residual stream.
    Bf16,
}

/// A precision resolved for a device, with the reason for the choice (for logs and run directories).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedPrecision {
    /// What was asked for.
    pub requested: Precision,
    /// What runs: [`Precision::F32`] or [`Precision::Bf16`], never `Auto`.
    pub precision: Precision,
    /// Why.
    pub reason: String,
}

impl Precision {
    /// The valid names, for error messages.
    pub const NAMES: &'static str = "auto, f32 or bf16";

    /// Resolves `auto` for `device`; `f32` and `bf16` stay as asked (with a warning in the reason when bf16 is
    /// emulated).
    pub fn resolve(self, device: Device) -> ResolvedPrecision {
        let (native, hardware) = native_bf16(device);
        let (precision, reason) = match self {
            Self::Auto if native => (Self::Bf16, format!("auto: {hardware} computes bf16 natively")),
            Self::Auto => (Self::F32, format!("auto: {hardware} has no native bf16, so f32 is faster")),
            Self::F32 => (Self::F32, "f32 as requested".to_string()),
            Self::Bf16 if native => (Self::Bf16, format!("bf16 as requested ({hardware} computes it natively)")),
            Self::Bf16 => {
                (Self::Bf16, format!("bf16 as requested, but {hardware} emulates it: expect it to be much slower"))
            }
        };
        ResolvedPrecision { requested: self, precision, reason }
    }

    /// The dtype of the matrix products: `Float` or `BFloat16` (`Auto` counts as f32 here: resolve it first).
    pub fn compute_kind(self) -> Kind {
        match self {
            Self::Bf16 => Kind::BFloat16,
            Self::F32 | Self::Auto => Kind::Float,
        }
    }
}

/// Whether `device` computes bf16 natively, and a description of the hardware.
pub fn native_bf16(device: Device) -> (bool, String) {
    match device {
        Device::Cuda(index) => (true, format!("cuda:{index}")),
        _ => {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512bf16") {
                    return (true, "this CPU (avx512_bf16)".to_string());
                }
                (false, "this CPU (no avx512_bf16)".to_string())
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                (false, "this CPU".to_string())
            }
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        })
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "f32" | "fp32" | "float32" => Ok(Self::F32),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            other => Err(format!("unknown precision `{other}`: expected {}", Self::NAMES)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_one_way() {
        for precision in [Precision::Auto, Precision::F32, Precision::Bf16] {
            assert_eq!(precision.to_string().parse::<Precision>(), Ok(precision));
        }
        let error = "fp8".parse::<Precision>().unwrap_err();
        assert!(error.contains("fp8") && error.contains(Precision::NAMES), "{error}");
    }

    #[test]
    fn auto_follows_the_hardware_and_explicit_choices_stay() {
        let (native, _) = native_bf16(Device::Cpu);
        let auto = Precision::Auto.resolve(Device::Cpu);
        assert_eq!(auto.precision, if native { Precision::Bf16 } else { Precision::F32 });
        assert!(auto.reason.starts_with("auto"), "{}", auto.reason);
        assert_eq!(Precision::F32.resolve(Device::Cpu).precision, Precision::F32);
        assert_eq!(Precision::Bf16.resolve(Device::Cpu).precision, Precision::Bf16);
        assert_eq!(Precision::Auto.resolve(Device::Cuda(0)).precision, Precision::Bf16);
        assert_eq!(Precision::Bf16.compute_kind(), Kind::BFloat16);
    }
}

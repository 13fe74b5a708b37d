//! The precision of the CPU's matrix products: every projection of the encoder and decoder and
//! the encoder's attention. In f32 decoder steps read f16 copies of the weights (see
//! `model::Weight`); GPUs run the whole model in f16.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

use super::ops::Bf16Cpu;

/// What the CPU's matrix products compute in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CpuPrecision {
    /// bf16 where the CPU has AVX512_BF16, else f32.
    #[default]
    Auto,
    /// f32 throughout, as the checkpoint's reference implementation computes.
    F32,
    /// Operands rounded to bf16, sums in f32 (`vdpbf16ps`); the encoder's attention fused.
    /// Needs AVX512_BF16.
    Bf16,
}

/// `--precision bf16` on a CPU without the instructions.
#[derive(Debug, Clone, thiserror::Error)]
#[error("precision `bf16` needs a CPU with AVX512_BF16, which this one lacks; use `auto` or `f32`")]
pub struct Bf16Unsupported;

impl CpuPrecision {
    /// Whether the products run in bf16 on `device` (never on a GPU, which runs f16).
    pub fn bf16_on(self, device: &Device) -> Result<bool, Bf16Unsupported> {
        let available = device.is_cpu() && Bf16Cpu::detect().is_some();
        match self {
            Self::Auto => Ok(available),
            Self::F32 => Ok(false),
            Self::Bf16 if available || !device.is_cpu() => Ok(available),
            Self::Bf16 => Err(Bf16Unsupported),
        }
    }
}

impl fmt::Display for CpuPrecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        })
    }
}

impl FromStr for CpuPrecision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            other => Err(format!(
                "unknown precision `{other}`: expected auto, f32 or bf16"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_its_own_names_and_refuses_others() {
        for p in [CpuPrecision::Auto, CpuPrecision::F32, CpuPrecision::Bf16] {
            assert_eq!(p.to_string().parse::<CpuPrecision>(), Ok(p));
        }
        let error = "int8".parse::<CpuPrecision>().unwrap_err();
        assert!(
            error.contains("int8") && error.contains("auto, f32 or bf16"),
            "{error}"
        );
    }

    #[test]
    fn f32_is_always_available_and_auto_follows_the_cpu() {
        let cpu = Device::Cpu;
        assert!(!CpuPrecision::F32.bf16_on(&cpu).unwrap());
        let has = Bf16Cpu::detect().is_some();
        assert_eq!(CpuPrecision::Auto.bf16_on(&cpu).unwrap(), has);
        assert_eq!(CpuPrecision::Bf16.bf16_on(&cpu).is_ok(), has);
    }
}

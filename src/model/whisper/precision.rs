//! The precision of the CPU's matrix products: every projection of the encoder and decoder and
//! the encoder's attention. In f32 decoder steps read f16 copies of the weights (see
//! `model::Weight`); GPUs run the whole model in f16.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

use super::ops::{Bf16Cpu, VnniCpu};

/// What the CPU's matrix products compute in (`--precision`).
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
    /// `Linear` layers and the output projection in int8 (`vpdpbusd`), CTranslate2's scheme:
    /// weights per output column, inputs per row and call; the encoder's attention stays bf16
    /// where the CPU has it, else f32. Needs AVX512_VNNI.
    Int8,
}

/// What a loaded model's CPU products run in: [`CpuPrecision`] resolved on one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Products {
    /// f32 (and every GPU, whose model runs in f16).
    F32,
    /// bf16 products and fused bf16 attention.
    Bf16,
    /// int8 products; attention as [`Products::Bf16`] where the CPU has it.
    Int8,
}

/// A precision asked for on a CPU without its instructions.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "precision `{precision}` needs a CPU with {instructions}, which this one lacks; use `auto` or `f32`"
)]
pub struct PrecisionUnsupported {
    precision: CpuPrecision,
    instructions: &'static str,
}

impl CpuPrecision {
    /// What the products run in on `device` (f32 on a GPU, which runs the model in f16).
    pub fn resolve(self, device: &Device) -> Result<Products, PrecisionUnsupported> {
        let cpu = device.is_cpu();
        let bf16 = cpu && Bf16Cpu::detect().is_some();
        let int8 = cpu && VnniCpu::detect().is_some();
        let refuse = |instructions| PrecisionUnsupported {
            precision: self,
            instructions,
        };
        match self {
            _ if !cpu => Ok(Products::F32),
            Self::Auto if bf16 => Ok(Products::Bf16),
            Self::Auto | Self::F32 => Ok(Products::F32),
            Self::Bf16 if bf16 => Ok(Products::Bf16),
            Self::Bf16 => Err(refuse("AVX512_BF16")),
            Self::Int8 if int8 => Ok(Products::Int8),
            Self::Int8 => Err(refuse("AVX512_VNNI")),
        }
    }
}

impl fmt::Display for CpuPrecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::Int8 => "int8",
        })
    }
}

impl fmt::Display for Products {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::Int8 => "int8",
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
            "int8" => Ok(Self::Int8),
            other => Err(format!(
                "unknown precision `{other}`: expected auto, f32, bf16 or int8"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_its_own_names_and_refuses_others() {
        let all = [
            CpuPrecision::Auto,
            CpuPrecision::F32,
            CpuPrecision::Bf16,
            CpuPrecision::Int8,
        ];
        for p in all {
            assert_eq!(p.to_string().parse::<CpuPrecision>(), Ok(p));
        }
        let error = "fp8".parse::<CpuPrecision>().unwrap_err();
        assert!(
            error.contains("fp8") && error.contains("auto, f32, bf16 or int8"),
            "{error}"
        );
    }

    #[test]
    fn f32_is_always_available_and_the_others_follow_the_cpu() {
        let cpu = Device::Cpu;
        assert_eq!(CpuPrecision::F32.resolve(&cpu).unwrap(), Products::F32);
        let bf16 = Bf16Cpu::detect().is_some();
        let auto = CpuPrecision::Auto.resolve(&cpu).unwrap();
        assert_eq!(auto, if bf16 { Products::Bf16 } else { Products::F32 });
        assert_eq!(CpuPrecision::Bf16.resolve(&cpu).is_ok(), bf16);
        match CpuPrecision::Int8.resolve(&cpu) {
            Ok(products) => assert_eq!(products, Products::Int8),
            Err(error) => {
                assert!(VnniCpu::detect().is_none());
                let message = error.to_string();
                assert!(
                    message.contains("`int8`") && message.contains("AVX512_VNNI"),
                    "{message}"
                );
            }
        }
    }
}

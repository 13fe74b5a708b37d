//! CPU kernels for the two element-wise steps that dominate Whisper's encoder after the matrix
//! products: the attention softmax (`[B, heads, 1500, 1500]` per block) and GELU
//! (`[B, 1500, 1536]` per block).
//!
//! candle runs GELU on one thread through libm's `erff`, and its softmax calls the scalar libm
//! `expf` per element; together they were ~25 % of encoder time on two cores. These kernels split
//! rows across threads and use a polynomial `exp` that the compiler vectorises (AVX-512 or AVX2 + FMA
//! when the CPU has them, picked at run time). Accuracy: relative error of `exp` ≤ 2e-7, absolute error
//! of GELU ≤ 1e-6. Other devices and dtypes use candle's own ops.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

mod attention;
mod bf16;
mod int8;
mod simd;
mod skinny;
mod split;

pub(crate) use attention::single_query_attention;
pub(crate) use bf16::{Bf16Cpu, PackedLinear, self_attention as bf16_self_attention};
pub(crate) use int8::{Int8Linear, VnniCpu};
pub(crate) use skinny::matmul_t;

/// Elements per parallel work item for GELU: large enough to amortise scheduling.
const CHUNK: usize = 16 * 1024;

/// Exact (erf-based) GELU, as Whisper uses: `x · ½ · (1 + erf(x / √2))`.
pub(crate) fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.apply_op1_no_bwd(&Kernel::Gelu)
    } else {
        x.gelu_erf()
    }
}

/// `log(Σ exp(x))` of a row (a decoder step's logits), stable; `-inf` for an empty or all
/// `-inf` row. Vectorised `exp`: at 51,864 logits per row and two per step, libm's scalar `exp`
/// was 13 % of a beam search's time.
pub(crate) fn log_sum_exp(xs: &[f32]) -> f32 {
    let max = simd::lanes_reduce(xs, f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + simd::sum_exp(simd::Isa::detect(), xs, max).ln()
}

/// Softmax over the last dimension.
pub(crate) fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.apply_op1_no_bwd(&Kernel::Softmax)
    } else {
        candle_nn::ops::softmax_last_dim(x)
    }
}

enum Kernel {
    Gelu,
    Softmax,
}

impl CustomOp1 for Kernel {
    fn name(&self) -> &'static str {
        match self {
            Self::Gelu => "hearken-gelu-erf",
            Self::Softmax => "hearken-softmax-last-dim",
        }
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(self.name(), storage, layout)?;
        let mut out = vec![0f32; src.len()];
        let isa = simd::Isa::detect();
        match self {
            Self::Gelu => out
                .par_chunks_mut(CHUNK)
                .zip(src.par_chunks(CHUNK))
                .for_each(|(o, s)| simd::gelu(isa, s, o)),
            Self::Softmax => {
                let row = layout.shape().dims().last().copied().unwrap_or(1).max(1);
                out.par_chunks_mut(row)
                    .zip(src.par_chunks(row))
                    .for_each(|(o, s)| simd::softmax(isa, s, o));
            }
        }
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// The f32 elements of a contiguous CPU operand of the op `op`; an error naming the op otherwise.
fn contiguous_f32<'a>(
    op: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op} expects f32 operands");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op} expects a contiguous operand");
    };
    Ok(&data[start..end])
}

/// Largest absolute element-wise difference, for the kernels' tests against candle's ops.
#[cfg(test)]
fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    let diff = (a - b).and_then(|d| d.abs()).and_then(|d| d.flatten_all());
    diff.and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar())
        .expect("same shapes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn gelu_matches_candle() {
        let x = Tensor::arange(-8000i64, 8000, &Device::Cpu).unwrap();
        let x = (x.to_dtype(DType::F32).unwrap() / 1000.0).unwrap();
        let diff = max_abs_diff(&gelu(&x).unwrap(), &x.gelu_erf().unwrap());
        assert!(diff < 1e-6, "max difference {diff}");
    }

    #[test]
    fn softmax_matches_candle_including_masked_entries() {
        let x = Tensor::randn(0f32, 4.0, (3, 5, 1501), &Device::Cpu).unwrap();
        let mask = Tensor::arange(0u32, 1501, &Device::Cpu)
            .unwrap()
            .ge(1400u32)
            .unwrap();
        let masked = mask
            .where_cond(
                &Tensor::full(-30_000f32, 1501, &Device::Cpu).unwrap(),
                &Tensor::zeros(1501, DType::F32, &Device::Cpu).unwrap(),
            )
            .unwrap();
        let x = x.broadcast_add(&masked).unwrap();
        let ours = softmax_last_dim(&x).unwrap();
        let theirs = candle_nn::ops::softmax_last_dim(&x).unwrap();
        assert!(max_abs_diff(&ours, &theirs) < 1e-6);
        let tail = ours.narrow(2, 1400, 101).unwrap();
        assert!(
            tail.flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                < 1e-30
        );
    }

    #[test]
    fn log_sum_exp_matches_f64_including_masked_entries() {
        let mut xs: Vec<f32> = (0..51_865)
            .map(|i| ((i * 7919) % 4000) as f32 / 100.0 - 30.0)
            .collect();
        xs[100..40_000].fill(f32::NEG_INFINITY);
        let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let exact = max + xs.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
        assert!(
            (log_sum_exp(&xs) as f64 - exact).abs() < 1e-5,
            "{} vs {exact}",
            log_sum_exp(&xs)
        );
        assert_eq!(log_sum_exp(&[]), f32::NEG_INFINITY);
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY; 3]), f32::NEG_INFINITY);
        assert!((log_sum_exp(&[0.0, 0.0]) - 2f32.ln()).abs() < 1e-7);
    }

    #[test]
    fn exp_is_accurate() {
        for i in -8700..8800 {
            let x = i as f32 / 100.0;
            let rel = ((simd::exp(x) as f64 - (x as f64).exp()) / (x as f64).exp()).abs();
            assert!(rel < 3e-7, "exp({x}) relative error {rel}");
        }
    }
}

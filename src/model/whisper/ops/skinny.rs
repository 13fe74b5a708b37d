//! Matrix products with few rows — decoder steps, where each sequence contributes one row.
//!
//! gemm handles `[M ≤ 16, K] × [K, N]` through a general path that spends most of its time
//! packing; for a decoder step of tiny.en that was two thirds of the step. Here every output
//! column is one dot product with a weight row, rows of the weight matrix are read once per call
//! (shared by all M input rows), and the N dimension is split across threads.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::simd;

/// Largest number of input rows for which the skinny kernel beats gemm.
pub(crate) const MAX_ROWS: usize = 16;

/// Weight rows per parallel work item.
const ROWS_PER_TASK: usize = 256;

/// `x · wᵀ` for `x` `[M, K]` (f32) and `w` `[N, K]` (a `Linear` weight, f32 or f16): `[M, N]`
/// in f32. `None` when the kernel does not apply (not CPU, too many rows). An f16 weight halves
/// the memory read per step, which is what bounds a decoder step; products and sums stay f32.
pub(crate) fn matmul_t(x: &Tensor, w: &Tensor) -> Option<candle_core::Result<Tensor>> {
    let applies = x.device().is_cpu()
        && x.dtype() == DType::F32
        && matches!(w.dtype(), DType::F32 | DType::F16)
        && x.rank() == 2
        && x.dim(0).is_ok_and(|m| m <= MAX_ROWS);
    applies.then(|| x.apply_op2_no_bwd(w, &SkinnyMatmul))
}

struct SkinnyMatmul;

impl CustomOp2 for SkinnyMatmul {
    fn name(&self) -> &'static str {
        "hearken-skinny-matmul"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(xd) = xs else {
            candle_core::bail!("skinny matmul expects f32 input");
        };
        let (Some((xa, xb)), Some((wa, wb))) = (xl.contiguous_offsets(), wl.contiguous_offsets())
        else {
            candle_core::bail!("skinny matmul expects contiguous operands");
        };
        let x = &xd[xa..xb];
        let weights = match ws {
            CpuStorage::F32(wd) => Weights::F32(&wd[wa..wb]),
            CpuStorage::F16(wd) => Weights::F16(&wd[wa..wb]),
            _ => candle_core::bail!("skinny matmul expects f32 or f16 weights"),
        };
        let (m, k) = xl.shape().dims2()?;
        let (n, wk) = wl.shape().dims2()?;
        if k != wk {
            candle_core::bail!(
                "skinny matmul: x {:?} does not fit weight {:?}",
                xl.shape(),
                wl.shape()
            );
        }
        // Each task computes `[M, rows]` for its own weight rows into a local buffer; the buffers
        // are then copied into place row by row (contiguous runs, no scattered writes).
        let avx2 = simd::has_avx2() && has_f16c();
        let blocks: Vec<Vec<f32>> = (0..n.div_ceil(ROWS_PER_TASK))
            .into_par_iter()
            .map(|task| {
                let rows = task * ROWS_PER_TASK..((task + 1) * ROWS_PER_TASK).min(n);
                let mut block = vec![0f32; m * rows.len()];
                weights.dots(x, rows, k, &mut block, avx2);
                block
            })
            .collect();
        let mut out = vec![0f32; m * n];
        for (b, block) in blocks.iter().enumerate() {
            let width = block.len() / m;
            for (i, values) in block.chunks_exact(width).enumerate() {
                let start = i * n + b * ROWS_PER_TASK;
                out[start..start + width].copy_from_slice(values);
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }
}

/// A weight matrix in the precision it is stored in.
#[derive(Clone, Copy)]
enum Weights<'a> {
    F32(&'a [f32]),
    F16(&'a [half::f16]),
}

impl Weights<'_> {
    /// `out[i·R + j] = x[i] · w[rows][j]` for the R weight rows in `rows` and every input row `i`.
    fn dots(self, x: &[f32], rows: std::ops::Range<usize>, k: usize, out: &mut [f32], avx2: bool) {
        let r = rows.len();
        for (j, row) in rows.enumerate() {
            for (i, xi) in x.chunks_exact(k).enumerate() {
                out[i * r + j] = match self {
                    Self::F32(w) => simd::dot_f32(xi, &w[row * k..(row + 1) * k], avx2),
                    Self::F16(w) => simd::dot_f16(xi, &w[row * k..(row + 1) * k], avx2),
                };
            }
        }
    }
}

fn has_f16c() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_gemm() {
        for (m, k, n) in [(1, 384, 1000), (3, 64, 257), (16, 1536, 384), (8, 7, 5)] {
            let x = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu).unwrap();
            let w = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu).unwrap();
            let ours = matmul_t(&x, &w).unwrap().unwrap();
            let reference = x.matmul(&w.t().unwrap()).unwrap();
            // The f16 copy of f16-representable weights gives the same products.
            let w16 = w.to_dtype(DType::F16).unwrap();
            let exact = w16.to_dtype(DType::F32).unwrap();
            let half = matmul_t(&x, &w16).unwrap().unwrap();
            let half_reference = x.matmul(&exact.t().unwrap()).unwrap();
            assert!(super::super::max_abs_diff(&half, &half_reference) < 1e-3);
            let diff = super::super::max_abs_diff(&ours, &reference);
            assert!(diff < 1e-3, "({m}, {k}, {n}): max difference {diff}");
        }
        assert!(
            matmul_t(
                &Tensor::zeros((17, 4), DType::F32, &Device::Cpu).unwrap(),
                &Tensor::zeros((4, 4), DType::F32, &Device::Cpu).unwrap()
            )
            .is_none()
        );
    }
}

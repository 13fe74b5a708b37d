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

/// `x · wᵀ` for `x` `[M, K]` and `w` `[N, K]` (a `Linear` weight): `[M, N]`. `None` when the
/// kernel does not apply (not CPU, not f32, too many rows).
pub(crate) fn matmul_t(x: &Tensor, w: &Tensor) -> Option<candle_core::Result<Tensor>> {
    let applies = x.device().is_cpu()
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
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
        let (CpuStorage::F32(xd), CpuStorage::F32(wd)) = (xs, ws) else {
            candle_core::bail!("skinny matmul expects f32");
        };
        let (Some((xa, xb)), Some((wa, wb))) = (xl.contiguous_offsets(), wl.contiguous_offsets())
        else {
            candle_core::bail!("skinny matmul expects contiguous operands");
        };
        let (x, w) = (&xd[xa..xb], &wd[wa..wb]);
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
        let avx2 = simd::has_avx2();
        let blocks: Vec<Vec<f32>> = w
            .par_chunks(ROWS_PER_TASK * k)
            .map(|rows| {
                let mut block = vec![0f32; m * rows.len() / k];
                #[cfg(target_arch = "x86_64")]
                if avx2 {
                    // SAFETY: `has_avx2` checked the CPU features the function is compiled for.
                    unsafe { dots_avx2(x, rows, k, &mut block) };
                    return block;
                }
                let _ = avx2;
                dots(x, rows, k, &mut block);
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_avx2(x: &[f32], rows: &[f32], k: usize, out: &mut [f32]) {
    dots(x, rows, k, out)
}

/// `out[i·R + j] = x[i] · rows[j]` for each of the R weight rows `j` and input rows `i`.
#[inline(always)]
fn dots(x: &[f32], rows: &[f32], k: usize, out: &mut [f32]) {
    let r = rows.len() / k;
    for (j, row) in rows.chunks_exact(k).enumerate() {
        for (i, xi) in x.chunks_exact(k).enumerate() {
            out[i * r + j] = simd::dot(xi, row);
        }
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

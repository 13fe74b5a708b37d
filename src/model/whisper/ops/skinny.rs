//! Matrix products with few rows — decoder steps, where each sequence contributes one row.
//!
//! gemm handles `[M ≤ 16, K] × [K, N]` through a general path that spends most of its time
//! packing; for a decoder step of tiny.en that was two thirds of the step. Here every output
//! column is one dot product with a weight row, rows of the weight matrix are read once per call
//! (shared by all M input rows), and the N dimension is split across threads.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::simd::{self, Isa, Level};

#[cfg(target_arch = "x86_64")]
mod tile;

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
        let isa = simd::Isa::detect();
        let blocks: Vec<Vec<f32>> = (0..n.div_ceil(ROWS_PER_TASK))
            .into_par_iter()
            .map(|task| {
                let rows = task * ROWS_PER_TASK..((task + 1) * ROWS_PER_TASK).min(n);
                let mut block = vec![0f32; m * rows.len()];
                weights.dots(x, rows, k, &mut block, isa);
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
    /// Several input rows go through the AVX-512 tile where the CPU has it; elsewhere an f16
    /// weight row is widened once into a scratch row, not once per input row.
    fn dots(self, x: &[f32], rows: std::ops::Range<usize>, k: usize, out: &mut [f32], isa: Isa) {
        let r = rows.len();
        let m = x.len() / k;
        let tiled = match isa.level() {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 if m > 1 => {
                let span = rows.start * k..rows.end * k;
                // SAFETY: an `Isa` at `Level::Avx512` means the CPU has what the tile needs.
                unsafe {
                    match self {
                        Self::F32(w) => tile::tiled_dots(x, &w[span], k, out),
                        Self::F16(w) => tile::tiled_dots(x, &w[span], k, out),
                    }
                }
            }
            _ => 0,
        };
        let mut widened = vec![0f32; if m > 1 { k } else { 0 }];
        for (j, row) in rows.enumerate().skip(tiled) {
            let span = row * k..(row + 1) * k;
            let weight_row = match self {
                Self::F16(w) if m == 1 => {
                    out[j] = simd::dot_f16(isa, x, &w[span]);
                    continue;
                }
                Self::F16(w) => {
                    simd::widen_f16(isa, &w[span], &mut widened);
                    &widened[..]
                }
                Self::F32(w) => &w[span],
            };
            for (i, xi) in x.chunks_exact(k).enumerate() {
                out[i * r + j] = simd::dot_f32(isa, xi, weight_row);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn every_supported_isa_gives_the_same_products() {
        let k = 100;
        let n = 37;
        let value = |i: usize| ((i * 7919) % 2000) as f32 / 500.0 - 2.0;
        let w: Vec<f32> = (0..n * k).map(value).collect();
        let w16: Vec<half::f16> = w.iter().map(|&v| half::f16::from_f32(v)).collect();
        for m in [1, 2, 5] {
            let x: Vec<f32> = (0..m * k).map(|i| value(i + 13)).collect();
            for isa in Isa::supported() {
                for (weights, exact) in [
                    (Weights::F32(&w), w.clone()),
                    (Weights::F16(&w16), w16.iter().map(|v| v.to_f32()).collect()),
                ] {
                    let mut out = vec![0f32; m * n];
                    weights.dots(&x, 0..n, k, &mut out, isa);
                    for i in 0..m {
                        for j in 0..n {
                            let reference: f32 =
                                (0..k).map(|c| x[i * k + c] * exact[j * k + c]).sum();
                            let got = out[i * n + j];
                            assert!((got - reference).abs() < 1e-3, "{isa:?} m={m} ({i}, {j})");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn matches_gemm() {
        let shapes = [
            (1, 384, 1000),
            (3, 64, 257),
            (16, 1536, 384),
            (8, 7, 5),
            (5, 384, 514),
            (2, 24, 1030),
        ];
        for (m, k, n) in shapes {
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

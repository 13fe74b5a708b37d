//! Matrix products in int8 on CPUs with AVX512_VNNI (`--precision int8`): every `Linear` layer
//! and the output projection.
//!
//! `vpdpbusd` multiplies 64 pairs of bytes (unsigned × signed) and adds them, four at a time,
//! into 16 i32 sums: twice the multiply-adds of `vdpbf16ps` per instruction, and a weight takes
//! one byte, half of bf16's, which is what bounds a decoder step. This is CTranslate2's int8
//! scheme (faster-whisper's `compute_type="int8"`):
//! - weights are quantised once, when the model loads, per output column:
//!   `scale = max |w| / 127`, `q = round(w / scale)`;
//! - inputs per row and call onto the 256 levels between the row's least and greatest value,
//!   `x ≈ lo + step · u` with `u` unsigned (what the instruction takes): GELU's outputs, the
//!   input of each MLP's second projection, lie in [−0.17, max], and a grid symmetric about
//!   zero would spend half its levels on values that never occur (measured: with it, int8 in
//!   the decoder's second projections cost 4 points of WER);
//! - `Σ x·w ≈ scale · (step · Σ u·q + lo · Σ q)`: the sum is exact in i32, the weight sums
//!   `Σ q` are kept per column, and the result is scaled back to f32 with the bias added.

use std::ops::Range;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

mod tile;

use super::split::{self, PANEL};
pub(crate) use tile::VnniCpu;

/// The largest quantised weight magnitude: symmetric, so `-128` is never used.
const LEVELS: f32 = 127.0;
/// The largest quantised input: inputs use all 256 levels of a byte.
const INPUT_LEVELS: f32 = 255.0;

/// A `Linear` layer's weight `[N, K]` and bias, quantised to int8 and packed for
/// [`Self::forward`]: panels of 64 output columns, each holding, quad of inputs after quad, the
/// 64 columns' four weights side by side (the operand layout of `vpdpbusd`).
pub(crate) struct Int8Linear {
    cpu: VnniCpu,
    /// Output columns.
    n: usize,
    /// Inputs.
    k: usize,
    /// `[panel][quad][64]`, each `u32` four `i8`: input `4q` in the low byte.
    data: Vec<u32>,
    /// Per output column: the weight scale and the sum of its quantised weights.
    scales: Vec<f32>,
    sums: Vec<f32>,
    bias: Vec<f32>,
}

/// One panel's per-column values, as the tile reads them.
#[derive(Clone, Copy)]
pub(super) struct Columns<'a> {
    bias: &'a [f32],
    scales: &'a [f32],
    sums: &'a [f32],
}

/// How each input row was quantised: `x ≈ lo + step · u`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct RowGrid {
    lo: f32,
    step: f32,
}

impl Int8Linear {
    /// Quantises and packs `weight` `[N, K]` (f32 or f16, on the CPU) and `bias` `[N]`; `None`
    /// where the CPU lacks AVX512_VNNI or the tensors are not on the CPU.
    pub(crate) fn new(weight: &Tensor, bias: &Tensor) -> candle_core::Result<Option<Self>> {
        let Some(cpu) = VnniCpu::detect().filter(|_| weight.device().is_cpu()) else {
            return Ok(None);
        };
        let (n, k) = weight.dims2()?;
        let w: Vec<f32> = weight.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let bias: Vec<f32> = bias.to_dtype(DType::F32)?.to_vec1()?;
        if bias.len() != n {
            candle_core::bail!("bias of {} for {n} outputs", bias.len());
        }
        let (q, scales): (Vec<Vec<i8>>, Vec<f32>) =
            w.par_chunks(k.max(1)).map(quantize_weights).unzip();
        let sums = q
            .iter()
            .map(|col| col.iter().map(|&v| i32::from(v)).sum::<i32>() as f32)
            .collect();
        Ok(Some(Self {
            cpu,
            n,
            k,
            data: pack(n, k, |col, i| q[col][i]),
            scales,
            sums,
            bias,
        }))
    }

    /// `x · Wᵀ + b` for `x` `[M, K]` f32: `[M, N]` f32.
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.apply_op1_no_bwd(self)
    }

    fn quads(&self) -> usize {
        self.k.div_ceil(4)
    }

    /// The outputs of `panels` for the quantised rows `a` (grids `grids`) into `out`,
    /// rows `stride` apart, the first panel's first column at the start of each row.
    fn panels(
        &self,
        a: &[u32],
        grids: &[RowGrid],
        panels: Range<usize>,
        out: &mut [f32],
        stride: usize,
    ) {
        let quads = self.quads();
        let m = a.len() / quads;
        split::for_each_tile(m, panels, out, stride, |panel, rows, out| {
            let b = &self.data[panel * quads * PANEL..(panel + 1) * quads * PANEL];
            let cols = panel * PANEL..((panel + 1) * PANEL).min(self.n);
            let columns = Columns {
                bias: &self.bias[cols.clone()],
                scales: &self.scales[cols.clone()],
                sums: &self.sums[cols],
            };
            let (a, grids) = (
                &a[rows.start * quads..rows.end * quads],
                &grids[rows.clone()],
            );
            tile::tile(
                self.cpu,
                rows.len(),
                a,
                grids,
                b,
                quads,
                columns,
                out,
                stride,
            );
        });
    }
}

/// One output column's weights quantised symmetrically, with their scale.
fn quantize_weights(column: &[f32]) -> (Vec<i8>, f32) {
    let max = column.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = if max > 0.0 { max / LEVELS } else { 1.0 };
    let inverse = 1.0 / scale;
    let q = column
        .iter()
        .map(|&v| (v * inverse).round_ties_even().clamp(-LEVELS, LEVELS) as i8)
        .collect();
    (q, scale)
}

impl RowGrid {
    /// The grid of 256 levels from `lo` to `hi` (one level, at `lo`, where they are equal).
    fn spanning(lo: f32, hi: f32) -> Self {
        let step = (hi - lo) / INPUT_LEVELS;
        Self {
            lo,
            step: if step > 0.0 { step } else { 1.0 },
        }
    }

    /// `v`'s level, rounded to nearest even as the vector code rounds, so both agree.
    fn level(self, v: f32) -> u32 {
        ((v - self.lo) * (1.0 / self.step))
            .round_ties_even()
            .clamp(0.0, INPUT_LEVELS) as u32
    }
}

/// Lays out the `[n, k]` matrix whose element `(col, i)` is `weight(col, i)` as
/// [`Int8Linear::data`]; columns past `n` and inputs past `k` are zeros, so the kernel needs no
/// edge cases along K (a zero weight cancels whatever input it meets).
fn pack(n: usize, k: usize, weight: impl Fn(usize, usize) -> i8) -> Vec<u32> {
    let quads = k.div_ceil(4);
    let mut data = Vec::with_capacity(n.div_ceil(PANEL) * quads * PANEL);
    for panel in 0..n.div_ceil(PANEL) {
        for quad in 0..quads {
            for col in panel * PANEL..(panel + 1) * PANEL {
                let byte = |i: usize| match col < n && i < k {
                    true => u32::from(weight(col, i) as u8),
                    false => 0,
                };
                let i = 4 * quad;
                data.push(byte(i) | byte(i + 1) << 8 | byte(i + 2) << 16 | byte(i + 3) << 24);
            }
        }
    }
    data
}

/// Quantises each row of `x` (`k` wide) into `quads` quads, with the row's grid.
fn quantize_rows(cpu: VnniCpu, x: &[f32], k: usize, quads: usize) -> (Vec<u32>, Vec<RowGrid>) {
    const ROWS_PER_QUANTIZE_TASK: usize = 64;
    let rows = x.len() / k;
    let mut out = vec![0u32; rows * quads];
    let mut grids = vec![RowGrid::default(); rows];
    out.par_chunks_mut(quads * ROWS_PER_QUANTIZE_TASK)
        .zip(grids.par_chunks_mut(ROWS_PER_QUANTIZE_TASK))
        .zip(x.par_chunks(k * ROWS_PER_QUANTIZE_TASK))
        .for_each(|((out, grids), x)| {
            for ((row_out, grid), row) in out
                .chunks_exact_mut(quads)
                .zip(grids.iter_mut())
                .zip(x.chunks_exact(k))
            {
                let (lo, hi) = tile::range(cpu, row);
                *grid = RowGrid::spanning(lo, hi);
                tile::quantize(cpu, row, *grid, row_out);
            }
        });
    (out, grids)
}

impl CustomOp1 for Int8Linear {
    fn name(&self) -> &'static str {
        "hearken-int8-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let data = super::contiguous_f32(self.name(), storage, layout)?;
        let (m, k) = layout.shape().dims2()?;
        if k != self.k {
            candle_core::bail!(
                "{}: input {:?} for {} inputs",
                self.name(),
                layout.shape(),
                self.k
            );
        }
        let quads = self.quads();
        let (a, grids) = quantize_rows(self.cpu, data, k, quads);
        let out = split::products(m, self.n, |rows, panels, out, stride| {
            let a = &a[rows.start * quads..rows.end * quads];
            self.panels(a, &grids[rows], panels, out, stride)
        });
        Ok((CpuStorage::F32(out), Shape::from((m, self.n))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The kernel's products equal, up to f32 summation order, the same arithmetic done in
    /// f32 on the quantised operands; and they stay within int8's error of the exact products.
    #[test]
    fn matches_the_quantised_products_and_stays_within_int8_error() {
        if VnniCpu::detect().is_none() {
            eprintln!("skipped: this CPU lacks AVX512_VNNI");
            return;
        }
        let shapes = [
            (1, 1, 1),
            (1, 7, 3),
            (7, 384, 70),
            (100, 63, 130),
            (49, 1536, 384),
            (13, 5, 64),
            (3, 384, 1100),
        ];
        for (m, k, n) in shapes {
            let x = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu).unwrap();
            let w = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu).unwrap();
            let bias = Tensor::randn(0f32, 1.0, n, &Device::Cpu).unwrap();
            let packed = Int8Linear::new(&w, &bias).unwrap().expect("supported");
            let ours: Vec<Vec<f32>> = packed.forward(&x).unwrap().to_vec2().unwrap();
            let xs: Vec<Vec<f32>> = x.to_vec2().unwrap();
            let ws: Vec<Vec<f32>> = w.to_vec2().unwrap();
            let bs: Vec<f32> = bias.to_vec1().unwrap();
            for (i, row) in xs.iter().enumerate() {
                let lo = row.iter().copied().fold(f32::INFINITY, f32::min);
                let hi = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let grid = RowGrid::spanning(lo, hi);
                for (c, col) in ws.iter().enumerate() {
                    let (wq, ws) = quantize_weights(col);
                    let dot: i64 = (0..k)
                        .map(|j| i64::from(grid.level(row[j])) * i64::from(wq[j]))
                        .sum();
                    let q_sum: i64 = wq.iter().map(|&q| i64::from(q)).sum();
                    let quantised = bs[c] + ws * (grid.step * dot as f32 + grid.lo * q_sum as f32);
                    let got = ours[i][c];
                    let tolerance = 1e-4 * (quantised.abs() + ws * grid.lo.abs() * k as f32);
                    assert!(
                        (got - quantised).abs() < tolerance.max(1e-4),
                        "({m}, {k}, {n}) [{i}][{c}]: {got} vs {quantised}"
                    );
                    // Each operand is off by at most half a step: |Δ(x·w)| ≤ Σ (|x| δw + |w| δx
                    // + δx δw).
                    let exact: f32 = bs[c] + (0..k).map(|j| row[j] * col[j]).sum::<f32>();
                    let (dx, dw) = (grid.step / 2.0, ws / 2.0);
                    let bound: f32 = (0..k)
                        .map(|j| row[j].abs() * dw + col[j].abs() * dx + dx * dw)
                        .sum();
                    assert!(
                        (got - exact).abs() <= bound * 1.001 + 1e-3,
                        "({m}, {k}, {n}) [{i}][{c}]: {got} vs {exact}, bound {bound}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_zero_row_or_column_gives_the_bias() {
        if VnniCpu::detect().is_none() {
            return;
        }
        let w = Tensor::new(&[[0f32, 0.0, 0.0], [1.0, -2.0, 3.0]], &Device::Cpu).unwrap();
        let bias = Tensor::new(&[0.5f32, -0.25], &Device::Cpu).unwrap();
        let packed = Int8Linear::new(&w, &bias).unwrap().unwrap();
        let x = Tensor::new(&[[0f32, 0.0, 0.0], [1.0, 1.0, 1.0]], &Device::Cpu).unwrap();
        let out: Vec<Vec<f32>> = packed.forward(&x).unwrap().to_vec2().unwrap();
        assert_eq!(out[0], [0.5, -0.25]);
        assert_eq!(out[1][0], 0.5);
        // [1, -2, 3] on a grid of step 3/127 is [42, -85, 127] steps: 84 · 3/127 − 0.25.
        assert!(
            (out[1][1] - (84.0 * 3.0 / 127.0 - 0.25)).abs() < 1e-5,
            "{:?}",
            out[1]
        );
    }

    #[test]
    fn refuses_an_input_of_the_wrong_width() {
        if VnniCpu::detect().is_none() {
            return;
        }
        let w = Tensor::zeros((8, 6), DType::F32, &Device::Cpu).unwrap();
        let packed = Int8Linear::new(&w, &Tensor::zeros(8, DType::F32, &Device::Cpu).unwrap())
            .unwrap()
            .unwrap();
        let x = Tensor::zeros((3, 5), DType::F32, &Device::Cpu).unwrap();
        let error = packed.forward(&x).unwrap_err().to_string();
        assert!(error.contains("6 inputs"), "{error}");
    }
}

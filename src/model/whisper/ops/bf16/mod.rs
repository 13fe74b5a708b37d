//! Matrix products in bf16 on CPUs with AVX512_BF16 (`--precision`): every `Linear` layer and
//! the output projection, and the encoder's fused self-attention ([`attention`]).
//!
//! `vdpbf16ps` multiplies 32 bf16 pairs and adds them into 16 f32 sums: twice the multiply-adds of
//! an f32 FMA per instruction. Weights are rounded to bf16 and packed once, when the model loads;
//! inputs are rounded per call (a small cost next to the product); sums stay f32. bf16 keeps f32's
//! exponent range with an 8-bit mantissa, which is how Whisper is commonly run on accelerators.
//! Many rows (the encoder, a prompt pass) split the rows across threads; few rows (a decoder
//! step) split the output columns, each task reading its weight panels once for all rows.

use std::ops::Range;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use half::bf16;
use rayon::prelude::*;

mod attention;
mod tile;

use super::split::{self, PANEL, ROWS_PER_TASK};
pub(crate) use attention::self_attention;
pub(crate) use tile::Bf16Cpu;

/// A `Linear` layer's weight `[N, K]` and bias, rounded to bf16 and packed for [`Self::forward`]:
/// panels of 64 output columns, each holding, pair of inputs after pair, the 64 columns' two
/// weights side by side (the operand layout of `vdpbf16ps`).
pub(crate) struct PackedLinear {
    cpu: Bf16Cpu,
    /// Output columns.
    n: usize,
    /// Inputs.
    k: usize,
    /// `[panel][pair][64]`, each `u32` two bf16: input `2p` in the low half, `2p + 1` in the high.
    data: Vec<u32>,
    bias: Vec<f32>,
}

impl PackedLinear {
    /// Packs `weight` `[N, K]` (f32 or f16, on the CPU) and `bias` `[N]`; `None` where the CPU
    /// lacks AVX512_BF16 or the tensors are not of that kind.
    pub(crate) fn new(weight: &Tensor, bias: &Tensor) -> candle_core::Result<Option<Self>> {
        let Some(cpu) = Bf16Cpu::detect().filter(|_| weight.device().is_cpu()) else {
            return Ok(None);
        };
        let (n, k) = weight.dims2()?;
        let w: Vec<f32> = weight.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let bias: Vec<f32> = bias.to_dtype(DType::F32)?.to_vec1()?;
        if bias.len() != n {
            candle_core::bail!("bias of {} for {n} outputs", bias.len());
        }
        Ok(Some(Self {
            cpu,
            n,
            k,
            data: pack(n, k, |col, i| w[col * k + i]),
            bias,
        }))
    }

    /// `x · Wᵀ + b` for `x` `[M, K]` f32: `[M, N]` f32.
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.apply_op1_no_bwd(self)
    }

    fn pairs(&self) -> usize {
        self.k.div_ceil(2)
    }
}

/// Lays out the `[n, k]` matrix whose element `(col, i)` is `weight(col, i)` as
/// [`PackedLinear::data`], rounded to bf16; columns past `n` and the odd input past `k` are
/// zeros, so the kernel needs no edge cases along K.
fn pack(n: usize, k: usize, weight: impl Fn(usize, usize) -> f32) -> Vec<u32> {
    let pairs = k.div_ceil(2);
    let mut data = Vec::with_capacity(n.div_ceil(PANEL) * pairs * PANEL);
    for panel in 0..n.div_ceil(PANEL) {
        for pair in 0..pairs {
            for col in panel * PANEL..(panel + 1) * PANEL {
                let element = |i: usize| {
                    bf16_bits(if col < n && i < k {
                        weight(col, i)
                    } else {
                        0.0
                    })
                };
                data.push(element(2 * pair) | (element(2 * pair + 1) << 16));
            }
        }
    }
    data
}

/// Rounds rows of `x` (`k` wide) to bf16 pairs, `pairs` per row, the odd last one padded with 0.
fn round_rows(cpu: Bf16Cpu, x: &[f32], k: usize, pairs: usize) -> Vec<u32> {
    let mut out = vec![0u32; x.len() / k * pairs];
    out.par_chunks_mut(pairs * 64)
        .zip(x.par_chunks(k * 64))
        .for_each(|(out, x)| {
            for (row_out, row) in out.chunks_exact_mut(pairs).zip(x.chunks_exact(k)) {
                tile::round(cpu, row, row_out);
            }
        });
    out
}

/// `v` rounded to the nearest bf16 (ties to even), as its bits.
fn bf16_bits(v: f32) -> u32 {
    u32::from(bf16::from_f32(v).to_bits())
}

impl CustomOp1 for PackedLinear {
    fn name(&self) -> &'static str {
        "hearken-bf16-linear"
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
        let pairs = self.pairs();
        let a = round_rows(self.cpu, data, k, pairs);
        let out = split::products(m, self.n, |rows, panels, out, stride| {
            let a = &a[rows.start * pairs..rows.end * pairs];
            self.panels(a, panels, out, stride)
        });
        Ok((CpuStorage::F32(out), Shape::from((m, self.n))))
    }
}

/// A packed right-hand operand: `n` columns of `pairs` bf16 pairs, laid out by [`pack`].
struct Packed<'a> {
    data: &'a [u32],
    n: usize,
    pairs: usize,
}

impl Packed<'_> {
    /// `out[r][c] = init[c] + a[r] · column c` for the rows of `a` (`pairs` pairs each) and the
    /// columns of `panels`; output rows `stride` apart, the first panel's first column at the
    /// start of each row. `init` holds one value per column of the operand.
    fn products(
        &self,
        cpu: Bf16Cpu,
        a: &[u32],
        panels: Range<usize>,
        init: &[f32],
        out: &mut [f32],
        stride: usize,
    ) {
        let pairs = self.pairs;
        let m = a.len() / pairs;
        split::for_each_tile(m, panels, out, stride, |panel, rows, out| {
            let b = &self.data[panel * pairs * PANEL..(panel + 1) * pairs * PANEL];
            let init = &init[panel * PANEL..((panel + 1) * PANEL).min(self.n)];
            let a = &a[rows.start * pairs..rows.end * pairs];
            tile::tile(cpu, rows.len(), a, b, pairs, init, out, stride);
        });
    }
}

impl PackedLinear {
    /// The outputs of `panels` for the rows of `a` (bf16 pairs) into `out`, rows `stride`
    /// apart, the first panel's first column at the start of each row.
    fn panels(&self, a: &[u32], panels: Range<usize>, out: &mut [f32], stride: usize) {
        let operand = Packed {
            data: &self.data,
            n: self.n,
            pairs: self.pairs(),
        };
        operand.products(self.cpu, a, panels, &self.bias, out, stride);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_f32_products_to_bf16_precision() {
        if Bf16Cpu::detect().is_none() {
            eprintln!("skipped: this CPU lacks AVX512_BF16");
            return;
        }
        let shapes = [
            (1, 2, 1),
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
            let packed = PackedLinear::new(&w, &bias).unwrap().expect("supported");
            let ours = packed.forward(&x).unwrap();
            // The same products on bf16-rounded operands, in f32: equal up to summation order.
            let round = |t: &Tensor| {
                t.to_dtype(DType::BF16)
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap()
            };
            let reference = round(&x)
                .matmul(&round(&w).t().unwrap())
                .unwrap()
                .broadcast_add(&bias)
                .unwrap();
            let diff = super::super::max_abs_diff(&ours, &reference);
            assert!(diff < 1e-3 * (k as f32).sqrt(), "({m}, {k}, {n}): {diff}");
            // Against full f32 the error is bf16's: rounding each operand to 8 significant
            // bits moves each product by at most 2 × 2^-8 of its size, whatever the draw.
            let exact = x
                .matmul(&w.t().unwrap())
                .unwrap()
                .broadcast_add(&bias)
                .unwrap();
            let magnitudes = x
                .abs()
                .unwrap()
                .matmul(&w.abs().unwrap().t().unwrap())
                .unwrap();
            let excess = (ours - &exact)
                .unwrap()
                .abs()
                .unwrap()
                .sub(&(magnitudes * (2.0 / 256.0)).unwrap())
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                excess < 1e-3 * (k as f32).sqrt(),
                "({m}, {k}, {n}): {excess}"
            );
        }
    }

    #[test]
    fn refuses_an_input_of_the_wrong_width() {
        if Bf16Cpu::detect().is_none() {
            return;
        }
        let w = Tensor::zeros((8, 6), DType::F32, &Device::Cpu).unwrap();
        let packed = PackedLinear::new(&w, &Tensor::zeros(8, DType::F32, &Device::Cpu).unwrap())
            .unwrap()
            .unwrap();
        let x = Tensor::zeros((3, 5), DType::F32, &Device::Cpu).unwrap();
        let error = packed.forward(&x).unwrap_err().to_string();
        assert!(error.contains("6 inputs"), "{error}");
    }
}

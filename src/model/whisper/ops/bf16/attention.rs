//! The encoder's self-attention in bf16, six query rows at a time.
//!
//! The unfused path materialises `[B, heads, L, L]` scores — 54 MB per 30 s window of tiny.en
//! and layer — whose fresh pages the kernel zeroes and whose bytes pass through memory three
//! times (product, softmax, product). Here a tile of query rows takes its scores against every
//! key (a row of 1500 is 6 KB), their softmax and the product with V while they are in cache.
//! Q, K and V are read straight from the fused projection and the output is written in the
//! merged-heads layout, so neither the head split nor the merge is copied.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::super::simd::{self, Isa};
use super::tile::{self, Bf16Cpu, PANEL, TILE_ROWS};
use super::{Packed, ROWS_PER_TASK, pack};

/// Softmax attention of every position over every position (no mask) for `qkv` `[B, L, 3d]`,
/// the fused Q, K, V projection: `[B, L, d]` with heads merged. `None` where the kernel does not
/// apply (not an f32 CPU tensor, or no AVX512_BF16).
pub(crate) fn self_attention(qkv: &Tensor, heads: usize) -> Option<candle_core::Result<Tensor>> {
    let cpu = Bf16Cpu::detect()?;
    let applies = qkv.device().is_cpu() && qkv.dtype() == DType::F32 && qkv.rank() == 3;
    applies.then(|| qkv.apply_op1_no_bwd(&SelfAttention { cpu, heads }))
}

struct SelfAttention {
    cpu: Bf16Cpu,
    heads: usize,
}

/// One head's keys and values packed as the right-hand operands of the tile: keys as `[L, hd]`
/// (scores are `q · kᵀ`), values as `[hd, L]` (outputs are `p · v`).
struct HeadOperands {
    keys: Vec<u32>,
    values: Vec<u32>,
}

/// Shapes of one call.
#[derive(Clone, Copy)]
struct Dims {
    /// Positions.
    len: usize,
    /// Model width (all heads).
    width: usize,
    /// Head width.
    head: usize,
}

impl Dims {
    /// Offset of head `h`'s part `part` (0 Q, 1 K, 2 V) in a row of the fused projection.
    fn offset(self, part: usize, h: usize) -> usize {
        part * self.width + h * self.head
    }
}

impl CustomOp1 for SelfAttention {
    fn name(&self) -> &'static str {
        "hearken-bf16-self-attention"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let data = super::super::contiguous_f32(self.name(), storage, layout)?;
        let (batch, len, fused) = layout.shape().dims3()?;
        if fused % (3 * self.heads) != 0 {
            candle_core::bail!("{}: {fused} is not 3 × heads × head width", self.name());
        }
        let width = fused / 3;
        let dims = Dims {
            len,
            width,
            head: width / self.heads,
        };
        let mut out = vec![0f32; batch * len * width];
        if len > 0 {
            for (x, out) in data
                .chunks_exact(len * fused)
                .zip(out.chunks_exact_mut(len * width))
            {
                self.window(x, dims, out);
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((batch, len, width))))
    }
}

impl SelfAttention {
    /// One window: `x` `[L, 3d]` into `out` `[L, d]`.
    fn window(&self, x: &[f32], dims: Dims, out: &mut [f32]) {
        let Dims { len, head, .. } = dims;
        let fused = 3 * dims.width;
        let operands: Vec<HeadOperands> = (0..self.heads)
            .into_par_iter()
            .map(|h| {
                let (k, v) = (dims.offset(1, h), dims.offset(2, h));
                HeadOperands {
                    keys: pack(len, head, |key, i| x[key * fused + k + i]),
                    values: pack(head, len, |i, key| x[key * fused + v + i]),
                }
            })
            .collect();
        out.par_chunks_mut(ROWS_PER_TASK * dims.width)
            .enumerate()
            .for_each(|(task, out)| {
                let first = task * ROWS_PER_TASK;
                let rows = out.len() / dims.width;
                let queries = &x[first * fused..(first + rows) * fused];
                self.rows(queries, &operands, dims, out);
            });
    }

    /// The attention of `rows` query rows (`x`, rows of the fused projection) over every key,
    /// for every head, into `out` (the same rows, heads merged).
    fn rows(&self, x: &[f32], operands: &[HeadOperands], dims: Dims, out: &mut [f32]) {
        let Dims { len, width, head } = dims;
        let fused = 3 * width;
        let (query_pairs, key_pairs) = (head.div_ceil(2), len.div_ceil(2));
        let scale = (head as f32).powf(-0.5);
        let isa = Isa::detect();
        let no_bias = vec![0f32; len.max(head)];
        let mut scaled = vec![0f32; head];
        let mut queries = vec![0u32; TILE_ROWS * query_pairs];
        let mut scores = vec![0f32; TILE_ROWS * len];
        let mut weights = vec![0f32; len];
        let mut probabilities = vec![0u32; TILE_ROWS * key_pairs];
        let rows = x.len() / fused;
        for (h, head_operands) in operands.iter().enumerate() {
            for first in (0..rows).step_by(TILE_ROWS) {
                let tile_rows = (rows - first).min(TILE_ROWS);
                for r in 0..tile_rows {
                    let q = &x[(first + r) * fused + dims.offset(0, h)..][..head];
                    for (s, &q) in scaled.iter_mut().zip(q) {
                        *s = q * scale;
                    }
                    let row = &mut queries[r * query_pairs..(r + 1) * query_pairs];
                    tile::round(self.cpu, &scaled, row);
                }
                let keys = Packed {
                    data: &head_operands.keys,
                    n: len,
                    pairs: query_pairs,
                };
                let queries = &queries[..tile_rows * query_pairs];
                let all_keys = 0..len.div_ceil(PANEL);
                keys.products(
                    self.cpu,
                    queries,
                    all_keys,
                    &no_bias[..len],
                    &mut scores,
                    len,
                );
                for r in 0..tile_rows {
                    simd::softmax(isa, &scores[r * len..(r + 1) * len], &mut weights);
                    let row = &mut probabilities[r * key_pairs..(r + 1) * key_pairs];
                    tile::round(self.cpu, &weights, row);
                }
                let values = Packed {
                    data: &head_operands.values,
                    n: head,
                    pairs: key_pairs,
                };
                let probabilities = &probabilities[..tile_rows * key_pairs];
                let out = &mut out[first * width + h * head..];
                let all_columns = 0..head.div_ceil(PANEL);
                values.products(
                    self.cpu,
                    probabilities,
                    all_columns,
                    &no_bias[..head],
                    out,
                    width,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The unfused f32 attention, heads split and merged as the model does.
    fn reference(qkv: &Tensor, heads: usize) -> Tensor {
        let (b, l, fused) = qkv.dims3().unwrap();
        let d = fused / 3;
        let part = |i: usize| {
            qkv.narrow(2, i * d, d)
                .unwrap()
                .reshape((b, l, heads, d / heads))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let scale = ((d / heads) as f64).powf(-0.5);
        let scores = (q * scale).unwrap().matmul(&k.t().unwrap()).unwrap();
        let weights = candle_nn::ops::softmax_last_dim(&scores).unwrap();
        let out = weights.matmul(&v).unwrap();
        out.transpose(1, 2).unwrap().reshape((b, l, d)).unwrap()
    }

    #[test]
    fn matches_the_unfused_attention_to_bf16_precision() {
        if Bf16Cpu::detect().is_none() {
            eprintln!("skipped: this CPU lacks AVX512_BF16");
            return;
        }
        // Odd lengths and a head wider than a panel exercise every edge of the tiles.
        for (b, l, heads, d) in [
            (1, 1, 1, 4),
            (2, 77, 6, 384),
            (1, 301, 2, 160),
            (1, 1500, 6, 384),
        ] {
            let qkv = Tensor::randn(0f32, 1.0, (b, l, 3 * d), &Device::Cpu).unwrap();
            let ours = self_attention(&qkv, heads).expect("supported").unwrap();
            let diff = super::super::super::max_abs_diff(&ours, &reference(&qkv, heads));
            assert!(
                diff < 0.03,
                "({b}, {l}, {heads}, {d}): max difference {diff}"
            );
        }
    }
}

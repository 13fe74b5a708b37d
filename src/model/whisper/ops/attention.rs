//! Attention for one new query per sequence — every decoder step after the prompt.
//!
//! Done with candle ops, a step is a batched matmul of B·H single-row products, a mask add, a
//! softmax and another batched matmul: five passes and B·H tiny gemm calls per layer, which cost
//! more than the arithmetic. This kernel does scores, softmax and the weighted sum for each
//! (row, head) in one pass over its keys and values, rows and heads spread across threads.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::simd;

/// `softmax(q·kᵀ / √hd) · v` for `q` `[B, H, 1, hd]` against `k`, `v` `[W, H, S, hd]`; the first
/// `pads[b]` keys of row `b` are hidden (left padding). Row `b` reads K/V row `kv_rows[b]`
/// (`None`: row `b`, and `W = B`), so beams of one window share its keys. `None` when the op does
/// not apply (not CPU, not f32): the caller then uses the general path.
pub(crate) fn single_query_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    pads: &[usize],
    kv_rows: Option<&[u32]>,
) -> Option<candle_core::Result<Tensor>> {
    let applies = q.device().is_cpu() && q.dtype() == DType::F32 && q.dim(2).ok() == Some(1);
    applies.then(|| {
        q.apply_op3_no_bwd(
            k,
            v,
            &SingleQuery {
                pads: pads.to_vec(),
                kv_rows: kv_rows.map(<[u32]>::to_vec),
            },
        )
    })
}

struct SingleQuery {
    pads: Vec<usize>,
    kv_rows: Option<Vec<u32>>,
}

impl SingleQuery {
    /// Checks that every row's K/V row exists in `windows` rows.
    fn check_rows(&self, rows: usize, windows: usize) -> candle_core::Result<()> {
        let fits = match &self.kv_rows {
            None => windows == rows,
            Some(map) => map.len() == rows && map.iter().all(|&w| (w as usize) < windows),
        };
        if !fits {
            candle_core::bail!(
                "single-query attention: {rows} query rows cannot read {windows} K/V rows through {:?}",
                self.kv_rows
            );
        }
        Ok(())
    }

    fn kv_row(&self, row: usize) -> usize {
        self.kv_rows.as_ref().map_or(row, |map| map[row] as usize)
    }
}

impl CustomOp3 for SingleQuery {
    fn name(&self) -> &'static str {
        "hearken-single-query-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let operand = |s, l| super::contiguous_f32(self.name(), s, l);
        let (q, k, v) = (operand(qs, ql)?, operand(ks, kl)?, operand(vs, vl)?);
        let (b, h, _, hd) = ql.shape().dims4()?;
        let (windows, _, keys, _) = kl.shape().dims4()?;
        if kl.shape() != vl.shape() || kl.shape().dims4()? != (windows, h, keys, hd) {
            candle_core::bail!(
                "single-query attention: k {:?} / v {:?} do not fit q {:?}",
                kl.shape(),
                vl.shape(),
                ql.shape()
            );
        }
        self.check_rows(b, windows)?;
        let scale = (hd as f32).powf(-0.5);
        let mut out = vec![0f32; b * h * hd];
        let isa = simd::Isa::detect();
        out.par_chunks_mut(hd).enumerate().for_each(|(i, o)| {
            let (row, head) = (i / h, i % h);
            let pad = self.pads.get(row).copied().unwrap_or(0).min(keys);
            let item_kv = self.kv_row(row) * h + head;
            let kv = item_kv * keys * hd..(item_kv + 1) * keys * hd;
            let item = Item {
                q: &q[i * hd..(i + 1) * hd],
                k: &k[kv.clone()],
                v: &v[kv],
                pad,
                scale,
            };
            attend(isa, &item, o)
        });
        Ok((CpuStorage::F32(out), Shape::from((b, h, 1, hd))))
    }
}

/// One (row, head): its query and its keys and values, `[S, hd]` each.
struct Item<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    pad: usize,
    scale: f32,
}

simd::for_each_isa! {
    /// One (row, head) of attention into `out` (`[hd]`).
    fn attend(item: &Item<'_>, out: &mut [f32]) = attend_body;
}

/// Plain loops, no iterator adapters: closures are not always inlined, and code outside the
/// per-ISA copies would be compiled for the baseline target only.
#[inline(always)]
fn attend_body(item: &Item<'_>, out: &mut [f32]) {
    let hd = item.q.len();
    let keys = item.k.len() / hd;
    let mut logits = vec![0f32; keys - item.pad];
    for (j, t) in (item.pad..keys).enumerate() {
        logits[j] = simd::dot(item.q, &item.k[t * hd..(t + 1) * hd]) * item.scale;
    }
    let mut weights = vec![0f32; logits.len()];
    simd::softmax_body(&logits, &mut weights);
    out.fill(0.0);
    for (j, t) in (item.pad..keys).enumerate() {
        simd::axpy(weights[j], &item.v[t * hd..(t + 1) * hd], out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_masked_softmax_attention() {
        let dev = Device::Cpu;
        let (b, h, s, hd) = (3, 4, 301, 16);
        let q = Tensor::randn(0f32, 1.0, (b, h, 1, hd), &dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (b, h, s, hd), &dev).unwrap();
        let v = Tensor::randn(0f32, 1.0, (b, h, s, hd), &dev).unwrap();
        let pads = [0usize, 5, 300];
        let ours = single_query_attention(&q, &k, &v, &pads, None)
            .unwrap()
            .unwrap();

        let mask: Vec<f32> = pads
            .iter()
            .flat_map(|&p| (0..s).map(move |t| if t < p { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (b, 1, 1, s), &dev).unwrap();
        let scores = (q.matmul(&k.t().unwrap()).unwrap() * (hd as f64).powf(-0.5)).unwrap();
        let weights =
            candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&mask).unwrap()).unwrap();
        let reference = weights.matmul(&v).unwrap();
        let diff = super::super::max_abs_diff(&ours, &reference);
        assert!(diff < 1e-5, "max difference {diff}");
    }

    #[test]
    fn rows_sharing_a_window_read_its_keys() {
        let dev = Device::Cpu;
        let (h, s, hd) = (2, 57, 8);
        let q = Tensor::randn(0f32, 1.0, (4, h, 1, hd), &dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (2, h, s, hd), &dev).unwrap();
        let v = Tensor::randn(0f32, 1.0, (2, h, s, hd), &dev).unwrap();
        let map = [1u32, 1, 0, 1];
        let shared = single_query_attention(&q, &k, &v, &[0; 4], Some(&map))
            .unwrap()
            .unwrap();
        let index = Tensor::new(&map, &dev).unwrap();
        let (k4, v4) = (
            k.index_select(&index, 0).unwrap(),
            v.index_select(&index, 0).unwrap(),
        );
        let copied = single_query_attention(&q, &k4, &v4, &[0; 4], None)
            .unwrap()
            .unwrap();
        assert!(super::super::max_abs_diff(&shared, &copied) < 1e-7);
        let out_of_range = single_query_attention(&q, &k, &v, &[0; 4], Some(&[0, 1, 2, 0]));
        assert!(out_of_range.unwrap().is_err());
    }
}

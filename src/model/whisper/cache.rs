//! Per-sequence decoder state, kept outside the weights so one model serves many sequences.
//!
//! A cache holds B rows: each layer's self-attention K/V (grown by one position per step) and
//! cross-attention K/V (computed once per audio window). Rows that finish leave with
//! [`DecoderCache::retain_rows`], so the batch shrinks instead of computing dead rows.

use candle_core::Tensor;

/// K/V tensors of one decoder layer, `[B, heads, positions, head_dim]`.
pub struct LayerCache {
    self_k: Option<Tensor>,
    self_v: Option<Tensor>,
    cross_k: Tensor,
    cross_v: Tensor,
}

impl LayerCache {
    pub(crate) fn new(cross_k: Tensor, cross_v: Tensor) -> Self {
        Self {
            self_k: None,
            self_v: None,
            cross_k,
            cross_v,
        }
    }

    /// Appends this step's keys and values; returns the full K and V to attend over.
    pub(crate) fn append_self(
        &mut self,
        k: Tensor,
        v: Tensor,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let grow = |old: &Option<Tensor>, new: Tensor| match old {
            Some(old) => Tensor::cat(&[old, &new], 2),
            None => Ok(new),
        };
        let k = grow(&self.self_k, k)?;
        let v = grow(&self.self_v, v)?;
        self.self_k = Some(k.clone());
        self.self_v = Some(v.clone());
        Ok((k, v))
    }

    pub(crate) fn cross(&self) -> (&Tensor, &Tensor) {
        (&self.cross_k, &self.cross_v)
    }

    fn retain_rows(&mut self, rows: &Tensor) -> candle_core::Result<()> {
        let keep = |t: &Tensor| t.index_select(rows, 0);
        if let Some(k) = &self.self_k {
            self.self_k = Some(keep(k)?);
        }
        if let Some(v) = &self.self_v {
            self.self_v = Some(keep(v)?);
        }
        self.cross_k = keep(&self.cross_k)?;
        self.cross_v = keep(&self.cross_v)?;
        Ok(())
    }
}

/// The decoder state of a batch of sequences.
pub struct DecoderCache {
    layers: Vec<LayerCache>,
}

impl DecoderCache {
    pub(crate) fn new(layers: Vec<LayerCache>) -> Self {
        Self { layers }
    }

    pub(crate) fn layers_mut(&mut self) -> impl Iterator<Item = &mut LayerCache> {
        self.layers.iter_mut()
    }

    /// Positions already cached (the same for every row: rows are left-padded).
    pub fn cached_positions(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.self_k.as_ref())
            .and_then(|k| k.dim(2).ok())
            .unwrap_or(0)
    }

    /// Keeps only the rows whose indices are in `rows` (u32 tensor), in that order.
    pub fn retain_rows(&mut self, rows: &Tensor) -> candle_core::Result<()> {
        self.layers.iter_mut().try_for_each(|l| l.retain_rows(rows))
    }
}

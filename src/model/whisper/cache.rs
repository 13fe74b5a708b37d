//! Per-sequence decoder state, kept outside the weights so one model serves many sequences.
//!
//! A cache holds B rows: each layer's self-attention K/V (grown by one position per step) and
//! cross-attention K/V (computed once per audio window). Rows that finish leave with
//! [`DecoderCache::reorder_rows`], so the batch shrinks instead of computing dead rows; the same
//! call repeats and moves rows as a beam search branches.

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

    /// Reorders (and may repeat or drop) the self-attention rows: row `i` becomes old row
    /// `order[i]`.
    fn reorder_self(&mut self, order: &Tensor) -> candle_core::Result<()> {
        if let Some(k) = &self.self_k {
            self.self_k = Some(k.index_select(order, 0)?);
        }
        if let Some(v) = &self.self_v {
            self.self_v = Some(v.index_select(order, 0)?);
        }
        Ok(())
    }

    fn keep_cross(&mut self, windows: &Tensor) -> candle_core::Result<()> {
        self.cross_k = self.cross_k.index_select(windows, 0)?;
        self.cross_v = self.cross_v.index_select(windows, 0)?;
        Ok(())
    }

    fn cross_windows(&self) -> usize {
        self.cross_k.dim(0).unwrap_or(0)
    }
}

/// The decoder state of a batch of sequences.
///
/// Several rows may decode the same audio window (the hypotheses of a beam search): they keep
/// their own self-attention K/V but share the window's cross-attention K/V, found through
/// [`Self::cross_rows`], instead of holding a copy each.
pub struct DecoderCache {
    layers: Vec<LayerCache>,
    /// Cross-attention row (window) of each batch row.
    cross_rows: Vec<u32>,
}

impl DecoderCache {
    /// A cache whose batch row `i` decodes window `i` of the layers' cross K/V.
    pub(crate) fn new(layers: Vec<LayerCache>) -> Self {
        let windows = layers.first().map_or(0, LayerCache::cross_windows);
        Self {
            layers,
            cross_rows: (0..windows as u32).collect(),
        }
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

    /// The cross-attention window of each batch row; `None` when row `i` reads window `i`.
    pub fn cross_rows(&self) -> Option<&[u32]> {
        let windows = self.layers.first().map_or(0, LayerCache::cross_windows);
        let identity = self.cross_rows.len() == windows
            && self
                .cross_rows
                .iter()
                .enumerate()
                .all(|(i, &w)| w as usize == i);
        (!identity).then_some(self.cross_rows.as_slice())
    }

    /// Makes batch row `i` continue old row `order[i]`: rows may be dropped (finished), repeated
    /// (a beam that branches) or moved. Windows no row reads any more are dropped too.
    pub fn reorder_rows(&mut self, order: &[u32]) -> candle_core::Result<()> {
        let identity = order.len() == self.cross_rows.len()
            && order.iter().enumerate().all(|(i, &o)| o as usize == i);
        if identity {
            return Ok(());
        }
        let Some(device) = self.layers.first().map(|l| l.cross_k.device().clone()) else {
            return Ok(());
        };
        let rows = Tensor::new(order, &device)?;
        self.layers
            .iter_mut()
            .try_for_each(|l| l.reorder_self(&rows))?;
        self.cross_rows = order.iter().map(|&o| self.cross_rows[o as usize]).collect();
        self.drop_unread_windows(&device)
    }

    fn drop_unread_windows(&mut self, device: &candle_core::Device) -> candle_core::Result<()> {
        let mut kept: Vec<u32> = Vec::new();
        let mut renumber = std::collections::HashMap::new();
        for w in &mut self.cross_rows {
            *w = *renumber.entry(*w).or_insert_with(|| {
                kept.push(*w);
                kept.len() as u32 - 1
            });
        }
        let windows = self.layers.first().map_or(0, LayerCache::cross_windows);
        let unchanged =
            kept.len() == windows && kept.iter().enumerate().all(|(i, &w)| w as usize == i);
        if unchanged {
            return Ok(());
        }
        let kept = Tensor::new(kept.as_slice(), device)?;
        self.layers.iter_mut().try_for_each(|l| l.keep_cross(&kept))
    }
}

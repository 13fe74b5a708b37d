//! The decoder pass word timing needs: whole token sequences at once, returning with the hidden
//! states the cross-attention weights of chosen heads (Whisper's "alignment heads", whose
//! attention over the audio follows the speech).
//!
//! It is a separate pass rather than an option of [`TextDecoder::forward`] so that decoding
//! steps keep their fused kernels and never materialise attention weights.

use candle_core::{DType, Module, Tensor};

use super::{
    CrossAttention, DecoderStep, MASKED, TextDecoder, attention_scores, merge_heads, split_heads,
    step_mask,
};
use crate::model::whisper::cache::DecoderCache;
use crate::model::whisper::ops::softmax_last_dim;

/// What [`TextDecoder::forward_with_cross_weights`] returns.
pub struct CrossWeightsPass {
    /// Final hidden states `[B, L, d]`, as [`TextDecoder::forward`] returns them; turn the ones
    /// needed into logits with [`TextDecoder::logits`].
    pub hidden: Tensor,
    /// Cross-attention weights `[B, heads, L, F]` in f32, heads in the order asked for, `F` the
    /// largest of the rows' audio positions. Row `b` attends over its first `audio_positions[b]`
    /// frames only (softmax over those, zero beyond), as openai-whisper slices the scores to the
    /// audio present before its softmax.
    pub weights: Tensor,
}

impl CrossAttention {
    /// Like [`Self::forward`], through the general attention path, also returning the scores
    /// `[B, H, L, S]` before softmax.
    fn forward_with_scores(
        &self,
        x: &Tensor,
        k: &Tensor,
        v: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let q = split_heads(&self.q.forward(x)?, self.heads)?;
        let scores = attention_scores(&q, k)?;
        let attended = softmax_last_dim(&scores)?.matmul(v)?;
        Ok((self.out.forward(&merge_heads(&attended)?)?, scores))
    }
}

impl TextDecoder {
    /// Runs `tokens` (`[B, L]`, u32, row `b` left-padded by `pads[b]`) through the decoder like
    /// [`Self::forward`], and returns the cross-attention weights of `heads` (`(layer, head)`
    /// pairs) restricted to the first `audio_positions[b]` encoder frames of each row.
    pub fn forward_with_cross_weights(
        &self,
        tokens: &Tensor,
        cache: &mut DecoderCache,
        pads: &[usize],
        heads: &[(usize, usize)],
        audio_positions: &[usize],
    ) -> candle_core::Result<CrossWeightsPass> {
        self.check_heads(heads)?;
        let l = tokens.dim(1)?;
        let table = &self.token_embedding.full;
        let cached = cache.cached_positions();
        let mut x = self.embed(tokens, pads, cached)?;
        let mask = step_mask(pads, cached, l, table.device(), table.dtype())?;
        let step = DecoderStep {
            pads,
            mask: Some(mask),
        };
        let mut scores: Vec<Option<Tensor>> = vec![None; self.blocks.len()];
        for (i, (block, layer)) in self.blocks.iter().zip(cache.layers_mut()).enumerate() {
            let h = block
                .attn
                .forward_cached(&block.attn_ln.forward(&x)?, layer, &step)?;
            x = (x + h)?;
            let (k, v) = layer.cross();
            let normed = block.cross_ln.forward(&x)?;
            let h = match heads.iter().any(|&(layer, _)| layer == i) {
                true => {
                    let (h, s) = block.cross.forward_with_scores(&normed, k, v)?;
                    scores[i] = Some(s);
                    h
                }
                false => block.cross.forward(&normed, k, v, None)?,
            };
            x = (x + h)?;
            x = (&x + block.mlp.forward(&block.mlp_ln.forward(&x)?)?)?;
        }
        let selected = heads
            .iter()
            .map(|&(layer, head)| match &scores[layer] {
                Some(s) => s.narrow(1, head, 1),
                None => candle_core::bail!("no scores kept for layer {layer}"),
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(CrossWeightsPass {
            hidden: self.ln.forward(&x)?,
            weights: softmax_over_audio(&Tensor::cat(&selected, 1)?, audio_positions)?,
        })
    }

    fn check_heads(&self, heads: &[(usize, usize)]) -> candle_core::Result<()> {
        let layers = self.blocks.len();
        let per_layer = self.blocks.first().map_or(0, |b| b.cross.heads);
        match heads.iter().find(|&&(l, h)| l >= layers || h >= per_layer) {
            Some((l, h)) => candle_core::bail!(
                "alignment head ({l}, {h}) outside the decoder's {layers} layers × {per_layer} heads"
            ),
            None if heads.is_empty() => candle_core::bail!("no alignment heads given"),
            None => Ok(()),
        }
    }
}

/// Softmax of scores `[B, H, L, S]` over each row's first `positions[b]` frames, in f32; the
/// result keeps `max(positions)` frames, zero past a row's own count.
fn softmax_over_audio(scores: &Tensor, positions: &[usize]) -> candle_core::Result<Tensor> {
    let frames = scores.dim(3)?;
    let keep: Vec<usize> = positions.iter().map(|&p| p.clamp(1, frames)).collect();
    let width = keep.iter().copied().max().unwrap_or(1);
    let mask: Vec<f32> = keep
        .iter()
        .flat_map(|&k| (0..width).map(move |f| if f < k { 0.0 } else { MASKED }))
        .collect();
    let mask = Tensor::from_vec(mask, (keep.len(), 1, 1, width), scores.device())?;
    let sliced = scores.narrow(3, 0, width)?.to_dtype(DType::F32)?;
    softmax_last_dim(&sliced.broadcast_add(&mask)?)
}

//! Encoded audio as the decoder reads it: every decoder layer's cross-attention keys and values.
//!
//! They are computed once per window and shared by every decoder pass over it (decoding, each
//! temperature fallback, word alignment, language detection): before, each pass projected the
//! encoder output again, 13 ms per row and pass for a 10 s window of tiny.en on 2 cores.
//!
//! A trimmed window is encoded for its audio only; the positions after it are taken from a
//! silent window encoded once per model ([`SilenceTail`]), so the decoder still sees the long
//! context it was trained on (speech, then silence) while the encoder pays for the speech only.

use std::sync::OnceLock;

use candle_core::{DType, Tensor};

use super::{TextDecoder, Whisper};

/// One decoder layer's cross-attention keys and values, `[B, heads, positions, head_dim]`.
#[derive(Clone)]
pub(crate) struct CrossKv {
    pub(crate) k: Tensor,
    pub(crate) v: Tensor,
}

/// The cross-attention K/V of B encoded windows, all with the same number of positions.
#[derive(Clone)]
pub struct EncodedAudio {
    layers: Vec<CrossKv>,
    rows: usize,
    positions: usize,
}

impl EncodedAudio {
    fn new(layers: Vec<CrossKv>) -> candle_core::Result<Self> {
        let (rows, positions) = match layers.first() {
            Some(l) => (l.k.dim(0)?, l.k.dim(2)?),
            None => (0, 0),
        };
        Ok(Self {
            layers,
            rows,
            positions,
        })
    }

    /// Windows held.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Encoder positions per window (mel frames / 2).
    pub fn positions(&self) -> usize {
        self.positions
    }

    pub(crate) fn layers(&self) -> &[CrossKv] {
        &self.layers
    }

    /// The windows `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> candle_core::Result<Self> {
        if rows.iter().copied().eq(0..self.rows) {
            return Ok(self.clone());
        }
        let Some(first) = self.layers.first() else {
            return Ok(self.clone());
        };
        let index: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let index = Tensor::new(index.as_slice(), first.k.device())?;
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(CrossKv {
                    k: l.k.index_select(&index, 0)?,
                    v: l.v.index_select(&index, 0)?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Self::new(layers)
    }

    /// Windows stacked in order; all must have the same number of positions.
    pub fn stack(parts: &[Self]) -> candle_core::Result<Self> {
        let Some(first) = parts.first() else {
            candle_core::bail!("no encoded windows to stack");
        };
        if parts.len() == 1 {
            return Ok(first.clone());
        }
        let layers = (0..first.layers.len())
            .map(|i| {
                let ks: Vec<&Tensor> = parts.iter().map(|p| &p.layers[i].k).collect();
                let vs: Vec<&Tensor> = parts.iter().map(|p| &p.layers[i].v).collect();
                Ok(CrossKv {
                    k: Tensor::cat(&ks, 0)?,
                    v: Tensor::cat(&vs, 0)?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Self::new(layers)
    }

    /// These windows followed by the silent window's positions up to `positions` in all.
    fn followed_by(&self, tail: &Self, positions: usize) -> candle_core::Result<Self> {
        if positions <= self.positions {
            return Ok(self.clone());
        }
        if positions > tail.positions {
            candle_core::bail!(
                "{positions} positions asked of a {}-position window",
                tail.positions
            );
        }
        let extra = positions - self.positions;
        let extend = |own: &Tensor, silent: &Tensor| -> candle_core::Result<Tensor> {
            let (b, h, _, hd) = own.dims4()?;
            let silent = silent
                .narrow(2, self.positions, extra)?
                .broadcast_as((b, h, extra, hd))?
                .contiguous()?;
            Tensor::cat(&[own, &silent], 2)
        };
        let layers = self
            .layers
            .iter()
            .zip(&tail.layers)
            .map(|(own, silent)| {
                Ok(CrossKv {
                    k: extend(&own.k, &silent.k)?,
                    v: extend(&own.v, &silent.v)?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Self::new(layers)
    }
}

impl TextDecoder {
    /// The cross-attention K/V of encoder output `audio` (`[B, positions, d]`).
    pub fn encode_audio(&self, audio: &Tensor) -> candle_core::Result<EncodedAudio> {
        let layers = self
            .blocks
            .iter()
            .map(|b| {
                let (k, v) = b.cross.keys_values(audio)?;
                Ok(CrossKv { k, v })
            })
            .collect::<candle_core::Result<_>>()?;
        EncodedAudio::new(layers)
    }
}

/// A silent 30 s window (all-zero log-mel, as windows are padded) encoded once, lazily.
#[derive(Default)]
pub(crate) struct SilenceTail(OnceLock<EncodedAudio>);

impl Whisper {
    /// Encodes mel windows `[B, n_mels, frames]` into what the decoder reads.
    pub fn encode(&self, mel: &Tensor) -> candle_core::Result<EncodedAudio> {
        let audio = self.encoder.forward(mel)?;
        self.decoder.encode_audio(&audio)
    }

    /// Encodes the start of a window, mel `[B, n_mels, frames]` (frames even, at most a full
    /// window), and fills the rest of the window's positions from an encoded silent window.
    pub fn encode_with_silence(&self, mel: &Tensor) -> candle_core::Result<EncodedAudio> {
        let own = self.encode(mel)?;
        own.followed_by(self.silence()?, self.config.n_audio_ctx)
    }

    /// Two workers meeting the first trimmed window at once may both encode the silent window;
    /// one result is kept. (Encoding it at load would cost every model, trimmed or not.)
    fn silence(&self) -> candle_core::Result<&EncodedAudio> {
        if let Some(tail) = self.silence.0.get() {
            return Ok(tail);
        }
        let frames = 2 * self.config.n_audio_ctx;
        let mel = Tensor::zeros((1, self.config.n_mels, frames), DType::F32, &self.device)?
            .to_dtype(self.dtype)?;
        let tail = self.encode(&mel)?;
        Ok(self.silence.0.get_or_init(|| tail))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::{CrossKv, EncodedAudio};

    /// `rows` windows of `positions` positions, two layers, every value distinct.
    fn windows(rows: usize, positions: usize, offset: f32) -> EncodedAudio {
        let layer = |l: usize| {
            let n = rows * 2 * positions * 3;
            let values = |kv: f32| {
                let base = offset + 1000.0 * l as f32 + 100_000.0 * kv;
                let data: Vec<f32> = (0..n).map(|i| base + i as f32).collect();
                Tensor::from_vec(data, (rows, 2, positions, 3), &Device::Cpu).unwrap()
            };
            CrossKv {
                k: values(0.0),
                v: values(1.0),
            }
        };
        EncodedAudio::new((0..2).map(layer).collect()).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn a_trimmed_window_continues_with_the_silent_windows_positions() {
        let own = windows(2, 4, 0.5);
        let silent = windows(1, 10, 7.0e6);
        let whole = own.followed_by(&silent, 10).unwrap();
        assert_eq!((whole.rows(), whole.positions()), (2, 10));
        for (got, (own, silent)) in whole
            .layers
            .iter()
            .zip(own.layers.iter().zip(&silent.layers))
        {
            for (got, own, silent) in [(&got.k, &own.k, &silent.k), (&got.v, &own.v, &silent.v)] {
                for row in 0..2 {
                    let got = got.get(row).unwrap();
                    let head = got.narrow(1, 0, 4).unwrap();
                    assert_eq!(values(&head), values(&own.get(row).unwrap()));
                    let tail = got.narrow(1, 4, 6).unwrap();
                    let expected = silent.get(0).unwrap().narrow(1, 4, 6).unwrap();
                    assert_eq!(values(&tail), values(&expected));
                }
            }
        }
    }

    #[test]
    fn more_positions_than_the_silent_window_holds_are_refused() {
        let err = windows(1, 4, 0.0)
            .followed_by(&windows(1, 10, 0.0), 11)
            .err()
            .unwrap();
        assert!(err.to_string().contains("11 positions"), "{err}");
    }

    #[test]
    fn selected_rows_come_back_in_the_order_asked() {
        let a = windows(1, 3, 0.0);
        let b = windows(1, 3, 1.0e6);
        let both = EncodedAudio::stack(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(both.rows(), 2);
        let swapped = both.select(&[1, 0]).unwrap();
        let first = |e: &EncodedAudio| values(&e.layers[1].v.get(0).unwrap());
        assert_eq!(first(&swapped), first(&b));
        assert_eq!(first(&both.select(&[0]).unwrap()), first(&a));
    }
}

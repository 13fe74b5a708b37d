//! The Whisper network: a batched audio encoder and a text decoder whose weights are shared
//! (`&self`) and whose per-sequence state lives outside, in [`super::cache::DecoderCache`].
//!
//! Shapes: mel `[B, n_mels, T]` → audio features `[B, T/2, d]`; tokens `[B, L]` → hidden
//! `[B, L, d]` → logits `[B, N, vocab]` for the positions the caller asks for only, because the
//! vocabulary projection is the most expensive matmul of a decoding step.

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, LayerNorm};

use super::cache::{DecoderCache, LayerCache};
use super::config::WhisperConfig;
use super::ops::{
    Int8Linear, PackedLinear, bf16_self_attention, gelu, matmul_t, single_query_attention,
    softmax_last_dim,
};
use super::precision::Products;
use super::weights::{WeightMap, WeightsError};

mod cross_weights;
mod encoded;

pub use cross_weights::CrossWeightsPass;
pub use encoded::EncodedAudio;
use encoded::SilenceTail;

const LAYER_NORM_EPS: f64 = 1e-5;

/// Encoder and decoder of one checkpoint, on one device.
pub struct Whisper {
    /// The checkpoint's dimensions and generation settings.
    pub config: WhisperConfig,
    /// The audio encoder.
    pub encoder: AudioEncoder,
    /// The text decoder.
    pub decoder: TextDecoder,
    device: Device,
    dtype: DType,
    products: Products,
    silence: SilenceTail,
}

impl std::fmt::Debug for Whisper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Whisper")
            .field("config", &self.config)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl Whisper {
    /// Builds the network from canonical tensors, checking every shape; `products` packs the
    /// CPU's matrix products (see [`super::precision::CpuPrecision`]).
    pub fn new(
        config: WhisperConfig,
        w: &WeightMap,
        device: Device,
        dtype: DType,
        products: Products,
    ) -> Result<Self, WeightsError> {
        let params = Params { map: w, products };
        let encoder = AudioEncoder::new(&config, &params)?;
        let decoder = TextDecoder::new(&config, &params)?;
        Ok(Self {
            config,
            encoder,
            decoder,
            device,
            dtype,
            products,
            silence: SilenceTail::default(),
        })
    }

    /// What the CPU's matrix products run in.
    pub fn products(&self) -> Products {
        self.products
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The compute dtype (f32 on CPU, f16 on CUDA).
    pub fn dtype(&self) -> DType {
        self.dtype
    }
}

/// The checkpoint's tensors, and how to lay out the layers built from them.
struct Params<'a> {
    map: &'a WeightMap,
    /// How `Linear` weights are packed for the CPU's products.
    products: Products,
}

impl Params<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor, WeightsError> {
        self.map.get(name, shape)
    }
}

fn linear(w: &Params<'_>, name: &str, out: usize, inp: usize) -> Result<Linear, WeightsError> {
    let weight = w.get(&format!("{name}.weight"), &[out, inp])?;
    let bias = w.get(&format!("{name}.bias"), &[out])?;
    let packed =
        Packed::new(w.products, &weight, &bias).map_err(|source| WeightsError::Tensor {
            name: format!("{name} (packing in {})", w.products),
            source,
        })?;
    Ok(Linear {
        weight: Weight::new(weight),
        bias,
        packed,
    })
}

/// `x · Wᵀ + b`.
struct Linear {
    weight: Weight,
    bias: Tensor,
    /// The weight and bias in bf16 or int8 (`--precision`), for every product: with many rows
    /// the kernel is compute-bound and bf16 doubles the multiply-adds per instruction (int8
    /// doubles them again); in a decoder step bf16 reads as many weight bytes as the f16 step
    /// copy, without widening them, and int8 half as many.
    packed: Option<Packed>,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut dims = x.dims().to_vec();
        let inputs = dims.pop().unwrap_or(1);
        let rows = dims.iter().product::<usize>();
        let flat = x.reshape((rows, inputs))?;
        let y = match &self.packed {
            Some(packed) => packed.forward(&flat.contiguous()?)?,
            None => self.weight.project(&flat)?.broadcast_add(&self.bias)?,
        };
        dims.push(self.weight.full.dim(0)?);
        y.reshape(dims)
    }

    /// See [`Weight::with_step_copy`]; none is needed where the layer is packed.
    fn with_step_copy(self) -> Result<Self, WeightsError> {
        if self.packed.is_some() {
            return Ok(self);
        }
        Ok(Self {
            weight: self.weight.with_step_copy()?,
            ..self
        })
    }
}

/// A `Linear` weight and bias packed for the CPU's bf16 or int8 kernel.
enum Packed {
    Bf16(PackedLinear),
    Int8(Int8Linear),
}

impl Packed {
    /// `None` for f32 products, or where the tensors are not on the CPU.
    fn new(
        products: Products,
        weight: &Tensor,
        bias: &Tensor,
    ) -> candle_core::Result<Option<Self>> {
        Ok(match products {
            Products::F32 => None,
            Products::Bf16 => PackedLinear::new(weight, bias)?.map(Self::Bf16),
            Products::Int8 => Int8Linear::new(weight, bias)?.map(Self::Int8),
        })
    }

    /// `x · Wᵀ + b` for `x` `[M, K]` f32.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Bf16(packed) => packed.forward(x),
            Self::Int8(packed) => packed.forward(x),
        }
    }
}

/// A weight matrix `[N, K]`, plus, for the decoder on the CPU, an f16 copy for decoder steps.
///
/// A step has one row per sequence, so its products go through the few-row kernel
/// ([`matmul_t`]) and are bound by how many weight bytes they read; f16 halves that. The copy is
/// exact for f16 checkpoints (the default model); f32 checkpoints are rounded to f16 for steps.
/// Products with many rows (the prompt pass, the encoder) use the full-precision weight and gemm.
struct Weight {
    full: Tensor,
    step: Option<Tensor>,
}

impl Weight {
    fn new(full: Tensor) -> Self {
        Self { full, step: None }
    }

    fn with_step_copy(self) -> Result<Self, WeightsError> {
        if !self.full.device().is_cpu() || self.full.dtype() != DType::F32 {
            return Ok(self);
        }
        let step = self
            .full
            .to_dtype(DType::F16)
            .map_err(|source| WeightsError::Tensor {
                name: "decoder step weights".into(),
                source,
            })?;
        Ok(Self {
            full: self.full,
            step: Some(step),
        })
    }

    /// `x · wᵀ` for `x` `[M, K]`.
    fn project(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let few_rows = self.step.as_ref().and_then(|step| matmul_t(x, step));
        match few_rows.or_else(|| matmul_t(x, &self.full)) {
            Some(result) => result,
            None => x.matmul(&self.full.t()?),
        }
    }
}

fn layer_norm(w: &Params<'_>, name: &str, d: usize) -> Result<LayerNorm, WeightsError> {
    let weight = w.get(&format!("{name}.weight"), &[d])?;
    let bias = w.get(&format!("{name}.bias"), &[d])?;
    Ok(LayerNorm::new(weight, bias, LAYER_NORM_EPS))
}

/// Splits `[B, L, H*hd]` into heads: `[B, H, L, hd]`, contiguous for matmul.
fn split_heads(x: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (b, l, d) = x.dims3()?;
    x.reshape((b, l, heads, d / heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// Inverse of [`split_heads`].
fn merge_heads(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, h, l, hd) = x.dims4()?;
    x.transpose(1, 2)?.reshape((b, l, h * hd))
}

/// Attention scores `q·kᵀ / √hd` (`[B, H, L, S]`), before any mask or softmax.
fn attention_scores(q: &Tensor, k: &Tensor) -> candle_core::Result<Tensor> {
    // Scaling Q (L × hd) is far cheaper than scaling the scores (L × S).
    let scale = (q.dim(D::Minus1)? as f64).powf(-0.5);
    (q * scale)?.matmul(&k.t()?)
}

/// Scaled dot-product attention; `mask` is additive and broadcast over heads.
fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let mut scores = attention_scores(q, k)?;
    if let Some(mask) = mask {
        scores = scores.broadcast_add(mask)?;
    }
    let weights = softmax_last_dim(&scores)?;
    weights.matmul(v)
}

/// Self-attention with Q, K and V fused into one projection.
struct SelfAttention {
    qkv: Linear,
    out: Linear,
    heads: usize,
    d: usize,
}

impl SelfAttention {
    fn new(w: &Params<'_>, name: &str, d: usize, heads: usize) -> Result<Self, WeightsError> {
        Ok(Self {
            qkv: linear(w, &format!("{name}.qkv"), 3 * d, d)?,
            out: linear(w, &format!("{name}.out"), d, d)?,
            heads,
            d,
        })
    }

    fn with_step_copy(self) -> Result<Self, WeightsError> {
        Ok(Self {
            qkv: self.qkv.with_step_copy()?,
            out: self.out.with_step_copy()?,
            ..self
        })
    }

    /// Projects `x` and splits it into per-head Q, K, V.
    fn project(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let qkv = self.qkv.forward(x)?;
        let part = |i: usize| split_heads(&qkv.narrow(D::Minus1, i * self.d, self.d)?, self.heads);
        Ok((part(0)?, part(1)?, part(2)?))
    }

    /// Every position over every position (the encoder): fused in bf16 where the projections
    /// are packed (bf16 or int8) and the CPU has AVX512_BF16, else the unfused f32 path.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.qkv.packed.is_some() {
            let qkv = self.qkv.forward(x)?;
            if let Some(attended) = bf16_self_attention(&qkv, self.heads) {
                return self.out.forward(&attended?);
            }
        }
        let (q, k, v) = self.project(x)?;
        self.out
            .forward(&merge_heads(&attention(&q, &k, &v, None)?)?)
    }

    /// Attends over the cached keys plus this call's; appends this call's K/V to the cache.
    fn forward_cached(
        &self,
        x: &Tensor,
        cache: &mut LayerCache,
        step: &DecoderStep<'_>,
    ) -> candle_core::Result<Tensor> {
        let (q, k, v) = self.project(x)?;
        let (k, v) = cache.append_self(k, v)?;
        let attended = match single_query_attention(&q, &k, &v, step.pads, None) {
            Some(fused) => fused?,
            None => attention(&q, &k, &v, step.mask.as_ref())?,
        };
        self.out.forward(&merge_heads(&attended)?)
    }
}

/// Position-wise feed-forward block with exact (erf) GELU, as Whisper uses.
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn new(w: &Params<'_>, name: &str, d: usize) -> Result<Self, WeightsError> {
        Ok(Self {
            fc1: linear(w, &format!("{name}.fc1"), 4 * d, d)?,
            fc2: linear(w, &format!("{name}.fc2"), d, 4 * d)?,
        })
    }

    fn with_step_copy(self) -> Result<Self, WeightsError> {
        Ok(Self {
            fc1: self.fc1.with_step_copy()?,
            fc2: self.fc2.with_step_copy()?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.fc2.forward(&gelu(&self.fc1.forward(x)?)?)
    }
}

/// One pre-norm encoder block.
struct EncoderBlock {
    attn_ln: LayerNorm,
    attn: SelfAttention,
    mlp_ln: LayerNorm,
    mlp: Mlp,
}

impl EncoderBlock {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = (x + self.attn.forward(&self.attn_ln.forward(x)?)?)?;
        &x + self.mlp.forward(&self.mlp_ln.forward(&x)?)?
    }
}

/// The audio encoder: two convolutions, sinusoidal positions, transformer blocks.
pub struct AudioEncoder {
    conv1: Conv1d,
    conv2: Conv1d,
    positions: Tensor,
    blocks: Vec<EncoderBlock>,
    ln_post: LayerNorm,
}

impl AudioEncoder {
    fn new(c: &WhisperConfig, w: &Params<'_>) -> Result<Self, WeightsError> {
        let d = c.d_model;
        let conv = |name: &str, inp: usize, stride: usize| -> Result<Conv1d, WeightsError> {
            let weight = w.get(&format!("encoder.{name}.weight"), &[d, inp, 3])?;
            let bias = w.get(&format!("encoder.{name}.bias"), &[d])?;
            let cfg = Conv1dConfig {
                padding: 1,
                stride,
                dilation: 1,
                groups: 1,
                cudnn_fwd_algo: None,
            };
            Ok(Conv1d::new(weight, Some(bias), cfg))
        };
        let blocks = (0..c.encoder_layers)
            .map(|i| {
                let p = format!("encoder.layers.{i}");
                Ok(EncoderBlock {
                    attn_ln: layer_norm(w, &format!("{p}.attn_ln"), d)?,
                    attn: SelfAttention::new(w, &format!("{p}.attn"), d, c.encoder_heads)?,
                    mlp_ln: layer_norm(w, &format!("{p}.mlp_ln"), d)?,
                    mlp: Mlp::new(w, &format!("{p}.mlp"), d)?,
                })
            })
            .collect::<Result<_, WeightsError>>()?;
        Ok(Self {
            conv1: conv("conv1", c.n_mels, 1)?,
            conv2: conv("conv2", d, 2)?,
            positions: w.get("encoder.positions", &[c.n_audio_ctx, d])?,
            blocks,
            ln_post: layer_norm(w, "encoder.ln_post", d)?,
        })
    }

    /// Encodes `[B, n_mels, T]` (T ≤ 3000, even) into `[B, T/2, d]`. A T shorter than a full
    /// window encodes only the audio present: positions are sliced to match.
    pub fn forward(&self, mel: &Tensor) -> candle_core::Result<Tensor> {
        let rows = mel.dim(0)?;
        if mel.device().is_cpu() && rows > 1 {
            // On the CPU the encoder is compute-bound, so batching saves nothing, while the
            // `[B, heads, 1500, 1500]` attention scores of a batch overflow the caches (measured:
            // 8 windows together took 15 % longer than one after another).
            let encoded = (0..rows)
                .map(|r| self.forward_batch(&mel.narrow(0, r, 1)?))
                .collect::<candle_core::Result<Vec<_>>>()?;
            return Tensor::cat(&encoded, 0);
        }
        self.forward_batch(mel)
    }

    fn forward_batch(&self, mel: &Tensor) -> candle_core::Result<Tensor> {
        let x = gelu(&self.conv1.forward(mel)?)?;
        let x = gelu(&self.conv2.forward(&x)?)?.transpose(1, 2)?;
        let frames = x.dim(1)?;
        let mut x = x.broadcast_add(&self.positions.narrow(0, 0, frames)?)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        self.ln_post.forward(&x)
    }
}

/// Cross-attention over audio features; its K/V are computed once per window.
struct CrossAttention {
    q: Linear,
    kv: Linear,
    out: Linear,
    heads: usize,
    d: usize,
}

impl CrossAttention {
    fn keys_values(&self, audio: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let kv = self.kv.forward(audio)?;
        let k = split_heads(&kv.narrow(D::Minus1, 0, self.d)?, self.heads)?;
        let v = split_heads(&kv.narrow(D::Minus1, self.d, self.d)?, self.heads)?;
        Ok((k, v))
    }

    /// Attends over window `windows[b]` of `k`, `v` for row `b` (`None`: window `b`).
    fn forward(
        &self,
        x: &Tensor,
        k: &Tensor,
        v: &Tensor,
        windows: Option<&[u32]>,
    ) -> candle_core::Result<Tensor> {
        let q = split_heads(&self.q.forward(x)?, self.heads)?;
        let no_padding = vec![0; q.dim(0)?];
        let attended = match single_query_attention(&q, k, v, &no_padding, windows) {
            Some(fused) => fused?,
            None => match windows {
                Some(windows) => {
                    let rows = Tensor::new(windows, k.device())?;
                    attention(
                        &q,
                        &k.index_select(&rows, 0)?,
                        &v.index_select(&rows, 0)?,
                        None,
                    )?
                }
                None => attention(&q, k, v, None)?,
            },
        };
        self.out.forward(&merge_heads(&attended)?)
    }
}

/// Additive mask value: large enough to zero a softmax weight, small enough for f16.
const MASKED: f32 = -30_000.0;

/// What every layer of one decoder call needs to know about the rows' padding.
struct DecoderStep<'a> {
    /// Left padding of each row.
    pads: &'a [usize],
    /// Additive mask `[B, 1, L, cached + L]` for the general attention path; `None` when every
    /// layer takes the fused single-query path.
    mask: Option<Tensor>,
}

/// Position of each new token: absolute index minus the row's padding (`[B·L]`, u32).
fn step_positions(
    pads: &[usize],
    cached: usize,
    len: usize,
    device: &candle_core::Device,
) -> candle_core::Result<Tensor> {
    let ids: Vec<u32> = pads
        .iter()
        .flat_map(|&pad| (cached..cached + len).map(move |j| j.saturating_sub(pad) as u32))
        .collect();
    Tensor::new(ids.as_slice(), device)
}

/// Causal mask that also hides each row's left padding. A padded query may see itself, so no
/// softmax row is entirely masked.
fn step_mask(
    pads: &[usize],
    cached: usize,
    len: usize,
    device: &candle_core::Device,
    dtype: DType,
) -> candle_core::Result<Tensor> {
    let keys = cached + len;
    let mut mask = Vec::with_capacity(pads.len() * len * keys);
    for &pad in pads {
        for q in cached..cached + len {
            mask.extend((0..keys).map(|k| {
                if k <= q && (k >= pad || k == q) {
                    0.0
                } else {
                    MASKED
                }
            }));
        }
    }
    Tensor::from_vec(mask, (pads.len(), 1, len, keys), device)?.to_dtype(dtype)
}

/// One pre-norm decoder block.
struct DecoderBlock {
    attn_ln: LayerNorm,
    attn: SelfAttention,
    cross_ln: LayerNorm,
    cross: CrossAttention,
    mlp_ln: LayerNorm,
    mlp: Mlp,
}

/// The text decoder: token and position embeddings, blocks, tied output projection.
pub struct TextDecoder {
    /// The token embedding `[vocab, d]` (`full`), which is also the tied output projection,
    /// with its step copy.
    token_embedding: Weight,
    /// The output projection packed (`--precision`), which then replaces the step copy.
    logits_packed: Option<Packed>,
    positions: Tensor,
    blocks: Vec<DecoderBlock>,
    ln: LayerNorm,
    n_text_ctx: usize,
}

impl TextDecoder {
    fn new(c: &WhisperConfig, w: &Params<'_>) -> Result<Self, WeightsError> {
        let d = c.d_model;
        let blocks = (0..c.decoder_layers)
            .map(|i| {
                let p = format!("decoder.layers.{i}");
                Ok(DecoderBlock {
                    attn_ln: layer_norm(w, &format!("{p}.attn_ln"), d)?,
                    attn: SelfAttention::new(w, &format!("{p}.attn"), d, c.decoder_heads)?
                        .with_step_copy()?,
                    cross_ln: layer_norm(w, &format!("{p}.cross_ln"), d)?,
                    cross: CrossAttention {
                        q: linear(w, &format!("{p}.cross.q"), d, d)?.with_step_copy()?,
                        // Used once per window on 1500 frames: gemm, no step copy.
                        kv: linear(w, &format!("{p}.cross.kv"), 2 * d, d)?,
                        out: linear(w, &format!("{p}.cross.out"), d, d)?.with_step_copy()?,
                        heads: c.decoder_heads,
                        d,
                    },
                    mlp_ln: layer_norm(w, &format!("{p}.mlp_ln"), d)?,
                    mlp: Mlp::new(w, &format!("{p}.mlp"), d)?.with_step_copy()?,
                })
            })
            .collect::<Result<_, WeightsError>>()?;
        let embedding = w.get("decoder.token_embedding", &[c.n_vocab, d])?;
        let logits_packed = Tensor::zeros(c.n_vocab, embedding.dtype(), embedding.device())
            .and_then(|no_bias| Packed::new(w.products, &embedding, &no_bias))
            .map_err(|source| WeightsError::Tensor {
                name: format!("decoder.token_embedding (packing in {})", w.products),
                source,
            })?;
        let token_embedding = match logits_packed {
            Some(_) => Weight::new(embedding),
            None => Weight::new(embedding).with_step_copy()?,
        };
        Ok(Self {
            token_embedding,
            logits_packed,
            positions: w.get("decoder.positions", &[c.n_text_ctx, d])?,
            blocks,
            ln: layer_norm(w, "decoder.ln", d)?,
            n_text_ctx: c.n_text_ctx,
        })
    }

    /// The most positions one sequence may hold.
    pub fn max_positions(&self) -> usize {
        self.n_text_ctx
    }

    /// A fresh cache for the windows of `audio`, whose cross-attention K/V it shares.
    pub fn new_cache(&self, audio: &EncodedAudio) -> DecoderCache {
        let layers = audio
            .layers()
            .iter()
            .map(|l| LayerCache::new(l.k.clone(), l.v.clone()))
            .collect();
        DecoderCache::new(layers)
    }

    /// Runs `tokens` (`[B, L]`, u32) through the decoder, appending to `cache`. Row `b` is
    /// left-padded by `pads[b]` positions: padding is hidden from attention and positions count
    /// from the first real token. Returns the final hidden states `[B, L, d]`; turn the ones
    /// needed into logits with [`Self::logits`].
    pub fn forward(
        &self,
        tokens: &Tensor,
        cache: &mut DecoderCache,
        pads: &[usize],
    ) -> candle_core::Result<Tensor> {
        let l = tokens.dim(1)?;
        let table = &self.token_embedding.full;
        let (dtype, device) = (table.dtype(), table.device());
        let cached = cache.cached_positions();
        let mut x = self.embed(tokens, pads, cached)?;
        // One new token per row on the CPU goes through the fused kernel, which takes the
        // padding directly; only the general path needs the mask tensor.
        let fused = l == 1 && device.is_cpu() && dtype == DType::F32;
        let mask = match fused {
            true => None,
            false => Some(step_mask(pads, cached, l, device, dtype)?),
        };
        let step = DecoderStep { pads, mask };
        let windows = cache.cross_rows().map(<[u32]>::to_vec);
        for (block, layer) in self.blocks.iter().zip(cache.layers_mut()) {
            let h = block
                .attn
                .forward_cached(&block.attn_ln.forward(&x)?, layer, &step)?;
            x = (x + h)?;
            let (k, v) = layer.cross();
            let h = block
                .cross
                .forward(&block.cross_ln.forward(&x)?, k, v, windows.as_deref())?;
            x = (x + h)?;
            x = (&x + block.mlp.forward(&block.mlp_ln.forward(&x)?)?)?;
        }
        self.ln.forward(&x)
    }

    /// Token plus position embeddings of `tokens` (`[B, L]`) placed after `cached` positions,
    /// positions counted from each row's first real token.
    fn embed(&self, tokens: &Tensor, pads: &[usize], cached: usize) -> candle_core::Result<Tensor> {
        let (b, l) = tokens.dims2()?;
        let table = &self.token_embedding.full;
        let d = table.dim(1)?;
        let positions = step_positions(pads, cached, l, table.device())?;
        let token_vectors = table
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((b, l, d))?;
        let position_vectors = self
            .positions
            .index_select(&positions, 0)?
            .reshape((b, l, d))?;
        token_vectors + position_vectors
    }

    /// Vocabulary logits for hidden states `[B, N, d]` → `[B, N, vocab]`, in f32.
    pub fn logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n, d) = hidden.dims3()?;
        let flat = hidden.reshape((b * n, d))?;
        let logits = match &self.logits_packed {
            Some(packed) => packed.forward(&flat.contiguous()?)?,
            _ => self.token_embedding.project(&flat)?,
        };
        logits.reshape((b, n, ()))?.to_dtype(DType::F32)
    }
}

//! The Silero VAD network for 16 kHz audio, on candle's CPU backend.
//!
//! Per chunk the input is the chunk's 512 samples with the previous chunk's last 64 in front
//! (the model was trained seeing that context), reflect-padded by 64 on the right. A whole run
//! of chunks goes through the convolutions as one batch; only the LSTM, whose state links the
//! chunks, steps one chunk at a time, and its input projection is batched too.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv1d, Conv1dConfig};

use super::SileroError;
use super::onnx::{RawTensor, float_constants};

/// Samples the network judges at a time (32 ms at 16 kHz).
pub const CHUNK_SAMPLES: usize = 512;
/// Samples of the previous chunk placed in front of each chunk.
pub const CONTEXT_SAMPLES: usize = 64;
/// Right padding (reflect) before the STFT.
const PAD: usize = 64;
/// Samples per network input after padding.
const INPUT: usize = CONTEXT_SAMPLES + CHUNK_SAMPLES + PAD;
const N_FFT: usize = 256;
const HOP: usize = 128;
/// Frequency bins of the STFT (n_fft / 2 + 1).
const BINS: usize = N_FFT / 2 + 1;
const HIDDEN: usize = 128;

/// The loaded network; immutable, shared by every stream (each keeps its own [`SileroState`]).
#[derive(Debug)]
pub struct SileroVad {
    stft: Conv1d,
    encoder: [Conv1d; 4],
    /// LSTM input weights, transposed: (128, 512), gates in PyTorch order i, f, g, o.
    w_ih_t: Tensor,
    /// LSTM recurrent weights, transposed: (128, 512).
    w_hh_t: Tensor,
    /// `b_ih + b_hh`: (512).
    bias: Tensor,
    /// The head's 1×1 convolution as a column: (128, 1).
    head_w: Tensor,
    head_b: Tensor,
}

/// One stream's recurrent state: the LSTM's `h` and `c` and the last 64 samples seen.
#[derive(Debug, Clone)]
pub struct SileroState {
    h: Tensor,
    c: Tensor,
    context: [f32; CONTEXT_SAMPLES],
}

impl SileroState {
    /// The state before any audio: zeros, as silero-vad's `reset_states` makes it.
    pub fn new() -> Self {
        let zeros = || Tensor::zeros((1, HIDDEN), DType::F32, &Device::Cpu);
        Self {
            // Allocation of two 128-float CPU tensors cannot fail.
            h: zeros().expect("cpu zeros"),
            c: zeros().expect("cpu zeros"),
            context: [0.0; CONTEXT_SAMPLES],
        }
    }
}

impl Default for SileroState {
    fn default() -> Self {
        Self::new()
    }
}

/// The weights of the 16 kHz branch, by their PyTorch names, with the shapes we build for.
const WEIGHTS: [(&str, &[usize]); 14] = [
    ("stft.forward_basis_buffer", &[2 * BINS, 1, N_FFT]),
    ("encoder.0.reparam_conv.weight", &[128, BINS, 3]),
    ("encoder.0.reparam_conv.bias", &[128]),
    ("encoder.1.reparam_conv.weight", &[64, 128, 3]),
    ("encoder.1.reparam_conv.bias", &[64]),
    ("encoder.2.reparam_conv.weight", &[64, 64, 3]),
    ("encoder.2.reparam_conv.bias", &[64]),
    ("encoder.3.reparam_conv.weight", &[128, 64, 3]),
    ("encoder.3.reparam_conv.bias", &[128]),
    ("decoder.rnn.weight_ih", &[4 * HIDDEN, HIDDEN]),
    ("decoder.rnn.weight_hh", &[4 * HIDDEN, HIDDEN]),
    ("decoder.rnn.bias_ih", &[4 * HIDDEN]),
    ("decoder.rnn.bias_hh", &[4 * HIDDEN]),
    ("decoder.decoder.2.weight", &[1, HIDDEN, 1]),
];
const HEAD_BIAS: &str = "decoder.decoder.2.bias";

impl SileroVad {
    /// Loads `silero_vad.onnx` (the file silero-vad ships under `silero_vad/data/`).
    pub fn load(path: &Path) -> Result<Self, SileroError> {
        let bytes = std::fs::read(path).map_err(|source| SileroError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_onnx(&bytes)
    }

    /// Builds the network from the bytes of the ONNX export.
    pub fn from_onnx(bytes: &[u8]) -> Result<Self, SileroError> {
        let constants = float_constants(bytes)?;
        let weights = sixteen_khz_branch(&constants)?;
        let tensor = |name: &str| -> Result<Tensor, SileroError> {
            let raw = &weights[name];
            Ok(Tensor::from_slice(
                &raw.values,
                raw.dims.as_slice(),
                &Device::Cpu,
            )?)
        };
        let conv = |i: usize, stride: usize| -> Result<Conv1d, SileroError> {
            let config = Conv1dConfig {
                padding: 1,
                stride,
                ..Conv1dConfig::default()
            };
            Ok(Conv1d::new(
                tensor(&format!("encoder.{i}.reparam_conv.weight"))?,
                Some(tensor(&format!("encoder.{i}.reparam_conv.bias"))?),
                config,
            ))
        };
        let stft_config = Conv1dConfig {
            stride: HOP,
            ..Conv1dConfig::default()
        };
        Ok(Self {
            stft: Conv1d::new(tensor("stft.forward_basis_buffer")?, None, stft_config),
            encoder: [conv(0, 1)?, conv(1, 2)?, conv(2, 2)?, conv(3, 1)?],
            w_ih_t: tensor("decoder.rnn.weight_ih")?.t()?.contiguous()?,
            w_hh_t: tensor("decoder.rnn.weight_hh")?.t()?.contiguous()?,
            bias: (tensor("decoder.rnn.bias_ih")? + tensor("decoder.rnn.bias_hh")?)?,
            head_w: tensor("decoder.decoder.2.weight")?.reshape((HIDDEN, 1))?,
            head_b: tensor(HEAD_BIAS)?,
        })
    }

    /// The speech probability of each whole 512-sample chunk of `samples`, continuing `state`
    /// (a trailing part chunk is ignored: callers keep it until it fills).
    pub fn probabilities(
        &self,
        samples: &[f32],
        state: &mut SileroState,
    ) -> Result<Vec<f32>, SileroError> {
        let n = samples.len() / CHUNK_SAMPLES;
        if n == 0 {
            return Ok(Vec::new());
        }
        let input = Tensor::from_vec(
            padded_inputs(samples, n, state),
            (n, 1, INPUT),
            &Device::Cpu,
        )?;
        let features = self.features(&input)?;
        let projected = features.matmul(&self.w_ih_t)?.broadcast_add(&self.bias)?;
        let mut hidden = Vec::with_capacity(n);
        for i in 0..n {
            self.lstm_step(&projected.narrow(0, i, 1)?, state)?;
            hidden.push(state.h.clone());
        }
        let hidden = Tensor::cat(&hidden, 0)?.relu()?;
        let logits = hidden.matmul(&self.head_w)?.broadcast_add(&self.head_b)?;
        let probs = candle_nn::ops::sigmoid(&logits)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let last = &samples[n * CHUNK_SAMPLES - CONTEXT_SAMPLES..n * CHUNK_SAMPLES];
        state.context.copy_from_slice(last);
        Ok(probs)
    }

    /// STFT magnitude and the four convolutions: (n, 1, 640) → (n, 128).
    fn features(&self, input: &Tensor) -> Result<Tensor, SileroError> {
        let spectrum = self.stft.forward(input)?;
        let real = spectrum.narrow(1, 0, BINS)?;
        let imag = spectrum.narrow(1, BINS, BINS)?;
        let mut x = (real.sqr()? + imag.sqr()?)?.sqrt()?;
        for conv in &self.encoder {
            x = conv.forward(&x)?.relu()?;
        }
        // (n, 128, 1): one time step is left after the two stride-2 convolutions.
        Ok(x.squeeze(2)?)
    }

    /// One LSTM cell step from the projected input `x_proj` (1, 512).
    fn lstm_step(&self, x_proj: &Tensor, state: &mut SileroState) -> Result<(), SileroError> {
        let gates = (x_proj + state.h.matmul(&self.w_hh_t)?)?;
        let chunks = gates.chunk(4, 1)?;
        let input = candle_nn::ops::sigmoid(&chunks[0])?;
        let forget = candle_nn::ops::sigmoid(&chunks[1])?;
        let cell = chunks[2].tanh()?;
        let output = candle_nn::ops::sigmoid(&chunks[3])?;
        state.c = ((forget * &state.c)? + (input * cell)?)?;
        state.h = (output * state.c.tanh()?)?;
        Ok(())
    }
}

/// Each chunk with its 64 samples of context in front and 64 reflected samples behind, as one
/// flat (n × 640) buffer.
fn padded_inputs(samples: &[f32], n: usize, state: &SileroState) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * INPUT);
    for i in 0..n {
        let start = out.len();
        if i == 0 {
            out.extend_from_slice(&state.context);
        } else {
            out.extend_from_slice(&samples[i * CHUNK_SAMPLES - CONTEXT_SAMPLES..i * CHUNK_SAMPLES]);
        }
        out.extend_from_slice(&samples[i * CHUNK_SAMPLES..(i + 1) * CHUNK_SAMPLES]);
        // Reflect (edge excluded): x[L + j] = x[L - 2 - j].
        let unpadded = CONTEXT_SAMPLES + CHUNK_SAMPLES;
        for j in 0..PAD {
            out.push(out[start + unpadded - 2 - j]);
        }
    }
    out
}

/// The 16 kHz branch's weights by PyTorch name. The export holds one set per sample rate, each
/// name prefixed by its branch; the 16 kHz set is the one whose STFT basis is 258 filters wide.
fn sixteen_khz_branch(
    constants: &HashMap<String, RawTensor>,
) -> Result<HashMap<&'static str, RawTensor>, SileroError> {
    let (basis_name, basis_shape) = WEIGHTS[0];
    let prefix = constants
        .iter()
        .find(|(name, raw)| name.ends_with(basis_name) && raw.dims == basis_shape)
        .map(|(name, _)| &name[..name.len() - basis_name.len()])
        .ok_or_else(|| {
            SileroError::Weights(format!(
                "no {basis_name} of shape {basis_shape:?}: not Silero VAD v5/v6 with a 16 kHz branch"
            ))
        })?;
    let mut out = HashMap::new();
    for (name, shape) in WEIGHTS.iter().copied().chain([(HEAD_BIAS, &[1usize][..])]) {
        let raw = constants
            .get(&format!("{prefix}{name}"))
            .ok_or_else(|| SileroError::Weights(format!("missing {name}")))?;
        if raw.dims != shape {
            return Err(SileroError::Weights(format!(
                "{name} has shape {:?}, expected {shape:?}",
                raw.dims
            )));
        }
        out.insert(name, raw.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_carry_context_and_a_reflected_tail() {
        let samples: Vec<f32> = (0..2 * CHUNK_SAMPLES).map(|i| i as f32).collect();
        let mut state = SileroState::new();
        state.context = [-1.0; CONTEXT_SAMPLES];
        let flat = padded_inputs(&samples, 2, &state);
        assert_eq!(flat.len(), 2 * INPUT);
        let (first, second) = flat.split_at(INPUT);
        assert_eq!(first[..CONTEXT_SAMPLES], [-1.0; CONTEXT_SAMPLES]);
        assert_eq!(first[CONTEXT_SAMPLES], 0.0);
        // Last real sample 511 at index 575; the pad mirrors around it: 510, 509, ...
        assert_eq!(first[575], 511.0);
        assert_eq!(first[576], 510.0);
        assert_eq!(first[639], 447.0);
        assert_eq!(second[0], 448.0);
        assert_eq!(second[CONTEXT_SAMPLES], 512.0);
    }
}

//! The decoder pass behind word timing: every window's `sot … <|notimestamps|> text <|eot|>`
//! in one batched call, returning per window the alignment heads' weights over its audio and
//! the probability of each text token.

use candle_core::{Device, Tensor};

use crate::model::whisper::decode::DecodeError;
use crate::model::whisper::model::{EncodedAudio, Whisper};
use crate::model::whisper::ops::softmax_last_dim;
use crate::model::whisper::tokens::WhisperTokenizer;

/// One window's part of the pass.
pub(super) struct PassInput<'a> {
    /// Start sequence (`sot`, language, task).
    pub(super) sot_sequence: &'a [u32],
    /// Text tokens of the window, non-empty.
    pub(super) text: &'a [u32],
    /// Encoder frames holding audio (mel frames / 2).
    pub(super) audio_positions: usize,
}

/// What the decoder pass yields for one window.
pub(super) struct RowPass {
    /// Alignment-head weights `[heads, tokens, frames]` over the whole sequence, softmax over
    /// the window's audio frames.
    pub(super) weights: Vec<f32>,
    /// Tokens in the sequence: start sequence, `<|notimestamps|>`, text, eot.
    pub(super) tokens: usize,
    /// Audio frames the weights cover.
    pub(super) frames: usize,
    /// Probability of each text token given the ones before it.
    pub(super) text_probs: Vec<f32>,
    /// Length of the start sequence.
    pub(super) sot_len: usize,
}

/// Runs all windows' sequences (left-padded to one length) through the decoder at once;
/// `audio` holds one encoder row per input.
pub(super) fn decoder_pass(
    model: &Whisper,
    tokenizer: &WhisperTokenizer,
    audio: &EncodedAudio,
    inputs: &[PassInput<'_>],
) -> Result<Vec<RowPass>, DecodeError> {
    let eot = tokenizer.special().eot;
    let sequences: Vec<Vec<u32>> = inputs
        .iter()
        .map(|i| alignment_sequence(tokenizer, i.sot_sequence, i.text))
        .collect();
    let longest = sequences.iter().map(Vec::len).max().unwrap_or(0);
    if longest > model.decoder.max_positions() {
        let msg = format!("{longest} tokens to align exceed the decoder's context");
        return Err(candle_core::Error::Msg(msg).into());
    }
    let pads: Vec<usize> = sequences.iter().map(|s| longest - s.len()).collect();
    let flat: Vec<u32> = sequences
        .iter()
        .zip(&pads)
        .flat_map(|(s, &pad)| std::iter::repeat_n(eot, pad).chain(s.iter().copied()))
        .collect();
    let tokens = Tensor::from_vec(flat, (sequences.len(), longest), model.device())?;
    let mut cache = model.decoder.new_cache(audio);
    let heads = &model.config.alignment_heads;
    let positions: Vec<usize> = inputs.iter().map(|i| i.audio_positions).collect();
    let pass = model
        .decoder
        .forward_with_cross_weights(&tokens, &mut cache, &pads, heads, &positions)?;
    let weights = pass.weights.to_device(&Device::Cpu)?;
    let audio_frames = audio.positions();
    let mut rows = Vec::with_capacity(sequences.len());
    for (r, (seq, input)) in sequences.iter().zip(inputs).enumerate() {
        let frames = input.audio_positions.clamp(1, audio_frames);
        let row = weights
            .get(r)?
            .narrow(1, pads[r], seq.len())?
            .narrow(2, 0, frames)?;
        let sot_len = input.sot_sequence.len();
        // The position of <|notimestamps|> predicts the first text token.
        let first = pads[r] + sot_len;
        rows.push(RowPass {
            weights: row.flatten_all()?.to_vec1()?,
            tokens: seq.len(),
            frames,
            text_probs: text_token_probs(model, &pass.hidden, r, first, input.text, eot)?,
            sot_len,
        });
    }
    Ok(rows)
}

/// `sot_sequence <|notimestamps|> text <|endoftext|>`: what the decoder reads to align.
fn alignment_sequence(
    tokenizer: &WhisperTokenizer,
    sot_sequence: &[u32],
    text: &[u32],
) -> Vec<u32> {
    let special = tokenizer.special();
    let mut seq = sot_sequence.to_vec();
    seq.push(special.no_timestamps);
    seq.extend_from_slice(text);
    seq.push(special.eot);
    seq
}

/// Probability of each text token at the position that predicts it, with the softmax over
/// text tokens only (timestamps and specials excluded), as openai-whisper computes it.
fn text_token_probs(
    model: &Whisper,
    hidden: &Tensor,
    row: usize,
    first: usize,
    text: &[u32],
    eot: u32,
) -> Result<Vec<f32>, DecodeError> {
    let h = hidden.narrow(0, row, 1)?.narrow(1, first, text.len())?;
    let logits = model.decoder.logits(&h)?.narrow(2, 0, eot as usize)?;
    let probs = softmax_last_dim(&logits.contiguous()?)?;
    let index = Tensor::new(text, hidden.device())?.reshape((1, text.len(), 1))?;
    Ok(probs.gather(&index, 2)?.flatten_all()?.to_vec1()?)
}

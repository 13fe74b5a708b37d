//! Spoken-language detection: one decoder step from `<|startoftranscript|>`, restricted to the
//! language tokens (multilingual models only).

use candle_core::Tensor;

use super::DecodeError;
use super::rules::log_softmax;
use crate::model::whisper::model::{EncodedAudio, Whisper};
use crate::model::whisper::tokens::WhisperTokenizer;

/// The likeliest language (code, probability) of each window of `audio`.
pub fn detect_languages(
    model: &Whisper,
    tokenizer: &WhisperTokenizer,
    audio: &EncodedAudio,
) -> Result<Vec<(&'static str, f32)>, DecodeError> {
    let b = audio.rows();
    let device = model.device();
    let mut cache = model.decoder.new_cache(audio);
    let tokens = Tensor::from_vec(vec![tokenizer.special().sot; b], (b, 1), device)?;
    let hidden = model.decoder.forward(&tokens, &mut cache, &vec![0; b])?;
    let logits = model
        .decoder
        .logits(&hidden)?
        .squeeze(1)?
        .to_vec2::<f32>()?;
    let languages = tokenizer.language_tokens();
    Ok(logits
        .iter()
        .map(|row| {
            let lang_logits: Vec<f32> = languages.iter().map(|(_, t)| row[*t as usize]).collect();
            let probs = log_softmax(&lang_logits);
            let (best, lp) = probs
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, lp)| (i, *lp))
                .unwrap_or((0, 0.0));
            (languages.get(best).map_or("en", |l| l.0), lp.exp())
        })
        .collect())
}

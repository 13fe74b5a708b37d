//! One audio window per row, decoded with Whisper's temperature fallback: rows whose output
//! looks degenerate (too repetitive, or too unlikely) are decoded again at the next
//! temperature, still batched with the other rows that failed.

use std::io::Write;

use super::rules::LogitRules;
use super::search::{DecodeLimits, RowRequest, RowResult, decode_rows};
use super::{DecodeError, DecodeOptions};
use crate::model::whisper::model::{EncodedAudio, Whisper};
use crate::model::whisper::tokens::WhisperTokenizer;

/// What to decode in one window: the prompt (previous text tokens) and start sequence.
#[derive(Debug, Clone)]
pub struct WindowJob {
    /// Previous text (tokens, timestamps included), most recent last; may be empty.
    pub prompt: Vec<u32>,
    /// The start-of-transcript sequence for this window's language and task.
    pub sot_sequence: Vec<u32>,
    /// Temperatures to try in turn while the output fails the quality checks (one entry: a
    /// single pass, as a streaming interim takes).
    pub temperatures: Vec<f32>,
    /// Decode with timestamps (segments within the window); without, the window is one
    /// segment.
    pub timestamps: bool,
    /// Hypotheses a beam search keeps at temperature 0 (1: greedy); sampling ignores it.
    pub beam_size: usize,
}

/// The accepted decoding of one window.
#[derive(Debug, Clone)]
pub struct WindowOutcome {
    /// Tokens, timestamps and the no-speech probability.
    pub result: RowResult,
    /// Decoded text of the whole window.
    pub text: String,
    /// gzip-style compression ratio of `text`; high means repetitive.
    pub compression_ratio: f32,
}

impl WindowOutcome {
    /// Average log-probability per token.
    pub fn avg_logprob(&self) -> f64 {
        self.result.avg_logprob()
    }

    /// Whisper's silence rule: confident no-speech and an unconvincing transcript.
    pub fn is_silence(&self, opts: &DecodeOptions) -> bool {
        let no_speech = opts
            .no_speech_threshold
            .is_some_and(|t| self.result.no_speech_prob > t);
        let unlikely = opts
            .log_prob_threshold
            .is_none_or(|t| self.avg_logprob() < t as f64);
        no_speech && unlikely
    }

    fn needs_fallback(&self, opts: &DecodeOptions) -> bool {
        let repetitive = opts
            .compression_ratio_threshold
            .is_some_and(|t| self.compression_ratio > t);
        let unlikely = opts
            .log_prob_threshold
            .is_some_and(|t| self.avg_logprob() < t as f64);
        (repetitive || unlikely) && !self.is_silence(opts)
    }
}

/// Decodes each window (row i of `audio` with `jobs[i]`), falling back through each job's
/// temperatures; `opts` gives the quality thresholds.
pub fn decode_with_fallback(
    model: &Whisper,
    tokenizer: &WhisperTokenizer,
    audio: &EncodedAudio,
    jobs: &[WindowJob],
    opts: &DecodeOptions,
    rules: &LogitRules,
) -> Result<Vec<WindowOutcome>, DecodeError> {
    let limits = DecodeLimits {
        sample_len: opts.sample_len.unwrap_or(model.config.n_text_ctx / 2),
    };
    let mut attempts: Vec<Vec<WindowOutcome>> = vec![Vec::new(); jobs.len()];
    let mut pending: Vec<usize> = (0..jobs.len()).collect();
    for round in 0.. {
        pending.retain(|&i| round < jobs[i].temperatures.len());
        if pending.is_empty() {
            break;
        }
        let requests: Vec<RowRequest> = pending
            .iter()
            .map(|&i| {
                row_request(
                    model,
                    tokenizer,
                    &jobs[i],
                    jobs[i].temperatures[round],
                    (round * 7919 + i) as u64,
                )
            })
            .collect();
        let rows = audio.select(&pending)?;
        if round > 0 {
            tracing::debug!(rows = pending.len(), round, "temperature fallback");
        }
        let results = decode_rows(model, &rows, &requests, rules, limits)?;
        let mut still = Vec::new();
        for (&i, result) in pending.iter().zip(results) {
            super::phases::count_attempt(result.tokens.len());
            let outcome = outcome(tokenizer, result)?;
            let retry = outcome.needs_fallback(opts);
            attempts[i].push(outcome);
            if retry {
                still.push(i);
            }
        }
        pending = still;
    }
    Ok(attempts.into_iter().map(|a| choose(a, opts)).collect())
}

/// The last attempt if it passed; when every temperature failed, the likeliest attempt among
/// those that are not repetitive (faster-whisper's rule).
fn choose(mut attempts: Vec<WindowOutcome>, opts: &DecodeOptions) -> WindowOutcome {
    let last_passed = attempts.last().is_some_and(|a| !a.needs_fallback(opts));
    if last_passed || attempts.len() == 1 {
        return attempts.pop().expect("at least one attempt");
    }
    let not_repetitive = |a: &WindowOutcome| {
        opts.compression_ratio_threshold
            .is_none_or(|t| a.compression_ratio <= t)
    };
    let pool: Vec<WindowOutcome> = if attempts.iter().any(not_repetitive) {
        attempts.into_iter().filter(not_repetitive).collect()
    } else {
        attempts
    };
    pool.into_iter()
        .max_by(|a, b| a.avg_logprob().total_cmp(&b.avg_logprob()))
        .expect("non-empty pool")
}

/// `<|startofprev|>` + the last (n_text_ctx/2 − 1) prompt tokens, then the start sequence
/// (and `<|notimestamps|>` for a job without timestamps).
fn row_request(
    model: &Whisper,
    tokenizer: &WhisperTokenizer,
    job: &WindowJob,
    temperature: f32,
    seed: u64,
) -> RowRequest {
    let special = tokenizer.special();
    let mut prefix = Vec::new();
    if !job.prompt.is_empty() {
        let keep = model.config.n_text_ctx / 2 - 1;
        let start = job.prompt.len().saturating_sub(keep);
        prefix.push(special.sot_prev);
        prefix.extend_from_slice(&job.prompt[start..]);
    }
    let sot_index = prefix.len();
    prefix.extend_from_slice(&job.sot_sequence);
    if !job.timestamps {
        prefix.push(special.no_timestamps);
    }
    RowRequest {
        prefix,
        sot_index,
        temperature,
        beam_size: job.beam_size,
        seed,
        timestamps: job.timestamps,
    }
}

fn outcome(tokenizer: &WhisperTokenizer, result: RowResult) -> Result<WindowOutcome, DecodeError> {
    let text = tokenizer.decode(&result.tokens)?;
    let compression_ratio = compression_ratio(&text);
    Ok(WindowOutcome {
        result,
        text,
        compression_ratio,
    })
}

/// `len(text) / len(zlib(text))`, as Whisper measures repetitiveness.
pub fn compression_ratio(text: &str) -> f32 {
    if text.is_empty() {
        return 0.0;
    }
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    encoder
        .write_all(text.as_bytes())
        .expect("writing to a Vec cannot fail");
    let compressed = encoder.finish().expect("writing to a Vec cannot fail");
    text.len() as f32 / compressed.len() as f32
}

#[cfg(test)]
mod tests {
    use super::compression_ratio;

    #[test]
    fn repetition_compresses_well() {
        let normal = "And so my fellow Americans, ask not what your country can do for you.";
        let looped = "I'm sorry. ".repeat(40);
        assert!(compression_ratio(normal) < 2.0);
        assert!(compression_ratio(&looped) > 2.4);
    }
}

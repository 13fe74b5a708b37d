//! Batched greedy (or temperature-sampled) decoding of B audio windows at once.
//!
//! Rows may start from prompts of different lengths: they are left-padded to a common length
//! and an additive mask hides the padding, so each row computes exactly what it would alone.
//! A row leaves the batch as soon as it emits end-of-text, shrinking every later step.

use candle_core::{Device, Tensor};

use super::DecodeError;
use super::rules::{LogitRules, log_softmax};
use crate::model::whisper::model::{EncodedAudio, Whisper};

/// One row to decode: its start tokens and sampling temperature.
#[derive(Debug, Clone)]
pub struct RowRequest {
    /// Everything before the first sampled token: optional `<|startofprev|>` + prompt, then the
    /// start-of-transcript sequence (and `<|notimestamps|>` when timestamps are off).
    pub prefix: Vec<u32>,
    /// Index in `prefix` of `<|startoftranscript|>` (its logits give the no-speech probability).
    pub sot_index: usize,
    /// 0 = greedy; above 0 samples from `softmax(logits / temperature)`.
    pub temperature: f32,
    /// Seed for sampling, so results are reproducible.
    pub seed: u64,
    /// Sample timestamps (Whisper's timestamp grammar); false when `prefix` ends with
    /// `<|notimestamps|>`.
    pub timestamps: bool,
}

/// What one row produced.
#[derive(Debug, Clone)]
pub struct RowResult {
    /// Sampled tokens, without the final end-of-text.
    pub tokens: Vec<u32>,
    /// Sum of the log-probabilities of the sampled tokens, end-of-text included.
    pub sum_logprob: f64,
    /// Probability of `<|nospeech|>` at the start-of-transcript position.
    pub no_speech_prob: f32,
    /// The temperature used.
    pub temperature: f32,
}

impl RowResult {
    /// Whisper's average log-probability: the sum over (tokens + 1).
    pub fn avg_logprob(&self) -> f64 {
        self.sum_logprob / (self.tokens.len() + 1) as f64
    }
}

/// Limits of one decoding call.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Most tokens sampled per row (Whisper: half the text context, 224).
    pub sample_len: usize,
}

/// Decodes every row of `requests` against its encoded window (row i of `audio`).
pub fn decode_rows(
    model: &Whisper,
    audio: &EncodedAudio,
    requests: &[RowRequest],
    rules: &LogitRules,
    limits: DecodeLimits,
) -> Result<Vec<RowResult>, DecodeError> {
    let device = model.device().clone();
    let dec = &model.decoder;
    let started = std::time::Instant::now();
    let mut cache = dec.new_cache(audio);
    let mut rules_time = std::time::Duration::ZERO;
    let width = requests.iter().map(|r| r.prefix.len()).max().unwrap_or(0);
    let pads: Vec<usize> = requests.iter().map(|r| width - r.prefix.len()).collect();
    let mut rows: Vec<RowState> = requests.iter().map(RowState::new).collect();

    // First pass: the whole (left-padded) prefix of every row at once.
    let tokens = prefix_tokens(requests, &pads, &device)?;
    let hidden = dec.forward(&tokens, &mut cache, &pads)?;
    let (sot_logits, last_logits) = first_logits(model, &hidden, requests, &pads)?;
    for (row, sot) in rows.iter_mut().zip(&sot_logits) {
        let no_speech = rules.special.no_speech as usize;
        row.no_speech_prob = log_softmax(sot)[no_speech].exp();
    }
    let mut logits = last_logits;
    // `active[i]` = index into `rows` of batch row i.
    let mut active: Vec<usize> = (0..rows.len()).collect();
    let max_len = dec.max_positions();
    loop {
        let rules_started = std::time::Instant::now();
        let mut still = Vec::with_capacity(active.len());
        for (i, &r) in active.iter().enumerate() {
            let done = rows[r].step(&mut logits[i], rules);
            let full = rows[r].tokens.len() >= limits.sample_len
                || width + rows[r].tokens.len() >= max_len;
            if !done && !full {
                still.push(i);
            }
        }
        rules_time += rules_started.elapsed();
        if still.is_empty() {
            break;
        }
        if still.len() != active.len() {
            let keep: Vec<u32> = still.iter().map(|&i| i as u32).collect();
            cache.retain_rows(&Tensor::new(keep.as_slice(), &device)?)?;
            active = still.iter().map(|&i| active[i]).collect();
        }
        let step_pads: Vec<usize> = active.iter().map(|&r| pads[r]).collect();
        let last: Vec<u32> = active
            .iter()
            .map(|&r| *rows[r].tokens.last().expect("sampled"))
            .collect();
        let tokens = Tensor::from_vec(last, (active.len(), 1), &device)?;
        let hidden = dec.forward(&tokens, &mut cache, &step_pads)?;
        logits = logit_rows(&dec.logits(&hidden)?)?;
    }
    tracing::debug!(
        rows = rows.len(),
        prefix = width,
        steps = rows.iter().map(|r| r.tokens.len() + 1).max().unwrap_or(0),
        tokens = rows.iter().map(|r| r.tokens.len() + 1).sum::<usize>(),
        seconds = started.elapsed().as_secs_f64(),
        rules_seconds = rules_time.as_secs_f64(),
        "decoded batch"
    );
    Ok(rows.into_iter().map(RowState::finish).collect())
}

/// A row's progress through decoding.
struct RowState {
    tokens: Vec<u32>,
    sum_logprob: f64,
    no_speech_prob: f32,
    temperature: f32,
    rng: SplitMix64,
    timestamps: bool,
    finished: bool,
}

impl RowState {
    fn new(req: &RowRequest) -> Self {
        Self {
            tokens: Vec::new(),
            sum_logprob: 0.0,
            no_speech_prob: 0.0,
            temperature: req.temperature,
            rng: SplitMix64(req.seed),
            timestamps: req.timestamps,
            finished: false,
        }
    }

    /// Chooses the next token from `logits`; returns true when the row has ended.
    fn step(&mut self, logits: &mut [f32], rules: &LogitRules) -> bool {
        rules.apply(logits, &self.tokens, self.timestamps);
        let log_probs = log_softmax(logits);
        let token = if self.temperature > 0.0 {
            sample(logits, self.temperature, &mut self.rng)
        } else {
            argmax(logits)
        };
        self.sum_logprob += log_probs[token] as f64;
        if token as u32 == rules.special.eot {
            self.finished = true;
        } else {
            self.tokens.push(token as u32);
        }
        self.finished
    }

    fn finish(self) -> RowResult {
        RowResult {
            tokens: self.tokens,
            sum_logprob: self.sum_logprob,
            no_speech_prob: self.no_speech_prob,
            temperature: self.temperature,
        }
    }
}

fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// Draws from `softmax(logits / temperature)`.
fn sample(logits: &[f32], temperature: f32, rng: &mut SplitMix64) -> usize {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| (((l - max) / temperature) as f64).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut target = rng.next_f64() * total;
    for (i, w) in weights.iter().enumerate() {
        target -= w;
        if target <= 0.0 && *w > 0.0 {
            return i;
        }
    }
    argmax(logits)
}

/// A tiny, well-known PRNG (SplitMix64): sampling needs reproducibility, not cryptography.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Left-padded token ids for the prefix pass, `[B, width]`.
fn prefix_tokens(
    requests: &[RowRequest],
    pads: &[usize],
    device: &Device,
) -> Result<Tensor, DecodeError> {
    let width = requests.iter().map(|r| r.prefix.len()).max().unwrap_or(0);
    let tokens: Vec<u32> = requests
        .iter()
        .zip(pads)
        .flat_map(|(req, &pad)| std::iter::repeat_n(0u32, pad).chain(req.prefix.iter().copied()))
        .collect();
    Ok(Tensor::from_vec(tokens, (requests.len(), width), device)?)
}

/// Splits `[B, 1, vocab]` logits into one CPU row per batch row with a single copy.
fn logit_rows(logits: &Tensor) -> Result<LogitRows, DecodeError> {
    let vocab = logits.dim(2)?;
    let flat = logits.flatten_all()?.to_vec1::<f32>()?;
    Ok(flat.chunks_exact(vocab).map(<[f32]>::to_vec).collect())
}

/// One logits row per batch row, on the CPU.
type LogitRows = Vec<Vec<f32>>;

/// Logits at each row's start-of-transcript and last prefix positions, as CPU rows.
fn first_logits(
    model: &Whisper,
    hidden: &Tensor,
    requests: &[RowRequest],
    pads: &[usize],
) -> Result<(LogitRows, LogitRows), DecodeError> {
    let (b, width, d) = hidden.dims3()?;
    let mut picks = Vec::with_capacity(2 * b);
    for (i, (req, &pad)) in requests.iter().zip(pads).enumerate() {
        picks.push((i * width + pad + req.sot_index) as u32);
        picks.push((i * width + width - 1) as u32);
    }
    let index = Tensor::new(picks.as_slice(), model.device())?;
    let chosen = hidden
        .reshape((b * width, d))?
        .index_select(&index, 0)?
        .reshape((b, 2, d))?;
    let logits = model.decoder.logits(&chosen)?.to_vec3::<f32>()?;
    Ok(logits
        .into_iter()
        .map(|mut pair| {
            let last = pair.pop().expect("two rows");
            let sot = pair.pop().expect("two rows");
            (sot, last)
        })
        .unzip())
}

//! Batched decoding of B audio windows at once: greedy, sampled at a temperature, or a beam
//! search.
//!
//! Rows may start from prompts of different lengths: they are left-padded to a common length
//! and an additive mask hides the padding, so each row computes exactly what it would alone.
//! A window decoded with a beam of N holds N batch rows (its hypotheses), which share its
//! encoder output. A window leaves the batch as soon as it is decided, shrinking every later
//! step.

use candle_core::{Device, Tensor};

use super::DecodeError;
use super::rules::{LogitRules, log_softmax};
use crate::model::whisper::model::{EncodedAudio, Whisper};

/// One row to decode: its start tokens and how to choose tokens.
#[derive(Debug, Clone)]
pub struct RowRequest {
    /// Everything before the first sampled token: optional `<|startofprev|>` + prompt, then the
    /// start-of-transcript sequence (and `<|notimestamps|>` when timestamps are off).
    pub prefix: Vec<u32>,
    /// Index in `prefix` of `<|startoftranscript|>` (its logits give the no-speech probability).
    pub sot_index: usize,
    /// 0 = greedy (or a beam search); above 0 samples from `softmax(logits / temperature)`.
    pub temperature: f32,
    /// Hypotheses kept by a beam search at temperature 0; 1 is greedy. Ignored when sampling.
    pub beam_size: usize,
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
    let max_tokens = limits
        .sample_len
        .min(dec.max_positions().saturating_sub(width));
    let mut windows: Vec<Window> = requests
        .iter()
        .map(|r| Window::new(r, max_tokens))
        .collect();

    // First pass: the whole (left-padded) prefix of every row at once.
    let tokens = prefix_tokens(requests, &pads, &device)?;
    let hidden = dec.forward(&tokens, &mut cache, &pads)?;
    let (sot_logits, last_logits) = first_logits(model, &hidden, requests, &pads)?;
    for (window, sot) in windows.iter_mut().zip(&sot_logits) {
        let no_speech = rules.special.no_speech as usize;
        window.no_speech_prob = log_softmax(sot)[no_speech].exp();
    }
    let mut logits = last_logits;
    // Batch row i continues hypothesis `rows[i].1` of window `rows[i].0`.
    let mut rows: Vec<(usize, usize)> = (0..windows.len()).map(|w| (w, 0)).collect();
    let mut steps = 0;
    loop {
        let rules_started = std::time::Instant::now();
        let mut next: Vec<(usize, usize)> = Vec::with_capacity(rows.len());
        let mut order: Vec<u32> = Vec::with_capacity(rows.len());
        let mut first = 0;
        while first < rows.len() {
            let w = rows[first].0;
            let end = first + rows[first..].iter().take_while(|r| r.0 == w).count();
            let parents = windows[w].advance(&mut logits[first..end], rules);
            for (hypothesis, parent) in parents.into_iter().enumerate() {
                next.push((w, hypothesis));
                order.push((first + parent) as u32);
            }
            first = end;
        }
        rules_time += rules_started.elapsed();
        if next.is_empty() {
            break;
        }
        cache.reorder_rows(&order)?;
        rows = next;
        let step_pads: Vec<usize> = rows.iter().map(|&(w, _)| pads[w]).collect();
        let last: Vec<u32> = rows
            .iter()
            .map(|&(w, h)| windows[w].last_token(h))
            .collect();
        let tokens = Tensor::from_vec(last, (rows.len(), 1), &device)?;
        let hidden = dec.forward(&tokens, &mut cache, &step_pads)?;
        logits = logit_rows(&dec.logits(&hidden)?)?;
        steps += 1;
    }
    let results: Vec<RowResult> = windows.into_iter().map(Window::finish).collect();
    tracing::debug!(
        rows = results.len(),
        prefix = width,
        steps,
        tokens = results.iter().map(|r| r.tokens.len() + 1).sum::<usize>(),
        seconds = started.elapsed().as_secs_f64(),
        rules_seconds = rules_time.as_secs_f64(),
        "decoded batch"
    );
    Ok(results)
}

/// A token sequence being decoded, and its summed log-probability.
#[derive(Debug, Clone, Default)]
struct Hypothesis {
    tokens: Vec<u32>,
    sum_logprob: f64,
}

impl Hypothesis {
    /// Whisper's `MaximumLikelihoodRanker` without a length penalty: log-probability per token.
    fn length_normalised(&self) -> f64 {
        self.sum_logprob / self.tokens.len().max(1) as f64
    }
}

/// One audio window's decoding: its live hypotheses (one unless it runs a beam search) and
/// those that have ended.
struct Window {
    live: Vec<Hypothesis>,
    finished: Vec<Hypothesis>,
    beam_size: usize,
    max_tokens: usize,
    no_speech_prob: f32,
    temperature: f32,
    rng: SplitMix64,
    timestamps: bool,
}

impl Window {
    fn new(req: &RowRequest, max_tokens: usize) -> Self {
        let beam_size = match req.temperature > 0.0 {
            true => 1,
            false => req.beam_size.max(1),
        };
        Self {
            live: vec![Hypothesis::default()],
            finished: Vec::new(),
            beam_size,
            max_tokens,
            no_speech_prob: 0.0,
            temperature: req.temperature,
            rng: SplitMix64(req.seed),
            timestamps: req.timestamps,
        }
    }

    fn last_token(&self, hypothesis: usize) -> u32 {
        *self.live[hypothesis]
            .tokens
            .last()
            .expect("a live hypothesis has a token")
    }

    /// Takes this step's logits (one row per live hypothesis, in order) and extends the
    /// hypotheses. Returns, for each hypothesis still live, the index of the row it continues;
    /// empty once the window is decided.
    fn advance(&mut self, logits: &mut [Vec<f32>], rules: &LogitRules) -> Vec<usize> {
        let candidates = self.candidates(logits, rules);
        let eot = rules.special.eot;
        let mut live = Vec::with_capacity(self.beam_size);
        let mut parents = Vec::with_capacity(self.beam_size);
        for (sum_logprob, parent, token) in candidates {
            let tokens = &self.live[parent].tokens;
            if token == eot {
                if self.finished.len() < self.beam_size {
                    self.finished.push(Hypothesis {
                        tokens: tokens.clone(),
                        sum_logprob,
                    });
                }
                continue;
            }
            let mut tokens = tokens.clone();
            tokens.push(token);
            live.push(Hypothesis {
                tokens,
                sum_logprob,
            });
            parents.push(parent);
            if live.len() == self.beam_size {
                break;
            }
        }
        self.live = live;
        let decided = self.finished.len() >= self.beam_size
            || self.live.is_empty()
            || self.live[0].tokens.len() >= self.max_tokens;
        if decided {
            self.close_unfinished();
            return Vec::new();
        }
        parents
    }

    /// This step's continuations, likeliest first: `(summed log-probability, hypothesis,
    /// token)`. Greedy and sampling give one; a beam of N gives the top N + 1 of each
    /// hypothesis, so N live ones remain even when one of them ends.
    fn candidates(
        &mut self,
        logits: &mut [Vec<f32>],
        rules: &LogitRules,
    ) -> Vec<(f64, usize, u32)> {
        let mut candidates = Vec::new();
        for (h, logits) in logits.iter_mut().enumerate() {
            let hypothesis = &self.live[h];
            rules.apply(logits, &hypothesis.tokens, self.timestamps);
            let log_probs = log_softmax(logits);
            let tokens = match (self.beam_size, self.temperature > 0.0) {
                (_, true) => vec![sample(logits, self.temperature, &mut self.rng)],
                (1, false) => vec![argmax(logits)],
                (n, false) => top_k(&log_probs, n + 1),
            };
            candidates.extend(
                tokens
                    .into_iter()
                    .map(|t| (hypothesis.sum_logprob + log_probs[t] as f64, h, t as u32)),
            );
        }
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        candidates
    }

    /// At the length limit, live hypotheses count as finished (likeliest first) until the
    /// beam is full, as Whisper's `finalize` does.
    fn close_unfinished(&mut self) {
        let mut live = std::mem::take(&mut self.live);
        live.sort_by(|a, b| b.sum_logprob.total_cmp(&a.sum_logprob));
        for hypothesis in live {
            if self.finished.len() >= self.beam_size {
                break;
            }
            self.finished.push(hypothesis);
        }
    }

    /// The best finished hypothesis: the only one for greedy and sampling, the highest
    /// log-probability per token for a beam.
    fn finish(self) -> RowResult {
        let best = self
            .finished
            .into_iter()
            .reduce(
                |best, h| match h.length_normalised() > best.length_normalised() {
                    true => h,
                    false => best,
                },
            )
            .unwrap_or_default();
        RowResult {
            tokens: best.tokens,
            sum_logprob: best.sum_logprob,
            no_speech_prob: self.no_speech_prob,
            temperature: self.temperature,
        }
    }
}

/// Indices of the `k` largest values, largest first.
fn top_k(xs: &[f32], k: usize) -> Vec<usize> {
    let mut best: Vec<usize> = Vec::with_capacity(k + 1);
    for (i, &x) in xs.iter().enumerate() {
        if best.len() == k && x <= xs[best[k - 1]] {
            continue;
        }
        let at = best.partition_point(|&b| xs[b] >= x);
        best.insert(at, i);
        best.truncate(k);
    }
    best
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::whisper::decode::rules::toy_special_tokens;

    const EOT: u32 = 5;

    fn rules() -> LogitRules {
        LogitRules {
            suppress: Vec::new(),
            suppress_at_begin: Vec::new(),
            special: toy_special_tokens(),
            max_initial_timestamp_index: None,
        }
    }

    /// A toy model: after nothing, token 0 (p 0.5) or 1 (0.45); after `[0]`, a spread with
    /// token 2 likeliest (0.3) and end of text at 0.26; after `[0, 2]` or `[1]`, nearly
    /// certain end of text. Greedy takes 0 then 2; the likeliest text per token is `[1]`.
    fn toy(prefix: &[u32]) -> Vec<f32> {
        let mut p = [1e-9f32; 14];
        match prefix {
            [] => (p[0], p[1], p[3]) = (0.5, 0.45, 0.05),
            [0] => (p[2], p[EOT as usize], p[0], p[1]) = (0.3, 0.26, 0.24, 0.2),
            _ => (p[EOT as usize], p[4]) = (0.99, 0.01),
        }
        p.iter().map(|x| x.ln()).collect()
    }

    fn request(temperature: f32, beam_size: usize) -> RowRequest {
        RowRequest {
            prefix: vec![6],
            sot_index: 0,
            temperature,
            beam_size,
            seed: 1,
            timestamps: false,
        }
    }

    /// Runs one window against the toy model; returns its result and each step's parents.
    fn decode(req: &RowRequest) -> (RowResult, Vec<Vec<usize>>) {
        let mut window = Window::new(req, 10);
        let mut steps = Vec::new();
        loop {
            let mut logits: Vec<Vec<f32>> = window.live.iter().map(|h| toy(&h.tokens)).collect();
            let parents = window.advance(&mut logits, &rules());
            if parents.is_empty() {
                break;
            }
            steps.push(parents);
        }
        (window.finish(), steps)
    }

    #[test]
    fn greedy_follows_the_likeliest_token() {
        let (result, steps) = decode(&request(0.0, 1));
        assert_eq!(result.tokens, vec![0, 2]);
        assert_eq!(steps, vec![vec![0], vec![0]]);
        let expected = (0.5f64 * 0.3 * 0.99).ln();
        assert!((result.sum_logprob - expected).abs() < 1e-4, "{result:?}");
    }

    #[test]
    fn a_beam_keeps_the_runner_up_and_ranks_by_log_probability_per_token() {
        let (result, steps) = decode(&request(0.0, 2));
        assert_eq!(result.tokens, vec![1]);
        // Both hypotheses branch from the single first row; then `[1]` and `[0]` end.
        assert_eq!(steps, vec![vec![0, 0]]);
        let expected = (0.45f64 * 0.99).ln();
        assert!((result.sum_logprob - expected).abs() < 1e-4, "{result:?}");
    }

    #[test]
    fn sampling_ignores_the_beam() {
        let (_, steps) = decode(&request(1.0, 5));
        assert!(steps.iter().all(|parents| parents == &[0]), "{steps:?}");
    }

    #[test]
    fn the_length_limit_closes_live_hypotheses() {
        let mut window = Window::new(&request(0.0, 3), 1);
        let mut logits = vec![toy(&[])];
        assert!(window.advance(&mut logits, &rules()).is_empty());
        assert_eq!(window.finished.len(), 3);
        assert_eq!(window.finish().tokens, vec![0]);
    }

    #[test]
    fn top_k_orders_the_largest_first() {
        let xs = [0.1, 3.0, -1.0, 2.0, 3.5, 0.0];
        assert_eq!(top_k(&xs, 3), vec![4, 1, 3]);
        assert_eq!(top_k(&xs, 10).len(), xs.len());
    }
}

//! Long-form transcription: Whisper's seek loop (window after window, each starting where the
//! previous one's last complete segment ended), run for many audio streams at once so that
//! every encoder and decoder call is batched across streams.

use std::sync::Arc;

use candle_core::Tensor;

use super::fallback::{WindowJob, WindowOutcome, decode_with_fallback};
use super::guard::{self, Suppressed};
use super::language::detect_languages;
use super::phases::{Phase, PhaseClock};
use super::rules::LogitRules;
use super::segments::split_window;
use super::words::{Word, WordWindow, align_windows};
use super::{DecodeError, DecodeOptions, check_language};
use crate::model::whisper::mel::{CHUNK_FRAMES, CHUNK_SAMPLES, HOP_LENGTH, MelFrontend};
use crate::model::whisper::model::{EncodedAudio, Whisper};
use crate::model::whisper::tokens::{Task, WhisperTokenizer};

/// Seconds per mel frame.
const FRAME_SECONDS: f64 = HOP_LENGTH as f64 / 16_000.0;

/// Silence [`EncoderFrames::AudioOnly`] encodes after the audio (1 s). An encoder context that
/// ends inside speech, as a streaming buffer cut mid-word does, makes the decoder loop until
/// the fallback gives up: the corpus's 158 s clip replayed by the streaming policy sampled
/// 21,680 tokens over 168 requests without it and 3,918 with it (model time 1.14 → 0.52 s per
/// second of stream, the same words but two).
pub(super) const TRIMMED_PAD_FRAMES: usize = 100;

/// Silence [`EncoderFrames::AudioAndSilence`] encodes after the audio (5 s). Whole files
/// without timestamps, English corpus in chunks: 1 s of silence read 51 errors at 0.50× the
/// time of padded windows, 3 s 50 errors, 5 s the padded windows' 49 at 0.59–0.63× their time.
const TEXT_ONLY_PAD_FRAMES: usize = 500;

/// How much of a window the encoder sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncoderFrames {
    /// Whisper's way: every window padded to 30 s (3000 frames).
    FullWindow,
    /// The first window padded to 30 s as Whisper does; a later window shorter than that (the
    /// audio left after the model stopped early in the window before) encodes only its audio,
    /// as [`Self::AudioOnly`] does. The rest of a 30 s chunk is often a few seconds, and a
    /// padded window for it cost as much as the chunk: on the corpus's 158 s clip cut into
    /// chunks, the wall time fell from 0.70–0.88× to 0.55× of window after window, WER
    /// 11.20 → 10.92 %; window after window the corpus still reads 7.65 %.
    #[default]
    FullFirstWindow,
    /// Only the frames holding audio plus [`TRIMMED_PAD_FRAMES`] of silence; the decoder sees
    /// the rest of the 30 s window as an encoded silent window (see [`EncodedAudio`]).
    /// Cheaper for short windows. The decoder needs the whole window: encoder output cut to
    /// the audio makes tiny.en loop on short clips (English dev corpus, no floor 193 % WER,
    /// a 10 s floor 7.94 %); with the silent tail it reads 7.94 % at 0.49–0.53× the time of
    /// full windows (7.65 %).
    AudioOnly,
    /// Only the frames holding audio plus 5 s of silence ([`TEXT_ONLY_PAD_FRAMES`]), the rest
    /// read from the silent window, for a window decoded without timestamps
    /// (`JobOptions::text_only`, a measurement mode); any other window is encoded as [`Self::FullFirstWindow`] encodes it, since
    /// with timestamps it read 7.79 % against 7.50 %.
    AudioAndSilence,
}

/// One timed piece of a transcript, with the fields of OpenAI's `verbose_json` segments.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Index in the transcript.
    pub id: usize,
    /// Mel frame at which this segment's window started.
    pub seek: usize,
    /// Start, seconds from the start of the audio.
    pub start: f64,
    /// End, seconds from the start of the audio.
    pub end: f64,
    /// The text, with Whisper's leading space.
    pub text: String,
    /// Token ids, timestamps included.
    pub tokens: Vec<u32>,
    /// Temperature of the accepted decoding.
    pub temperature: f32,
    /// Average token log-probability of the window.
    pub avg_logprob: f64,
    /// Compression ratio of the window's text.
    pub compression_ratio: f32,
    /// Probability that the window held no speech.
    pub no_speech_prob: f32,
    /// Timed words, when word timestamps were asked for.
    pub words: Vec<Word>,
}

/// The transcript of one audio stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// The whole text, trimmed.
    pub text: String,
    /// Timed segments.
    pub segments: Vec<Segment>,
    /// Language code used (given or detected).
    pub language: String,
    /// Detection confidence, when the language was detected.
    pub language_probability: Option<f32>,
    /// Audio duration, seconds.
    pub duration: f64,
}

/// A transcript's text: its segments' texts (each with Whisper's leading space) joined, trimmed.
pub fn joined_text(segments: &[Segment]) -> String {
    let text: String = segments.iter().map(|s| s.text.as_str()).collect();
    text.trim().to_string()
}

/// Progress of one stream after a batch of windows.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Index of the stream in the call.
    pub stream: usize,
    /// Seconds of audio transcribed so far.
    pub done_seconds: f64,
    /// Seconds of audio in the stream.
    pub total_seconds: f64,
}

/// Runs long-form transcription with one model, tokenizer and mel frontend.
pub struct Transcriber<'a> {
    model: &'a Whisper,
    tokenizer: &'a WhisperTokenizer,
    mel: &'a MelFrontend,
    max_batch: usize,
}

/// One audio stream being transcribed window by window: Whisper's seek loop as a state
/// machine, so a scheduler can step many streams (each with its own language, task and
/// prompt) in shared batches and hand back each window's segments as soon as they exist.
#[derive(Debug, Clone)]
pub struct LongFormStream {
    samples: Arc<[f32]>,
    content_frames: usize,
    seek: usize,
    task: Task,
    encoder_frames: EncoderFrames,
    word_timestamps: bool,
    /// Decode with timestamps (see [`DecodeOptions::without_timestamps`]).
    timestamps: bool,
    temperatures: Vec<f32>,
    beam_size: usize,
    all_tokens: Vec<u32>,
    prompt_reset_since: usize,
    segments: Vec<Segment>,
    language: Option<(&'static str, Option<f32>)>,
}

impl LongFormStream {
    /// Whether every window has been decoded.
    pub fn is_done(&self) -> bool {
        self.seek >= self.content_frames
    }

    /// Seconds of audio decoded so far.
    pub fn done_seconds(&self) -> f64 {
        self.seek.min(self.content_frames) as f64 * FRAME_SECONDS
    }

    /// Seconds of audio in the stream.
    pub fn total_seconds(&self) -> f64 {
        self.samples.len() as f64 / 16_000.0
    }

    /// Segments decoded so far.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The language in use, once given or detected.
    pub fn language(&self) -> Option<&'static str> {
        self.language.map(|(code, _)| code)
    }

    /// The transcript of what has been decoded (all of it once [`Self::is_done`]).
    pub fn into_transcript(self) -> Transcript {
        let (language, language_probability) = self.language.map_or(("en", None), |(c, p)| (c, p));
        Transcript {
            text: joined_text(&self.segments),
            duration: self.total_seconds(),
            segments: self.segments,
            language: language.to_string(),
            language_probability,
        }
    }

    /// Frames this stream's next window needs from the encoder.
    fn encoder_frames_needed(&self) -> usize {
        let size = self.next_window_frames();
        match self.encoder_frames {
            EncoderFrames::FullWindow => CHUNK_FRAMES,
            EncoderFrames::FullFirstWindow if self.seek == 0 => CHUNK_FRAMES,
            EncoderFrames::FullFirstWindow | EncoderFrames::AudioOnly => {
                ((size + TRIMMED_PAD_FRAMES).div_ceil(2) * 2).min(CHUNK_FRAMES)
            }
            EncoderFrames::AudioAndSilence => {
                ((size + TEXT_ONLY_PAD_FRAMES).div_ceil(2) * 2).min(CHUNK_FRAMES)
            }
        }
    }

    /// Frames of audio in the next window.
    fn next_window_frames(&self) -> usize {
        (self.content_frames - self.seek).min(CHUNK_FRAMES)
    }
}

impl<'a> Transcriber<'a> {
    /// A transcriber that puts at most `max_batch` windows in one model call.
    pub fn new(
        model: &'a Whisper,
        tokenizer: &'a WhisperTokenizer,
        mel: &'a MelFrontend,
        max_batch: usize,
    ) -> Self {
        Self {
            model,
            tokenizer,
            mel,
            max_batch: max_batch.max(1),
        }
    }

    /// Transcribes one stream of 16 kHz mono samples.
    pub fn transcribe(
        &self,
        samples: &[f32],
        opts: &DecodeOptions,
    ) -> Result<Transcript, DecodeError> {
        let mut out = self.transcribe_many(&[samples], opts, &mut |_| {})?;
        Ok(out.pop().expect("one transcript per stream"))
    }

    /// Transcribes several streams at once, batching their windows together.
    pub fn transcribe_many(
        &self,
        streams: &[&[f32]],
        opts: &DecodeOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Transcript>, DecodeError> {
        let mut states = streams
            .iter()
            .map(|s| self.start_stream(Arc::from(*s), opts))
            .collect::<Result<Vec<_>, _>>()?;
        loop {
            let active: Vec<usize> = (0..states.len())
                .filter(|&i| !states[i].is_done())
                .collect();
            if active.is_empty() {
                break;
            }
            for chunk in active.chunks(self.max_batch) {
                let mut rows: Vec<&mut LongFormStream> = states
                    .iter_mut()
                    .enumerate()
                    .filter(|(i, _)| chunk.contains(i))
                    .map(|(_, s)| s)
                    .collect();
                self.step(&mut rows, opts)?;
                for &i in chunk {
                    progress(Progress {
                        stream: i,
                        done_seconds: states[i].done_seconds(),
                        total_seconds: states[i].total_seconds(),
                    });
                }
            }
        }
        Ok(states
            .into_iter()
            .map(LongFormStream::into_transcript)
            .collect())
    }

    /// Starts a stream of 16 kHz mono samples with `opts`' language, task, initial prompt,
    /// temperatures, encoder frames and word timings. Fails at once on a language or task the
    /// model cannot do.
    pub fn start_stream(
        &self,
        samples: Arc<[f32]>,
        opts: &DecodeOptions,
    ) -> Result<LongFormStream, DecodeError> {
        let fixed_language = self.check_options(opts)?;
        let initial_prompt = match opts.initial_prompt.as_deref().map(str::trim) {
            Some(p) if !p.is_empty() => self.tokenizer.encode(&format!(" {p}"))?,
            _ => Vec::new(),
        };
        let content_frames = samples.len() / HOP_LENGTH;
        let timestamps = !opts.without_timestamps || content_frames > CHUNK_FRAMES;
        let encoder_frames = match opts.encoder_frames {
            EncoderFrames::AudioAndSilence if timestamps => EncoderFrames::FullFirstWindow,
            frames => frames,
        };
        Ok(LongFormStream {
            timestamps,
            content_frames,
            samples,
            seek: 0,
            task: opts.task,
            encoder_frames,
            word_timestamps: opts.word_timestamps,
            temperatures: opts.temperatures.clone(),
            beam_size: opts.beam_size.max(1),
            all_tokens: initial_prompt,
            prompt_reset_since: 0,
            segments: Vec::new(),
            language: fixed_language.map(|l| (l, None)),
        })
    }

    /// Decodes the next window of every stream in `rows` in one batched encoder call and one
    /// batched decode, then advances them. `opts` gives the shared decoding policy
    /// (thresholds); each stream keeps its own language, task, prompt, temperatures and
    /// whether it decodes with timestamps. Returns, per row, the index of its first segment added by this step.
    pub fn step(
        &self,
        rows: &mut [&mut LongFormStream],
        opts: &DecodeOptions,
    ) -> Result<Vec<usize>, DecodeError> {
        rows.iter().for_each(|r| debug_assert!(!r.is_done()));
        let first_new: Vec<usize> = rows.iter().map(|r| r.segments.len()).collect();
        if rows.is_empty() {
            return Ok(first_new);
        }
        let mut clock = PhaseClock::start(rows.len());
        let rules = self.rules(opts);
        let sizes: Vec<usize> = rows.iter().map(|r| r.next_window_frames()).collect();
        let frames: Vec<usize> = rows.iter().map(|r| r.encoder_frames_needed()).collect();
        let widest = frames.iter().copied().max().unwrap_or(CHUNK_FRAMES);
        let mel = self.mel_batch(rows, &sizes, widest)?;
        clock.lap(Phase::Mel);
        let audio = self.encode(&mel, &frames)?;
        clock.lap(Phase::Encoder);
        self.detect_missing_languages(rows, &audio)?;
        clock.lap(Phase::Language);
        let jobs: Vec<WindowJob> = rows.iter().map(|r| self.job(r)).collect();
        let outcomes =
            decode_with_fallback(self.model, self.tokenizer, &audio, &jobs, opts, &rules)?;
        let seeks: Vec<usize> = rows.iter().map(|r| r.seek).collect();
        for ((row, outcome), &size) in rows.iter_mut().zip(outcomes).zip(&sizes) {
            self.advance(row, outcome, size, opts)?;
        }
        clock.lap(Phase::Decode);
        self.time_words(rows, &audio, &jobs, &first_new, &seeks, &sizes)?;
        clock.lap(Phase::Align);
        Ok(first_new)
    }

    /// Adds word timings to the segments this step produced, for streams that asked for them,
    /// in one batched alignment pass.
    fn time_words(
        &self,
        rows: &mut [&mut LongFormStream],
        audio: &EncodedAudio,
        jobs: &[WindowJob],
        first_new: &[usize],
        seeks: &[usize],
        sizes: &[usize],
    ) -> Result<(), DecodeError> {
        let wanted: Vec<usize> = (0..rows.len())
            .filter(|&r| rows[r].word_timestamps && rows[r].segments.len() > first_new[r])
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let tokens: Vec<Vec<Vec<u32>>> = wanted
            .iter()
            .map(|&r| {
                rows[r].segments[first_new[r]..]
                    .iter()
                    .map(|s| s.tokens.clone())
                    .collect()
            })
            .collect();
        let windows: Vec<WordWindow<'_>> = wanted
            .iter()
            .zip(&tokens)
            .map(|(&r, segments)| {
                let window_offset = seeks[r] as f64 * FRAME_SECONDS;
                let last_speech_end = rows[r].segments[..first_new[r]]
                    .iter()
                    .rev()
                    .find_map(|s| s.words.last().map(|w| w.end))
                    .unwrap_or(window_offset);
                WordWindow {
                    sot_sequence: &jobs[r].sot_sequence,
                    segments,
                    num_frames: sizes[r],
                    window_offset,
                    last_speech_end,
                }
            })
            .collect();
        let features = audio.select(&wanted)?;
        let timed = align_windows(self.model, self.tokenizer, &features, &windows)?;
        for (&r, window_words) in wanted.iter().zip(timed) {
            for (segment, words) in rows[r].segments[first_new[r]..]
                .iter_mut()
                .zip(window_words)
            {
                segment.words = words;
            }
        }
        Ok(())
    }

    /// Validates language and task; returns the fixed language code, if any.
    fn check_options(&self, opts: &DecodeOptions) -> Result<Option<&'static str>, DecodeError> {
        let codes = self.tokenizer.language_codes();
        check_language(&codes, self.tokenizer.is_multilingual(), opts)
    }

    fn rules(&self, opts: &DecodeOptions) -> LogitRules {
        let special = self.tokenizer.special().clone();
        let mut suppress = self.model.config.suppress_ids.clone();
        suppress.extend([
            special.transcribe,
            special.translate,
            special.sot,
            special.sot_prev,
            special.sot_lm,
            special.no_speech,
        ]);
        suppress.sort_unstable();
        suppress.dedup();
        let mut suppress_at_begin = self.model.config.suppress_ids_begin.clone();
        if suppress_at_begin.is_empty() {
            suppress_at_begin = self.tokenizer.encode(" ").unwrap_or_default();
            suppress_at_begin.push(special.eot);
        }
        LogitRules {
            suppress,
            suppress_at_begin,
            max_initial_timestamp_index: Some((opts.max_initial_timestamp / 0.02).round() as u32),
            special,
        }
    }

    /// Log-mel windows `[B, n_mels, frames]`; frames past each window's audio are zero, as
    /// Whisper's `pad_or_trim` leaves them.
    fn mel_batch(
        &self,
        rows: &[&mut LongFormStream],
        sizes: &[usize],
        frames: usize,
    ) -> Result<Tensor, DecodeError> {
        let n_mels = self.mel.n_mels();
        let mut data = Vec::with_capacity(rows.len() * n_mels * frames);
        for (s, &size) in rows.iter().zip(sizes) {
            let start = s.seek * HOP_LENGTH;
            let end = (start + CHUNK_SAMPLES).min(s.samples.len());
            let window = self.mel.window(&s.samples[start..end]);
            for row in window.chunks_exact(CHUNK_FRAMES) {
                data.extend_from_slice(&row[..size.min(frames)]);
                data.extend(std::iter::repeat_n(0.0, frames - size.min(frames)));
            }
        }
        let mel = Tensor::from_vec(data, (rows.len(), n_mels, frames), self.model.device())?;
        Ok(mel.to_dtype(self.model.dtype())?)
    }

    /// Encodes row `r` of `mel` over its first `frames[r]` frames. Full windows go through the
    /// encoder together; a trimmed window is encoded alone at its own length (rows of a batch
    /// differ), then followed by the silent window up to the full context.
    fn encode(&self, mel: &Tensor, frames: &[usize]) -> Result<EncodedAudio, DecodeError> {
        super::phases::count_encoded(frames.iter().sum());
        if frames.iter().all(|&f| f == CHUNK_FRAMES) {
            return Ok(self.model.encode(mel)?);
        }
        let rows = frames
            .iter()
            .enumerate()
            .map(|(r, &f)| {
                let own = mel.narrow(0, r, 1)?.narrow(2, 0, f)?.contiguous()?;
                self.model.encode_with_silence(&own)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(EncodedAudio::stack(&rows)?)
    }

    fn detect_missing_languages(
        &self,
        rows: &mut [&mut LongFormStream],
        audio: &EncodedAudio,
    ) -> Result<(), DecodeError> {
        let missing: Vec<usize> = (0..rows.len())
            .filter(|&r| rows[r].language.is_none())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let features = audio.select(&missing)?;
        let detected = detect_languages(self.model, self.tokenizer, &features)?;
        for (&r, (code, p)) in missing.iter().zip(detected) {
            rows[r].language = Some((code, Some(p)));
        }
        Ok(())
    }

    fn job(&self, s: &LongFormStream) -> WindowJob {
        let language = s
            .language
            .and_then(|(code, _)| self.tokenizer.language_token(code));
        WindowJob {
            prompt: s.all_tokens[s.prompt_reset_since..].to_vec(),
            sot_sequence: self.tokenizer.sot_sequence(language, s.task),
            temperatures: s.temperatures.clone(),
            timestamps: s.timestamps,
            beam_size: s.beam_size,
        }
    }

    /// Records a window's segments and moves the stream's seek position.
    fn advance(
        &self,
        s: &mut LongFormStream,
        outcome: WindowOutcome,
        size: usize,
        opts: &DecodeOptions,
    ) -> Result<(), DecodeError> {
        let split = split_window(&outcome.result.tokens, size, self.tokenizer);
        if outcome.is_silence(opts) {
            if !split.segments.is_empty() {
                guard::count(Suppressed::NoSpeech);
            }
            s.seek += size;
            return Ok(());
        }
        let offset = s.seek as f64 * FRAME_SECONDS;
        let duration = s.total_seconds();
        for ws in split.segments {
            let text = self.tokenizer.decode(&ws.tokens)?;
            if ws.start == ws.end || text.trim().is_empty() {
                continue;
            }
            let (start, end) = (offset + ws.start, (offset + ws.end).min(duration));
            let audio =
                &s.samples[sample(start).min(s.samples.len())..sample(end).min(s.samples.len())];
            let mut previous = s.segments.iter().rev().map(|p| p.text.as_str());
            let (last, before) = (previous.next(), previous.next());
            let candidate = guard::Candidate {
                text: &text,
                level_dbfs: crate::audio::level_dbfs(audio),
                no_speech_prob: outcome.result.no_speech_prob,
                previous: [before, last],
            };
            if let Some(reason) = guard::check(&candidate) {
                tracing::debug!(
                    text,
                    reason = reason.label(),
                    start,
                    end,
                    "segment suppressed"
                );
                continue;
            }
            s.all_tokens.extend_from_slice(&ws.tokens);
            s.segments.push(Segment {
                id: s.segments.len(),
                seek: s.seek,
                start,
                end,
                text,
                tokens: ws.tokens,
                temperature: outcome.result.temperature,
                avg_logprob: outcome.avg_logprob(),
                compression_ratio: outcome.compression_ratio,
                no_speech_prob: outcome.result.no_speech_prob,
                words: Vec::new(),
            });
        }
        s.seek += if split.advance_frames == 0 {
            size
        } else {
            split.advance_frames
        };
        if !opts.condition_on_previous_text
            || outcome.result.temperature > opts.prompt_reset_on_temperature
        {
            s.prompt_reset_since = s.all_tokens.len();
        }
        Ok(())
    }
}

/// The sample index of a time in the stream (16 kHz).
fn sample(seconds: f64) -> usize {
    (seconds * 16_000.0).round().max(0.0) as usize
}

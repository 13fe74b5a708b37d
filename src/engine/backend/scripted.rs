//! A deterministic stand-in for the model, so every layer above it (scheduler, streaming
//! driver, service core, gRPC, HTTP, Realtime) runs in tests without weights or a corpus.
//!
//! It "hears" tone bursts: every stretch of sound at least 50 ms long is one word, named by
//! its peak amplitude in tenths (0.1 → `one` … 0.9 → `nine`), with its real start and end as
//! word timings. [`say`] writes such audio, so a test can speak `["three", "five"]` into a
//! stream and expect exactly that text back. Like Whisper it decodes one window (30 s by
//! default) per step, and it checks languages and tasks by the same rules
//! ([`ModelInfo::check`]). A test keeps a clone of the backend to shape and watch it: a cost
//! per step and per row, failing the next steps, pausing steps, and the batch sizes it ran.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::{Backend, JobStream, ModelInfo, StepError};
use crate::model::whisper::decode::{DecodeError, DecodeOptions, Segment, Transcript, Word};

/// Words by amplitude tenth: a burst peaking at 0.3 is `three`.
pub const WORDS: [&str; 9] = [
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];

const SAMPLE_RATE: f64 = 16_000.0;
/// Analysis frame: 10 ms.
const FRAME: usize = 160;
/// A frame is sound when its peak reaches this (half the quietest word's amplitude).
const SOUND_PEAK: f32 = 0.05;
/// Shortest burst that is a word (50 ms).
const MIN_WORD_FRAMES: usize = 5;
/// Quiet frames that end a burst (30 ms).
const GAP_FRAMES: usize = 3;

/// The pitch each language is "spoken" at: the multilingual backend detects a job's language
/// from the pitch of its first word.
const LANGUAGE_PITCHES: [(&str, f32); 3] = [("en", 440.0), ("de", 550.0), ("fr", 660.0)];

/// Audio that the scripted backend hears as `words`: for each, a 440 Hz tone of 0.4 s at the
/// word's amplitude, then 0.25 s of silence.
///
/// # Panics
/// On a word not in [`WORDS`].
pub fn say(words: &[&str]) -> Vec<f32> {
    say_in("en", words)
}

/// [`say`] in `language` (`en`, `de` or `fr`): the tones at that language's pitch, which the
/// multilingual backend detects.
///
/// # Panics
/// On a word not in [`WORDS`] or another language.
pub fn say_in(language: &str, words: &[&str]) -> Vec<f32> {
    let (_, pitch) = LANGUAGE_PITCHES
        .iter()
        .find(|(l, _)| *l == language)
        .unwrap_or_else(|| panic!("the scripted backend speaks {LANGUAGE_PITCHES:?}"));
    let mut audio = Vec::new();
    for word in words {
        let level = WORDS
            .iter()
            .position(|w| w == word)
            .unwrap_or_else(|| panic!("the scripted backend knows only {WORDS:?}, not {word}"));
        let amplitude = (level + 1) as f32 / 10.0;
        audio.extend(
            (0..6_400).map(|i| {
                amplitude * (2.0 * std::f32::consts::PI * pitch * i as f32 / 16_000.0).sin()
            }),
        );
        audio.extend(silence(0.25));
    }
    audio
}

/// `seconds` of digital silence at 16 kHz.
pub fn silence(seconds: f64) -> Vec<f32> {
    vec![0.0; (seconds * SAMPLE_RATE).round() as usize]
}

/// A scripted model. Clones share their settings and counters.
#[derive(Debug, Clone)]
pub struct ScriptedBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    info: ModelInfo,
    window_seconds: f64,
    step_cost: Duration,
    row_cost: Duration,
    audio_cost: Duration,
    failures_left: AtomicUsize,
    paused: Mutex<bool>,
    resumed: Condvar,
    batches: Mutex<Vec<usize>>,
    batch_ran: Condvar,
    languages_asked: Mutex<Vec<Option<String>>>,
}

impl Default for ScriptedBackend {
    fn default() -> Self {
        Self::english()
    }
}

impl ScriptedBackend {
    /// An English-only model (like `tiny.en`) whose steps cost nothing.
    pub fn english() -> Self {
        Self::with(ModelInfo {
            languages: vec!["en".into()],
            multilingual: false,
        })
    }

    /// A multilingual model knowing English, German and French; it detects the language a job
    /// is spoken in ([`say_in`]) from the pitch of its first word, English when silent.
    pub fn multilingual() -> Self {
        Self::with(ModelInfo {
            languages: ["en", "de", "fr"].map(String::from).to_vec(),
            multilingual: true,
        })
    }

    fn with(info: ModelInfo) -> Self {
        Self {
            inner: Arc::new(Inner {
                info,
                window_seconds: 30.0,
                step_cost: Duration::ZERO,
                row_cost: Duration::ZERO,
                audio_cost: Duration::ZERO,
                failures_left: AtomicUsize::new(0),
                paused: Mutex::new(false),
                resumed: Condvar::new(),
                batches: Mutex::new(Vec::new()),
                batch_ran: Condvar::new(),
                languages_asked: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Each step sleeps `per_step` plus `per_row` for every job in the batch, as a model's
    /// compute would. Set before the backend is shared.
    ///
    /// # Panics
    /// When clones of this backend already exist.
    pub fn with_cost(mut self, per_step: Duration, per_row: Duration) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("set the cost before cloning");
        inner.step_cost = per_step;
        inner.row_cost = per_row;
        self
    }

    /// Each step also sleeps `per_second` for every second of audio in the windows it
    /// decodes, as a decoder's tokens grow with the speech: a long file's full window costs
    /// many times a live stream's short buffer. Set before the backend is shared.
    ///
    /// # Panics
    /// When clones of this backend already exist.
    pub fn with_audio_cost(mut self, per_second: Duration) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("set the cost before cloning")
            .audio_cost = per_second;
        self
    }

    /// Windows of `seconds` instead of Whisper's 30 s, so long jobs take many steps.
    ///
    /// # Panics
    /// When clones of this backend already exist.
    pub fn with_window(mut self, seconds: f64) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("set the window before cloning")
            .window_seconds = seconds;
        self
    }

    /// The next `steps` steps fail (every job in them fails) with an internal-looking error.
    pub fn fail_next(&self, steps: usize) {
        self.inner.failures_left.store(steps, Ordering::SeqCst);
    }

    /// Steps block until the returned guard is dropped: the queue fills while the worker is
    /// busy. (A guard, so a test that fails while paused does not leave the engine's thread
    /// blocked and its drop hanging.)
    #[must_use = "steps resume when the guard is dropped"]
    pub fn pause(&self) -> Paused {
        *lock(&self.inner.paused) = true;
        Paused {
            inner: Arc::clone(&self.inner),
        }
    }

    /// The language every job with audio so far was started with, in order (`None`: to be
    /// detected).
    pub fn languages_asked(&self) -> Vec<Option<String>> {
        lock(&self.inner.languages_asked).clone()
    }

    /// The size of every batch started so far, in order.
    pub fn batches(&self) -> Vec<usize> {
        lock(&self.inner.batches).clone()
    }

    /// Waits until at least `count` batches have started, or `timeout` passed; the batch
    /// sizes so far.
    pub fn wait_for_batches(&self, count: usize, timeout: Duration) -> Vec<usize> {
        let batches = lock(&self.inner.batches);
        let (batches, _) = self
            .inner
            .batch_ran
            .wait_timeout_while(batches, timeout, |b| b.len() < count)
            .unwrap_or_else(|e| e.into_inner());
        batches.clone()
    }
}

/// Steps of a [`ScriptedBackend`] wait while this lives.
#[derive(Debug)]
pub struct Paused {
    inner: Arc<Inner>,
}

impl Drop for Paused {
    fn drop(&mut self) {
        *lock(&self.inner.paused) = false;
        self.inner.resumed.notify_all();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One job of the scripted backend.
#[derive(Debug, Clone)]
pub struct ScriptedStream {
    samples: Arc<[f32]>,
    /// Next sample to decode.
    seek: usize,
    window: usize,
    language: String,
    word_timestamps: bool,
    segments: Vec<Segment>,
}

impl Backend for ScriptedBackend {
    type Stream = ScriptedStream;

    fn info(&self) -> &ModelInfo {
        &self.inner.info
    }

    fn start(
        &self,
        samples: Arc<[f32]>,
        options: &DecodeOptions,
    ) -> Result<ScriptedStream, DecodeError> {
        let asked = self.inner.info.check(options)?;
        if !samples.is_empty() {
            // Not the engine checking options with an empty job.
            lock(&self.inner.languages_asked).push(asked.clone());
        }
        let language = asked.unwrap_or_else(|| match self.inner.info.multilingual {
            true => detect_language(&samples).to_string(),
            false => "en".into(),
        });
        Ok(ScriptedStream {
            samples,
            seek: 0,
            window: (self.inner.window_seconds * SAMPLE_RATE) as usize,
            language,
            word_timestamps: options.word_timestamps,
            segments: Vec::new(),
        })
    }

    fn step(
        &self,
        batch: &mut [&mut ScriptedStream],
        _policy: &DecodeOptions,
    ) -> Result<(), StepError> {
        {
            let mut batches = lock(&self.inner.batches);
            batches.push(batch.len());
            self.inner.batch_ran.notify_all();
        }
        drop(
            self.inner
                .resumed
                .wait_while(lock(&self.inner.paused), |paused| *paused)
                .unwrap_or_else(|e| e.into_inner()),
        );
        let audio_seconds: f64 = batch.iter().map(|s| s.next_window_seconds()).sum();
        std::thread::sleep(
            self.inner.step_cost
                + self.inner.row_cost * batch.len() as u32
                + self.inner.audio_cost.mul_f64(audio_seconds),
        );
        let failing = self
            .inner
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err("scripted failure: CUDA_ERROR_ILLEGAL_ADDRESS at 0x7f3a".into());
        }
        for stream in batch.iter_mut() {
            stream.decode_window();
        }
        Ok(())
    }
}

impl ScriptedStream {
    /// Seconds of audio the next step decodes.
    fn next_window_seconds(&self) -> f64 {
        let end = (self.seek + self.window).min(self.samples.len());
        (end - self.seek) as f64 / SAMPLE_RATE
    }

    fn decode_window(&mut self) {
        let end = (self.seek + self.window).min(self.samples.len());
        let offset = self.seek as f64 / SAMPLE_RATE;
        let words: Vec<Word> = bursts(&self.samples[self.seek..end])
            .into_iter()
            .map(|(start, end, peak)| Word {
                word: format!(" {}", word_for(peak)),
                start: offset + start as f64 / SAMPLE_RATE,
                end: offset + end as f64 / SAMPLE_RATE,
                probability: 0.9,
            })
            .collect();
        if let (Some(first), Some(last)) = (words.first(), words.last()) {
            self.segments.push(Segment {
                id: self.segments.len(),
                seek: self.seek / FRAME,
                start: first.start,
                end: last.end,
                text: words.iter().map(|w| w.word.as_str()).collect(),
                tokens: Vec::new(),
                temperature: 0.0,
                avg_logprob: -0.1,
                compression_ratio: 1.0,
                no_speech_prob: 0.0,
                words: if self.word_timestamps {
                    words
                } else {
                    Vec::new()
                },
            });
        }
        self.seek = end;
    }
}

/// The language whose pitch is nearest the first word's, from its zero crossings.
fn detect_language(audio: &[f32]) -> &'static str {
    let Some(&(start, end, _)) = bursts(audio).first() else {
        return "en";
    };
    let burst = &audio[start..end];
    let crossings = burst
        .windows(2)
        .filter(|pair| (pair[0] < 0.0) != (pair[1] < 0.0))
        .count();
    let pitch = crossings as f32 / 2.0 / (burst.len() as f32 / SAMPLE_RATE as f32);
    LANGUAGE_PITCHES
        .iter()
        .min_by(|a, b| (a.1 - pitch).abs().total_cmp(&(b.1 - pitch).abs()))
        .map_or("en", |(language, _)| language)
}

fn word_for(peak: f32) -> &'static str {
    let level = (peak * 10.0).round().clamp(1.0, WORDS.len() as f32) as usize;
    WORDS[level - 1]
}

/// Stretches of sound in `audio`: (first sample, end sample, peak amplitude).
fn bursts(audio: &[f32]) -> Vec<(usize, usize, f32)> {
    let mut found = Vec::new();
    let mut open: Option<(usize, usize, f32)> = None;
    let mut quiet = 0;
    for (index, frame) in audio.chunks(FRAME).enumerate() {
        let peak = frame.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let start = index * FRAME;
        if peak >= SOUND_PEAK {
            quiet = 0;
            let burst = open.get_or_insert((start, start, 0.0));
            burst.1 = start + frame.len();
            burst.2 = burst.2.max(peak);
        } else if let Some(burst) = open {
            quiet += 1;
            if quiet >= GAP_FRAMES {
                found.push(burst);
                open = None;
            }
        }
    }
    found.extend(open);
    found.retain(|(start, end, _)| end - start >= MIN_WORD_FRAMES * FRAME);
    found
}

impl JobStream for ScriptedStream {
    fn is_done(&self) -> bool {
        self.seek >= self.samples.len()
    }

    fn done_seconds(&self) -> f64 {
        self.seek as f64 / SAMPLE_RATE
    }

    fn total_seconds(&self) -> f64 {
        self.samples.len() as f64 / SAMPLE_RATE
    }

    fn segments(&self) -> &[Segment] {
        &self.segments
    }

    fn language(&self) -> Option<&str> {
        Some(&self.language)
    }

    fn into_transcript(self) -> Transcript {
        let text: String = self.segments.iter().map(|s| s.text.as_str()).collect();
        Transcript {
            text: text.trim().to_string(),
            duration: self.total_seconds(),
            segments: self.segments,
            language: self.language,
            language_probability: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcribe(
        backend: &ScriptedBackend,
        audio: Vec<f32>,
        options: &DecodeOptions,
    ) -> Transcript {
        let mut stream = backend.start(audio.into(), options).unwrap();
        while !stream.is_done() {
            backend.step(&mut [&mut stream], options).unwrap();
        }
        stream.into_transcript()
    }

    #[test]
    fn hears_what_was_said_with_timings() {
        let backend = ScriptedBackend::english();
        let mut audio = silence(1.0);
        audio.extend(say(&["three", "nine", "one"]));
        let options = DecodeOptions {
            word_timestamps: true,
            ..DecodeOptions::default()
        };
        let transcript = transcribe(&backend, audio, &options);
        assert_eq!(transcript.text, "three nine one");
        let words = &transcript.segments[0].words;
        assert!((words[0].start - 1.0).abs() < 0.011, "{words:?}");
        assert!((words[0].end - 1.4).abs() < 0.011, "{words:?}");
        assert!((words[1].start - 1.65).abs() < 0.011, "{words:?}");
    }

    #[test]
    fn silence_is_no_text_and_windows_step_through_long_audio() {
        let backend = ScriptedBackend::english().with_window(1.0);
        let mut audio = silence(2.5);
        audio.extend(say(&["two"]));
        let mut stream = backend
            .start(audio.into(), &DecodeOptions::default())
            .unwrap();
        let mut steps = 0;
        while !stream.is_done() {
            backend
                .step(&mut [&mut stream], &DecodeOptions::default())
                .unwrap();
            steps += 1;
        }
        assert_eq!(steps, 4, "3.15 s in 1 s windows");
        assert_eq!(stream.into_transcript().text, "two");
        let quiet = transcribe(&backend, silence(3.0), &DecodeOptions::default());
        assert_eq!(quiet.text, "");
    }

    #[test]
    fn checks_languages_and_tasks_like_whisper() {
        use crate::model::whisper::tokens::Task;
        let english = ScriptedBackend::english();
        let german = DecodeOptions {
            language: Some("German".into()),
            ..DecodeOptions::default()
        };
        assert!(matches!(
            english.start(Arc::from(vec![]), &german),
            Err(DecodeError::UnsupportedLanguage { .. })
        ));
        let translate = DecodeOptions {
            task: Task::Translate,
            ..DecodeOptions::default()
        };
        assert!(matches!(
            english.start(Arc::from(vec![]), &translate),
            Err(DecodeError::TranslateNeedsMultilingual)
        ));
        let multilingual = ScriptedBackend::multilingual();
        let stream = multilingual.start(Arc::from(vec![]), &german).unwrap();
        assert_eq!(JobStream::language(&stream), Some("de"));
        assert!(multilingual.start(Arc::from(vec![]), &translate).is_ok());
        // Left to detect, it hears the language from the first word's pitch.
        for language in ["en", "de", "fr"] {
            let mut audio = silence(0.3);
            audio.extend(say_in(language, &["two", "five"]));
            let options = DecodeOptions::default();
            let stream = multilingual.start(audio.into(), &options).unwrap();
            assert_eq!(JobStream::language(&stream), Some(language));
        }
        assert_eq!(multilingual.languages_asked(), [None, None, None]);
    }

    #[test]
    fn injected_failures_fail_the_next_steps_only() {
        let backend = ScriptedBackend::english();
        backend.fail_next(1);
        let options = DecodeOptions::default();
        let mut stream = backend.start(say(&["four"]).into(), &options).unwrap();
        assert!(backend.step(&mut [&mut stream], &options).is_err());
        assert!(backend.step(&mut [&mut stream], &options).is_ok());
        assert_eq!(backend.batches(), vec![1, 1]);
    }
}

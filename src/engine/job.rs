//! What a session hands the engine and what it gets back.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::EngineError;
use super::chunked::ChunkedJob;
use super::worker::Cancel;
use crate::audio::Splice;
use crate::model::whisper::decode::{DecodeOptions, EncoderFrames, Segment, Transcript};
use crate::model::whisper::tokens::Task;

/// Per-job choices; everything else follows the engine's shared policy.
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    /// Language code or name; `None` detects it on multilingual models.
    pub language: Option<String>,
    /// Transcribe or translate.
    pub task: Task,
    /// Text that primes the first window.
    pub prompt: Option<String>,
    /// Compute word timings.
    pub word_timestamps: bool,
    /// Decode a window that holds the whole audio (a short file, or one chunk of a long one)
    /// without timestamps, one segment spanning it, as faster-whisper's batched pipeline does.
    /// For measurement only (`wer --text-only`, `bench offline --text-only`): it samples fewer
    /// tokens and read 49 errors against 51 on the English dev corpus (long files in chunks),
    /// but tiny.en then drops whole sentences of audio holding several utterances: 26 files of
    /// 12–30 s made of corpus clips (`scripts/dense-corpus.py`) read 89 errors against 53
    /// (faster-whisper: 85 against 51), and the 15-minute `concat:15` in chunks 8.92 % against
    /// 7.45 % WER. No answer of the server uses it. Ignored when word timings are asked for.
    pub text_only: bool,
    /// Encode only the audio present (at least 10 s) instead of padded 30 s windows: the
    /// streaming path re-transcribes short buffers often and this halves their cost.
    pub trim_encoder: bool,
    /// First sampling temperature (OpenAI's `temperature`). `None` or 0 keeps the policy's
    /// schedule, which starts greedy and rises only when a window fails the quality checks;
    /// a higher value starts sampling there and falls back through the schedule's higher steps.
    pub temperature: Option<f32>,
    /// Decode once, at the first temperature, without falling back when the output fails the
    /// quality checks: a streaming interim is looked at once and superseded a second later,
    /// so a retry costs more than it can fix.
    pub single_pass: bool,
    /// A live stream's request: the scheduler runs it ahead of whole files (see
    /// [`super::batcher`]), so a long upload never holds up live captions.
    pub live: bool,
    /// Hypotheses a beam search keeps at temperature 0. `None`: the policy's width for a whole
    /// file; greedy for a live stream's request, which is superseded a second later.
    pub beam_size: Option<usize>,
}

impl JobOptions {
    /// The decoding options of this job under the engine's shared `policy`.
    pub(crate) fn decode_options(&self, policy: &DecodeOptions) -> DecodeOptions {
        DecodeOptions {
            language: self.language.clone(),
            task: self.task,
            initial_prompt: self.prompt.clone(),
            word_timestamps: self.word_timestamps,
            without_timestamps: self.without_timestamps(),
            encoder_frames: self.encoder_frames(policy.encoder_frames),
            temperatures: self.temperatures(&policy.temperatures),
            beam_size: self.beam_size(policy.beam_size),
            ..policy.clone()
        }
    }

    fn beam_size(&self, policy: usize) -> usize {
        let default = if self.live { 1 } else { policy };
        self.beam_size.unwrap_or(default)
    }

    fn without_timestamps(&self) -> bool {
        self.text_only && !self.word_timestamps
    }

    /// Streams trim to their audio plus 1 s; text-only windows to their audio plus 5 s, which
    /// reads as padded windows do at about 0.6× their time; other files as the server encodes
    /// files (`files`, `serve --file-encoder`).
    fn encoder_frames(&self, files: EncoderFrames) -> EncoderFrames {
        if self.trim_encoder {
            EncoderFrames::AudioOnly
        } else if self.without_timestamps() {
            EncoderFrames::AudioAndSilence
        } else {
            files
        }
    }

    /// The temperatures to try in turn: the policy's schedule, from the job's own first
    /// temperature if it has one, cut to that first one for a single pass.
    fn temperatures(&self, schedule: &[f32]) -> Vec<f32> {
        let mut temperatures = match self.temperature {
            Some(first) if first > 0.0 => starting_at(first, schedule),
            _ => schedule.to_vec(),
        };
        if self.single_pass {
            temperatures.truncate(1);
        }
        temperatures
    }
}

/// `first`, then the steps of `schedule` above it: a client asking for more randomness still
/// gets the fallback's protection against repetition and low-confidence output.
fn starting_at(first: f32, schedule: &[f32]) -> Vec<f32> {
    std::iter::once(first)
        .chain(schedule.iter().copied().filter(|&t| t > first))
        .collect()
}

/// Segments decoded by one window of a job.
#[derive(Debug, Clone)]
pub struct WindowUpdate {
    /// The new segments (absolute times).
    pub segments: Vec<Segment>,
    /// Seconds of the job's audio decoded so far.
    pub done_seconds: f64,
    /// Seconds of audio in the job.
    pub total_seconds: f64,
    /// Language in use (given or detected).
    pub language: String,
}

/// Progress of a job, in order: zero or more windows, then one `Done` or `Failed`.
#[derive(Debug)]
pub enum JobEvent {
    /// A window was decoded.
    Window(WindowUpdate),
    /// Every window is decoded.
    Done(Transcript),
    /// The job's batch failed.
    Failed(EngineError),
}

/// The caller's end of a job. Dropping it cancels the job.
pub struct JobHandle {
    source: Source,
    /// When the job transcribes speech cut out of a recording: the way back to its times.
    splice: Option<Splice>,
    /// Called with the finished transcript as it passes (the result cache keeps it).
    on_done: Option<DoneHook>,
}

/// What [`JobHandle::on_done`] keeps.
type DoneHook = Box<dyn FnOnce(&Transcript) + Send>;

/// Where a handle's events come from.
enum Source {
    /// One engine job.
    One(OneJob),
    /// A recording cut into chunks, transcribed as many jobs side by side.
    Chunks(Box<ChunkedJob>),
}

/// One engine job's channel; dropping it cancels the job.
struct OneJob {
    id: u64,
    events: mpsc::UnboundedReceiver<JobEvent>,
    engine: Arc<dyn Cancel>,
}

impl Drop for OneJob {
    fn drop(&mut self) {
        self.engine.cancel(self.id);
    }
}

impl std::fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut handle = f.debug_struct("JobHandle");
        match &self.source {
            Source::One(job) => handle.field("id", &job.id),
            Source::Chunks(job) => handle.field("chunks", &job.len()),
        };
        handle.finish_non_exhaustive()
    }
}

impl JobHandle {
    pub(super) fn new(
        id: u64,
        events: mpsc::UnboundedReceiver<JobEvent>,
        engine: Arc<dyn Cancel>,
    ) -> Self {
        Self {
            source: Source::One(OneJob { id, events, engine }),
            splice: None,
            on_done: None,
        }
    }

    pub(super) fn chunked(job: ChunkedJob) -> Self {
        Self {
            source: Source::Chunks(Box::new(job)),
            splice: None,
            on_done: None,
        }
    }

    /// The same job, its audio having been cut from a recording by `splice`: every time it
    /// reports (segments, words, progress, duration) is moved back onto the recording.
    pub fn through(mut self, splice: Splice) -> Self {
        self.splice = Some(splice);
        self
    }

    /// A job that needed no model because its result is already known (audio with no speech
    /// in it): the handle reports one window covering the audio, then `transcript`.
    pub fn completed(transcript: Transcript) -> Self {
        /// Nothing to cancel: the job never reached an engine.
        struct Nowhere;
        impl Cancel for Nowhere {
            fn cancel(&self, _id: u64) {}
        }
        let (tx, events) = mpsc::unbounded_channel();
        let window = WindowUpdate {
            segments: transcript.segments.clone(),
            done_seconds: transcript.duration,
            total_seconds: transcript.duration,
            language: transcript.language.clone(),
        };
        let _ = tx.send(JobEvent::Window(window));
        let _ = tx.send(JobEvent::Done(transcript));
        Self::new(0, events, Arc::new(Nowhere))
    }

    /// The next event; `None` once the job is over (or was cancelled by shutdown).
    pub async fn next(&mut self) -> Option<JobEvent> {
        let event = match &mut self.source {
            Source::One(job) => job.events.recv().await?,
            // Boxed: a chunked job reads its chunks' handles, so the future would hold itself.
            Source::Chunks(job) => Box::pin(job.next()).await?,
        };
        Some(self.finished(self.map_times(event)))
    }

    /// Hands the transcript, once done, to `hook` (in the recording's times); a job that
    /// fails or is cancelled never calls it.
    pub fn on_done(mut self, hook: impl FnOnce(&Transcript) + Send + 'static) -> Self {
        self.on_done = Some(Box::new(hook));
        self
    }

    fn finished(&mut self, event: JobEvent) -> JobEvent {
        if let JobEvent::Done(transcript) = &event
            && let Some(hook) = self.on_done.take()
        {
            hook(transcript);
        }
        event
    }

    /// The next event if one is waiting (a single job's only: a chunked job orders its
    /// events as it is read).
    pub(super) fn try_next(&mut self) -> Option<JobEvent> {
        let event = match &mut self.source {
            Source::One(job) => job.events.try_recv().ok()?,
            Source::Chunks(_) => return None,
        };
        let event = self.map_times(event);
        Some(self.finished(event))
    }

    fn map_times(&self, event: JobEvent) -> JobEvent {
        let Some(splice) = &self.splice else {
            return event;
        };
        match event {
            JobEvent::Window(mut window) => {
                window
                    .segments
                    .iter_mut()
                    .for_each(|s| unsplice_segment(s, splice));
                window.done_seconds = splice.end_time(window.done_seconds);
                window.total_seconds = splice.original_seconds();
                JobEvent::Window(window)
            }
            JobEvent::Done(mut transcript) => {
                unsplice(&mut transcript, splice);
                JobEvent::Done(transcript)
            }
            failed @ JobEvent::Failed(_) => failed,
        }
    }

    /// Waits for the whole transcript, skipping window updates.
    pub async fn transcript(&mut self) -> Result<Transcript, EngineError> {
        while let Some(event) = self.next().await {
            match event {
                JobEvent::Window(_) => {}
                JobEvent::Done(t) => return Ok(t),
                JobEvent::Failed(e) => return Err(e),
            }
        }
        Err(EngineError::ShuttingDown)
    }

    /// [`Self::transcript`], consuming the handle.
    pub async fn finish(mut self) -> Result<Transcript, EngineError> {
        self.transcript().await
    }
}

/// Moves a transcript of audio cut out by `splice` back onto the recording's times.
pub fn unsplice(transcript: &mut Transcript, splice: &Splice) {
    transcript
        .segments
        .iter_mut()
        .for_each(|s| unsplice_segment(s, splice));
    transcript.duration = splice.original_seconds();
}

fn unsplice_segment(segment: &mut Segment, splice: &Splice) {
    segment.start = splice.start_time(segment.start);
    segment.end = splice.end_time(segment.end);
    // `seek` counts 10 ms mel frames.
    segment.seek = (splice.start_time(segment.seek as f64 / 100.0) * 100.0).round() as usize;
    for word in &mut segment.words {
        word.start = splice.start_time(word.start);
        word.end = splice.end_time(word.end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_take_the_policy_beam_and_live_requests_decode_greedily() {
        let policy = DecodeOptions {
            beam_size: 5,
            ..DecodeOptions::default()
        };
        let beam = |job: JobOptions| job.decode_options(&policy).beam_size;
        assert_eq!(beam(JobOptions::default()), 5);
        let live = JobOptions {
            live: true,
            ..JobOptions::default()
        };
        assert_eq!(beam(live.clone()), 1);
        let asked = JobOptions {
            beam_size: Some(3),
            ..live
        };
        assert_eq!(beam(asked), 3);
    }

    #[test]
    fn temperature_starts_the_fallback_schedule() {
        let policy = DecodeOptions::default();
        let schedule = |temperature| {
            JobOptions {
                temperature,
                ..JobOptions::default()
            }
            .decode_options(&policy)
            .temperatures
        };
        assert_eq!(schedule(None), policy.temperatures);
        assert_eq!(schedule(Some(0.0)), policy.temperatures);
        assert_eq!(schedule(Some(0.5)), vec![0.5, 0.6, 0.8, 1.0]);
        assert_eq!(schedule(Some(1.0)), vec![1.0]);
    }

    #[test]
    fn text_only_drops_timestamps_unless_words_are_timed() {
        let policy = DecodeOptions::default();
        let without = |text_only, word_timestamps| {
            JobOptions {
                text_only,
                word_timestamps,
                ..JobOptions::default()
            }
            .decode_options(&policy)
            .without_timestamps
        };
        assert!(without(true, false));
        assert!(!without(false, false));
        assert!(
            !without(true, true),
            "word timings need the timestamped decoding"
        );
    }

    #[test]
    fn text_only_windows_encode_their_audio_and_five_seconds() {
        let frames = |text_only, word_timestamps, trim_encoder| {
            JobOptions {
                text_only,
                word_timestamps,
                trim_encoder,
                ..JobOptions::default()
            }
            .decode_options(&DecodeOptions::default())
            .encoder_frames
        };
        assert_eq!(frames(true, false, false), EncoderFrames::AudioAndSilence);
        assert_eq!(frames(false, false, false), EncoderFrames::FullFirstWindow);
        assert_eq!(frames(true, true, false), EncoderFrames::FullFirstWindow);
        assert_eq!(frames(true, false, true), EncoderFrames::AudioOnly);
        // A file on a server that trims files is trimmed.
        let trims_files = DecodeOptions {
            encoder_frames: EncoderFrames::AudioOnly,
            ..DecodeOptions::default()
        };
        let file = JobOptions::default().decode_options(&trims_files);
        assert_eq!(file.encoder_frames, EncoderFrames::AudioOnly);
    }

    #[test]
    fn a_single_pass_keeps_only_the_first_temperature() {
        let policy = DecodeOptions::default();
        let schedule = |temperature| {
            JobOptions {
                temperature,
                single_pass: true,
                ..JobOptions::default()
            }
            .decode_options(&policy)
            .temperatures
        };
        assert_eq!(schedule(None), vec![0.0]);
        assert_eq!(schedule(Some(0.5)), vec![0.5]);
    }
}

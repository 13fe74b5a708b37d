//! The transport-neutral half of a live transcription session: it joins one
//! [`SessionPolicy`] to the shared [`Engine`], so gRPC `StreamingRecognize` and the Realtime
//! WebSocket stream through exactly the same mechanism.
//!
//! A [`SessionDriver`] takes decoded 16 kHz audio and finalize calls from its transport, runs
//! the policy's [`TranscriptionRequest`]s on the engine one at a time (at most one job per
//! session, so a session never holds more than one queue slot), hands results back to the
//! policy, and yields the policy's updates and speech events for the transport to render. It
//! also keeps the backlog accounting both transports need for backpressure: how much received
//! audio is not yet covered by a result. Dropping the driver drops its job handle, which
//! removes queued work at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

mod jobs;

pub use jobs::{
    LANGUAGE_CONFIDENCE, LANGUAGE_DETECTION_SECONDS, StreamJobs, hypothesis, streaming_job_options,
};

use crate::engine::{Engine, EngineError, JobHandle, JobOptions};
use crate::model::whisper::decode::Transcript;
use crate::session::{Output, SessionPolicy, SpeechEvent, TranscriptUpdate, TranscriptionRequest};

/// A live client sent audio further ahead of transcription than allowed, past backpressure.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error(
    "audio is arriving faster than it can be transcribed: {backlog_seconds:.1} s buffered, \
     limit {limit_seconds:.1} s (max_lead_seconds); send at real-time pace"
)]
pub struct Overrun {
    /// Seconds of audio waiting.
    pub backlog_seconds: f64,
    /// The limit in force.
    pub limit_seconds: f64,
}

/// Why a session cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The client outran backpressure.
    #[error(transparent)]
    Overrun(#[from] Overrun),
    /// The engine refused a job for a reason other than a full queue (shutting down, or
    /// options the model cannot serve).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What a live session does when its client sends audio faster than it is transcribed and
/// cannot slow down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Overflow {
    /// Backpressure: the transport stops reading at `max_lead_seconds` of backlog, and a
    /// client that overruns that (twice the lead in one go) is refused. Nothing is lost.
    #[default]
    Reject,
    /// Keep reading and drop the oldest untranscribed audio past `max_lead_seconds`, saying
    /// so ([`SpeechEvent::AudioDropped`], [`TranscriptUpdate::audio_dropped`]): a live
    /// caption of telephony or a camera keeps up instead of dying.
    ///
    /// [`TranscriptUpdate::audio_dropped`]: crate::session::TranscriptUpdate::audio_dropped
    DropOldest,
}

/// What the transport should tell its client, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// A transcript update of one utterance.
    Update(TranscriptUpdate),
    /// Speech started or ended.
    Speech(SpeechEvent),
}

/// A job on the engine and the request it answers.
struct InFlight {
    request: TranscriptionRequest,
    handle: JobHandle,
    started: Instant,
}

/// One session's policy, engine job and backlog accounting.
pub struct SessionDriver {
    engine: Arc<Engine>,
    jobs: StreamJobs,
    policy: SessionPolicy,
    max_lead_seconds: f64,
    overflow: Overflow,
    /// Stream time before which audio was dropped (drop-oldest); not backlog any more.
    dropped_until: f64,
    dropped_seconds: f64,
    pending: VecDeque<TranscriptionRequest>,
    in_flight: Option<InFlight>,
    processed_seconds: f64,
    /// Stream time up to which the session was idle (silence, or everything transcribed).
    idle_until: f64,
}

impl std::fmt::Debug for SessionDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionDriver")
            .field("policy", &self.policy)
            .field("pending", &self.pending.len())
            .field("in_flight", &self.in_flight.is_some())
            .finish_non_exhaustive()
    }
}

impl SessionDriver {
    /// A driver running `policy`'s requests on `engine` with the session's `job` options;
    /// the client may run at most `max_lead_seconds` ahead of transcription.
    pub fn new(
        engine: Arc<Engine>,
        job: JobOptions,
        policy: SessionPolicy,
        max_lead_seconds: f64,
    ) -> Self {
        Self {
            jobs: StreamJobs::new(job, engine.model().multilingual),
            engine,
            policy,
            max_lead_seconds,
            overflow: Overflow::Reject,
            dropped_until: 0.0,
            dropped_seconds: 0.0,
            pending: VecDeque::new(),
            in_flight: None,
            processed_seconds: 0.0,
            idle_until: 0.0,
        }
    }

    /// This driver with `overflow` as its policy for a client that outruns transcription.
    pub fn with_overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// Feeds decoded samples. Transports call [`Self::apply_overflow`] after audio the client
    /// sent live, and skip it for audio they flush themselves (a container decoded whole at
    /// the end of the stream).
    pub fn push_audio(&mut self, samples: &[f32]) {
        if self.is_idle() {
            self.idle_until = self.policy.stream_seconds();
        }
        self.policy.push_audio(samples);
    }

    /// Applies the overflow policy after live audio: with [`Overflow::Reject`], a client that
    /// outruns backpressure (a single message far beyond the lead) is refused; with
    /// [`Overflow::DropOldest`], a backlog past the lead is dropped down to half the lead
    /// (the margin keeps it from dropping a sliver on every chunk).
    pub fn apply_overflow(&mut self) -> Result<(), DriverError> {
        if self.overflow == Overflow::DropOldest {
            if self.backlog_seconds() > self.max_lead_seconds {
                self.drop_backlog(self.max_lead_seconds / 2.0);
            }
            return Ok(());
        }
        let backlog = self.backlog_seconds();
        if backlog > 2.0 * self.max_lead_seconds {
            return Err(Overrun {
                backlog_seconds: backlog,
                limit_seconds: self.max_lead_seconds,
            }
            .into());
        }
        Ok(())
    }

    /// Ends the open utterance now; whether one was open (see [`SessionPolicy::finalize`]).
    pub fn finalize(&mut self) -> bool {
        self.policy.finalize()
    }

    /// The next event for the client, or `None` once everything due is out; then the next
    /// queued request, if any, is started on the engine.
    pub fn poll(&mut self) -> Result<Option<SessionEvent>, DriverError> {
        loop {
            while let Some(output) = self.policy.poll() {
                match output {
                    Output::Transcribe(request) => self.pending.push_back(request),
                    Output::Update(update) => return Ok(Some(SessionEvent::Update(update))),
                    Output::Speech(event) => {
                        self.jobs.on_speech(&event);
                        return Ok(Some(SessionEvent::Speech(event)));
                    }
                }
            }
            if !self.answer_without_model() {
                self.start_next_job()?;
                return Ok(None);
            }
        }
    }

    /// Answers the next queued request itself when it needs no model (see
    /// [`StreamJobs::answer_without_model`]); whether it did.
    fn answer_without_model(&mut self) -> bool {
        if self.in_flight.is_some() {
            return false;
        }
        let Some(request) = self.pending.front() else {
            return false;
        };
        let Some(hypothesis) = self.jobs.answer_without_model(request) else {
            return false;
        };
        let request_id = request.request_id;
        self.pending.pop_front();
        self.policy.submit(request_id, hypothesis);
        true
    }

    /// Whether a job is running: only then does [`Self::next_result`] resolve.
    pub fn has_job(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Waits for the running job's transcript. Cancel-safe (for `select!`): the job stays in
    /// flight until its result is handed to [`Self::on_result`].
    ///
    /// # Panics
    /// When no job is running (guard with [`Self::has_job`]).
    pub async fn next_result(&mut self) -> Result<Transcript, EngineError> {
        let in_flight = self.in_flight.as_mut().expect("guarded by has_job");
        in_flight.handle.transcript().await
    }

    /// Hands the running job's result to the policy. A failed job loses only its own update:
    /// the session goes on, and a final request fails its utterance with what was committed.
    pub fn on_result(&mut self, result: Result<Transcript, EngineError>) {
        let Some(InFlight {
            request, started, ..
        }) = self.in_flight.take()
        else {
            return;
        };
        let latency = started.elapsed().as_secs_f64();
        self.policy
            .report_load(latency > self.policy.chunk_seconds());
        match result {
            Ok(transcript) => {
                self.processed_seconds = self
                    .processed_seconds
                    .max(request.audio_start_seconds + request.duration_seconds());
                let hypothesis = self.jobs.on_transcript(&request, &transcript);
                self.policy.submit(request.request_id, hypothesis);
            }
            Err(e) => {
                tracing::warn!(error = %e, "transcription failed; the session goes on");
                self.policy.fail(request.request_id);
            }
        }
    }

    /// Whether the client may be read: the audio waiting for transcription is under the lead,
    /// or the session drops old audio rather than hold the client back.
    pub fn accepts_audio(&self) -> bool {
        self.overflow == Overflow::DropOldest || self.backlog_seconds() < self.max_lead_seconds
    }

    /// Seconds of audio dropped untranscribed so far (drop-oldest only).
    pub fn dropped_seconds(&self) -> f64 {
        self.dropped_seconds
    }

    /// Drops untranscribed audio until `keep_seconds` of backlog are left: queued requests
    /// are given up (a final one ends its utterance with what it committed), the open
    /// utterance is cut short, and the job already running is left to finish.
    fn drop_backlog(&mut self, keep_seconds: f64) {
        let stream = self.policy.stream_seconds();
        let from = self.covered_until();
        let to = stream - keep_seconds;
        for request in std::mem::take(&mut self.pending) {
            self.policy.drop_request(request.request_id);
        }
        if self.policy.drop_audio(from, to) {
            self.dropped_seconds += to - from;
            self.dropped_until = to;
            tracing::debug!(
                from,
                to,
                "dropped untranscribed audio (overflow drop_oldest)"
            );
        }
    }

    /// Stream time up to which audio needs no more transcription: results cover it, it was
    /// silence, or it was dropped.
    fn covered_until(&self) -> f64 {
        self.processed_seconds
            .max(self.idle_until)
            .max(self.dropped_until)
            .min(self.policy.stream_seconds())
    }

    /// Nothing open, queued or running: all audio so far is handled (or was silence).
    pub fn is_idle(&self) -> bool {
        self.policy.is_idle() && self.in_flight.is_none() && self.pending.is_empty()
    }

    /// Every utterance is final and no job is running: the stream may close.
    pub fn is_done(&self) -> bool {
        self.in_flight.is_none() && self.policy.is_idle()
    }

    /// Audio received but not yet covered by a transcription result (silence before the
    /// current speech does not count).
    pub fn backlog_seconds(&self) -> f64 {
        if self.is_idle() {
            return 0.0;
        }
        self.policy.stream_seconds() - self.covered_until()
    }

    /// Stream time covered by transcription results.
    pub fn processed_seconds(&self) -> f64 {
        self.processed_seconds
    }

    /// Seconds of audio received so far.
    pub fn stream_seconds(&self) -> f64 {
        self.policy.stream_seconds()
    }

    /// The open utterance, if any (see [`SessionPolicy::open_utterance`]).
    pub fn open_utterance(&self) -> Option<u64> {
        self.policy.open_utterance()
    }

    /// Length of the open utterance's buffer (0 when none is open).
    pub fn buffered_seconds(&self) -> f64 {
        self.policy.buffered_seconds()
    }

    /// The language of the latest result: the configured one, else the one the model
    /// detected for the utterance (see [`StreamJobs`]).
    pub fn language(&self) -> &str {
        self.jobs.language()
    }

    /// The session's own job options (before per-request prompt and timing settings).
    pub fn job_options(&self) -> &JobOptions {
        self.jobs.session()
    }

    fn start_next_job(&mut self) -> Result<(), DriverError> {
        if self.in_flight.is_some() {
            return Ok(());
        }
        let Some(request) = self.pending.pop_front() else {
            return Ok(());
        };
        let options = self.jobs.options(&request);
        match self
            .engine
            .submit(Arc::from(request.audio.as_slice()), &options)
        {
            Ok(handle) => {
                self.in_flight = Some(InFlight {
                    request,
                    handle,
                    started: Instant::now(),
                });
                Ok(())
            }
            Err(EngineError::Saturated { .. }) => {
                // Skip this interim update; the next request covers its audio. A final one
                // fails its utterance with the last hypothesis committed.
                self.policy.report_load(true);
                self.policy.fail(request.request_id);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests;

//! [`SessionPolicy`]: the per-stream state machine tying audio, VAD, requests and agreement.
//!
//! It is sans-I/O: inputs are method calls ([`push_audio`](SessionPolicy::push_audio),
//! [`submit`](SessionPolicy::submit), [`fail`](SessionPolicy::fail),
//! [`finalize`](SessionPolicy::finalize), [`report_load`](SessionPolicy::report_load)) and
//! every consequence is queued as an [`Output`], drained with [`poll`](SessionPolicy::poll)
//! after each input. The audio kept is the open utterance's buffer, or, between utterances, just
//! enough history for the VAD's pre-roll and onset look-back.

use std::collections::VecDeque;

use super::prompt::PromptContext;
use super::utterance::{InFlight, Utterance};
use super::vad::{Vad, VadEvent};
use super::{
    ConfigError, Hypothesis, MAX_BUFFER_SECONDS, SessionConfig, SpeechEvent, TranscriptUpdate,
    TranscriptionRequest, sample_at, seconds,
};

/// When stalled agreement forces a commit, words in the last this-many seconds of the
/// hypothesis stay tentative: they are the likeliest to be cut mid-word.
const FORCE_GUARD_SECONDS: f64 = 1.0;
/// How far back the VAD may place an onset, beyond the pre-roll (its look-back plus onset window).
const VAD_LOOKBACK_SECONDS: f64 = 1.1;

/// What the caller should do next, in the order things happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Run this transcription, then call [`SessionPolicy::submit`] (or
    /// [`SessionPolicy::fail`]) with its `request_id`.
    Transcribe(TranscriptionRequest),
    /// Send this transcript update to the client.
    Update(TranscriptUpdate),
    /// Speech started or ended.
    Speech(SpeechEvent),
}

/// The streaming policy of one session.
#[derive(Debug)]
pub struct SessionPolicy {
    config: SessionConfig,
    vad: Option<Vad>,
    /// Samples from stream sample `audio_start` to `total`.
    audio: Vec<f32>,
    audio_start: u64,
    total: u64,
    open: Option<Utterance>,
    /// Closed utterances waiting for their final result.
    closing: Vec<Utterance>,
    outputs: VecDeque<Output>,
    context: PromptContext,
    next_utterance_id: u64,
    next_request_id: u64,
    chunk_seconds: f64,
}

impl SessionPolicy {
    /// A policy for a new stream, or the knob that is out of range.
    pub fn new(config: SessionConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            vad: config.vad.enabled.then(|| Vad::new(&config.vad)),
            audio: Vec::new(),
            audio_start: 0,
            total: 0,
            open: None,
            closing: Vec::new(),
            outputs: VecDeque::new(),
            context: PromptContext::new(config.max_prompt_chars),
            next_utterance_id: 1,
            next_request_id: 1,
            chunk_seconds: config.min_chunk_seconds,
            config,
        })
    }

    /// Appends 16 kHz mono samples to the stream.
    pub fn push_audio(&mut self, samples: &[f32]) {
        let chunk_start = self.total;
        self.audio.extend_from_slice(samples);
        self.total += samples.len() as u64;
        let Some(vad) = self.vad.as_mut() else {
            if self.open.is_none() && !samples.is_empty() {
                self.open_at(chunk_start);
            }
            self.split_overlong(self.total);
            return;
        };
        for event in vad.push(samples) {
            match event {
                VadEvent::SpeechStarted { at_seconds } => {
                    let pre_roll = f64::from(self.config.vad.pre_roll_ms) / 1000.0;
                    // None is open while the VAD was silent; close rather than lose one.
                    self.close_at(self.total);
                    let utterance_id = self.open_at(sample_at(at_seconds - pre_roll));
                    self.emit(Output::Speech(SpeechEvent::Started {
                        utterance_id,
                        at_seconds,
                    }));
                }
                VadEvent::SpeechEnded { at_seconds } => {
                    let post_roll = f64::from(self.config.vad.post_roll_ms) / 1000.0;
                    let end = sample_at(at_seconds + post_roll).min(self.total);
                    self.split_overlong(end);
                    if let Some(utterance_id) = self.open.as_ref().map(|u| u.id) {
                        self.emit(Output::Speech(SpeechEvent::Ended {
                            utterance_id,
                            at_seconds,
                        }));
                        self.close_at(end);
                    }
                }
            }
        }
        self.split_overlong(self.total);
        if self.open.is_none() {
            self.forget_history();
        }
    }

    /// The next thing to do, or `None` until more input arrives. An interim request is due when
    /// an utterance is open, none of its requests is in flight and at least
    /// [`chunk_seconds`](Self::chunk_seconds) of audio arrived since its last request (the
    /// first: [`first_chunk_seconds`](Self::first_chunk_seconds) since it opened).
    pub fn poll(&mut self) -> Option<Output> {
        if let Some(output) = self.outputs.pop_front() {
            return Some(output);
        }
        let first_chunk = self.first_chunk_seconds();
        let utterance = self.open.as_mut()?;
        let chunk = if utterance.awaits_first_request() {
            sample_at(first_chunk)
        } else {
            sample_at(self.chunk_seconds)
        };
        if utterance.in_flight.is_some() || self.total - utterance.requested_until < chunk {
            return None;
        }
        let prompt = self.context.prompt();
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        let request = make_request(
            utterance,
            request_id,
            &self.audio,
            self.audio_start,
            prompt,
            false,
        );
        Some(Output::Transcribe(request))
    }

    /// Hands in the result of request `request_id`. A result is used only if it answers the
    /// latest request of its utterance; others (superseded by a final request, or for an
    /// utterance already final) are ignored.
    pub fn submit(&mut self, request_id: u64, hypothesis: Hypothesis) {
        if let Some(utterance) = self.open.as_mut()
            && let Some(request) = utterance.in_flight.take_if(|f| f.request_id == request_id)
        {
            utterance.accept(request, &hypothesis, self.config.policy);
            self.bound_buffer(&hypothesis, request);
            let utterance = self.open.as_mut().expect("still open");
            if let Some(update) = utterance.update(request.end_seconds(), false) {
                self.emit(Output::Update(update));
            }
        } else if let Some(mut utterance) = self.take_closing(request_id) {
            let request = utterance
                .in_flight
                .take()
                .expect("closing utterances await a request");
            utterance.accept(request, &hypothesis, self.config.policy);
            self.finish(utterance, request.end_seconds());
        }
    }

    /// Request `request_id` failed. A failed interim request is forgotten (the next one covers
    /// its audio); a failed final one ends its utterance with the last hypothesis committed.
    pub fn fail(&mut self, request_id: u64) {
        self.give_up(request_id, false);
    }

    /// Request `request_id` will not be run: its audio is dropped to keep a live stream
    /// current. As [`fail`](Self::fail), and a final update says audio was dropped.
    pub fn drop_request(&mut self, request_id: u64) {
        self.give_up(request_id, true);
    }

    fn give_up(&mut self, request_id: u64, audio_dropped: bool) {
        if let Some(utterance) = self.open.as_mut() {
            utterance.in_flight.take_if(|f| f.request_id == request_id);
        }
        if let Some(mut utterance) = self.take_closing(request_id) {
            let request = utterance
                .in_flight
                .take()
                .expect("closing utterances await a request");
            utterance.commits.commit_all();
            utterance.audio_dropped |= audio_dropped;
            self.finish(utterance, request.end_seconds());
        }
    }

    /// Ends the open utterance now (client Finalize or end of stream); returns whether one was
    /// open. It still gets exactly one final update (empty text if nothing was said); with no
    /// open utterance nothing happens. The VAD needs a fresh onset afterwards.
    pub fn finalize(&mut self) -> bool {
        if let Some(vad) = self.vad.as_mut() {
            vad.reset_speech();
        }
        self.close_at(self.total).is_some()
    }

    /// Drops the audio before `to_seconds` that no result covers yet, for a live stream that
    /// must stay current when transcription falls behind a client that cannot slow down
    /// (overflow policy drop-oldest). The caller says where the untranscribed audio starts
    /// (`from_seconds`, what the session's results cover).
    ///
    /// The open utterance ends now with what it has committed (its running request's result
    /// will be ignored) and its final update says audio was dropped; if speech goes on, a new
    /// utterance opens (and starts) at `to_seconds`. Returns whether anything was dropped.
    pub fn drop_audio(&mut self, from_seconds: f64, to_seconds: f64) -> bool {
        let to = sample_at(to_seconds).clamp(self.audio_start, self.total);
        if to <= self.audio_start || to_seconds <= from_seconds {
            return false;
        }
        let cut_short = self.open.take().map(|mut utterance| {
            utterance.in_flight = None;
            utterance.audio_dropped = true;
            utterance.commits.commit_all();
            utterance
        });
        self.emit(Output::Speech(SpeechEvent::AudioDropped {
            utterance_id: cut_short.as_ref().map_or(0, |u| u.id),
            from_seconds,
            to_seconds: seconds(to),
        }));
        let speech_goes_on = self.vad.as_ref().is_none_or(Vad::in_speech);
        if let Some(utterance) = cut_short {
            self.finish(utterance, from_seconds);
        }
        self.audio.drain(..(to - self.audio_start) as usize);
        self.audio_start = to;
        if speech_goes_on {
            let utterance_id = self.open_at(to);
            self.emit(Output::Speech(SpeechEvent::Started {
                utterance_id,
                at_seconds: seconds(to),
            }));
        }
        true
    }

    /// Tells the policy whether the model server is keeping up (for example: a result took
    /// longer than [`chunk_seconds`](Self::chunk_seconds), or the scheduler queue is full).
    /// Behind grows the chunk by half, up to `max_chunk_seconds`; keeping up shrinks it by a
    /// fifth, down to `min_chunk_seconds`.
    pub fn report_load(&mut self, behind: bool) {
        let (min, max) = (self.config.min_chunk_seconds, self.config.max_chunk_seconds);
        self.chunk_seconds = if behind {
            (self.chunk_seconds * 1.5).min(max)
        } else {
            (self.chunk_seconds * 0.8).max(min)
        };
    }

    /// New audio, in seconds, that currently makes an interim request due.
    pub fn chunk_seconds(&self) -> f64 {
        self.chunk_seconds
    }

    /// Utterance audio that makes its first request due: `first_chunk_seconds`, grown in
    /// proportion with the chunk while the server is behind.
    pub fn first_chunk_seconds(&self) -> f64 {
        let config = &self.config;
        config.first_chunk_seconds * self.chunk_seconds / config.min_chunk_seconds
    }

    /// Seconds of audio received so far.
    pub fn stream_seconds(&self) -> f64 {
        seconds(self.total)
    }

    /// The open utterance's id, if one is open: transports that name utterances before
    /// their first update (an explicit commit with the VAD off) need it.
    pub fn open_utterance(&self) -> Option<u64> {
        self.open.as_ref().map(|u| u.id)
    }

    /// Length of the open utterance's buffer (0 when none is open).
    pub fn buffered_seconds(&self) -> f64 {
        match self.open {
            Some(_) => seconds(self.total - self.audio_start),
            None => 0.0,
        }
    }

    /// No utterance open, no output queued and no result awaited: the stream can close.
    pub fn is_idle(&self) -> bool {
        self.open.is_none() && self.closing.is_empty() && self.outputs.is_empty()
    }

    fn emit(&mut self, output: Output) {
        self.outputs.push_back(output);
    }

    fn open_at(&mut self, start: u64) -> u64 {
        let start = start.clamp(self.audio_start, self.total);
        self.audio.drain(..(start - self.audio_start) as usize);
        self.audio_start = start;
        let id = self.next_utterance_id;
        self.next_utterance_id += 1;
        self.open = Some(Utterance::new(id, start));
        id
    }

    /// Closes the open utterance with its audio ending at `end`: promotes an in-flight request
    /// that already covers it, else queues a final request, or, with no audio left, finishes it
    /// from what it has.
    fn close_at(&mut self, end: u64) -> Option<u64> {
        let mut utterance = self.open.take()?;
        let id = utterance.id;
        let end = end.clamp(self.audio_start, self.total);
        match utterance.in_flight.as_mut() {
            Some(request) if request.end_sample >= end => request.is_final = true,
            _ if end > self.audio_start => {
                let prompt = self.context.prompt();
                let request_id = self.next_request_id;
                self.next_request_id += 1;
                let audio = &self.audio[..(end - self.audio_start) as usize];
                let request = make_request(
                    &mut utterance,
                    request_id,
                    audio,
                    self.audio_start,
                    prompt,
                    true,
                );
                self.emit(Output::Transcribe(request));
            }
            _ => {
                utterance.in_flight = None;
                utterance.commits.commit_all();
            }
        }
        self.audio.drain(..(end - self.audio_start) as usize);
        self.audio_start = end;
        if utterance.in_flight.is_some() {
            self.closing.push(utterance);
        } else {
            self.finish(utterance, seconds(end));
        }
        Some(id)
    }

    fn take_closing(&mut self, request_id: u64) -> Option<Utterance> {
        let i = self
            .closing
            .iter()
            .position(|u| u.in_flight.is_some_and(|f| f.request_id == request_id))?;
        Some(self.closing.remove(i))
    }

    /// Reports a closed utterance's final update; its text joins the prompt context.
    fn finish(&mut self, mut utterance: Utterance, end_seconds: f64) {
        self.context.extend(utterance.commits.release_all());
        if let Some(update) = utterance.update(end_seconds, true) {
            self.emit(Output::Update(update));
        }
    }

    /// After a result: trims a long buffer after committed text, forces progress if agreement
    /// stalled (see the module docs for the thresholds).
    fn bound_buffer(&mut self, hypothesis: &Hypothesis, request: InFlight) {
        let Some(utterance) = self.open.as_mut() else {
            return;
        };
        let buffered = seconds(self.total - self.audio_start);
        if buffered > self.config.buffer_trim_seconds {
            let segment_ends: Vec<f64> = hypothesis
                .segment_ends
                .iter()
                .map(|e| e + request.start_seconds())
                .collect();
            if let Some(cut) = utterance.trim_point(&segment_ends) {
                self.cut(cut);
            }
        }
        let buffered = seconds(self.total - self.audio_start);
        if buffered > self.config.force_commit_seconds {
            let utterance = self.open.as_mut().expect("open");
            let cut = utterance.force_commit(request.end_seconds() - FORCE_GUARD_SECONDS);
            self.cut(cut);
        }
    }

    /// Drops the open utterance's audio before `at` seconds; committed words that end by then
    /// move to the prompt.
    fn cut(&mut self, at: f64) {
        let sample = sample_at(at).clamp(self.audio_start, self.total);
        let utterance = self.open.as_mut().expect("cut needs an open utterance");
        self.context.extend(utterance.commits.release_until(at));
        self.audio.drain(..(sample - self.audio_start) as usize);
        self.audio_start = sample;
    }

    /// The 30 s backstop, reached only when results stop coming: the open utterance is closed
    /// at 30 s of audio and a new one continues from there.
    fn split_overlong(&mut self, until: u64) {
        let max = sample_at(MAX_BUFFER_SECONDS);
        while self.open.is_some() && until.saturating_sub(self.audio_start) > max {
            let at = self.audio_start + max;
            self.close_at(at);
            self.open_at(at);
        }
    }

    /// Between utterances, keeps only the audio a coming onset can reach back to.
    fn forget_history(&mut self) {
        let vad = &self.config.vad;
        let keep_seconds =
            f64::from(vad.pre_roll_ms + 2 * vad.min_speech_ms) / 1000.0 + VAD_LOOKBACK_SECONDS;
        let keep = sample_at(keep_seconds) as usize;
        if self.audio.len() > keep {
            let drop = self.audio.len() - keep;
            self.audio.drain(..drop);
            self.audio_start += drop as u64;
        }
    }
}

/// Builds a request for `utterance` over `audio` (which starts at stream sample `start`) and
/// records it as the one in flight.
fn make_request(
    utterance: &mut Utterance,
    request_id: u64,
    audio: &[f32],
    start: u64,
    prompt: String,
    is_final: bool,
) -> TranscriptionRequest {
    let end = start + audio.len() as u64;
    assert!(
        audio.len() as u64 <= sample_at(MAX_BUFFER_SECONDS),
        "a request never exceeds Whisper's window"
    );
    utterance.in_flight = Some(InFlight {
        request_id,
        start_sample: start,
        end_sample: end,
        is_final,
    });
    utterance.requested_until = end;
    TranscriptionRequest {
        request_id,
        utterance_id: utterance.id,
        audio: audio.to_vec(),
        audio_start_seconds: seconds(start),
        prompt,
        is_final,
    }
}

#[cfg(test)]
mod tests;

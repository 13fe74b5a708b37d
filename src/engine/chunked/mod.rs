//! One long recording transcribed as many jobs side by side: its [`ChunkPlan`]'s chunks (at
//! most 30 s of speech each, cut at pauses) go to the scheduler as separate jobs, so they share
//! batches and the recording finishes in a fraction of its window-after-window time.
//!
//! The caller still sees one job: windows in the recording's order with its times, progress
//! that only grows, one transcript at the end. A few chunks are queued at a time (enough to
//! fill batches, not so many that one upload crowds the queue), more as earlier ones finish.
//! Without a language on a multilingual model, the first chunk runs alone and its detected
//! language is pinned for the rest, so one recording is not transcribed in several languages.

use std::collections::VecDeque;
use std::sync::Arc;

use super::job::{JobEvent, JobHandle, JobOptions};
use super::{Core, EngineError, submit_to};
use crate::audio::ChunkPlan;
use crate::model::whisper::decode::{Segment, Transcript, joined_text};

/// The scheduler side of a chunked job (held by its [`JobHandle`]; dropping that cancels
/// every chunk still queued or running).
pub(super) struct ChunkedJob {
    core: Arc<dyn Core>,
    samples: Arc<[f32]>,
    plan: ChunkPlan,
    options: JobOptions,
    /// Chunks queued or running at a time, at most.
    in_flight: usize,
    /// The next chunk to submit.
    next_chunk: usize,
    /// Submitted chunks not yet read to their end, in order.
    running: VecDeque<Running>,
    /// Segments of the chunks read to their end, in the recording's times and numbered.
    segments: Vec<Segment>,
    /// Language and its probability, from the first chunk.
    language: Option<(String, Option<f32>)>,
    /// Segments handed out in window updates so far.
    emitted: usize,
    /// Whether the merged transcript (or a failure) has been handed out.
    finished: bool,
}

/// A submitted chunk and the events read from it ahead of its turn.
struct Running {
    handle: JobHandle,
    early: VecDeque<JobEvent>,
    over: bool,
}

impl ChunkedJob {
    /// Validates `options` and queues the first chunks of `plan` (which must hold at least one).
    pub(super) fn start(
        core: Arc<dyn Core>,
        samples: Arc<[f32]>,
        plan: ChunkPlan,
        options: &JobOptions,
        in_flight: usize,
    ) -> Result<Self, EngineError> {
        debug_assert!(!plan.is_empty(), "a chunked job needs a chunk");
        let decode = options.decode_options(&core.config().policy);
        core.validate(&decode).map_err(EngineError::Rejected)?;
        let mut job = Self {
            core,
            samples,
            plan,
            options: options.clone(),
            in_flight: in_flight.max(1),
            next_chunk: 0,
            running: VecDeque::new(),
            segments: Vec::new(),
            language: None,
            emitted: 0,
            finished: false,
        };
        job.refill()?;
        Ok(job)
    }

    /// Chunks in the recording.
    pub(super) fn len(&self) -> usize {
        self.plan.len()
    }

    /// The next event in the recording's order: the head chunk's windows as they come, then
    /// the next chunk's, …, then one [`JobEvent::Done`] with the merged transcript.
    pub(super) async fn next(&mut self) -> Option<JobEvent> {
        loop {
            if let Err(error) = self.refill() {
                return Some(self.fail(error));
            }
            let Some(head) = self.running.front_mut() else {
                return self.merged();
            };
            let event = match head.early.pop_front() {
                Some(event) => event,
                // `None`: the engine dropped the job, it is shutting down.
                None => head.handle.next().await?,
            };
            match event {
                JobEvent::Window(mut window) => {
                    self.pin_language(&window.language);
                    number(&mut window.segments, self.emitted);
                    self.emitted += window.segments.len();
                    window.total_seconds = self.plan.total_seconds();
                    return Some(JobEvent::Window(window));
                }
                JobEvent::Done(transcript) => {
                    self.running.pop_front();
                    self.collect(transcript);
                }
                JobEvent::Failed(error) => return Some(self.fail(error)),
            }
        }
    }

    /// Queues chunks until `in_flight` are unfinished, after reading what finished chunks
    /// have already sent. A full queue is retried as chunks finish, unless none is left to
    /// finish.
    fn refill(&mut self) -> Result<(), EngineError> {
        self.read_ahead();
        while self.next_chunk < self.plan.len() && self.unfinished() < self.in_flight {
            if self.next_chunk > 0 && self.waiting_for_language() {
                break;
            }
            let (samples, splice) = self.plan.chunk(&self.samples, self.next_chunk);
            let mut options = self.options.clone();
            if let Some((language, _)) = &self.language {
                options.language = Some(language.clone());
            }
            match submit_to(&*self.core, samples.into(), &options) {
                Ok(handle) => {
                    self.running.push_back(Running {
                        handle: handle.through(splice),
                        early: VecDeque::new(),
                        over: false,
                    });
                    self.next_chunk += 1;
                }
                Err(EngineError::Saturated { .. }) if self.unfinished() > 0 => break,
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Moves every event the chunks behind the head have sent into their `early` queues, so
    /// that their finishing frees room for more chunks while the head is still running.
    fn read_ahead(&mut self) {
        for running in self.running.iter_mut().skip(1).filter(|r| !r.over) {
            while let Some(event) = running.handle.try_next() {
                running.over |= !matches!(event, JobEvent::Window(_));
                running.early.push_back(event);
            }
        }
    }

    fn unfinished(&self) -> usize {
        self.running.iter().filter(|r| !r.over).count()
    }

    /// Whether later chunks must wait for the first one's detected language.
    fn waiting_for_language(&self) -> bool {
        self.options.language.is_none() && self.core.info().multilingual && self.language.is_none()
    }

    fn pin_language(&mut self, language: &str) {
        if self.language.is_none() {
            self.language = Some((language.to_string(), None));
        }
    }

    /// Keeps a finished chunk's segments (already in the recording's times).
    fn collect(&mut self, transcript: Transcript) {
        match &mut self.language {
            Some((_, probability @ None)) => *probability = transcript.language_probability,
            Some(_) => {}
            None => self.language = Some((transcript.language, transcript.language_probability)),
        }
        let mut segments = transcript.segments;
        number(&mut segments, self.segments.len());
        self.segments.extend(segments);
    }

    /// The transcript of the whole recording, once every chunk is read; then nothing.
    fn merged(&mut self) -> Option<JobEvent> {
        if std::mem::replace(&mut self.finished, true) {
            return None;
        }
        let segments = std::mem::take(&mut self.segments);
        let (language, language_probability) = self
            .language
            .take()
            .unwrap_or_else(|| (self.options.language.clone().unwrap_or("en".into()), None));
        Some(JobEvent::Done(Transcript {
            text: joined_text(&segments),
            segments,
            language,
            language_probability,
            duration: self.plan.total_seconds(),
        }))
    }

    /// Ends the job with `error`: the chunks still queued or running are cancelled.
    fn fail(&mut self, error: EngineError) -> JobEvent {
        self.running.clear();
        self.next_chunk = self.plan.len();
        self.finished = true;
        JobEvent::Failed(error)
    }
}

/// Numbers `segments` on from `first`.
fn number(segments: &mut [Segment], first: usize) {
    for (i, segment) in segments.iter_mut().enumerate() {
        segment.id = first + i;
    }
}

#[cfg(test)]
mod tests;

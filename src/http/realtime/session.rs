//! One Realtime transcription session, sans socket: client events in, server events out.
//!
//! The audio path is the one gRPC streaming uses ([`StreamDecoder`] → [`SessionDriver`]);
//! this type adds OpenAI's vocabulary on top. Each policy utterance is a conversation item:
//! speech events become `speech_started`/`speech_stopped`, the end of an utterance (VAD
//! endpoint, or `commit` with turn detection off) `committed`, each update's stable
//! `committed_delta` a `delta`, and the final update `completed`. Changing the audio format or
//! turn detection, and `clear`, start a fresh stream; its times continue the old one's.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};

use super::config::RealtimeConfig;
use super::error::RealtimeError;
use super::events::{ClientEvent, Incoming};
use crate::audio::WHISPER_SAMPLE_RATE;
use crate::audio::stream::StreamDecoder;
use crate::engine::EngineError;
use crate::model::whisper::decode::Transcript;
use crate::service::{Caller, Service};
use crate::session::{SessionPolicy, SpeechEvent, TranscriptUpdate};
use crate::streaming::{SessionDriver, SessionEvent};

/// OpenAI refuses to commit less audio than this.
const MIN_COMMIT_SECONDS: f64 = 0.1;

/// The decoder and driver of the current stream.
struct Stream {
    decoder: StreamDecoder,
    driver: SessionDriver,
}

/// A conversation item: one utterance of the policy.
struct Item {
    id: String,
    committed: bool,
}

/// What a session needs from the server.
pub(super) struct SessionContext {
    /// The serving core: engine, served model, limits, quotas.
    pub(super) service: Arc<Service>,
    /// Who opened the socket; its audio counts against its allowance.
    pub(super) caller: Caller,
    /// Speak the beta dialect (`transcription_session.*`) from the start.
    pub(super) beta: bool,
}

/// One session's protocol state; events to send collect in an outbox.
pub(super) struct RealtimeSession {
    id: String,
    context: SessionContext,
    beta: bool,
    config: RealtimeConfig,
    stream: Option<Stream>,
    /// Items by policy utterance id, until completed.
    items: BTreeMap<u64, Item>,
    last_committed: Option<String>,
    /// Stream time at which the current stream started (after a clear or reconfiguration).
    offset_seconds: f64,
    /// Audio appended since the last commit (explicit, or a VAD endpoint).
    since_commit_seconds: f64,
    outbox: VecDeque<Value>,
}

impl RealtimeSession {
    /// A session with the default settings; `session.created` is already in its outbox.
    pub(super) fn new(context: SessionContext) -> Self {
        let mut session = Self {
            id: format!("sess_{}", uuid::Uuid::new_v4().simple()),
            beta: context.beta,
            context,
            config: RealtimeConfig::default(),
            stream: None,
            items: BTreeMap::new(),
            last_committed: None,
            offset_seconds: 0.0,
            since_commit_seconds: 0.0,
            outbox: VecDeque::new(),
        };
        session.announce("created");
        session
    }

    /// The next event to send.
    pub(super) fn next_event(&mut self) -> Option<Value> {
        self.outbox.pop_front()
    }

    /// Handles one client message. Errors about the event become `error` events; only a
    /// fatal one (overrun, engine refusal) is returned, and the session should end.
    pub(super) fn on_message(&mut self, incoming: Incoming) -> Result<(), RealtimeError> {
        let result = incoming.event.and_then(|event| self.on_event(event));
        match result {
            Err(e) if e.is_fatal() => Err(e),
            Err(e) => {
                self.send_error(&e, incoming.event_id.as_deref());
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// Reports an error event without ending the session.
    pub(super) fn send_error(&mut self, error: &RealtimeError, client_event_id: Option<&str>) {
        tracing::debug!(session = %self.id, %error, "realtime event refused");
        let event = error.event(&event_id(), client_event_id);
        self.outbox.push_back(event);
    }

    fn on_event(&mut self, event: ClientEvent) -> Result<(), RealtimeError> {
        match event {
            ClientEvent::GaUpdate(session) => {
                let next = self.config.with_ga(session)?;
                self.update(next)
            }
            ClientEvent::BetaUpdate(session) => {
                self.beta = true;
                let next = self.config.with_beta(session)?;
                self.update(next)
            }
            ClientEvent::Append(audio) => self.append(&audio),
            ClientEvent::Commit => self.commit(),
            ClientEvent::Clear => {
                self.restart_stream(true);
                self.since_commit_seconds = 0.0;
                self.emit("input_audio_buffer.cleared", json!({}));
                Ok(())
            }
        }
    }

    fn update(&mut self, next: RealtimeConfig) -> Result<(), RealtimeError> {
        crate::http::models::resolve(next.model.as_deref(), self.context.service.model_id())
            .map_err(RealtimeError::Refused)?;
        self.context.service.engine().validate(&next.job())?;
        if next != self.config {
            if self.stream.as_ref().is_some_and(|s| !s.driver.is_idle()) {
                return Err(RealtimeError::UpdateWhileBusy);
            }
            self.restart_stream(false);
            self.config = next;
        }
        self.announce("updated");
        Ok(())
    }

    fn append(&mut self, audio: &str) -> Result<(), RealtimeError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(audio.trim())
            .map_err(|e| RealtimeError::InvalidBase64(e.to_string()))?;
        let stream = self.stream()?;
        let samples = stream.decoder.push(&bytes)?;
        let seconds = samples.len() as f64 / f64::from(WHISPER_SAMPLE_RATE);
        self.context
            .service
            .charge_audio(&self.context.caller, seconds)
            .map_err(RealtimeError::Fatal)?;
        let stream = self.stream()?;
        stream.driver.push_audio(&samples);
        stream.driver.apply_overflow()?;
        self.since_commit_seconds += seconds;
        Ok(())
    }

    /// Ends the current item now. With nothing open (the VAD heard only silence) the audio
    /// still becomes an item, with an empty transcript, as clients wait for its completion.
    fn commit(&mut self) -> Result<(), RealtimeError> {
        if self.since_commit_seconds < MIN_COMMIT_SECONDS {
            return Err(RealtimeError::CommitEmpty {
                buffered_ms: self.since_commit_seconds * 1000.0,
            });
        }
        self.since_commit_seconds = 0.0;
        let stream = self.stream()?;
        match stream.driver.open_utterance() {
            Some(utterance) => {
                stream.driver.finalize();
                self.commit_item(utterance);
            }
            None => {
                let id = item_id();
                self.committed(&id);
                self.emit(
                    "conversation.item.input_audio_transcription.completed",
                    json!({
                        "item_id": id, "content_index": 0, "transcript": "",
                        "usage": {"type": "duration", "seconds": 0.0},
                    }),
                );
            }
        }
        Ok(())
    }

    /// Sends what the driver produced and starts its next job; fails when the session must
    /// end.
    pub(super) fn pump(&mut self) -> Result<(), RealtimeError> {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return Ok(());
            };
            let Some(event) = stream.driver.poll()? else {
                return Ok(());
            };
            match event {
                SessionEvent::Speech(speech) => self.on_speech(speech),
                SessionEvent::Update(update) => self.on_update(update),
            }
        }
    }

    fn on_speech(&mut self, event: SpeechEvent) {
        match event {
            SpeechEvent::Started {
                utterance_id,
                at_seconds,
            } => {
                let item_id = self.item(utterance_id).id.clone();
                let audio_start_ms = self.stream_ms(at_seconds);
                self.emit(
                    "input_audio_buffer.speech_started",
                    json!({
                        "audio_start_ms": audio_start_ms, "item_id": item_id,
                    }),
                );
            }
            SpeechEvent::Ended {
                utterance_id,
                at_seconds,
            } => {
                let item_id = self.item(utterance_id).id.clone();
                let audio_end_ms = self.stream_ms(at_seconds);
                self.emit(
                    "input_audio_buffer.speech_stopped",
                    json!({
                        "audio_end_ms": audio_end_ms, "item_id": item_id,
                    }),
                );
                self.commit_item(utterance_id);
                self.since_commit_seconds = 0.0;
            }
            // Realtime sessions keep the default overflow policy (reject): OpenAI's protocol
            // has no way to tell the client audio was dropped, so none ever is.
            SpeechEvent::AudioDropped { .. } => {}
        }
    }

    fn on_update(&mut self, update: TranscriptUpdate) {
        if update.is_final {
            // An utterance the policy split or the shutdown closed has had no commit yet.
            self.commit_item(update.utterance_id);
        }
        let item_id = self.item(update.utterance_id).id.clone();
        if !update.committed_delta.is_empty() {
            self.emit(
                "conversation.item.input_audio_transcription.delta",
                json!({
                    "item_id": item_id, "content_index": 0, "delta": update.committed_delta,
                }),
            );
        }
        if self.config.tentative && !update.is_final {
            self.emit(
                "conversation.item.input_audio_transcription.tentative",
                json!({
                    "item_id": item_id, "content_index": 0,
                    "tentative": update.tentative, "stability": update.stability,
                }),
            );
        }
        if update.is_final {
            self.items.remove(&update.utterance_id);
            let seconds = (update.end_seconds - update.start_seconds).max(0.0);
            self.emit(
                "conversation.item.input_audio_transcription.completed",
                json!({
                    "item_id": item_id, "content_index": 0,
                    "transcript": update.committed.trim(),
                    "usage": {"type": "duration", "seconds": seconds},
                }),
            );
        }
    }

    /// Whether the client may be read (the backlog is under the lead).
    pub(super) fn accepts_audio(&self) -> bool {
        self.stream
            .as_ref()
            .is_none_or(|s| s.driver.accepts_audio())
    }

    /// Whether an engine job is running.
    pub(super) fn has_job(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.driver.has_job())
    }

    /// Every item is complete and no job runs.
    pub(super) fn is_done(&self) -> bool {
        self.stream.as_ref().is_none_or(|s| s.driver.is_done())
    }

    /// Waits for the running job (guard with [`Self::has_job`]).
    pub(super) async fn next_result(&mut self) -> Result<Transcript, EngineError> {
        let stream = self.stream.as_mut().expect("guarded by has_job");
        stream.driver.next_result().await
    }

    /// Hands the running job's result to the policy.
    pub(super) fn on_result(&mut self, result: Result<Transcript, EngineError>) {
        if let Some(stream) = self.stream.as_mut() {
            stream.driver.on_result(result);
        }
    }

    /// No more input (server shutdown): the open item is committed and transcribed.
    pub(super) fn end_input(&mut self) {
        if let Some(stream) = self.stream.as_mut() {
            stream.driver.finalize();
        }
    }

    /// The current stream, started with the session's settings on first use.
    fn stream(&mut self) -> Result<&mut Stream, RealtimeError> {
        if self.stream.is_none() {
            let format = self.config.format;
            let decoder = StreamDecoder::new(format.encoding, format.sample_rate, 1)?;
            let detector = self.context.service.detector().clone();
            let policy = SessionPolicy::new(self.config.policy_with(detector)?).map_err(|e| {
                RealtimeError::invalid("session.audio.input.turn_detection", e.to_string())
            })?;
            let driver = SessionDriver::new(
                Arc::clone(self.context.service.engine()),
                self.config.job(),
                policy,
                self.context.service.limits().max_lead_seconds,
            );
            self.stream = Some(Stream { decoder, driver });
        }
        Ok(self.stream.as_mut().expect("just set"))
    }

    /// Drops the current stream (cancelling its job). Items committed but not yet complete
    /// are reported failed when `clearing`; the open one is simply discarded.
    fn restart_stream(&mut self, clearing: bool) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        self.offset_seconds += stream.driver.stream_seconds();
        for item in std::mem::take(&mut self.items).into_values() {
            if clearing && item.committed {
                self.emit("conversation.item.input_audio_transcription.failed", json!({
                    "item_id": item.id, "content_index": 0,
                    "error": {"type": "invalid_request_error", "code": "input_audio_buffer_cleared",
                              "message": "the input audio buffer was cleared before this item \
                                          was transcribed", "param": null},
                }));
            }
        }
    }

    fn item(&mut self, utterance_id: u64) -> &mut Item {
        self.items.entry(utterance_id).or_insert_with(|| Item {
            id: item_id(),
            committed: false,
        })
    }

    fn commit_item(&mut self, utterance_id: u64) {
        let item = self.item(utterance_id);
        if item.committed {
            return;
        }
        item.committed = true;
        let id = item.id.clone();
        self.committed(&id);
    }

    fn committed(&mut self, item_id: &str) {
        let previous = self.last_committed.replace(item_id.to_owned());
        self.emit(
            "input_audio_buffer.committed",
            json!({
                "item_id": item_id, "previous_item_id": previous,
            }),
        );
    }

    /// `session.created`/`updated`, in the dialect the client speaks.
    fn announce(&mut self, what: &str) {
        let served = self.context.service.model_id();
        let (kind, session) = if self.beta {
            (
                "transcription_session",
                self.config.beta_json(&self.id, served),
            )
        } else {
            ("session", self.config.ga_json(&self.id, served))
        };
        self.emit(&format!("{kind}.{what}"), json!({ "session": session }));
    }

    fn stream_ms(&self, at_seconds: f64) -> u64 {
        ((self.offset_seconds + at_seconds) * 1000.0)
            .round()
            .max(0.0) as u64
    }

    fn emit(&mut self, kind: &str, mut fields: Value) {
        if let Some(object) = fields.as_object_mut() {
            object.insert("type".into(), kind.into());
            object.insert("event_id".into(), event_id().into());
        }
        self.outbox.push_back(fields);
    }
}

fn event_id() -> String {
    format!("event_{}", uuid::Uuid::new_v4().simple())
}

fn item_id() -> String {
    format!("item_{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use serde_json::json;

    use super::*;
    use crate::audio::f32_to_pcm16le;
    use crate::engine::backend::scripted::{say, silence};
    use crate::engine::{Engine, EngineConfig, ScriptedBackend};
    use crate::http::realtime::events;

    fn session(backend: &ScriptedBackend, max_lead_seconds: f64) -> RealtimeSession {
        let engine = Engine::start(backend.clone(), EngineConfig::default());
        let model = crate::service::ServedModel {
            id: "tiny.en".into(),
            device: "cpu".into(),
        };
        let limits = crate::service::Limits {
            max_lead_seconds,
            ..Default::default()
        };
        let metrics = crate::telemetry::Metrics::in_memory();
        let service = Service::new(Arc::new(engine), model, limits, metrics);
        let mut session = RealtimeSession::new(SessionContext {
            service: Arc::new(service),
            caller: Caller::anonymous(),
            beta: false,
        });
        let update = json!({"type": "session.update", "session": {"type": "transcription",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}});
        session
            .on_message(events::parse(&update.to_string()))
            .unwrap();
        session
    }

    fn append(session: &mut RealtimeSession, samples: &[f32]) -> Result<(), RealtimeError> {
        let audio = base64::engine::general_purpose::STANDARD.encode(f32_to_pcm16le(samples));
        let event = json!({"type": "input_audio_buffer.append", "audio": audio});
        session.on_message(events::parse(&event.to_string()))
    }

    /// Runs the session's jobs to the end, as the socket loop would; its events.
    async fn settle(session: &mut RealtimeSession) -> Vec<Value> {
        loop {
            session.pump().unwrap();
            if !session.has_job() {
                break;
            }
            let result = session.next_result().await;
            session.on_result(result);
        }
        std::iter::from_fn(|| session.next_event()).collect()
    }

    fn types(events: &[Value]) -> Vec<&str> {
        events.iter().filter_map(|e| e["type"].as_str()).collect()
    }

    #[tokio::test]
    async fn speech_becomes_an_item_with_deltas_and_a_completion() {
        let backend = ScriptedBackend::english();
        let mut session = session(&backend, 30.0);
        let mut audio = say(&["five", "three"]);
        audio.extend(silence(1.5));
        let mut events = Vec::new();
        for frame in audio.chunks(1_600) {
            append(&mut session, frame).unwrap();
            events.extend(settle(&mut session).await);
        }
        let kinds = types(&events);
        for expected in [
            "session.created",
            "session.updated",
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.input_audio_transcription.completed",
        ] {
            assert!(
                kinds.contains(&expected),
                "{expected} missing from {kinds:?}"
            );
        }
        let completed = events
            .iter()
            .find(|e| e["type"] == "conversation.item.input_audio_transcription.completed")
            .unwrap();
        assert_eq!(completed["transcript"], "five three");
        let deltas: String = events
            .iter()
            .filter(|e| e["type"] == "conversation.item.input_audio_transcription.delta")
            .filter_map(|e| e["delta"].as_str())
            .collect();
        assert_eq!(deltas.trim(), "five three");
    }

    #[tokio::test]
    async fn audio_far_past_the_lead_ends_the_session() {
        let backend = ScriptedBackend::english();
        let mut session = session(&backend, 1.0);
        let paused = backend.pause();
        let speech: Vec<f32> = (0..6).flat_map(|_| say(&["four"])).collect();
        let error = speech
            .chunks(1_600)
            .find_map(|frame| {
                let result = append(&mut session, frame).and_then(|()| session.pump());
                result.err()
            })
            .expect("an overrun");
        assert!(error.is_fatal(), "{error:?}");
        assert_eq!(
            error.event("event_x", None)["error"]["code"],
            "audio_overrun"
        );
        drop(paused);
    }
}

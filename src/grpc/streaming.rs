//! `StreamingRecognize`: one task per stream joins the client's audio, the session's
//! streaming policy ([`SessionPolicy`]) and the engine.
//!
//! The engine side (jobs, results, backlog) is the shared [`SessionDriver`]; this module owns
//! the gRPC protocol around it. The task reads the client only while the audio waiting for
//! transcription is under the session's `max_lead_seconds`: beyond that it stops reading and
//! HTTP/2 flow control pushes back on the client. When the client disconnects the task ends
//! and dropping the driver removes queued work at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Status, Streaming};

use super::config::{self, Settings};
use super::convert;
use super::invalid;
use super::proto::control::Action;
use super::proto::speech_event::Kind;
use super::proto::streaming_recognize_request::Request;
use super::proto::streaming_recognize_response::Event;
use super::proto::{self, AudioAck, StreamingRecognizeRequest, StreamingRecognizeResponse};
use crate::audio::WHISPER_SAMPLE_RATE;
use crate::audio::stream::StreamDecoder;
use crate::service::{Caller, Service, ServiceError, SessionPermit};
use crate::session::{SessionConfig, SessionPolicy, SpeechEvent, TimedWord, TranscriptUpdate};
use crate::streaming::{SessionDriver, SessionEvent};

/// An `AudioAck` goes out after at most this much new audio.
const ACK_EVERY_SECONDS: f64 = 1.0;

type Outbox = mpsc::Sender<Result<StreamingRecognizeResponse, Status>>;

/// Starts the session task; its responses are the returned stream.
pub(super) fn start(
    service: Arc<Service>,
    caller: Caller,
    inbound: Streaming<StreamingRecognizeRequest>,
    permit: SessionPermit,
) -> impl Stream<Item = Result<StreamingRecognizeResponse, Status>> {
    let (tx, rx) = mpsc::channel(64);
    let session = async move {
        let session_id = uuid::Uuid::new_v4().to_string();
        tracing::Span::current().record("session.id", session_id.as_str());
        let mut out = Responder {
            session_id,
            sequence: 0,
            tx,
        };
        let ended = run(&service, caller, inbound, &mut out).await;
        // The slot is free before the client hears the stream is over, so it can reconnect.
        drop(permit);
        if let Err(e) = ended {
            tracing::debug!(session = %out.session_id, error = %e, "stream ended with an error");
            let _ = out.tx.send(Err(Status::from(e))).await;
        }
    };
    // In the call's span: the session's jobs link their engine batches to it.
    tokio::spawn(tracing::Instrument::in_current_span(session));
    ReceiverStream::new(rx)
}

/// Numbers and sends responses.
struct Responder {
    session_id: String,
    sequence: u64,
    tx: Outbox,
}

impl Responder {
    /// Sends one event; false when the client is gone.
    async fn send(&mut self, event: Event) -> bool {
        self.sequence += 1;
        let response = StreamingRecognizeResponse {
            session_id: self.session_id.clone(),
            sequence: self.sequence,
            event: Some(event),
        };
        self.tx.send(Ok(response)).await.is_ok()
    }
}

/// Why the session loop stopped reading.
#[derive(Debug, PartialEq)]
enum InputState {
    Open,
    Ended,
}

struct Session<'a> {
    service: &'a Service,
    caller: Caller,
    settings: Settings,
    decoder: StreamDecoder,
    driver: SessionDriver,
    last_sequence: u64,
    acked_at_seconds: f64,
    finals: usize,
}

async fn run(
    service: &Service,
    caller: Caller,
    mut inbound: Streaming<StreamingRecognizeRequest>,
    out: &mut Responder,
) -> Result<(), ServiceError> {
    let settings = read_config(&mut inbound, service.limits().config_timeout).await?;
    let settings = config::resolve(&settings, service)?;
    let Some(encoding) = settings.encoding else {
        return Err(invalid(
            "encoding AUTO is for Recognize; StreamingRecognize needs LINEAR16, FLOAT32_LE, \
             MULAW, ALAW or a container type",
        ));
    };
    let decoder = StreamDecoder::new(encoding, settings.sample_rate, settings.channels)?;
    let policy =
        SessionPolicy::new(policy_config(&settings)).map_err(|e| invalid(e.to_string()))?;
    let started = Event::SessionStarted(convert::session_started(service, &settings));
    if !out.send(started).await {
        return Ok(());
    }
    let driver = SessionDriver::new(
        Arc::clone(service.engine()),
        settings.job.clone(),
        policy,
        settings.max_lead_seconds,
    )
    .with_overflow(settings.overflow);
    let mut session = Session {
        service,
        caller,
        settings,
        decoder,
        driver,
        last_sequence: 0,
        acked_at_seconds: 0.0,
        finals: 0,
    };
    session.serve(inbound, out).await
}

async fn read_config(
    inbound: &mut Streaming<StreamingRecognizeRequest>,
    timeout: Duration,
) -> Result<proto::RecognitionConfig, ServiceError> {
    let first = tokio::time::timeout(timeout, inbound.next())
        .await
        .map_err(|_| {
            ServiceError::Timeout(format!(
                "no config received within {:.1} s of opening the stream",
                timeout.as_secs_f64()
            ))
        })?;
    match first {
        Some(Ok(StreamingRecognizeRequest {
            request: Some(Request::Config(config)),
        })) => Ok(config),
        Some(Ok(_)) => Err(invalid(
            "the first message of a stream must carry `config`; audio or control came first",
        )),
        Some(Err(status)) => Err(invalid(format!("reading the stream: {}", status.message()))),
        None => Err(invalid("the stream ended before any config was sent")),
    }
}

fn policy_config(settings: &Settings) -> SessionConfig {
    let mut config = SessionConfig::with_endpointing(settings.endpointing);
    config.vad.detector = settings.detector.clone();
    config
}

impl Session<'_> {
    async fn serve(
        &mut self,
        mut inbound: Streaming<StreamingRecognizeRequest>,
        out: &mut Responder,
    ) -> Result<(), ServiceError> {
        let mut input = InputState::Open;
        let service = self.service;
        let mut finalize = service.finalize_signal();
        let idle_timeout = service.limits().idle_timeout;
        let mut idle_deadline = Instant::now() + idle_timeout;
        loop {
            if !self.drain_policy(out).await? {
                return Ok(()); // client gone
            }
            if self.single_utterance_done() {
                return Ok(());
            }
            if input == InputState::Ended && self.driver.is_done() {
                return Ok(());
            }
            let reading = input == InputState::Open && self.driver.accepts_audio();
            if !reading {
                // Held back by backpressure (or done reading): the client is not idle.
                idle_deadline = Instant::now() + idle_timeout;
            }
            let has_job = self.driver.has_job();
            tokio::select! {
                message = inbound.next(), if reading => {
                    idle_deadline = Instant::now() + idle_timeout;
                    input = self.on_message(message, out).await?;
                }
                () = tokio::time::sleep_until(idle_deadline), if reading => {
                    return Err(idle(idle_timeout));
                }
                result = self.driver.next_result(), if has_job => {
                    self.driver.on_result(result);
                }
                () = Service::finalizing(&mut finalize), if input == InputState::Open => {
                    input = self.end_of_input()?;
                }
                expired = service.grace_expired() => return Err(expired),
                _ = out.tx.closed() => return Ok(()),
            }
        }
    }

    async fn on_message(
        &mut self,
        message: Option<Result<StreamingRecognizeRequest, Status>>,
        out: &mut Responder,
    ) -> Result<InputState, ServiceError> {
        let request = match message {
            None => return self.end_of_input(),
            // tonic reports a message over the decoding limit as one or the other.
            Some(Err(status))
                if matches!(
                    status.code(),
                    tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
                ) =>
            {
                return Err(ServiceError::MessageTooLarge(status.message().to_string()));
            }
            // Client reset or transport error: nobody is listening any more.
            Some(Err(_)) => return Ok(InputState::Ended),
            Some(Ok(r)) => r.request,
        };
        match request {
            Some(Request::Audio(chunk)) => {
                if let Some(declared) = self.settings.declared_container
                    && self.decoder.bytes_in() == 0
                {
                    crate::audio::check_declared_container(declared, &chunk.data)?;
                }
                let samples = self.decoder.push(&chunk.data)?;
                let seconds = samples.len() as f64 / f64::from(WHISPER_SAMPLE_RATE);
                self.service.charge_audio(&self.caller, seconds)?;
                self.last_sequence = chunk.sequence;
                self.driver.push_audio(&samples);
                self.driver.apply_overflow()?;
                if self.driver.stream_seconds() - self.acked_at_seconds >= ACK_EVERY_SECONDS {
                    self.send_ack(out).await;
                }
                Ok(InputState::Open)
            }
            Some(Request::Control(control)) => match control.action {
                Some(Action::Finalize(_)) => {
                    self.driver.finalize();
                    Ok(InputState::Open)
                }
                Some(Action::KeepAlive(_)) => Ok(InputState::Open),
                Some(Action::EndOfStream(_)) => self.end_of_input(),
                None => Err(invalid("control message without an action")),
            },
            Some(Request::Config(_)) => Err(invalid(
                "config may be sent only once, as the first message of the stream",
            )),
            None => Err(invalid("empty request message")),
        }
    }

    /// No more audio: flush the decoder and finalize the open utterance. For container
    /// encodings the flush decodes the whole upload, so it leaves the async worker's slot to
    /// other tasks while it runs (the server's runtime is multi-threaded).
    fn end_of_input(&mut self) -> Result<InputState, ServiceError> {
        let tail = tokio::task::block_in_place(|| self.decoder.finish())?;
        let seconds = tail.len() as f64 / f64::from(WHISPER_SAMPLE_RATE);
        self.service.charge_audio(&self.caller, seconds)?;
        self.driver.push_audio(&tail);
        self.driver.finalize();
        Ok(InputState::Ended)
    }

    async fn send_ack(&mut self, out: &mut Responder) {
        self.acked_at_seconds = self.driver.stream_seconds();
        let ack = AudioAck {
            sequence: self.last_sequence,
            processed_seconds: self.driver.processed_seconds(),
            backlog_seconds: self.driver.backlog_seconds(),
            dropped_seconds: self.driver.dropped_seconds(),
        };
        out.send(Event::AudioAck(ack)).await;
    }

    /// Sends what the policy produced and starts the next job. False when the client is gone.
    async fn drain_policy(&mut self, out: &mut Responder) -> Result<bool, ServiceError> {
        while let Some(event) = self.driver.poll()? {
            let sent = match event {
                SessionEvent::Update(update) => {
                    if update.is_final {
                        self.finals += 1;
                    }
                    if update.is_final || self.settings.interim_results {
                        out.send(Event::Transcript(self.update(update))).await
                    } else {
                        true
                    }
                }
                SessionEvent::Speech(event) => out.send(Event::Speech(speech(event))).await,
            };
            if !sent {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn update(&self, update: TranscriptUpdate) -> proto::TranscriptUpdate {
        let words = if self.settings.job.word_timestamps {
            update.words.iter().map(word).collect()
        } else {
            Vec::new()
        };
        proto::TranscriptUpdate {
            utterance_id: update.utterance_id,
            revision: update.revision as u32,
            committed_delta: update.committed_delta,
            committed: update.committed,
            tentative: update.tentative,
            is_final: update.is_final,
            stability: update.stability,
            words,
            start: update.start_seconds,
            end: update.end_seconds,
            language: self.driver.language().to_string(),
            audio_dropped: update.audio_dropped,
        }
    }

    fn single_utterance_done(&self) -> bool {
        self.settings.single_utterance && self.finals > 0
    }
}

/// A configured stream sent nothing for `timeout`: it holds a session slot, so it is ended.
fn idle(timeout: Duration) -> ServiceError {
    ServiceError::Timeout(format!(
        "no audio or control message for {:.1} s (the stream idle timeout, \
         --idle-timeout-seconds); send KeepAlive while the audio pauses",
        timeout.as_secs_f64()
    ))
}

fn word(w: &TimedWord) -> proto::Word {
    proto::Word {
        word: w.text.clone(),
        start: w.start,
        end: w.end,
        probability: w.probability,
    }
}

fn speech(event: SpeechEvent) -> proto::SpeechEvent {
    let (kind, utterance_id, at_seconds, dropped_seconds) = match event {
        SpeechEvent::Started {
            utterance_id,
            at_seconds,
        } => (Kind::SpeechStarted, utterance_id, at_seconds, 0.0),
        SpeechEvent::Ended {
            utterance_id,
            at_seconds,
        } => (Kind::EndOfUtterance, utterance_id, at_seconds, 0.0),
        SpeechEvent::AudioDropped {
            utterance_id,
            from_seconds,
            to_seconds,
        } => (
            Kind::AudioDropped,
            utterance_id,
            to_seconds,
            to_seconds - from_seconds,
        ),
    };
    proto::SpeechEvent {
        kind: kind as i32,
        time: at_seconds,
        utterance_id,
        dropped_seconds,
    }
}

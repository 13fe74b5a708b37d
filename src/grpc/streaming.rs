//! `StreamingRecognize`: one task per stream joins the client's audio, the session's
//! streaming policy ([`SessionPolicy`]) and the engine.
//!
//! The engine side (jobs, results, backlog) is the shared [`SessionDriver`]; this module owns
//! the gRPC protocol around it. The task reads the client only while the audio waiting for
//! transcription is under the session's `max_lead_seconds`: beyond that it stops reading and
//! HTTP/2 flow control pushes back on the client. When the client disconnects the task ends
//! and dropping the driver removes queued work at once, unless the stream is resumable: then
//! the task keeps transcribing into its response log for the resume window and takes the
//! next connection that presents its token ([`super::resume`]).

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
use super::proto::{
    self, AudioAck, ResumeSession, SessionResumed, StreamingRecognizeRequest,
    StreamingRecognizeResponse,
};
use super::resume::{Attachment, Outbox, Registration, ResponseLog, Resumes};
use crate::audio::WHISPER_SAMPLE_RATE;
use crate::audio::stream::StreamDecoder;
use crate::service::{Caller, Service, ServiceError, SessionPermit};
use crate::session::{SessionConfig, SessionPolicy, SpeechEvent, TimedWord, TranscriptUpdate};
use crate::streaming::{SessionDriver, SessionEvent};

/// An `AudioAck` goes out after at most this much new audio.
const ACK_EVERY_SECONDS: f64 = 1.0;

/// A resumable stream's audio ends with `EndOfStream`; a bare half-close may be a proxy
/// passing on its client's broken connection, and is taken as the end of the audio only once
/// the response side has stayed open this long (a proxy resets it within milliseconds).
const BARE_HALF_CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Starts the call's task; its responses are the returned stream. `admission` is the slot
/// taken for a new session, or why there was none (a resume needs none: its session holds
/// one); the first message says which the call is.
pub(super) fn start(
    service: Arc<Service>,
    resumes: Arc<Resumes>,
    caller: Caller,
    mut inbound: Streaming<StreamingRecognizeRequest>,
    admission: Result<SessionPermit, ServiceError>,
) -> impl Stream<Item = Result<StreamingRecognizeResponse, Status>> {
    let (tx, rx) = mpsc::channel(64);
    let call = async move {
        let first = read_first(&mut inbound, service.limits().config_timeout).await;
        let ended = match first {
            Ok(First::Config(config)) => match admission {
                Ok(permit) => {
                    let call = NewSession {
                        service: &service,
                        resumes: &resumes,
                        caller,
                        config,
                        permit,
                    };
                    return call.run(inbound, tx).await;
                }
                Err(refused) => Err(refused),
            },
            Ok(First::Resume(resume)) => {
                drop(admission);
                resume_session(&service, &resumes, &caller, resume, inbound, tx.clone()).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = ended {
            let _ = tx.send(Err(Status::from(e))).await;
        }
    };
    // In the call's span: the session's jobs link their engine batches to it.
    tokio::spawn(tracing::Instrument::in_current_span(call));
    ReceiverStream::new(rx)
}

/// What a call's first message asks for.
enum First {
    Config(proto::RecognitionConfig),
    Resume(ResumeSession),
}

/// Hands the call's connection to the session `resume` names.
async fn resume_session(
    service: &Service,
    resumes: &Resumes,
    caller: &Caller,
    resume: ResumeSession,
    inbound: Streaming<StreamingRecognizeRequest>,
    outbox: Outbox,
) -> Result<(), ServiceError> {
    let attachment = Attachment {
        inbound,
        outbox,
        last_response_sequence: resume.last_response_sequence,
    };
    let attached = resumes.attach(&resume.token, caller, attachment).await;
    if attached.is_err() {
        service.metrics().service().stream_resume("refused");
    }
    attached
}

/// A call that opens a session.
struct NewSession<'a> {
    service: &'a Service,
    resumes: &'a Arc<Resumes>,
    caller: Caller,
    config: proto::RecognitionConfig,
    permit: SessionPermit,
}

impl NewSession<'_> {
    async fn run(self, inbound: Streaming<StreamingRecognizeRequest>, tx: Outbox) {
        let session_id = uuid::Uuid::new_v4().to_string();
        tracing::Span::current().record("session.id", session_id.as_str());
        let mut out = Responder::new(session_id, tx);
        let Self {
            service,
            resumes,
            caller,
            config,
            permit,
        } = self;
        let ended = match Session::open(service, resumes, caller, &config, &mut out).await {
            Ok(Some(mut session)) => {
                let ended = session.serve(inbound, &mut out).await;
                session.linger(&mut out).await;
                ended
            }
            Ok(None) => Ok(()), // the client left before SessionStarted
            Err(e) => Err(e),
        };
        // The slot is free before the client hears the stream is over, so it can reconnect.
        drop(permit);
        if let Err(e) = ended {
            tracing::debug!(session = %out.session_id, error = %e, "stream ended with an error");
            out.fail(e).await;
        }
    }
}

/// Numbers responses and sends them to the client's connection, if it has one; a resumable
/// session also logs them, to resend what a broken connection lost.
struct Responder {
    session_id: String,
    sequence: u64,
    /// `None` while a resumable session has no connection.
    tx: Option<Outbox>,
    /// `Some` for a resumable session.
    log: Option<ResponseLog>,
}

impl Responder {
    fn new(session_id: String, tx: Outbox) -> Self {
        Self {
            session_id,
            sequence: 0,
            tx: Some(tx),
            log: None,
        }
    }

    /// Sends one event. False when the session should end: a session that cannot resume
    /// lost its client. A resumable one logs the event and goes on without a connection.
    async fn send(&mut self, event: Event) -> bool {
        self.sequence += 1;
        let response = StreamingRecognizeResponse {
            session_id: self.session_id.clone(),
            sequence: self.sequence,
            event: Some(event),
        };
        if let Some(log) = &mut self.log {
            log.push(response.clone());
        }
        let delivered = match &self.tx {
            Some(tx) => tx.send(Ok(response)).await.is_ok(),
            None => false,
        };
        if !delivered {
            self.tx = None;
        }
        delivered || self.log.is_some()
    }

    /// Sends a logged response again, unchanged.
    async fn resend(&mut self, response: StreamingRecognizeResponse) {
        if let Some(tx) = &self.tx
            && tx.send(Ok(response)).await.is_err()
        {
            self.tx = None;
        }
    }

    /// Ends the stream with `error`, when there is a connection to say it on.
    async fn fail(&mut self, error: ServiceError) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(Status::from(error))).await;
        }
    }

    fn is_attached(&self) -> bool {
        self.tx.as_ref().is_some_and(|tx| !tx.is_closed())
    }

    /// Resolves when the connection's response stream is gone (never without one).
    async fn closed(&self) {
        match &self.tx {
            Some(tx) => tx.closed().await,
            None => std::future::pending().await,
        }
    }
}

/// Why the session loop stopped reading.
#[derive(Debug, PartialEq)]
enum InputState {
    Open,
    Ended,
    /// The client cancelled the session: it ends now.
    Cancelled,
}

struct Session<'a> {
    service: &'a Service,
    caller: Caller,
    settings: Settings,
    decoder: StreamDecoder,
    driver: SessionDriver,
    /// The highest audio chunk sequence received.
    last_sequence: u64,
    acked_at_seconds: f64,
    finals: usize,
    /// The client's requests, while it has a connection.
    inbound: Option<Streaming<StreamingRecognizeRequest>>,
    /// For a resumable session: its token and the connections that resume it.
    resume: Option<Resumable>,
}

/// A resumable session's side of [`Resumes`].
struct Resumable {
    registration: Registration,
    /// While the session has no connection: when it was lost and when the session gives up.
    detached: Option<(Instant, Instant)>,
    /// After a half-close without `EndOfStream`: when it counts as the end of the audio.
    half_closed: Option<Instant>,
}

impl<'a> Session<'a> {
    /// Checks `config`, says `SessionStarted` and sets the session up; `None` when the client
    /// left before hearing it.
    async fn open(
        service: &'a Service,
        resumes: &Arc<Resumes>,
        caller: Caller,
        config: &proto::RecognitionConfig,
        out: &mut Responder,
    ) -> Result<Option<Session<'a>>, ServiceError> {
        let settings = config::resolve(config, service)?;
        let Some(encoding) = settings.encoding else {
            return Err(invalid(
                "encoding AUTO is for Recognize; StreamingRecognize needs LINEAR16, FLOAT32_LE, \
                 MULAW, ALAW or a container type",
            ));
        };
        let decoder = StreamDecoder::new(encoding, settings.sample_rate, settings.channels)?;
        let policy =
            SessionPolicy::new(policy_config(&settings)).map_err(|e| invalid(e.to_string()))?;
        let registration = settings
            .resumable
            .then(|| resumes.register(&caller))
            .flatten();
        let mut started = convert::session_started(service, &settings);
        if let Some(registration) = &registration {
            started.resume_token = registration.token().to_string();
            started.resume_window_seconds = registration.window().as_secs_f32();
            out.log = Some(ResponseLog::default());
        }
        if !out.send(Event::SessionStarted(started)).await {
            return Ok(None);
        }
        let driver = SessionDriver::new(
            Arc::clone(service.engine()),
            settings.job.clone(),
            policy,
            settings.max_lead_seconds,
        )
        .with_overflow(settings.overflow);
        Ok(Some(Session {
            service,
            caller,
            settings,
            decoder,
            driver,
            last_sequence: 0,
            acked_at_seconds: 0.0,
            finals: 0,
            inbound: None,
            resume: registration.map(|registration| Resumable {
                registration,
                detached: None,
                half_closed: None,
            }),
        }))
    }
}

/// A call's first message: a config for a new session, or a resume of one.
async fn read_first(
    inbound: &mut Streaming<StreamingRecognizeRequest>,
    timeout: Duration,
) -> Result<First, ServiceError> {
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
        })) => Ok(First::Config(config)),
        Some(Ok(StreamingRecognizeRequest {
            request: Some(Request::Resume(resume)),
        })) => Ok(First::Resume(resume)),
        Some(Ok(_)) => Err(invalid(
            "the first message of a stream must carry `config` (or `resume`); audio or control \
             came first",
        )),
        Some(Err(status)) => Err(invalid(format!("reading the stream: {}", status.message()))),
        None => Err(invalid("the stream ended before any config was sent")),
    }
}

fn policy_config(settings: &Settings) -> SessionConfig {
    let mut config = SessionConfig::with_endpointing(settings.endpointing);
    config.vad.detector = settings.detector.clone();
    config.policy = settings.policy;
    config
}

impl Session<'_> {
    async fn serve(
        &mut self,
        inbound: Streaming<StreamingRecognizeRequest>,
        out: &mut Responder,
    ) -> Result<(), ServiceError> {
        self.inbound = Some(inbound);
        let mut input = InputState::Open;
        let service = self.service;
        let mut finalize = service.finalize_signal();
        let idle_timeout = service.limits().idle_timeout;
        let mut idle_deadline = Instant::now() + idle_timeout;
        loop {
            if !self.drain_policy(out).await? {
                return Ok(()); // client gone
            }
            if !out.is_attached() && !self.detach(out) {
                return Ok(()); // client gone, and it cannot come back
            }
            if self.single_utterance_done() {
                return Ok(());
            }
            if input == InputState::Ended && self.driver.is_done() {
                return Ok(());
            }
            let attached = out.is_attached();
            let reading = attached
                && self.inbound.is_some()
                && input == InputState::Open
                && self.driver.accepts_audio();
            if !reading {
                // Held back by backpressure, done reading or without a connection: the
                // client is not idle.
                idle_deadline = Instant::now() + idle_timeout;
            }
            let has_job = self.driver.has_job();
            let resumable = self.resume.is_some();
            let give_up = self
                .resume
                .as_ref()
                .and_then(|r| r.detached)
                .map(|(_, until)| until);
            let half_closed = self.resume.as_ref().and_then(|r| r.half_closed);
            tokio::select! {
                message = next_request(&mut self.inbound), if reading => {
                    idle_deadline = Instant::now() + idle_timeout;
                    input = self.on_message(message, out).await?;
                    if input == InputState::Cancelled {
                        return Ok(());
                    }
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
                () = out.closed(), if attached => {
                    if !resumable {
                        return Ok(());
                    }
                    out.tx = None; // detached on the next turn
                }
                attachment = next_attachment(&mut self.resume), if resumable => {
                    if let Some(attachment) = attachment {
                        self.attach(attachment, out).await;
                    }
                }
                () = tokio::time::sleep_until(give_up.unwrap_or(idle_deadline)),
                    if give_up.is_some() => {
                    self.expire();
                    return Ok(());
                }
                () = tokio::time::sleep_until(half_closed.unwrap_or(idle_deadline)),
                    if half_closed.is_some() && attached && input == InputState::Open => {
                    input = self.end_of_input()?;
                }
            }
        }
    }

    /// After the session ended without a connection to tell: waits out the rest of the resume
    /// window for the client to come back and hear the end (its last finals, or the error).
    async fn linger(&mut self, out: &mut Responder) {
        while !out.is_attached() && self.detach(out) {
            let Some((_, give_up)) = self.resume.as_ref().and_then(|r| r.detached) else {
                return;
            };
            tokio::select! {
                attachment = next_attachment(&mut self.resume) => match attachment {
                    Some(attachment) => self.attach(attachment, out).await,
                    None => return,
                },
                () = tokio::time::sleep_until(give_up) => {
                    self.expire();
                    return;
                }
                _ = self.service.grace_expired() => return,
            }
        }
    }

    /// The connection is gone: a resumable session starts its resume window (true), any
    /// other ends (false).
    fn detach(&mut self, out: &mut Responder) -> bool {
        let Some(resume) = &mut self.resume else {
            return false;
        };
        if resume.detached.is_none() {
            let now = Instant::now();
            resume.detached = Some((now, now + resume.registration.window()));
            self.inbound = None;
            out.tx = None;
            self.service.metrics().service().stream_resume("detached");
            tracing::info!(
                session = %out.session_id,
                window_seconds = resume.registration.window().as_secs_f64(),
                "stream connection lost; the session waits for its client to resume"
            );
        }
        true
    }

    /// The resume window passed with no client back: the token is forgotten.
    fn expire(&mut self) {
        self.resume = None;
        self.service.metrics().service().stream_resume("expired");
        tracing::info!("resumable stream ended: its client did not come back within the window");
    }

    /// Continues the session on `attachment`'s connection: the responses its client missed,
    /// then `SessionResumed`. A connection the session still has is one its client gave up
    /// on; it is closed with ABORTED.
    async fn attach(&mut self, attachment: Attachment, out: &mut Responder) {
        let Attachment {
            inbound,
            outbox,
            last_response_sequence,
        } = attachment;
        let log = out
            .log
            .as_ref()
            .expect("a resumable session logs its responses");
        let missed: Vec<StreamingRecognizeResponse> =
            match log.after(last_response_sequence, out.sequence) {
                Ok(missed) => missed.cloned().collect(),
                Err(refused) => {
                    self.service.metrics().service().stream_resume("refused");
                    let _ = outbox.send(Err(Status::from(refused))).await;
                    return;
                }
            };
        if let Some(old) = out.tx.take() {
            let _ = old.try_send(Err(Status::from(ServiceError::Superseded)));
        }
        let detached = self.resume.as_mut().and_then(|r| {
            r.half_closed = None;
            r.detached.take()
        });
        let detached_seconds = detached.map_or(0.0, |(since, _)| since.elapsed().as_secs_f64());
        self.inbound = Some(inbound);
        out.tx = Some(outbox);
        let replayed = missed.len() as u32;
        for response in missed {
            out.resend(response).await;
        }
        self.service.metrics().service().stream_resume("resumed");
        tracing::info!(
            session = %out.session_id,
            replayed,
            detached_seconds,
            last_audio_sequence = self.last_sequence,
            "stream resumed on a new connection"
        );
        let resumed = SessionResumed {
            last_audio_sequence: self.last_sequence,
            replayed_responses: replayed,
            detached_seconds,
        };
        out.send(Event::SessionResumed(resumed)).await;
    }

    async fn on_message(
        &mut self,
        message: Option<Result<StreamingRecognizeRequest, Status>>,
        out: &mut Responder,
    ) -> Result<InputState, ServiceError> {
        let request = match message {
            None => {
                if let Some(resume) = &mut self.resume {
                    // Not the client's word that the audio is over: see BARE_HALF_CLOSE_GRACE.
                    self.inbound = None;
                    resume.half_closed = Some(Instant::now() + BARE_HALF_CLOSE_GRACE);
                    return Ok(InputState::Open);
                }
                return self.end_of_input();
            }
            // tonic reports a message over the decoding limit as one or the other.
            Some(Err(status))
                if matches!(
                    status.code(),
                    tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
                ) =>
            {
                return Err(ServiceError::MessageTooLarge(status.message().to_string()));
            }
            // Client reset or transport error: nobody is listening any more, unless the
            // client comes back to a resumable session.
            Some(Err(_)) if self.resume.is_some() => {
                out.tx = None;
                return Ok(InputState::Open);
            }
            Some(Err(_)) => return Ok(InputState::Ended),
            Some(Ok(r)) => r.request,
        };
        match request {
            Some(Request::Audio(chunk)) => {
                if self.resume.is_some() && !self.is_new(&chunk)? {
                    return Ok(InputState::Open); // resent after a resume; already here
                }
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
                Some(Action::Cancel(_)) => {
                    tracing::debug!(session = %out.session_id, "the client cancelled the session");
                    Ok(InputState::Cancelled)
                }
                None => Err(invalid("control message without an action")),
            },
            Some(Request::Config(_)) => Err(invalid(
                "config may be sent only once, as the first message of the stream",
            )),
            Some(Request::Resume(_)) => Err(invalid(
                "resume may be sent only as the first message of a stream, instead of config",
            )),
            None => Err(invalid("empty request message")),
        }
    }

    /// Whether a resumable session's `chunk` is one it has not had yet; its chunks must be
    /// numbered for that to be told.
    fn is_new(&self, chunk: &proto::AudioChunk) -> Result<bool, ServiceError> {
        if chunk.sequence == 0 {
            return Err(invalid(
                "a resumable stream numbers its audio chunks: AudioChunk.sequence from 1, \
                 increasing",
            ));
        }
        Ok(chunk.sequence > self.last_sequence)
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

/// The client's next request, on the connection the session has (never without one).
async fn next_request(
    inbound: &mut Option<Streaming<StreamingRecognizeRequest>>,
) -> Option<Result<StreamingRecognizeRequest, Status>> {
    match inbound {
        Some(inbound) => inbound.next().await,
        None => std::future::pending().await,
    }
}

/// The next connection that resumes the session (never for one that cannot resume).
async fn next_attachment(resume: &mut Option<Resumable>) -> Option<Attachment> {
    match resume {
        Some(resume) => resume.registration.next_attachment().await,
        None => std::future::pending().await,
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

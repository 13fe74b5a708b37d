//! A `StreamingRecognize` session that survives a dropped connection: it asks for a resumable
//! stream, keeps the audio the server has not acknowledged, and when the call breaks it
//! reconnects with the session's token, resends that audio and carries on. The caller sees
//! one unbroken sequence of responses, none twice.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

use super::super::proto::control::Action;
use super::super::proto::speech_client::SpeechClient;
use super::super::proto::streaming_recognize_request::Request;
use super::super::proto::streaming_recognize_response::Event;
use super::super::proto::{
    AudioChunk, Cancel, Control, EndOfStream, RecognitionConfig, ResumeSession,
    StreamingRecognizeRequest, StreamingRecognizeResponse,
};
use super::request;

/// The header proxies hash to send every call of one session to the same replica.
pub const SESSION_HEADER: &str = "x-hearken-session";

/// First wait before reconnecting; doubled on each failed try, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How a resumable session went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resumed {
    /// Times the connection broke and the session was continued on a new one.
    pub resumes: u32,
    /// The session was cancelled (`cancel` resolved) before it finished.
    pub cancelled: bool,
}

/// Resolves when the caller wants a session ended now (`Control.Cancel`).
pub type CancelSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs one session over `client`: `config` (with `resumable` set) then `audio`, whose chunks
/// must be numbered from 1; `headers` go on every call (with [`SESSION_HEADER`] added). Each
/// response goes to `on_response` once, in order; when `audio` ends the server is told
/// (`EndOfStream`) and the call runs until its last final. When `cancel` resolves the session
/// is ended at once (`Control.Cancel`, so the server frees it rather than keeping it for a
/// resume). Errors are the server's, or the break that could not be resumed.
pub async fn resumable_session<A, F>(
    client: SpeechClient<Channel>,
    mut headers: MetadataMap,
    config: RecognitionConfig,
    audio: A,
    cancel: CancelSignal,
    on_response: F,
) -> Result<Resumed, Status>
where
    A: Stream<Item = AudioChunk> + Unpin,
    F: FnMut(&StreamingRecognizeResponse) -> Result<(), Status>,
{
    let session_key = uuid::Uuid::new_v4().simple().to_string();
    if let Ok(value) = session_key.parse() {
        headers.insert(SESSION_HEADER, value);
    }
    let config = RecognitionConfig {
        resumable: true,
        ..config
    };
    let mut session = Session {
        client,
        headers,
        audio,
        audio_ended: false,
        unacked: VecDeque::new(),
        seen: 0,
        resume: None,
        give_up_at: None,
        resumed: Resumed::default(),
        cancel: Some(cancel),
        on_response,
    };
    let mut first = Request::Config(config);
    loop {
        let broken = match session.call(first).await {
            Ok(()) => return Ok(session.resumed),
            Err(Break::Fatal(status)) => return Err(status),
            Err(Break::Connection(status)) => status,
        };
        let Some((token, window)) = session.resume.clone() else {
            return Err(broken); // broke before SessionStarted: nothing to resume
        };
        tracing::warn!(error = %broken, "stream connection lost; resuming");
        session.resumed.resumes += 1;
        first = Request::Resume(ResumeSession {
            token,
            last_response_sequence: session.seen,
        });
        session.give_up_at = Some(Instant::now() + window);
    }
}

/// Why a call ended early.
enum Break {
    /// The connection broke: worth resuming.
    Connection(Status),
    /// The server ended the session, or the caller refused a response.
    Fatal(Status),
}

struct Session<A, F> {
    client: SpeechClient<Channel>,
    headers: MetadataMap,
    audio: A,
    audio_ended: bool,
    /// Chunks sent that the server has not acknowledged, to resend after a break.
    unacked: VecDeque<AudioChunk>,
    /// The last response sequence handed to the caller.
    seen: u64,
    /// The session's token and resume window, once `SessionStarted` gave them.
    resume: Option<(String, Duration)>,
    /// While resuming: when the server will have given the session up.
    give_up_at: Option<Instant>,
    resumed: Resumed,
    /// The caller's cancel signal, until it resolves.
    cancel: Option<CancelSignal>,
    on_response: F,
}

impl<A, F> Session<A, F>
where
    A: Stream<Item = AudioChunk> + Unpin,
    F: FnMut(&StreamingRecognizeResponse) -> Result<(), Status>,
{
    /// One call: `first`, the unacknowledged chunks, then new audio, while responses come.
    async fn call(&mut self, first: Request) -> Result<(), Break> {
        let (tx, mut responses) = self.open(&first).await?;
        let mut to_send: VecDeque<AudioChunk> = self.unacked.clone();
        if self.resumed.cancelled {
            to_send.clear();
            let _ = tx.send(control(Action::Cancel(Cancel {}))).await;
        }
        let mut said_end = false;
        loop {
            if self.audio_ended && to_send.is_empty() && !said_end {
                // The end of the audio, said: a half-close alone could be a broken connection
                // a proxy passed on. The request side stays open for a Cancel.
                said_end = true;
                let _ = tx.send(control(Action::EndOfStream(EndOfStream {}))).await;
            }
            tokio::select! {
                () = cancelled(&mut self.cancel) => {
                    self.cancel = None;
                    self.resumed.cancelled = true;
                    to_send.clear();
                    // The server ends the stream at once.
                    let _ = tx.send(control(Action::Cancel(Cancel {}))).await;
                }
                permit = tx.reserve(), if !to_send.is_empty() => match permit {
                    Ok(permit) => {
                        let chunk = to_send.pop_front().expect("checked non-empty");
                        permit.send(request(Request::Audio(chunk)));
                    }
                    Err(_) => to_send.clear(), // the call is over; its responses say why
                },
                chunk = self.audio.next(), if to_send.is_empty() && !self.audio_ended => {
                    match chunk {
                        Some(chunk) => {
                            self.unacked.push_back(chunk.clone());
                            to_send.push_back(chunk);
                        }
                        None => self.audio_ended = true,
                    }
                }
                response = responses.next() => match response {
                    Some(Ok(response)) => self.on_response(response).map_err(Break::Fatal)?,
                    Some(Err(status)) => return Err(classify(status)),
                    None => return Ok(()),
                },
            }
        }
    }

    /// Starts the call with `first` on its request stream; a resume keeps trying while the
    /// connection is down, until the session's window has passed.
    async fn open(
        &mut self,
        first: &Request,
    ) -> Result<
        (
            mpsc::Sender<StreamingRecognizeRequest>,
            Streaming<StreamingRecognizeResponse>,
        ),
        Break,
    > {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let (tx, rx) = mpsc::channel(16);
            let _ = tx.try_send(request(first.clone()));
            let mut call = tonic::Request::new(ReceiverStream::new(rx));
            *call.metadata_mut() = self.headers.clone();
            let status = match self.client.streaming_recognize(call).await {
                Ok(response) => return Ok((tx, response.into_inner())),
                Err(status) => status,
            };
            let resuming = matches!(first, Request::Resume(_));
            let in_window = self
                .give_up_at
                .is_some_and(|at| Instant::now() + backoff < at);
            match classify(status) {
                Break::Connection(_) if resuming && in_window => {}
                Break::Connection(status) | Break::Fatal(status) => {
                    return Err(Break::Fatal(status));
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Hands a response on, once, and keeps what resuming needs from it.
    fn on_response(&mut self, response: StreamingRecognizeResponse) -> Result<(), Status> {
        if response.sequence != 0 && response.sequence <= self.seen {
            return Ok(()); // already handed on before the break
        }
        self.seen = response.sequence;
        match &response.event {
            Some(Event::SessionStarted(started)) if !started.resume_token.is_empty() => {
                let window = Duration::from_secs_f32(started.resume_window_seconds.max(0.0));
                self.resume = Some((started.resume_token.clone(), window));
            }
            Some(Event::AudioAck(ack)) => self.acknowledged(ack.sequence),
            Some(Event::SessionResumed(resumed)) => self.acknowledged(resumed.last_audio_sequence),
            _ => {}
        }
        (self.on_response)(&response)
    }

    /// The server has every chunk up to `sequence`: they need no resending.
    fn acknowledged(&mut self, sequence: u64) {
        while self.unacked.front().is_some_and(|c| c.sequence <= sequence) {
            self.unacked.pop_front();
        }
    }
}

/// Resolves with the caller's cancel signal (never once it has).
async fn cancelled(cancel: &mut Option<CancelSignal>) {
    match cancel {
        Some(signal) => signal.await,
        None => std::future::pending().await,
    }
}

fn control(action: Action) -> StreamingRecognizeRequest {
    request(Request::Control(Control {
        action: Some(action),
    }))
}

/// A broken connection (worth resuming) or the server's own answer.
fn classify(status: Status) -> Break {
    // hearken's own refusals that retrying can cure carry a pushback hint; a status without
    // one, of these codes, is the transport's.
    let transport = matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
    ) && status.metadata().get("grpc-retry-pushback-ms").is_none();
    if transport {
        Break::Connection(status)
    } else {
        Break::Fatal(status)
    }
}

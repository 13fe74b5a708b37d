//! Resumable streams: a stream whose config sets `resumable` outlives a broken connection for
//! the server's resume window, and a new call presenting its token continues it.
//!
//! The session task keeps everything a resume needs (audio, policy state, the responses it
//! sent, in a [`ResponseLog`]); this module only finds the task for a token
//! ([`Resumes`]) and hands it the new connection (an [`Attachment`]). The token is the
//! capability: unguessable (122 random bits), valid for its tenant only, and forgotten the
//! moment its session ends.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::proto::{StreamingRecognizeRequest, StreamingRecognizeResponse};
use crate::service::{Caller, ServiceError};

/// The responses a session keeps for a client that comes back: the newest, up to this many
/// encoded bytes (a minute or more of interims). Older ones are what any client that is
/// still listening has long received.
pub(super) const RESPONSE_LOG_BYTES: usize = 512 << 10;

/// Where a stream's responses go.
pub(super) type Outbox = mpsc::Sender<Result<StreamingRecognizeResponse, Status>>;

/// A new connection for a session: the call's request stream and response channel.
pub(super) struct Attachment {
    pub(super) inbound: Streaming<StreamingRecognizeRequest>,
    pub(super) outbox: Outbox,
    /// The last response the client received; the later ones are resent.
    pub(super) last_response_sequence: u64,
}

/// The resumable sessions of one server, by token.
#[derive(Debug)]
pub(super) struct Resumes {
    window: Duration,
    sessions: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    tenant: String,
    attach: mpsc::Sender<Attachment>,
}

/// A session's place in [`Resumes`]: its token and the attachments for it. Dropping it (the
/// session ended) forgets the token and refuses attachments that were on their way.
pub(super) struct Registration {
    token: String,
    resumes: Arc<Resumes>,
    attachments: mpsc::Receiver<Attachment>,
}

impl Resumes {
    /// Sessions are kept `window` after their connection breaks; zero turns resuming off.
    pub(super) fn new(window: Duration) -> Arc<Self> {
        Arc::new(Self {
            window,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// Registers a new resumable session of `caller`'s, or `None` when resuming is off.
    pub(super) fn register(self: &Arc<Self>, caller: &Caller) -> Option<Registration> {
        if self.window.is_zero() {
            return None;
        }
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        // Room for one: a second attachment waits until the session took the first.
        let (attach, attachments) = mpsc::channel(1);
        let entry = Entry {
            tenant: caller.tenant_id().to_string(),
            attach,
        };
        self.lock().insert(token.clone(), entry);
        Some(Registration {
            token,
            resumes: Arc::clone(self),
            attachments,
        })
    }

    /// Whether `caller` has resumable sessions here: a call of theirs that finds no free slot
    /// may still be a resume, which needs none.
    pub(super) fn holds_sessions_of(&self, caller: &Caller) -> bool {
        let tenant = caller.tenant_id();
        self.lock().values().any(|entry| entry.tenant == tenant)
    }

    /// Hands `attachment` to the session `token` names, if it is `caller`'s. The session
    /// answers on the attachment's outbox from then on.
    pub(super) async fn attach(
        &self,
        token: &str,
        caller: &Caller,
        attachment: Attachment,
    ) -> Result<(), ServiceError> {
        let attach = {
            let sessions = self.lock();
            match sessions.get(token) {
                // Another tenant's token reads as unknown: it says nothing about the session.
                Some(entry) if entry.tenant == caller.tenant_id() => entry.attach.clone(),
                _ => return Err(ServiceError::SessionNotFound),
            }
        };
        attach
            .send(attachment)
            .await
            .map_err(|_| ServiceError::SessionNotFound)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // The map is left consistent by every holder; a panic elsewhere does not poison it.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Registration {
    /// The token a `ResumeSession` presents.
    pub(super) fn token(&self) -> &str {
        &self.token
    }

    /// How long the session is kept without a connection.
    pub(super) fn window(&self) -> Duration {
        self.resumes.window
    }

    /// The next connection for this session.
    pub(super) async fn next_attachment(&mut self) -> Option<Attachment> {
        self.attachments.recv().await
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.resumes.lock().remove(&self.token);
        self.attachments.close();
        while let Ok(late) = self.attachments.try_recv() {
            let _ = late
                .outbox
                .try_send(Err(Status::from(ServiceError::SessionNotFound)));
        }
    }
}

/// The newest responses of a session, to resend after a resume.
#[derive(Debug, Default)]
pub(super) struct ResponseLog {
    responses: VecDeque<StreamingRecognizeResponse>,
    bytes: usize,
}

impl ResponseLog {
    /// Keeps `response`, forgetting the oldest beyond [`RESPONSE_LOG_BYTES`].
    pub(super) fn push(&mut self, response: StreamingRecognizeResponse) {
        self.bytes += response.encoded_len();
        self.responses.push_back(response);
        while self.bytes > RESPONSE_LOG_BYTES && self.responses.len() > 1 {
            if let Some(old) = self.responses.pop_front() {
                self.bytes -= old.encoded_len();
            }
        }
    }

    /// The responses after `sequence`, for a client that received up to it, when every one of
    /// them is still here; `sent` is the last sequence number the session gave out.
    pub(super) fn after(
        &self,
        sequence: u64,
        sent: u64,
    ) -> Result<impl Iterator<Item = &StreamingRecognizeResponse>, ServiceError> {
        if sequence > sent {
            return Err(ServiceError::InvalidArgument(format!(
                "last_response_sequence {sequence} was never sent: this session's last \
                 response is {sent}"
            )));
        }
        let oldest = self.responses.front().map_or(sent + 1, |r| r.sequence);
        if sequence + 1 < oldest {
            return Err(ServiceError::ResumeGap {
                requested: sequence + 1,
                oldest,
            });
        }
        Ok(self.responses.iter().filter(move |r| r.sequence > sequence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::proto::AudioAck;
    use crate::grpc::proto::streaming_recognize_response::Event;

    fn response(sequence: u64, padding: usize) -> StreamingRecognizeResponse {
        StreamingRecognizeResponse {
            session_id: "x".repeat(padding),
            sequence,
            event: Some(Event::AudioAck(AudioAck::default())),
        }
    }

    fn sequences<'a>(responses: impl Iterator<Item = &'a StreamingRecognizeResponse>) -> Vec<u64> {
        responses.map(|r| r.sequence).collect()
    }

    #[test]
    fn the_log_resends_what_the_client_missed() {
        let mut log = ResponseLog::default();
        for sequence in 1..=5 {
            log.push(response(sequence, 10));
        }
        assert_eq!(sequences(log.after(3, 5).unwrap()), [4, 5]);
        assert_eq!(sequences(log.after(0, 5).unwrap()), [1, 2, 3, 4, 5]);
        assert_eq!(sequences(log.after(5, 5).unwrap()), Vec::<u64>::new());
        let error = log.after(6, 5).err().unwrap();
        assert_eq!(error.grpc_code(), tonic::Code::InvalidArgument, "{error}");
    }

    #[test]
    fn the_log_keeps_the_newest_bytes_and_says_when_a_resume_is_too_late() {
        let mut log = ResponseLog::default();
        let big = RESPONSE_LOG_BYTES / 4;
        for sequence in 1..=6 {
            log.push(response(sequence, big));
        }
        assert!(log.bytes <= RESPONSE_LOG_BYTES, "{}", log.bytes);
        let oldest = log.responses.front().unwrap().sequence;
        assert!(oldest > 1 && oldest < 6, "{oldest}");
        assert_eq!(
            sequences(log.after(oldest - 1, 6).unwrap()).len() as u64,
            7 - oldest
        );
        let error = log.after(oldest - 2, 6).err().unwrap();
        assert_eq!(
            error.grpc_code(),
            tonic::Code::FailedPrecondition,
            "{error}"
        );
        assert!(error.to_string().contains(&oldest.to_string()), "{error}");
    }

    #[test]
    fn an_empty_log_resumes_only_from_the_last_response() {
        let log = ResponseLog::default();
        assert!(log.after(0, 0).is_ok());
        assert!(log.after(0, 3).is_err());
    }

    #[tokio::test]
    async fn a_token_is_its_tenants_and_is_forgotten_with_its_session() {
        let resumes = Resumes::new(Duration::from_secs(30));
        let caller = Caller::anonymous();
        let registration = resumes.register(&caller).expect("resuming is on");
        assert_eq!(registration.token().len(), 64);
        assert!(resumes.holds_sessions_of(&caller));
        let other = resumes.register(&caller).unwrap();
        assert_ne!(other.token(), registration.token());
        drop(other);
        drop(registration);
        assert!(!resumes.holds_sessions_of(&caller));
        assert!(Resumes::new(Duration::ZERO).register(&caller).is_none());
    }
}

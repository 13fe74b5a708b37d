//! `GET /v1/realtime?intent=transcription`: OpenAI's Realtime transcription WebSocket over
//! the same streaming driver and engine as gRPC `StreamingRecognize`.
//!
//! The upgrade takes a session slot from the serving core ([`crate::service::Service`]; a full
//! server answers 429 with the usual error envelope before upgrading). The socket task
//! is the transport only: it reads client events into a [`RealtimeSession`] while the
//! session's backlog is under `--max-lead-seconds` (beyond that it stops reading and TCP
//! pushes back), waits on the session's one engine job, and writes the session's events.
//! A client that disconnects drops the session and with it its queued job. On server
//! shutdown the open item is committed, its completion sent, then the socket closes.

pub mod client;
mod config;
mod error;
mod events;
mod session;

use std::sync::Arc;

use tokio::time::Instant;

use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::{GatewayState, HttpError};
use crate::service::{Caller, Service, ServiceError, SessionPermit};
use error::RealtimeError;
use session::{RealtimeSession, SessionContext};

/// The subprotocol browsers offer (beside their key) and the server selects.
const SUBPROTOCOL: &str = "realtime";

/// The query of the upgrade request.
#[derive(Debug, Deserialize)]
pub(super) struct RealtimeQuery {
    intent: Option<String>,
}

/// Upgrades to a transcription session for a caller the gateway authenticated
/// (`Authorization: Bearer`, or the `openai-insecure-api-key.*` subprotocol browsers use).
pub(super) async fn realtime(
    State(state): State<Arc<GatewayState>>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<RealtimeQuery>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, HttpError> {
    if let Some(intent) = query.intent.filter(|i| i != "transcription") {
        return Err(HttpError::InvalidField {
            param: "intent",
            message: format!(
                "this server offers Realtime transcription only (intent=transcription), not \
                 `{intent}`"
            ),
        });
    }
    // The slot before the upgrade check: a browser, which cannot read a refused upgrade's
    // status, learns it by repeating the request over plain HTTP (429 when full, not 400).
    let permit = state.service.open_session(&caller)?;
    let upgrade = upgrade.map_err(|rejection| HttpError::NotAWebSocket {
        path: "/v1/realtime",
        reason: rejection.body_text(),
    })?;
    let context = SessionContext {
        service: Arc::clone(&state.service),
        caller,
        beta: speaks_beta(&headers),
    };
    let max_message = state.service.limits().max_message_bytes;
    // Read up to twice the limit, so a message a little over it is refused with an error event
    // and close 1009 after being read whole; beyond that the socket library cuts it off (and the
    // unread rest may reset the connection before the close frame arrives).
    let read_limit = max_message.saturating_mul(2);
    let service = Arc::clone(&state.service);
    let span = tracing::info_span!("realtime_session");
    Ok(upgrade
        .protocols([SUBPROTOCOL])
        .max_message_size(read_limit)
        .max_frame_size(read_limit)
        .on_upgrade(move |socket| {
            tracing::Instrument::instrument(
                serve(socket, context, service, permit, max_message),
                span,
            )
        }))
}

/// Fuzzing entry: one session fed every line of `text` as a client message, its events
/// drained after each. Whatever the input, this must not panic.
#[doc(hidden)]
pub fn fuzz_events(service: &Arc<Service>, text: &str) {
    let mut session = RealtimeSession::new(SessionContext {
        service: Arc::clone(service),
        caller: crate::service::Caller::anonymous(),
        beta: text.len() % 2 == 1,
    });
    for line in text.lines() {
        let _ = session.on_message(events::parse(line));
        let _ = session.pump();
        while session.next_event().is_some() {}
    }
}

/// Beta clients say so in a header, or (browsers) in a subprotocol.
fn speaks_beta(headers: &HeaderMap) -> bool {
    let has = |name: &str, needle: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains(needle))
    };
    has("openai-beta", "realtime=v1") || has("sec-websocket-protocol", "openai-beta.realtime-v1")
}

async fn serve(
    mut socket: WebSocket,
    context: SessionContext,
    service: Arc<Service>,
    permit: SessionPermit,
    max_message: usize,
) {
    let mut session = RealtimeSession::new(context);
    let close = run(&mut socket, &mut session, &service, max_message).await;
    drop(permit);
    if let Some(frame) = close {
        let _ = socket.send(Message::Close(Some(frame))).await;
        linger(&mut socket).await;
    }
}

/// After our close frame, reads (and drops) what the client still sends until it answers the
/// close or a second passes: closing a TCP socket with unread data resets it, and the reset
/// can overtake the close frame and error event already sent.
async fn linger(socket: &mut WebSocket) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Whether the socket is still read.
#[derive(Debug, PartialEq)]
enum Input {
    Open,
    /// Server shutdown: finish what was committed, then close.
    Draining,
}

/// The session loop; the close frame to send, or `None` when the client is gone.
async fn run(
    socket: &mut WebSocket,
    session: &mut RealtimeSession,
    service: &Service,
    max_message: usize,
) -> Option<CloseFrame> {
    let mut finalize = service.finalize_signal();
    let mut input = Input::Open;
    let idle_timeout = service.limits().idle_timeout;
    let mut idle_deadline = Instant::now() + idle_timeout;
    loop {
        let fatal = session.pump().err();
        if let Some(e) = &fatal {
            session.send_error(e, None);
        }
        if !flush(socket, session).await {
            return None;
        }
        if fatal.is_some() {
            return Some(close(close_code::POLICY, "session ended after an error"));
        }
        if input == Input::Draining && session.is_done() {
            return Some(close(close_code::AWAY, "the server is shutting down"));
        }
        let reading = input == Input::Open && session.accepts_audio();
        if !reading {
            // Held back by backpressure (or draining): the client is not idle.
            idle_deadline = Instant::now() + idle_timeout;
        }
        let has_job = session.has_job();
        tokio::select! {
            message = socket.recv(), if reading => {
                idle_deadline = Instant::now() + idle_timeout;
                match on_message(session, message, max_message) {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(e) => {
                        session.send_error(&e, None);
                        flush(socket, session).await;
                        return Some(match e {
                            RealtimeError::Fatal(ServiceError::MessageTooLarge(_)) => {
                                close(close_code::SIZE, "message too large")
                            }
                            _ => close(close_code::POLICY, "session ended after an error"),
                        });
                    }
                }
            }
            result = session.next_result(), if has_job => session.on_result(result),
            () = tokio::time::sleep_until(idle_deadline), if reading => {
                let idle = ServiceError::Timeout(format!(
                    "no event for {:.1} s (the session idle timeout, --idle-timeout-seconds); \
                     a paused client keeps the session with input_audio_buffer.append of \
                     silence or WebSocket pings",
                    idle_timeout.as_secs_f64()
                ));
                session.send_error(&RealtimeError::Fatal(idle), None);
                flush(socket, session).await;
                return Some(close(close_code::POLICY, "idle timeout"));
            }
            () = Service::finalizing(&mut finalize), if input == Input::Open => {
                session.end_input();
                input = Input::Draining;
            }
            expired = service.grace_expired() => {
                session.send_error(&RealtimeError::Fatal(expired), None);
                flush(socket, session).await;
                return Some(close(close_code::AWAY, "the server shut down"));
            }
        }
    }
}

/// Handles one socket message; false when the client has left (which cancels its work).
fn on_message(
    session: &mut RealtimeSession,
    message: Option<Result<Message, axum::Error>>,
    max_message: usize,
) -> Result<bool, RealtimeError> {
    if let Some(Ok(Message::Text(text))) = &message
        && text.len() > max_message
    {
        return Err(too_large(&format!("a {}-byte", text.len()), max_message));
    }
    match message {
        Some(Ok(Message::Text(text))) => session.on_message(events::parse(text.as_str()))?,
        Some(Ok(Message::Binary(_))) => session.send_error(
            &RealtimeError::InvalidJson("binary messages are not events; send JSON text".into()),
            None,
        ),
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
        Some(Ok(Message::Close(_))) | None => return Ok(false),
        // The socket stops reading a message at twice the limit (see `upgrade`).
        Some(Err(e)) if is_oversize(&e) => {
            return Err(too_large(
                &format!("a message of more than {}", max_message.saturating_mul(2)),
                max_message,
            ));
        }
        Some(Err(e)) => {
            tracing::debug!(error = %e, "realtime socket failed");
            return Ok(false);
        }
    }
    Ok(true)
}

/// The fatal error for a message over `--max-message-bytes`; `size` describes it.
fn too_large(size: &str, max_message: usize) -> RealtimeError {
    RealtimeError::Fatal(ServiceError::MessageTooLarge(format!(
        "{size}-byte message is over the {max_message}-byte limit (--max-message-bytes); \
         send audio in smaller appends"
    )))
}

/// Whether a socket error is a message over `--max-message-bytes` (the client is still there
/// and is told why, with close code 1009).
fn is_oversize(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(err) = source {
        if let Some(tungstenite::Error::Capacity(_)) = err.downcast_ref() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Writes the session's pending events; false when the client is gone.
async fn flush(socket: &mut WebSocket, session: &mut RealtimeSession) -> bool {
    while let Some(event) = session.next_event() {
        if socket
            .send(Message::Text(event.to_string().into()))
            .await
            .is_err()
        {
            return false;
        }
    }
    true
}

fn close(code: u16, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests;

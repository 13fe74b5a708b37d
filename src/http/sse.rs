//! `stream=true`: a transcription as OpenAI's Server-Sent Events.
//!
//! One `transcript.text.delta` per decoded segment as each 30 s window finishes, then one
//! `transcript.text.done` with the whole text and usage, then `[DONE]`. A task forwards the
//! job's events into a small bounded channel that the response body reads; when the client
//! goes away hyper drops the body, the channel closes, the task returns and dropping the
//! [`JobHandle`] cancels the job, so an abandoned stream frees its place in the engine.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;

use super::error::HttpError;
use crate::engine::{EngineError, JobEvent, JobHandle};
use crate::formats::usage;
use crate::service::{Service, SessionPermit};

/// SSE comment interval while the model works: long windows must not look like a dead
/// connection to proxies and clients with read timeouts.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

type EventSender = mpsc::Sender<Result<Event, Infallible>>;

/// The event stream for `handle`; `permit` (the request's session slot) is held until the
/// stream ends.
pub(super) fn respond(
    service: Arc<Service>,
    handle: JobHandle,
    permit: SessionPermit,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        tokio::select! {
            () = forward(handle, &tx) => {}
            expired = service.grace_expired() => fail(&tx, expired.into()).await,
        }
        drop(permit);
    });
    Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
}

/// Sends the job's segments as deltas, then the final events. Returns quietly when the client
/// has gone: the handle is dropped with this future.
async fn forward(mut handle: JobHandle, tx: &EventSender) {
    let mut first = true;
    loop {
        let event = tokio::select! {
            _ = tx.closed() => return,
            event = handle.next() => event,
        };
        match event {
            Some(JobEvent::Window(update)) => {
                for segment in &update.segments {
                    let delta = if first {
                        segment.text.trim_start()
                    } else {
                        segment.text.as_str()
                    };
                    if delta.is_empty() {
                        continue;
                    }
                    first = false;
                    let body = serde_json::json!({"type": "transcript.text.delta", "delta": delta});
                    if !send(tx, &body).await {
                        return;
                    }
                }
            }
            Some(JobEvent::Done(transcript)) => {
                let body = serde_json::json!({
                    "type": "transcript.text.done",
                    "text": transcript.text,
                    "usage": usage(transcript.duration),
                });
                if send(tx, &body).await {
                    let _ = tx.send(Ok(Event::default().data("[DONE]"))).await;
                }
                return;
            }
            Some(JobEvent::Failed(e)) => return fail(tx, e.into()).await,
            None => return fail(tx, EngineError::ShuttingDown.into()).await,
        }
    }
}

/// An error after the stream has started: OpenAI's envelope as the last event.
async fn fail(tx: &EventSender, error: HttpError) {
    tracing::warn!(%error, "transcription stream failed");
    send(tx, &error.body()).await;
}

/// `false` when the client has gone.
async fn send(tx: &EventSender, body: &serde_json::Value) -> bool {
    tx.send(Ok(Event::default().data(body.to_string())))
        .await
        .is_ok()
}

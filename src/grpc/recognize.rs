//! Whole-audio requests: `Recognize` (one response) and `RecognizeStream` (segments as each
//! window is decoded, for browsers on grpc-web), over the serving core's whole-file pipeline.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tracing::Instrument;

use super::config::{self, Settings};
use super::convert;
use super::invalid;
use super::proto::streaming_recognize_response::Event;
use super::proto::{
    RecognitionConfig, RecognizeRequest, RecognizeResponse, StreamingRecognizeResponse,
};
use crate::audio::check_declared_container;
use crate::engine::{EngineError, JobEvent, JobHandle};
use crate::service::{Caller, Service, ServiceError, SessionPermit};

/// `Recognize`: decodes, transcribes, answers once.
pub(super) async fn whole(
    service: &Service,
    caller: &Caller,
    request: RecognizeRequest,
) -> Result<RecognizeResponse, ServiceError> {
    let (settings, handle) = submit(service, caller, request).await?;
    let transcript = tokio::select! {
        transcript = handle.finish() => transcript?,
        expired = service.grace_expired() => return Err(expired),
    };
    Ok(convert::recognize_response(
        transcript,
        service.model_id(),
        settings.job.word_timestamps,
    ))
}

/// `RecognizeStream`: one `TranscriptUpdate` per segment as windows are decoded, then an
/// `AudioAck` saying how much of the recording is done (a progress bar's figures).
pub(super) async fn progressive(
    service: Arc<Service>,
    caller: Caller,
    request: RecognizeRequest,
    permit: SessionPermit,
) -> Result<impl Stream<Item = Result<StreamingRecognizeResponse, Status>>, ServiceError> {
    let (settings, handle) = submit(&service, &caller, request).await?;
    let (tx, rx) = mpsc::channel(16);
    let forward = async move {
        forward_segments(&service, &settings, handle, tx).await;
        drop(permit);
    };
    // In the call's span, which the session id is recorded on.
    tokio::spawn(forward.in_current_span());
    Ok(ReceiverStream::new(rx))
}

async fn submit(
    service: &Service,
    caller: &Caller,
    request: RecognizeRequest,
) -> Result<(Settings, JobHandle), ServiceError> {
    let config = request.config.unwrap_or_else(|| RecognitionConfig {
        encoding: super::proto::AudioEncoding::Auto as i32,
        ..Default::default()
    });
    let settings = config::resolve(&config, service)?;
    if request.audio.is_empty() {
        return Err(invalid("audio is empty"));
    }
    if let Some(declared) = settings.declared_container {
        check_declared_container(declared, &request.audio)?;
    }
    let handle = service
        .submit_file_gated(
            caller,
            request.audio,
            settings.audio_format(),
            &settings.job,
            settings.detector.clone(),
        )
        .await?;
    Ok((settings, handle))
}

async fn forward_segments(
    service: &Service,
    settings: &Settings,
    mut handle: JobHandle,
    tx: mpsc::Sender<Result<StreamingRecognizeResponse, Status>>,
) {
    let session_id = uuid::Uuid::new_v4().to_string();
    tracing::Span::current().record("session.id", session_id.as_str());
    let mut sequence = 0;
    let mut respond = |event: Event| {
        sequence += 1;
        StreamingRecognizeResponse {
            session_id: session_id.clone(),
            sequence,
            event: Some(event),
        }
    };
    let started = respond(Event::SessionStarted(convert::session_started(
        service, settings,
    )));
    if tx.send(Ok(started)).await.is_err() {
        return;
    }
    let mut utterance_id = 0;
    loop {
        let event = tokio::select! {
            _ = tx.closed() => return, // client went away: dropping the handle cancels the job
            event = handle.next() => event,
            expired = service.grace_expired() => {
                let _ = tx.send(Err(expired.into())).await;
                return;
            }
        };
        let failure: ServiceError = match event {
            Some(JobEvent::Window(update)) => {
                let progress = respond(Event::AudioAck(convert::window_progress(&update)));
                for segment in &update.segments {
                    utterance_id += 1;
                    let update = convert::final_segment_update(
                        segment,
                        utterance_id,
                        &update.language,
                        settings.job.word_timestamps,
                    );
                    if tx
                        .send(Ok(respond(Event::Transcript(update))))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                if tx.send(Ok(progress)).await.is_err() {
                    return;
                }
                continue;
            }
            Some(JobEvent::Done(transcript)) => {
                let done = respond(Event::AudioAck(convert::file_done(&transcript)));
                let _ = tx.send(Ok(done)).await;
                return;
            }
            Some(JobEvent::Failed(e)) => e.into(),
            None => EngineError::ShuttingDown.into(),
        };
        let _ = tx.send(Err(failure.into())).await;
        return;
    }
}

//! Whole-audio requests: `Recognize` (one response) and `RecognizeStream` (segments as each
//! window is decoded, for browsers on grpc-web).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tracing::Instrument;

use super::config::{self, Settings};
use super::convert;
use super::error::{ServiceError, invalid};
use super::proto::streaming_recognize_response::Event;
use super::proto::{
    RecognitionConfig, RecognizeRequest, RecognizeResponse, SessionStarted,
    StreamingRecognizeResponse,
};
use super::service::ServiceState;
use crate::audio::decode_bytes;
use crate::audio::stream::StreamDecoder;
use crate::engine::{JobEvent, JobHandle};

/// `Recognize`: decodes, transcribes, answers once.
pub(super) async fn whole(
    state: &ServiceState,
    request: RecognizeRequest,
) -> Result<RecognizeResponse, ServiceError> {
    let (settings, handle) = submit(state, request).await?;
    let transcript = handle.finish().await?;
    Ok(convert::recognize_response(
        transcript,
        &state.model_id,
        settings.job.word_timestamps,
    ))
}

/// `RecognizeStream`: one `TranscriptUpdate` per segment as windows are decoded.
pub(super) async fn progressive(
    state: Arc<ServiceState>,
    request: RecognizeRequest,
    permit: OwnedSemaphorePermit,
) -> Result<impl Stream<Item = Result<StreamingRecognizeResponse, Status>>, ServiceError> {
    let (settings, handle) = submit(&state, request).await?;
    let (tx, rx) = mpsc::channel(16);
    let forward = async move {
        forward_segments(&state, &settings, handle, tx).await;
        drop(permit);
    };
    // In the call's span, which the session id is recorded on.
    tokio::spawn(forward.in_current_span());
    Ok(ReceiverStream::new(rx))
}

async fn submit(
    state: &ServiceState,
    request: RecognizeRequest,
) -> Result<(Settings, JobHandle), ServiceError> {
    let config = request.config.unwrap_or_else(|| RecognitionConfig {
        encoding: super::proto::AudioEncoding::Auto as i32,
        ..Default::default()
    });
    let settings = config::resolve(&config, state)?;
    if request.audio.is_empty() {
        return Err(invalid("audio is empty"));
    }
    let samples = decode_audio(request.audio, &settings).await?;
    let seconds = samples.len() as f64 / 16_000.0;
    if seconds > state.limits.max_audio_seconds {
        return Err(ServiceError::AudioTooLong {
            seconds,
            limit_seconds: state.limits.max_audio_seconds,
        });
    }
    let handle = state.engine.submit(samples.into(), &settings.job)?;
    Ok((settings, handle))
}

/// Decodes a whole payload off the async runtime (decoding a long file takes a while).
async fn decode_audio(bytes: Vec<u8>, settings: &Settings) -> Result<Vec<f32>, ServiceError> {
    let (encoding, rate, channels) = (settings.encoding, settings.sample_rate, settings.channels);
    let decoded = tokio::task::spawn_blocking(move || match encoding {
        None => decode_bytes(bytes, None)?.into_whisper_input(),
        Some(encoding) => {
            let mut decoder = StreamDecoder::new(encoding, rate, channels)?;
            let mut samples = decoder.push(&bytes)?;
            samples.extend(decoder.finish()?);
            Ok(samples)
        }
    })
    .await
    .map_err(|e| ServiceError::InvalidArgument(format!("audio decoding panicked: {e}")))?;
    Ok(decoded?)
}

async fn forward_segments(
    state: &ServiceState,
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
    let started = respond(Event::SessionStarted(SessionStarted {
        effective_config: Some(settings.effective.clone()),
        limits: Some(state.limits.to_proto()),
        model: state.model_id.clone(),
        device: state.device.clone(),
    }));
    if tx.send(Ok(started)).await.is_err() {
        return;
    }
    let mut utterance_id = 0;
    loop {
        let event = tokio::select! {
            _ = tx.closed() => return, // client went away: dropping the handle cancels the job
            event = handle.next() => event,
        };
        let message = match event {
            Some(JobEvent::Window(update)) => {
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
                continue;
            }
            Some(JobEvent::Done(_)) => return,
            Some(JobEvent::Failed(e)) => Err(Status::from(ServiceError::from(e))),
            None => Err(Status::from(ServiceError::Engine(
                crate::engine::EngineError::ShuttingDown,
            ))),
        };
        let _ = tx.send(message).await;
        return;
    }
}

//! The `hearken.speech.v1.Speech` service: shared state and the RPC entry points.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::error::ServiceError;
use super::proto::speech_server::Speech;
use super::proto::{
    ListModelsRequest, ListModelsResponse, ModelInfo, RecognizeRequest, RecognizeResponse,
    ServerLimits, StreamingRecognizeRequest, StreamingRecognizeResponse,
};
use super::{recognize, streaming};
use crate::engine::Engine;
use crate::model::store::ModelStore;
use crate::telemetry::Metrics;

/// Server-wide limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request message, bytes.
    pub max_message_bytes: usize,
    /// How far a streaming client may run ahead of transcription, seconds of audio.
    pub max_lead_seconds: f64,
    /// Concurrent sessions (streams and in-flight Recognize calls).
    pub max_sessions: usize,
    /// Longest audio one Recognize call may carry, seconds.
    pub max_audio_seconds: f64,
    /// Largest audio file one HTTP upload may carry, bytes (OpenAI's limit is 25 MB).
    pub max_upload_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 32 << 20,
            max_lead_seconds: 30.0,
            max_sessions: 64,
            max_audio_seconds: 4.0 * 3600.0,
            max_upload_bytes: 25 << 20,
        }
    }
}

impl Limits {
    pub(super) fn to_proto(&self) -> ServerLimits {
        ServerLimits {
            max_message_bytes: self.max_message_bytes as u32,
            max_lead_seconds: self.max_lead_seconds as f32,
            max_sessions: self.max_sessions as u32,
            max_audio_seconds: self.max_audio_seconds as f32,
        }
    }
}

/// What every RPC shares: the engine, the model's identity, limits and the shutdown signal.
#[derive(Debug)]
pub struct ServiceState {
    pub(crate) engine: Arc<Engine>,
    pub(crate) model_id: String,
    pub(super) device: String,
    pub(crate) limits: Limits,
    sessions: Arc<Semaphore>,
    pub(crate) shutdown: watch::Receiver<bool>,
    metrics: Metrics,
}

impl ServiceState {
    /// State for a server whose model `model_id` on `device` is served by `engine`.
    /// Flipping `shutdown` to true asks live streams to finalize and end. Calls and sessions
    /// are recorded into `metrics`.
    pub fn new(
        engine: Arc<Engine>,
        model_id: String,
        device: String,
        limits: Limits,
        shutdown: watch::Receiver<bool>,
        metrics: Metrics,
    ) -> Self {
        let sessions = Arc::new(Semaphore::new(limits.max_sessions));
        let observed = Arc::downgrade(&sessions);
        let max_sessions = limits.max_sessions;
        metrics.service().observe_sessions(move || {
            Some((max_sessions - observed.upgrade()?.available_permits()) as u64)
        });
        Self {
            engine,
            model_id,
            device,
            sessions,
            limits,
            shutdown,
            metrics,
        }
    }

    /// The server's instruments; their Prometheus view is `metrics().registry().render()`.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Takes a session slot (gRPC streams and calls and HTTP requests share them), or fails
    /// with RESOURCE_EXHAUSTED.
    pub(crate) fn open_session(&self) -> Result<OwnedSemaphorePermit, ServiceError> {
        if *self.shutdown.borrow() {
            self.metrics.service().session_rejected("shutting_down");
            return Err(ServiceError::Engine(
                crate::engine::EngineError::ShuttingDown,
            ));
        }
        Arc::clone(&self.sessions).try_acquire_owned().map_err(|_| {
            self.metrics.service().session_rejected("capacity");
            ServiceError::TooManySessions {
                limit: self.limits.max_sessions,
                retry_after: Duration::from_secs(2),
            }
        })
    }

    /// Sessions open now.
    pub fn open_sessions(&self) -> usize {
        self.limits.max_sessions - self.sessions.available_permits()
    }
}

/// The gRPC service object.
#[derive(Debug, Clone)]
pub struct SpeechService {
    state: Arc<ServiceState>,
}

impl SpeechService {
    /// A service over `state`.
    pub fn new(state: Arc<ServiceState>) -> Self {
        Self { state }
    }
}

type ResponseStream =
    Pin<Box<dyn Stream<Item = Result<StreamingRecognizeResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Speech for SpeechService {
    type StreamingRecognizeStream = ResponseStream;
    type RecognizeStreamStream = ResponseStream;

    async fn streaming_recognize(
        &self,
        request: Request<Streaming<StreamingRecognizeRequest>>,
    ) -> Result<Response<Self::StreamingRecognizeStream>, Status> {
        let permit = self.state.open_session()?;
        let stream = streaming::start(Arc::clone(&self.state), request.into_inner(), permit);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn recognize(
        &self,
        request: Request<RecognizeRequest>,
    ) -> Result<Response<RecognizeResponse>, Status> {
        let _permit = self.state.open_session()?;
        let response = recognize::whole(&self.state, request.into_inner()).await?;
        Ok(Response::new(response))
    }

    async fn recognize_stream(
        &self,
        request: Request<RecognizeRequest>,
    ) -> Result<Response<Self::RecognizeStreamStream>, Status> {
        let permit = self.state.open_session()?;
        let stream =
            recognize::progressive(Arc::clone(&self.state), request.into_inner(), permit).await?;
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_models(
        &self,
        _request: Request<ListModelsRequest>,
    ) -> Result<Response<ListModelsResponse>, Status> {
        Ok(Response::new(list_models(&self.state)))
    }
}

fn list_models(state: &ServiceState) -> ListModelsResponse {
    let tokenizer = &state.engine.model().tokenizer;
    let mut models = vec![ModelInfo {
        id: state.model_id.clone(),
        languages: tokenizer
            .language_codes()
            .iter()
            .map(|c| c.to_string())
            .collect(),
        multilingual: tokenizer.is_multilingual(),
        loaded: true,
        device: state.device.clone(),
        available: true,
        is_default: true,
    }];
    for listing in ModelStore::from_env().list() {
        if listing.entry.id == state.model_id {
            continue;
        }
        models.push(ModelInfo {
            id: listing.entry.id.to_string(),
            languages: Vec::new(),
            multilingual: listing.entry.multilingual,
            loaded: false,
            device: String::new(),
            available: listing.cached,
            is_default: false,
        });
    }
    ListModelsResponse { models }
}

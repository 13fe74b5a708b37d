//! The `hearken.speech.v1.Speech` service: the RPC entry points over the serving core.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::proto::speech_server::Speech;
use super::proto::{
    ListModelsRequest, ListModelsResponse, ModelInfo, RecognizeRequest, RecognizeResponse,
    StreamingRecognizeRequest, StreamingRecognizeResponse,
};
use super::resume::Resumes;
use super::{recognize, streaming};
use crate::model::store::ModelStore;
use crate::service::{Caller, Service, SessionPermit};

/// The gRPC service object.
#[derive(Debug, Clone)]
pub struct SpeechService {
    service: Arc<Service>,
    resumes: Arc<Resumes>,
}

impl SpeechService {
    /// A service over the serving core.
    pub fn new(service: Arc<Service>) -> Self {
        let resumes = Resumes::new(service.limits().resume_window);
        Self { service, resumes }
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
        let caller = authenticated(&request)?;
        let admission = match self.service.open_session(&caller) {
            Ok(permit) => Ok(permit),
            // A resume needs no slot of its own (its session holds one); the first message
            // tells whether this call is one.
            Err(refused) if self.resumes.holds_sessions_of(&caller) => Err(refused),
            Err(refused) => return Err(refused.into()),
        };
        let stream = streaming::start(
            Arc::clone(&self.service),
            Arc::clone(&self.resumes),
            caller,
            request.into_inner(),
            admission,
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn recognize(
        &self,
        request: Request<RecognizeRequest>,
    ) -> Result<Response<RecognizeResponse>, Status> {
        let (caller, _permit) = self.admit(&request)?;
        let response = recognize::whole(&self.service, &caller, request.into_inner()).await?;
        Ok(Response::new(response))
    }

    async fn recognize_stream(
        &self,
        request: Request<RecognizeRequest>,
    ) -> Result<Response<Self::RecognizeStreamStream>, Status> {
        let (caller, permit) = self.admit(&request)?;
        let stream = recognize::progressive(
            Arc::clone(&self.service),
            caller,
            request.into_inner(),
            permit,
        )
        .await?;
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_models(
        &self,
        _request: Request<ListModelsRequest>,
    ) -> Result<Response<ListModelsResponse>, Status> {
        Ok(Response::new(list_models(&self.service)))
    }
}

impl SpeechService {
    /// Who sent `request` (as the server's interceptor authenticated it) and a session slot
    /// for them.
    fn admit<T>(&self, request: &Request<T>) -> Result<(Caller, SessionPermit), Status> {
        let caller = authenticated(request)?;
        let permit = self.service.open_session(&caller)?;
        Ok((caller, permit))
    }
}

/// Who sent `request`, as the server's interceptor authenticated it.
fn authenticated<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("the request was not authenticated"))
}

fn list_models(service: &Service) -> ListModelsResponse {
    let info = service.model_info();
    let mut models = vec![ModelInfo {
        id: service.model_id().to_string(),
        languages: info.languages.clone(),
        multilingual: info.multilingual,
        loaded: true,
        device: service.device().to_string(),
        available: true,
        is_default: true,
    }];
    for listing in ModelStore::from_env().list() {
        if listing.entry.id == service.model_id() {
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

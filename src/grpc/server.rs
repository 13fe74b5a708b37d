//! One listener for native gRPC (HTTP/2) and grpc-web (HTTP/1.1 and HTTP/2, CORS for
//! browsers), with health and reflection beside the speech service.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use tonic::Status;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tonic_web::GrpcWebLayer;
use tower::util::MapResponseLayer;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use super::proto::FILE_DESCRIPTOR_SET;
use super::proto::speech_server::SpeechServer;
use super::service::SpeechService;
use crate::service::{Origins, Service};
use crate::telemetry::RpcLayer;
use crate::tls::Incoming;

/// Transport settings.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// HTTP/2 PING interval on idle connections, so load balancers and NATs keep them.
    pub keepalive_interval: Duration,
    /// Drop a connection whose PING is not answered within this.
    pub keepalive_timeout: Duration,
    /// Serve gRPC reflection (v1 and v1alpha), so grpcurl and Postman need no proto files.
    /// Off keeps the API's shape private (`--reflection off`).
    pub reflection: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
            reflection: true,
        }
    }
}

/// Full gRPC name of the speech service, as health checks name it.
pub const SERVICE_NAME: &str = "hearken.speech.v1.Speech";

/// The gRPC server: speech, health (`grpc.health.v1`) and reflection (v1 and v1alpha).
pub struct GrpcServer {
    service: Arc<Service>,
    options: ServerOptions,
    health: HealthReporter,
}

impl GrpcServer {
    /// A server over the serving core; health reports NOT_SERVING until
    /// [`Self::set_serving`].
    pub async fn new(service: Arc<Service>, options: ServerOptions) -> Self {
        let server = Self {
            service,
            options,
            health: HealthReporter::new(),
        };
        server.set_serving(false).await;
        server
    }

    /// A handle to flip health status from elsewhere (e.g. the shutdown path).
    pub fn health(&self) -> HealthReporter {
        self.health.clone()
    }

    /// Reports the speech service (and the server as a whole, `""`) SERVING or NOT_SERVING.
    pub async fn set_serving(&self, serving: bool) {
        set_health(&self.health, serving).await;
    }

    /// Serves the connections of `incoming` (plain or TLS) until `shutdown` resolves, then waits for open calls to end.
    pub async fn serve(
        self,
        incoming: Incoming,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        // No page is served on this port: any browser caller is cross-origin.
        let speech = speech_service(Arc::clone(&self.service), OwnOrigin::None);
        let health = HealthServer::new(HealthService::from_health_reporter(self.health.clone()));
        let reflection = self.options.reflection;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .expect("embedded descriptor sets are valid");
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .expect("embedded descriptor sets are valid");
        Server::builder()
            .accept_http1(true)
            .http2_keepalive_interval(Some(self.options.keepalive_interval))
            .http2_keepalive_timeout(Some(self.options.keepalive_timeout))
            .layer(cors(self.service.origins().clone()))
            .layer(GrpcWebLayer::new())
            // Inside grpc-web (it sees native gRPC trailers) and outside the status rewrite
            // (it records what the client gets).
            .layer(RpcLayer::new(self.service.metrics().service().clone()))
            .layer(MapResponseLayer::new(oversize_is_resource_exhausted))
            .add_service(speech)
            .add_service(health)
            .add_optional_service(reflection.then_some(reflection_v1))
            .add_optional_service(reflection.then_some(reflection_v1alpha))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
    }
}

/// Which browser origin counts as the server's own when a speech call is checked.
#[derive(Debug, Clone, Copy)]
enum OwnOrigin {
    /// None: this port serves no page, so every browser caller is cross-origin.
    None,
    /// The request's `Host`: the HTTP gateway serves the browser app, whose grpc-web calls
    /// come from the same origin.
    Host,
}

/// The speech service behind its guard.
fn speech_service(
    service: Arc<Service>,
    own_origin: OwnOrigin,
) -> InterceptedService<SpeechServer<SpeechService>, SpeechGuard> {
    let max_message = service.limits().max_message_bytes;
    let speech = SpeechServer::new(SpeechService::new(Arc::clone(&service)))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    InterceptedService::new(
        speech,
        SpeechGuard {
            service,
            own_origin,
        },
    )
}

/// Every speech call passes the browser origin rule, then the API key, whose caller it hands
/// to the handler (health and reflection, served beside it, stay open for the mesh's probes).
#[derive(Clone)]
struct SpeechGuard {
    service: Arc<Service>,
    own_origin: OwnOrigin,
}

impl tonic::service::Interceptor for SpeechGuard {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let metadata = request.metadata();
        let header = |name| metadata.get(name).map(|v| v.to_str().unwrap_or("?"));
        let host = match self.own_origin {
            OwnOrigin::None => None,
            OwnOrigin::Host => header("host"),
        };
        self.service.check_origin(header("origin"), host)?;
        let caller = self.service.authenticate(header("authorization"))?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// The speech service as grpc-web routes for the HTTP gateway's port, which serves the browser
/// app: the same guard, metrics and status rewrite as on the gRPC port, with the request's own
/// host as the page's origin (the app's calls are same-origin).
pub fn grpc_web_routes(service: Arc<Service>) -> axum::Router {
    let speech = tower::ServiceBuilder::new()
        .layer(GrpcWebLayer::new())
        .layer(RpcLayer::new(service.metrics().service().clone()))
        .layer(MapResponseLayer::new(oversize_is_resource_exhausted))
        .service(speech_service(service, OwnOrigin::Host));
    axum::Router::new().route_service(&format!("/{SERVICE_NAME}/{{method}}"), speech)
}

/// Sets the speech service's and the server's (`""`) health status.
pub async fn set_health(health: &HealthReporter, serving: bool) {
    let status = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    health.set_service_status(SERVICE_NAME, status).await;
    health.set_service_status("", status).await;
}

/// tonic refuses a request message over the size limit with OUT_OF_RANGE before any handler
/// runs; gRPC convention (and our API) says RESOURCE_EXHAUSTED, so rewrite that status on
/// trailers-only responses.
fn oversize_is_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let oversize = headers.get("grpc-status").is_some_and(|s| s == "11")
        && headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| {
                m.contains("message%20length%20too%20large")
                    || m.contains("message length too large")
            });
    if oversize {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    response
}

/// Browsers on the `--cors-origins` list may call (grpc-web) and read gRPC's trailers; others
/// get no CORS grant, and the speech service refuses them too (see `check_origin`).
/// Credentials are never allowed: keys travel in a header.
fn cors(origins: Origins) -> CorsLayer {
    let exposed =
        ["grpc-status", "grpc-message", "grpc-status-details-bin"].map(HeaderName::from_static);
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origin
                .to_str()
                .is_ok_and(|origin| origins.allows_cross_origin(origin))
        }))
        .allow_methods([http::Method::POST, http::Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(exposed)
        .max_age(Duration::from_secs(24 * 3600))
}

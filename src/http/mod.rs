//! The OpenAI-compatible HTTP gateway: `/v1/audio/transcriptions`, `/v1/audio/translations`
//! (JSON, text, subtitles or Server-Sent Events), the Realtime transcription WebSocket
//! (`/v1/realtime`, [`realtime`]), `/v1/models`, `/healthz` and `/metrics` (Prometheus text);
//! beside them the browser app at `/` ([`web`]) and the speech service as grpc-web, which the
//! app calls from the same origin.
//!
//! It is a thin translation layer over the serving core ([`Service`]): requests take their
//! session slot from it, run through its whole-file pipeline or the shared streaming driver,
//! and report its readiness. Handlers parse ([`form`]), check and submit ([`transcribe`]) and
//! render through [`crate::formats`]; every failure is an [`HttpError`], turned into OpenAI's
//! error envelope in one place.

mod error;
mod form;
mod models;
pub mod realtime;

#[doc(hidden)]
pub use form::fuzz_form;
#[doc(hidden)]
pub use realtime::fuzz_events;
mod sse;
mod transcribe;
mod web;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::tls::Incoming;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::engine::Engine;
use crate::service::{Origins, Service};
use crate::telemetry::HttpLayer;

pub use error::HttpError;
pub use models::OPENAI_ALIASES;

/// Room for the form's text fields and part headers beside the file itself.
const FORM_OVERHEAD_BYTES: usize = 64 << 10;

/// What every gateway request shares.
pub struct GatewayState {
    service: Arc<Service>,
    /// Serve `/metrics` on this port (off when `--metrics-addr` gives it a port of its own).
    metrics_route: bool,
    /// Unix seconds when the gateway started: the `created` of the model object.
    created: u64,
    /// Routes of other front ends served on this port (grpc-web, for the browser app).
    other_routes: Router,
}

impl std::fmt::Debug for GatewayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayState")
            .field("model", &self.service.model_id())
            .finish_non_exhaustive()
    }
}

impl GatewayState {
    /// State over the serving core; `/healthz` reports its readiness, as gRPC health does.
    pub fn new(service: Arc<Service>) -> Self {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            service,
            metrics_route: true,
            created,
            other_routes: Router::new(),
        }
    }

    /// Also serves `routes` on this port (the server adds grpc-web here, so the browser app's
    /// calls stay same-origin); they bring their own authentication.
    pub fn with_routes(mut self, routes: Router) -> Self {
        self.other_routes = routes;
        self
    }

    /// Leaves `/metrics` out of the gateway (it is served on its own address).
    pub fn without_metrics_route(mut self) -> Self {
        self.metrics_route = false;
        self
    }

    fn engine(&self) -> &Arc<Engine> {
        self.service.engine()
    }

    fn model_id(&self) -> &str {
        self.service.model_id()
    }
}

/// The gateway's routes over `state`.
pub fn router(state: Arc<GatewayState>) -> Router {
    let metrics_route = state.metrics_route;
    // Up to twice the upload limit is read, so a modestly oversized file is answered with a
    // clean 413 after its body is drained; beyond that the connection is cut.
    let body_limit = state
        .service
        .limits()
        .max_upload_bytes
        .saturating_mul(2)
        .saturating_add(FORM_OVERHEAD_BYTES);
    let telemetry = HttpLayer::new(state.service.metrics().service().clone());
    // Everything under /v1 needs a key when the server has tenants; health and metrics
    // stay open for probes and scrapers.
    let api = Router::new()
        .route("/v1/audio/transcriptions", post(transcribe::transcriptions))
        .route("/v1/audio/translations", post(transcribe::translations))
        .route("/v1/realtime", get(realtime::realtime))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{id}", get(models::get))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            authenticate,
        ));
    Router::new()
        .merge(api)
        .merge(web::routes())
        .route("/healthz", get(healthz))
        .merge(if metrics_route {
            Router::new().route("/metrics", get(metrics))
        } else {
            Router::new()
        })
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(Arc::clone(&state))
        // Behind the origin rule and CORS like the rest; they authenticate themselves.
        .merge(state.other_routes.clone())
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            same_origin_or_allowed,
        ))
        .layer(telemetry)
        .layer(cors(state.service.origins().clone()))
}

/// Serves the gateway on `listener` until `shutdown` resolves, then lets open requests (and
/// streams) finish.
pub async fn serve(
    listener: Incoming,
    state: Arc<GatewayState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// `GET /healthz`: 200 once the model is loaded and warm, 503 before that and while shutting
/// down (load balancers stop sending new work).
async fn healthz(State(state): State<Arc<GatewayState>>) -> Response {
    if state.service.is_ready() {
        let body = serde_json::json!({"status": "ok", "model": state.model_id()});
        (StatusCode::OK, axum::Json(body)).into_response()
    } else {
        let body = serde_json::json!({"status": "unavailable", "model": state.model_id()});
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    }
}

/// `/metrics` alone, for `--metrics-addr`: scrapers reach it on a private address while the
/// gateway's port is public.
pub fn metrics_router(service: Arc<Service>) -> Router {
    let state = Arc::new(GatewayState::new(service));
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

/// `GET /metrics`: the server's metrics (engine, sessions, RPCs) in the Prometheus text
/// format, for scrapers that do not speak OTLP.
async fn metrics(State(state): State<Arc<GatewayState>>) -> Response {
    let body = state.service.metrics().registry().render();
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn not_found(method: Method, uri: Uri) -> HttpError {
    HttpError::RouteNotFound {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> HttpError {
    HttpError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

/// Refuses, with OpenAI's envelope, a browser request from an origin that is neither this
/// server's own nor on `--cors-origins`: a form POST or a WebSocket upgrade has no preflight,
/// so the browser's CORS check alone would let any page run transcriptions here.
async fn same_origin_or_allowed(
    State(state): State<Arc<GatewayState>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let headers = request.headers();
    let header = |name| headers.get(name).map(|v| v.to_str().unwrap_or("?"));
    let checked = state
        .service
        .check_origin(header(header::ORIGIN), header(header::HOST));
    match checked {
        Ok(()) => next.run(request).await,
        Err(refused) => HttpError::from(refused).into_response(),
    }
}

/// Authenticates an API request (`Authorization: Bearer KEY`, or on the Realtime socket the
/// browsers' `openai-insecure-api-key.KEY` subprotocol) and hands its [`Caller`] to the
/// handler; refused with 401 and OpenAI's envelope (before any upgrade) otherwise.
async fn authenticate(
    State(state): State<Arc<GatewayState>>,
    mut request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let authorization = credential(request.headers());
    match state.service.authenticate(authorization.as_deref()) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(refused) => HttpError::from(refused).into_response(),
    }
}

/// The `Authorization` value, or `Bearer KEY` from a browser's key subprotocol.
fn credential(headers: &axum::http::HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return Some(value.to_str().unwrap_or("?").to_string());
    }
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix("openai-insecure-api-key."))
        .map(|key| format!("Bearer {key}"))
}

/// Browser apps on `--cors-origins` (OpenAI's JS SDK with `dangerouslyAllowBrowser`) may call
/// from their origin; no credentials (keys travel in a header).
fn cors(origins: Origins) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origin
                .to_str()
                .is_ok_and(|origin| origins.allows_cross_origin(origin))
        }))
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        // grpc-web callers read the status from these when it comes in the headers.
        .expose_headers(
            ["grpc-status", "grpc-message", "grpc-status-details-bin"]
                .map(header::HeaderName::from_static),
        )
        .max_age(Duration::from_secs(24 * 3600))
}

#[cfg(test)]
mod tests;

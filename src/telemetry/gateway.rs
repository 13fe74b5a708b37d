//! One span and one measurement per HTTP gateway request, taken as a tower layer so handlers
//! stay free of telemetry calls.
//!
//! Attributes follow OpenTelemetry's HTTP server conventions (`http.request.method`,
//! `http.route`, `http.response.status_code`), and the duration runs from the request to the
//! end of the response body, so a streamed (SSE) transcription counts its whole stream. A body
//! dropped early (the client went away) still records, with the status already sent. The route
//! is the matched template (`/v1/models/{id}`), never the raw path, so metric labels stay few;
//! the handler runs inside the span, so engine batches link to the request that caused them.

use std::time::Instant;

use axum::extract::MatchedPath;
use http_body::Body;
use opentelemetry::KeyValue;
use tracing::Span;
use tracing::field::Empty;

use super::edge::{BodyEvent, EdgeLayer, Exchange};
use super::rpc::adopt_remote_parent;
use super::service::ServiceMetrics;

/// Wraps the gateway's routes; see the module docs. Add it with `Router::layer`, which runs it
/// after routing, when the matched route is known.
pub type HttpLayer = EdgeLayer<HttpExchange>;

/// One request in flight: its span, start time, route and (once known) status.
pub struct HttpExchange {
    metrics: ServiceMetrics,
    method: &'static str,
    route: Option<String>,
    started: Instant,
    span: Span,
    status: Option<u16>,
}

impl Exchange for HttpExchange {
    fn start<B>(request: &http::Request<B>, metrics: ServiceMetrics) -> Self {
        let method = known_method(request.method());
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_string());
        let name = match &route {
            Some(route) => format!("{method} {route}"),
            None => method.to_string(),
        };
        let span = tracing::info_span!(
            "http",
            otel.name = name,
            otel.kind = "server",
            otel.status_code = Empty,
            tenant = Empty,
            http.request.method = method,
            http.route = route.as_deref(),
            http.response.status_code = Empty,
            url.path = request.uri().path(),
        );
        adopt_remote_parent(&span, request.headers());
        Self {
            metrics,
            method,
            route,
            started: Instant::now(),
            span,
            status: None,
        }
    }

    fn span(&self) -> &Span {
        &self.span
    }

    /// Nothing to record: no status went out.
    fn on_error(&mut self) {}

    fn on_response<B: Body>(&mut self, response: &http::Response<B>) -> bool {
        self.status = Some(response.status().as_u16());
        // An empty body may never be polled: record it now.
        !response.body().is_end_stream()
    }

    fn on_body(&mut self, event: BodyEvent<'_>) -> bool {
        match event {
            BodyEvent::Frame { last, .. } => last,
            BodyEvent::Failed | BodyEvent::Ended => true,
        }
    }
}

impl Drop for HttpExchange {
    fn drop(&mut self) {
        // No status: the handler's future was dropped before it answered (client gone).
        let Some(status) = self.status else {
            return;
        };
        self.span.record("http.response.status_code", status);
        if status >= 500 {
            self.span.record("otel.status_code", "error");
        }
        let mut attributes = vec![
            KeyValue::new("http.request.method", self.method),
            KeyValue::new("http.response.status_code", i64::from(status)),
        ];
        if let Some(route) = self.route.take() {
            attributes.push(KeyValue::new("http.route", route));
        }
        self.metrics
            .http_request(&attributes, self.started.elapsed());
    }
}

/// The method as a label: the standard ones by name, anything else `_OTHER` (client input must
/// not grow the label set).
fn known_method(method: &http::Method) -> &'static str {
    use http::Method as M;
    match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        M::PATCH => "PATCH",
        M::CONNECT => "CONNECT",
        M::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

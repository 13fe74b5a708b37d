//! One span and one measurement per gRPC call, taken at the transport edge so every service
//! (speech, health, reflection) is covered and handlers stay free of telemetry calls.
//!
//! gRPC puts a call's status in the response headers of a trailers-only response (errors
//! before any message), else in the trailers that end the body; the layer reads it from
//! whichever comes. A body dropped before its trailers is a call the client abandoned
//! (CANCELLED). The span stays open until the status, so a stream's span covers the whole
//! stream and engine batches can link to it; an incoming W3C `traceparent` makes it a child
//! of the caller's span.

use std::time::Instant;

use http_body::Body;
use opentelemetry::KeyValue;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::edge::{BodyEvent, EdgeLayer, Exchange};
use super::service::ServiceMetrics;

const CANCELLED: i64 = 1;
const UNKNOWN: i64 = 2;
const UNIMPLEMENTED: i64 = 12;

/// Wraps a gRPC server's services; see the module docs.
pub type RpcLayer = EdgeLayer<RpcCall>;

/// One call in flight: its span, start time and route.
pub struct RpcCall {
    metrics: ServiceMetrics,
    service: String,
    method: String,
    started: Instant,
    span: Span,
    /// The status of a trailers-only response.
    header_status: Option<i64>,
    finished: bool,
}

impl Exchange for RpcCall {
    fn start<B>(request: &http::Request<B>, metrics: ServiceMetrics) -> Self {
        let path = request.uri().path().trim_start_matches('/');
        let (service, method) = path.split_once('/').unwrap_or((path, ""));
        let span = tracing::info_span!(
            "rpc",
            otel.name = path,
            otel.kind = "server",
            otel.status_code = Empty,
            tenant = Empty,
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = Empty,
            session.id = Empty,
        );
        adopt_remote_parent(&span, request.headers());
        Self {
            metrics,
            service: service.to_string(),
            method: method.to_string(),
            started: Instant::now(),
            span,
            header_status: None,
            finished: false,
        }
    }

    fn span(&self) -> &Span {
        &self.span
    }

    fn on_error(&mut self) {
        self.finish(UNKNOWN);
    }

    fn on_response<B: Body>(&mut self, response: &http::Response<B>) -> bool {
        self.header_status = grpc_status(response.headers());
        true
    }

    fn on_body(&mut self, event: BodyEvent<'_>) -> bool {
        let status = match event {
            BodyEvent::Frame { trailers, .. } => {
                trailers.map(|trailers| grpc_status(trailers).unwrap_or(UNKNOWN))
            }
            BodyEvent::Failed => Some(UNKNOWN),
            BodyEvent::Ended => Some(self.header_status.unwrap_or(UNKNOWN)),
        };
        status.inspect(|&status| self.finish(status)).is_some()
    }
}

impl RpcCall {
    fn finish(&mut self, status: i64) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        self.span.record("rpc.grpc.status_code", status);
        if is_server_error(status) {
            self.span.record("otel.status_code", "error");
        }
        // Unknown paths are client input: keep them out of metric labels.
        let (service, method) = if status == UNIMPLEMENTED {
            ("_OTHER".to_string(), "_OTHER".to_string())
        } else {
            (self.service.clone(), self.method.clone())
        };
        let attributes = [
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", service),
            KeyValue::new("rpc.method", method),
            KeyValue::new("rpc.grpc.status_code", status),
        ];
        self.metrics.call(&attributes, self.started.elapsed());
    }
}

impl Drop for RpcCall {
    fn drop(&mut self) {
        self.finish(self.header_status.unwrap_or(CANCELLED));
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<i64> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// Codes that mean the server failed, as OpenTelemetry's gRPC conventions list them: UNKNOWN,
/// DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
fn is_server_error(status: i64) -> bool {
    matches!(status, 2 | 4 | 12 | 13 | 14 | 15)
}

/// Makes `span` a child of the caller's span when the request carries a W3C `traceparent`.
pub(super) fn adopt_remote_parent(span: &Span, headers: &http::HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed: then there is nothing to link.
        let _ = span.set_parent(parent);
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)?.to_str().ok()
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

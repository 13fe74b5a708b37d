//! One span and one measurement per gRPC call, taken at the transport edge so every service
//! (speech, health, reflection) is covered and handlers stay free of telemetry calls.
//!
//! gRPC puts a call's status in the response headers of a trailers-only response (errors
//! before any message), else in the trailers that end the body; the layer reads it from
//! whichever comes. A body dropped before its trailers is a call the client abandoned
//! (CANCELLED). The span stays open until the status, so a stream's span covers the whole
//! stream and engine batches can link to it; an incoming W3C `traceparent` makes it a child
//! of the caller's span.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use opentelemetry::KeyValue;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tower::{Layer, Service};
use tracing::field::Empty;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::service::ServiceMetrics;

const CANCELLED: i64 = 1;
const UNKNOWN: i64 = 2;
const UNIMPLEMENTED: i64 = 12;

/// Wraps a gRPC server's services; see the module docs.
#[derive(Clone, Debug)]
pub struct RpcLayer {
    metrics: ServiceMetrics,
}

impl RpcLayer {
    /// Records calls into `metrics`.
    pub fn new(metrics: ServiceMetrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for RpcLayer {
    type Service = RpcService<S>;

    fn layer(&self, inner: S) -> RpcService<S> {
        RpcService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`RpcLayer`] produces.
#[derive(Clone, Debug)]
pub struct RpcService<S> {
    inner: S,
    metrics: ServiceMetrics,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RpcService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let mut call = RpcCall::start(&request, self.metrics.clone());
        // The handler runs inside the call's span: jobs it submits carry it to the engine.
        let response = self.inner.call(request).instrument(call.span.clone());
        Box::pin(async move {
            match response.await {
                Ok(response) => Ok(call.observe(response)),
                Err(e) => {
                    call.finish(UNKNOWN);
                    Err(e)
                }
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that reports its call's status when the trailers go out.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        call: Option<RpcCall>,
    }
}

impl<B: Body> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let (Poll::Ready(frame), Some(call)) = (&polled, this.call.as_mut()) {
            let status = match frame {
                Some(Ok(frame)) => frame
                    .trailers_ref()
                    .map(|trailers| grpc_status(trailers).unwrap_or(UNKNOWN)),
                Some(Err(_)) => Some(UNKNOWN),
                None => Some(call.header_status.unwrap_or(UNKNOWN)),
            };
            if let Some(status) = status {
                call.finish(status);
                // Ends the span now rather than whenever hyper drops the body.
                *this.call = None;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One call in flight: its span, start time and route.
struct RpcCall {
    metrics: ServiceMetrics,
    service: String,
    method: String,
    started: Instant,
    span: Span,
    /// The status of a trailers-only response.
    header_status: Option<i64>,
    finished: bool,
}

impl RpcCall {
    fn start<B>(request: &http::Request<B>, metrics: ServiceMetrics) -> Self {
        let path = request.uri().path().trim_start_matches('/');
        let (service, method) = path.split_once('/').unwrap_or((path, ""));
        let span = tracing::info_span!(
            "rpc",
            otel.name = path,
            otel.kind = "server",
            otel.status_code = Empty,
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

    fn observe<B>(mut self, response: http::Response<B>) -> http::Response<ObservedBody<B>> {
        self.header_status = grpc_status(response.headers());
        response.map(|inner| ObservedBody {
            inner,
            call: Some(self),
        })
    }

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

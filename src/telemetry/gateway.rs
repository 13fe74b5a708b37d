//! One span and one measurement per HTTP gateway request, taken as a tower layer so handlers
//! stay free of telemetry calls.
//!
//! Attributes follow OpenTelemetry's HTTP server conventions (`http.request.method`,
//! `http.route`, `http.response.status_code`), and the duration runs from the request to the
//! end of the response body, so a streamed (SSE) transcription counts its whole stream. A body
//! dropped early (the client went away) still records, with the status already sent. The route
//! is the matched template (`/v1/models/{id}`), never the raw path, so metric labels stay few;
//! the handler runs inside the span, so engine batches link to the request that caused them.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use http_body::{Body, Frame, SizeHint};
use opentelemetry::KeyValue;
use tower::{Layer, Service};
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::rpc::adopt_remote_parent;
use super::service::ServiceMetrics;

/// Wraps the gateway's routes; see the module docs. Add it with `Router::layer`, which runs it
/// after routing, when the matched route is known.
#[derive(Clone, Debug)]
pub struct HttpLayer {
    metrics: ServiceMetrics,
}

impl HttpLayer {
    /// Records requests into `metrics`.
    pub fn new(metrics: ServiceMetrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for HttpLayer {
    type Service = HttpService<S>;

    fn layer(&self, inner: S) -> HttpService<S> {
        HttpService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`HttpLayer`] produces.
#[derive(Clone, Debug)]
pub struct HttpService<S> {
    inner: S,
    metrics: ServiceMetrics,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for HttpService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Body + Send + 'static,
{
    type Response = http::Response<ObservedHttpBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let mut exchange = Exchange::start(&request, self.metrics.clone());
        let response = self.inner.call(request).instrument(exchange.span.clone());
        Box::pin(async move {
            match response.await {
                Ok(response) => {
                    exchange.status = Some(response.status().as_u16());
                    // An empty body may never be polled: record it now.
                    let exchange = (!response.body().is_end_stream()).then_some(exchange);
                    Ok(response.map(|inner| ObservedHttpBody { inner, exchange }))
                }
                Err(e) => Err(e),
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that records its request when it ends (or is dropped).
    pub struct ObservedHttpBody<B> {
        #[pin]
        inner: B,
        exchange: Option<Exchange>,
    }
}

impl<B: Body> Body for ObservedHttpBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None | Some(Err(_))) => true,
            // The last frame: hyper need not poll again once the body says it has ended.
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            Poll::Pending => false,
        };
        if ended {
            // Dropping the exchange records it and ends the span before the last bytes go
            // out, not whenever hyper drops the body.
            *this.exchange = None;
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

/// One request in flight: its span, start time, route and (once known) status.
struct Exchange {
    metrics: ServiceMetrics,
    method: &'static str,
    route: Option<String>,
    started: Instant,
    span: Span,
    status: Option<u16>,
}

impl Exchange {
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
}

impl Drop for Exchange {
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

//! The tower plumbing both transport-edge observers share — [`super::rpc`] for gRPC and
//! [`super::gateway`] for the HTTP gateway: an [`Exchange`] starts per request, the handler runs
//! inside its span, and the exchange sees the response head and every body frame until it says
//! it is over. Dropping an exchange records it, so a body the client abandoned still counts.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use tower::{Layer, Service};
use tracing::{Instrument, Span};

use super::service::ServiceMetrics;

/// What a body poll showed the exchange.
pub(super) enum BodyEvent<'a> {
    /// A frame went out; `trailers` when it is the trailers frame, `last` when the body says
    /// nothing follows (hyper need not poll again).
    Frame {
        trailers: Option<&'a http::HeaderMap>,
        last: bool,
    },
    /// The body failed.
    Failed,
    /// The body ended.
    Ended,
}

/// One request seen at the transport edge; recorded when dropped.
pub(super) trait Exchange: Send + Sized + 'static {
    /// Opens the exchange (and its span) for `request`.
    fn start<B>(request: &http::Request<B>, metrics: ServiceMetrics) -> Self;
    /// The span the handler runs in.
    fn span(&self) -> &Span;
    /// The handler failed without a response.
    fn on_error(&mut self);
    /// The response head; returns whether the exchange goes on with the body.
    fn on_response<B: Body>(&mut self, response: &http::Response<B>) -> bool;
    /// A body poll; returns whether the exchange is over.
    fn on_body(&mut self, event: BodyEvent<'_>) -> bool;
}

/// Wraps services so every request is observed by an `X`.
pub struct EdgeLayer<X> {
    metrics: ServiceMetrics,
    exchange: PhantomData<fn() -> X>,
}

impl<X> EdgeLayer<X> {
    /// Records into `metrics`.
    pub fn new(metrics: ServiceMetrics) -> Self {
        Self {
            metrics,
            exchange: PhantomData,
        }
    }
}

impl<X> Clone for EdgeLayer<X> {
    fn clone(&self) -> Self {
        Self::new(self.metrics.clone())
    }
}

impl<X> std::fmt::Debug for EdgeLayer<X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeLayer").finish_non_exhaustive()
    }
}

impl<S, X> Layer<S> for EdgeLayer<X> {
    type Service = EdgeService<S, X>;

    fn layer(&self, inner: S) -> EdgeService<S, X> {
        EdgeService {
            inner,
            metrics: self.metrics.clone(),
            exchange: PhantomData,
        }
    }
}

/// The service [`EdgeLayer`] produces.
pub struct EdgeService<S, X> {
    inner: S,
    metrics: ServiceMetrics,
    exchange: PhantomData<fn() -> X>,
}

impl<S: Clone, X> Clone for EdgeService<S, X> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            metrics: self.metrics.clone(),
            exchange: PhantomData,
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, X, ReqBody, ResBody> Service<http::Request<ReqBody>> for EdgeService<S, X>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    X: Exchange,
    ResBody: Body + Send + 'static,
{
    type Response = http::Response<EdgeBody<ResBody, X>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let mut exchange = X::start(&request, self.metrics.clone());
        // The handler runs inside the exchange's span: jobs it submits carry it to the engine.
        let response = self.inner.call(request).instrument(exchange.span().clone());
        Box::pin(async move {
            match response.await {
                Ok(response) => {
                    let exchange = exchange.on_response(&response).then_some(exchange);
                    Ok(response.map(|inner| EdgeBody { inner, exchange }))
                }
                Err(e) => {
                    exchange.on_error();
                    Err(e)
                }
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that shows its frames to its exchange.
    pub struct EdgeBody<B, X> {
        #[pin]
        inner: B,
        exchange: Option<X>,
    }
}

impl<B: Body, X: Exchange> Body for EdgeBody<B, X> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        let event = match &polled {
            Poll::Ready(Some(Ok(frame))) => BodyEvent::Frame {
                trailers: frame.trailers_ref(),
                last: this.inner.is_end_stream(),
            },
            Poll::Ready(Some(Err(_))) => BodyEvent::Failed,
            Poll::Ready(None) => BodyEvent::Ended,
            Poll::Pending => return polled,
        };
        if this.exchange.as_mut().is_some_and(|x| x.on_body(event)) {
            // Records now rather than whenever hyper drops the body.
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

//! `hearken serve` as a library: load the model into an engine, warm it up, serve gRPC and the
//! OpenAI-compatible HTTP gateway, and shut both down gracefully. Tests start the same server
//! in-process on `127.0.0.1:0`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic_health::server::HealthReporter;

use crate::engine::{Engine, EngineConfig, JobOptions};
use crate::grpc::{GrpcServer, Limits, ServerOptions, ServiceState, set_health};
use crate::http::GatewayState;
use crate::model::whisper::WhisperModel;
use crate::telemetry::Metrics;

/// Everything `serve` needs besides the model.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where gRPC (and grpc-web) listens; port 0 picks a free one.
    pub grpc_addr: SocketAddr,
    /// Where the OpenAI-compatible HTTP gateway listens; `None` serves gRPC only.
    pub http_addr: Option<SocketAddr>,
    /// Id clients use for the served model (`tiny.en`).
    pub model_id: String,
    /// Where the model runs, for ListModels (`cpu`, `cuda:0`).
    pub device: String,
    /// Scheduler limits.
    pub engine: EngineConfig,
    /// Per-session and per-message limits.
    pub limits: Limits,
    /// Transport settings.
    pub transport: ServerOptions,
    /// How long live streams get to deliver their finals on shutdown.
    pub shutdown_grace: Duration,
}

/// A server that is up and SERVING.
pub struct RunningServer {
    /// The bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// The bound HTTP gateway address, when it was asked for.
    pub http_addr: Option<SocketAddr>,
    /// The engine behind it (for stats and queue depth).
    pub engine: Arc<Engine>,
    /// Shared service state (open sessions).
    pub state: Arc<ServiceState>,
    health: HealthReporter,
    stop_sessions: watch::Sender<bool>,
    stop_listener: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
    http_task: Option<JoinHandle<std::io::Result<()>>>,
    grace: Duration,
}

impl RunningServer {
    /// Binds, warms the model up, then serves; health turns SERVING once warm. Metrics are
    /// kept in-process only (`state.metrics()`).
    pub async fn start(model: WhisperModel, config: ServeConfig) -> anyhow::Result<Self> {
        Self::start_with_metrics(model, config, Metrics::in_memory()).await
    }

    /// [`Self::start`], recording into `metrics` (those of a [`crate::telemetry::Telemetry`]
    /// to export them).
    pub async fn start_with_metrics(
        model: WhisperModel,
        config: ServeConfig,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.grpc_addr).await?;
        let grpc_addr = listener.local_addr()?;
        let http_listener = match config.http_addr {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let http_addr = http_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        let engine = Arc::new(Engine::start_with_metrics(
            model,
            config.engine.clone(),
            metrics.engine().clone(),
        ));
        let (stop_sessions, sessions_stopped) = watch::channel(false);
        let state = Arc::new(ServiceState::new(
            Arc::clone(&engine),
            config.model_id.clone(),
            config.device.clone(),
            config.limits.clone(),
            sessions_stopped,
            metrics,
        ));
        let server = GrpcServer::new(Arc::clone(&state), config.transport.clone()).await;
        let health = server.health();
        let (stop_listener, listener_stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async {
            let _ = listener_stopped.await;
        }));
        let http_task = http_listener.map(|listener| {
            let gateway = Arc::new(GatewayState::new(Arc::clone(&state), health.clone()));
            let mut stopping = stop_sessions.subscribe();
            tokio::spawn(crate::http::serve(listener, gateway, async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            }))
        });
        warm_up(&engine).await?;
        set_health(&health, true).await;
        tracing::info!(%grpc_addr, ?http_addr, model = %config.model_id, "serving");
        Ok(Self {
            grpc_addr,
            http_addr,
            engine,
            state,
            health,
            stop_sessions,
            stop_listener: Some(stop_listener),
            task,
            http_task,
            grace: config.shutdown_grace,
        })
    }

    /// Graceful shutdown: health NOT_SERVING, live streams finalize and get their finals,
    /// new connections are refused, and the call returns when every stream and HTTP request
    /// has ended (or the grace period ran out).
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        set_health(&self.health, false).await;
        let _ = self.stop_sessions.send(true);
        if let Some(stop) = self.stop_listener.take() {
            let _ = stop.send(());
        }
        let deadline = tokio::time::Instant::now() + self.grace;
        match tokio::time::timeout_at(deadline, &mut self.task).await {
            Ok(joined) => joined??,
            Err(_) => {
                tracing::warn!(grace = ?self.grace, "streams still open after the grace period; closing them");
                self.task.abort();
            }
        }
        if let Some(mut http) = self.http_task.take() {
            match tokio::time::timeout_at(deadline, &mut http).await {
                Ok(joined) => joined??,
                Err(_) => {
                    tracing::warn!(grace = ?self.grace, "HTTP requests still open after the grace period; closing them");
                    http.abort();
                }
            }
        }
        // Upgraded connections (Realtime WebSockets) are no longer the HTTP server's to wait
        // for; their session slots say when they have sent their last completion.
        while self.state.open_sessions() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.engine.close();
        Ok(())
    }
}

/// Runs one short job so the first client does not pay for page faults and lazy setup.
async fn warm_up(engine: &Engine) -> anyhow::Result<()> {
    let silence: Arc<[f32]> = Arc::from(vec![0.0f32; 16_000]);
    let handle = engine.submit(silence, &JobOptions::default())?;
    handle.finish().await?;
    Ok(())
}

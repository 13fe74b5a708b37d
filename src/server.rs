//! `hearken serve` as a library: start the engine on a backend, build the serving core, warm
//! the model up, serve gRPC and the OpenAI-compatible HTTP gateway, and shut both down
//! gracefully. Tests start the same server in-process on `127.0.0.1:0`, with the real model or
//! the scripted backend.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic_health::server::HealthReporter;

use crate::engine::{Backend, Engine, EngineConfig, JobOptions};
use crate::grpc::{GrpcServer, ServerOptions, set_health};
use crate::http::GatewayState;
use crate::service::{Limits, LongFiles, Origins, ServedModel, Service, Tenants};
use crate::session::Detector;
use crate::telemetry::Metrics;
use crate::tls::{Incoming, TlsFiles, TlsServer};

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
    /// Web origins allowed to call cross-origin (`--cors-origins`).
    pub origins: Origins,
    /// API keys and quotas (`--tenants`); `None` serves anyone.
    pub tenants: Option<Tenants>,
    /// Certificate, key and optional client CA (`--tls-*`); `None` serves cleartext.
    pub tls: Option<TlsFiles>,
    /// Serve `/metrics` here (cleartext, nothing else) instead of on the HTTP gateway.
    pub metrics_addr: Option<SocketAddr>,
    /// Transport settings.
    pub transport: ServerOptions,
    /// How long sessions open at shutdown get before they are ended.
    pub shutdown_grace: Duration,
    /// The last part of the grace: this long before it ends, live sessions are told to end
    /// their input and finalize, so they still get their finals. Until then they keep
    /// streaming (new sessions go to other replicas). At or above the grace: at once.
    pub shutdown_finalize: Duration,
    /// The speech detector streams and whole files are gated with (`--vad`).
    pub vad: Detector,
    /// How whole files longer than one window are transcribed (`--long-files`).
    pub long_files: LongFiles,
}

/// A server that is up and SERVING.
pub struct RunningServer {
    /// The bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// The bound HTTP gateway address, when it was asked for.
    pub http_addr: Option<SocketAddr>,
    /// The serving core (engine, sessions, metrics).
    pub service: Arc<Service>,
    health: HealthReporter,
    stop_listener: Option<tokio::sync::oneshot::Sender<()>>,
    stop_http: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
    http_task: Option<JoinHandle<std::io::Result<()>>>,
    /// Reloads the TLS certificate on SIGHUP and file changes.
    tls_watch: Option<JoinHandle<()>>,
    /// The bound `--metrics-addr`, when it was asked for.
    pub metrics_addr: Option<SocketAddr>,
    metrics_task: Option<JoinHandle<()>>,
    grace: Duration,
    finalize: Duration,
}

impl RunningServer {
    /// Binds, warms the model up, then serves; health turns SERVING once warm. Metrics are
    /// kept in-process only (`service.metrics()`).
    pub async fn start(backend: impl Backend, config: ServeConfig) -> anyhow::Result<Self> {
        Self::start_with_metrics(backend, config, Metrics::in_memory()).await
    }

    /// [`Self::start`], recording into `metrics` (those of a [`crate::telemetry::Telemetry`]
    /// to export them).
    pub async fn start_with_metrics(
        backend: impl Backend,
        config: ServeConfig,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let tls = config.tls.as_ref().map(TlsServer::load).transpose()?;
        let listener = TcpListener::bind(config.grpc_addr).await?;
        let grpc_addr = listener.local_addr()?;
        // Every listener is bound before the engine starts: a taken port fails start-up cleanly.
        let (http_listener, http_addr) = bind(config.http_addr).await?;
        let (metrics_listener, metrics_addr) = bind(config.metrics_addr).await?;
        let engine = Arc::new(Engine::start_with_metrics(
            backend,
            config.engine.clone(),
            metrics.engine().clone(),
        ));
        let model = ServedModel {
            id: config.model_id.clone(),
            device: config.device.clone(),
        };
        let mut service = Service::new(engine, model, config.limits.clone(), metrics)
            .with_origins(config.origins.clone())
            .with_detector(config.vad.clone())
            .with_long_files(config.long_files);
        if let Some(tenants) = config.tenants.clone() {
            service = service.with_tenants(tenants);
        }
        let service = Arc::new(service);
        let server = GrpcServer::new(Arc::clone(&service), config.transport.clone()).await;
        let health = server.health();
        let (stop_listener, listener_stopped) = tokio::sync::oneshot::channel::<()>();
        let incoming = Incoming::new(listener, tls.clone())?;
        let task = tokio::spawn(server.serve(incoming, async {
            let _ = listener_stopped.await;
        }));
        // The HTTP listener outlives the drain: load balancers polling /healthz get 503
        // (not a refused connection) until the last session has ended.
        let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let http_incoming = http_listener
            .map(|listener| Incoming::new(listener, tls.clone()))
            .transpose()?;
        let metrics_task = metrics_listener.map(|listener| {
            let router = crate::http::metrics_router(Arc::clone(&service));
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            })
        });
        let separate_metrics = metrics_task.is_some();
        let http_task = http_incoming.map(|incoming| {
            // grpc-web on this port too: the browser app served here calls it same-origin.
            let mut gateway = GatewayState::new(Arc::clone(&service))
                .with_routes(crate::grpc::grpc_web_routes(Arc::clone(&service)));
            if separate_metrics {
                gateway = gateway.without_metrics_route();
            }
            let gateway = Arc::new(gateway);
            tokio::spawn(crate::http::serve(incoming, gateway, async move {
                let _ = http_stopped.await;
            }))
        });
        let tls_watch = tls.as_ref().map(TlsServer::watch);
        warm_up(service.engine()).await?;
        service.set_ready(true);
        set_health(&health, true).await;
        tracing::info!(%grpc_addr, ?http_addr, model = %config.model_id, "serving");
        Ok(Self {
            grpc_addr,
            http_addr,
            service,
            health,
            stop_listener: Some(stop_listener),
            stop_http: Some(stop_http),
            tls_watch,
            metrics_addr,
            metrics_task,
            task,
            http_task,
            grace: config.shutdown_grace,
            finalize: config.shutdown_finalize.min(config.shutdown_grace),
        })
    }

    /// The engine behind the server (for stats and queue depth).
    pub fn engine(&self) -> &Arc<Engine> {
        self.service.engine()
    }

    /// Graceful shutdown: health NOT_SERVING and new sessions refused; live streams keep
    /// streaming until the last `finalize` of the grace, then finalize and get their finals;
    /// the call returns when every session has ended (or the grace ran out: sessions still
    /// open then get UNAVAILABLE).
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        set_health(&self.health, false).await;
        self.service.begin_shutdown();
        if let Some(stop) = self.stop_listener.take() {
            let _ = stop.send(());
        }
        // Every stream, WebSocket and request holds a session permit: their end is the end.
        let streaming = self.grace.saturating_sub(self.finalize);
        let drained = self.service.drain(streaming).await || {
            self.service.finalize_live();
            self.service.drain(self.finalize).await
        };
        if !drained {
            tracing::warn!(
                grace = ?self.grace,
                open = self.service.open_sessions(),
                "sessions still open after the grace period; ending them"
            );
            self.service.expire_grace();
            // Each session sends its error in its own protocol, then ends.
            self.service.drain(GRACE_EXPIRY_WRITE).await;
        }
        if let Some(stop) = self.stop_http.take() {
            let _ = stop.send(());
        }
        let deadline = tokio::time::Instant::now() + GRACE_EXPIRY_WRITE;
        match tokio::time::timeout_at(deadline, &mut self.task).await {
            Ok(joined) => joined??,
            Err(_) => self.task.abort(),
        }
        if let Some(mut http) = self.http_task.take() {
            match tokio::time::timeout_at(deadline, &mut http).await {
                Ok(joined) => joined??,
                Err(_) => http.abort(),
            }
        }
        for task in [self.tls_watch.take(), self.metrics_task.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
        self.service.engine().close();
        Ok(())
    }
}

/// Binds an optional listener; its bound address (port 0 resolved).
async fn bind(
    addr: Option<SocketAddr>,
) -> std::io::Result<(Option<TcpListener>, Option<SocketAddr>)> {
    let Some(addr) = addr else {
        return Ok((None, None));
    };
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((Some(listener), Some(bound)))
}

/// After the grace, how long sessions get to tell their clients they are being ended.
const GRACE_EXPIRY_WRITE: Duration = Duration::from_secs(2);

/// Runs one short job so the first client does not pay for page faults and lazy setup.
async fn warm_up(engine: &Engine) -> anyhow::Result<()> {
    let silence: Arc<[f32]> = Arc::from(vec![0.0f32; 16_000]);
    let handle = engine.submit(silence, &JobOptions::default())?;
    handle.finish().await?;
    Ok(())
}

#[cfg(test)]
impl ServeConfig {
    /// For tests: gRPC and HTTP on free loopback ports, the scripted model's id, defaults
    /// everywhere else.
    pub(crate) fn loopback() -> Self {
        Self {
            grpc_addr: "127.0.0.1:0".parse().expect("an address"),
            http_addr: Some("127.0.0.1:0".parse().expect("an address")),
            model_id: "scripted".into(),
            device: "cpu".into(),
            engine: EngineConfig::default(),
            limits: Limits::default(),
            origins: Origins::none(),
            tenants: None,
            tls: None,
            metrics_addr: None,
            transport: ServerOptions::default(),
            shutdown_grace: Duration::from_secs(10),
            shutdown_finalize: Duration::from_secs(10),
            vad: Detector::Energy,
            long_files: LongFiles::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ScriptedBackend;
    use crate::service::Caller;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn healthz_answers_503_while_sessions_drain_then_the_listener_closes() {
        let config = ServeConfig::loopback();
        let server = RunningServer::start(ScriptedBackend::english(), config)
            .await
            .unwrap();
        let url = format!("http://{}/healthz", server.http_addr.unwrap());
        let health = || async {
            crate::tls::http_client()
                .unwrap()
                .get(&url)
                .send()
                .await
                .map(|r| r.status().as_u16())
        };
        assert_eq!(health().await.unwrap(), 200);
        let held = server.service.open_session(&Caller::anonymous()).unwrap();
        let service = Arc::clone(&server.service);
        let shutdown = tokio::spawn(server.shutdown());
        while !service.is_shutting_down() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Draining: the listener is up and says so.
        assert_eq!(health().await.unwrap(), 503);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(health().await.unwrap(), 503);
        drop(held);
        shutdown.await.unwrap().unwrap();
        assert!(health().await.is_err(), "closed once drained");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn private_surfaces_can_be_moved_or_turned_off() {
        let config = ServeConfig {
            metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
            transport: ServerOptions {
                reflection: false,
                ..ServerOptions::default()
            },
            ..ServeConfig::loopback()
        };
        let server = RunningServer::start(ScriptedBackend::english(), config)
            .await
            .unwrap();
        let get = |addr: SocketAddr| async move {
            let response = crate::tls::http_client()
                .unwrap()
                .get(format!("http://{addr}/metrics"))
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        };
        let (status, _) = get(server.http_addr.unwrap()).await;
        assert_eq!(status, 404, "not on the public port");
        let (status, body) = get(server.metrics_addr.unwrap()).await;
        assert_eq!(status, 200);
        assert!(
            body.contains("hearken_engine_jobs_submitted_total"),
            "{body}"
        );

        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc_addr))
                .unwrap()
                .connect()
                .await
                .unwrap();
        let mut reflection = ServerReflectionClient::new(channel);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let status = reflection
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented);
        server.shutdown().await.unwrap();
    }

    /// A few hundred clients that vanish (before config, mid-audio, mid-transcription, over
    /// gRPC and WebSockets) leave nothing behind: no session, no queued job, counters that
    /// reconcile, and a server that still transcribes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abandoned_sessions_leave_nothing_behind() {
        use crate::engine::backend::scripted::{say, silence};
        use crate::grpc::proto::speech_client::SpeechClient;
        use crate::grpc::proto::streaming_recognize_request::Request as Msg;
        use crate::grpc::proto::{
            AudioChunk, AudioEncoding, RecognitionConfig, RecognizeRequest,
            StreamingRecognizeRequest,
        };
        use futures_util::SinkExt;
        use tokio_stream::StreamExt;

        let backend = ScriptedBackend::english()
            .with_cost(Duration::from_millis(2), Duration::from_millis(1));
        let config = ServeConfig {
            limits: Limits {
                max_sessions: 512,
                ..Limits::default()
            },
            ..ServeConfig::loopback()
        };
        let server = RunningServer::start(backend, config).await.unwrap();
        let grpc = format!("http://{}", server.grpc_addr);
        let ws = format!(
            "ws://{}/v1/realtime?intent=transcription",
            server.http_addr.unwrap()
        );
        let mut audio = say(&["one", "two"]);
        audio.extend(silence(1.0));
        audio.extend(say(&["three"]));
        let pcm = crate::audio::f32_to_pcm16le(&audio);
        let linear16 = RecognitionConfig {
            encoding: AudioEncoding::Linear16 as i32,
            sample_rate_hertz: 16_000,
            interim_results: true,
            ..RecognitionConfig::default()
        };
        let mut clients = tokio::task::JoinSet::new();
        for i in 0..300usize {
            let (grpc, ws, pcm, config) = (grpc.clone(), ws.clone(), pcm.clone(), linear16.clone());
            clients.spawn(async move {
                let cut = ((i * 7_919) % pcm.len()) & !1; // a different place for each client
                match i % 4 {
                    // A stream cut off mid-audio, or before its config.
                    0 | 1 => {
                        let mut client = SpeechClient::connect(grpc).await.unwrap();
                        let (tx, rx) = tokio::sync::mpsc::channel(64);
                        if i % 4 == 0 {
                            let first = StreamingRecognizeRequest {
                                request: Some(Msg::Config(config)),
                            };
                            tx.send(first).await.unwrap();
                            for chunk in pcm[..cut].chunks(3_200) {
                                let audio = AudioChunk {
                                    data: chunk.to_vec(),
                                    sequence: 0,
                                };
                                let message = StreamingRecognizeRequest {
                                    request: Some(Msg::Audio(audio)),
                                };
                                tx.send(message).await.unwrap();
                            }
                        }
                        let call = client
                            .streaming_recognize(tokio_stream::wrappers::ReceiverStream::new(rx));
                        if let Ok(Ok(response)) =
                            tokio::time::timeout(Duration::from_millis(50), call).await
                        {
                            let mut responses = response.into_inner();
                            let _ =
                                tokio::time::timeout(Duration::from_millis(20), responses.next())
                                    .await;
                        }
                    }
                    // A whole-file request whose client gives up while it is transcribed.
                    2 => {
                        let mut client = SpeechClient::connect(grpc).await.unwrap();
                        let request = RecognizeRequest {
                            config: Some(config),
                            audio: pcm,
                        };
                        let _ = tokio::time::timeout(
                            Duration::from_millis((i % 5) as u64),
                            client.recognize(request),
                        )
                        .await;
                    }
                    // A Realtime socket dropped mid-audio, without a close frame.
                    _ => {
                        let (mut socket, _) = tokio_tungstenite::connect_async(ws).await.unwrap();
                        let append = serde_json::json!({
                            "type": "input_audio_buffer.append",
                            "audio": base64::Engine::encode(
                                &base64::engine::general_purpose::STANDARD,
                                &pcm[..cut],
                            ),
                        });
                        let _ = socket
                            .send(tokio_tungstenite::tungstenite::Message::Text(
                                append.to_string().into(),
                            ))
                            .await;
                        drop(socket);
                    }
                }
            });
        }
        while let Some(joined) = clients.join_next().await {
            joined.unwrap();
        }
        let service = Arc::clone(&server.service);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let stats = service.engine().stats();
            let settled = service.open_sessions() == 0
                && service.engine().queued() == 0
                && stats.queued_or_lost() == 0
                && stats.running_or_lost() == 0;
            if settled {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "left behind: {} sessions, {} queued, {stats:?}",
                service.open_sessions(),
                service.engine().queued()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let metrics = service.metrics().registry().render();
        assert!(
            metrics.contains("hearken_sessions_active{otel_scope_name=\"hearken\"} 0")
                || metrics.contains("hearken_sessions_active 0"),
            "{metrics}"
        );
        let stats = service.engine().stats();
        assert!(stats.jobs_cancelled() > 0, "{stats:?}");
        // And the next client is served as if nothing happened.
        let mut client = SpeechClient::connect(grpc).await.unwrap();
        let response = client
            .recognize(RecognizeRequest {
                config: Some(linear16),
                audio: pcm,
            })
            .await
            .unwrap();
        assert_eq!(response.into_inner().text.trim(), "one two three");
        server.shutdown().await.unwrap();
    }
}

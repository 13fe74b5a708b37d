//! `hearken serve`: the gRPC speech service (native gRPC and grpc-web on one port) and the
//! OpenAI-compatible HTTP gateway.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use super::load::{FileEncoder, ModelArgs, VadArgs, WorkerArgs};
use crate::engine::EngineConfig;
use crate::engine::WhisperBackend;
use crate::grpc::ServerOptions;
use crate::model::whisper::decode::DecodeOptions;
use crate::server::{RunningServer, ServeConfig};
use crate::service::{Limits, LongFiles, Origins, Tenants};
use crate::telemetry::{Telemetry, TelemetryConfig};

/// Arguments of `hearken serve`; every flag also reads a `HEARKEN_*` variable.
#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    workers: WorkerArgs,
    #[command(flatten)]
    vad: VadArgs,
    /// How whole files longer than 30 s are transcribed: `batched` cuts them at pauses into
    /// chunks of up to 30 s decoded side by side; `sequential` decodes window after window.
    #[arg(long, env = "HEARKEN_LONG_FILES", value_enum, default_value_t = LongFiles::Batched)]
    long_files: LongFiles,
    /// Address for gRPC and grpc-web.
    #[arg(long, env = "HEARKEN_GRPC_ADDR", default_value = "0.0.0.0:50051")]
    grpc_addr: SocketAddr,
    /// Address for the OpenAI-compatible HTTP gateway (`/v1/audio/transcriptions`, ...).
    #[arg(long, env = "HEARKEN_HTTP_ADDR", default_value = "0.0.0.0:8000")]
    http_addr: SocketAddr,
    /// Largest audio file one HTTP upload may carry (bytes; OpenAI's limit is 25 MB).
    #[arg(long, env = "HEARKEN_MAX_UPLOAD_BYTES", default_value_t = 25 << 20)]
    max_upload_bytes: usize,
    /// Longest audio one whole-file request (Recognize, HTTP transcription) may carry, seconds.
    #[arg(long, env = "HEARKEN_MAX_AUDIO_SECONDS", default_value_t = 4.0 * 3600.0, value_parser = positive_seconds)]
    max_audio_seconds: f64,
    /// Most windows in one batched model call.
    #[arg(long, env = "HEARKEN_MAX_BATCH", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    max_batch: u32,
    /// Longest wait, after the oldest queued job, for a fuller batch (milliseconds).
    #[arg(long, env = "HEARKEN_MAX_WAIT_MS", default_value_t = 20)]
    max_wait_ms: u64,
    /// Beam search width for whole files (uploads, Recognize, RecognizeStream) at temperature
    /// 0; 1 decodes greedily. Live streams decode greedily whatever this is. 2 with trimmed
    /// windows read 51 errors on the English corpus against greedy padded windows' 52, and 47
    /// against 47 on the dense corpus, in 0.73× the time.
    #[arg(long, env = "HEARKEN_BEAM_SIZE", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    beam_size: u16,
    /// How whole files' windows are encoded: `trimmed` (the audio present, at least 10 s, the
    /// rest of the window read from an encoded silent window) or `padded` (Whisper's 30 s
    /// windows). Multilingual models always pad.
    #[arg(long, env = "HEARKEN_FILE_ENCODER", value_enum, default_value_t = FileEncoder::Trimmed)]
    file_encoder: FileEncoder,
    /// Concurrent sessions (streams plus whole-file requests); more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "HEARKEN_MAX_SESSIONS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    max_sessions: u32,
    /// Largest request message (bytes).
    #[arg(long, env = "HEARKEN_MAX_MESSAGE_BYTES", default_value_t = 32 << 20)]
    max_message_bytes: usize,
    /// How far (seconds of audio) a streaming client may run ahead of transcription.
    #[arg(long, env = "HEARKEN_MAX_LEAD_SECONDS", default_value_t = 30.0, value_parser = positive_seconds)]
    max_lead_seconds: f64,
    /// Seconds a configured stream or Realtime session may send nothing before it is ended
    /// (KeepAlive resets the clock).
    #[arg(long, env = "HEARKEN_IDLE_TIMEOUT_SECONDS", default_value_t = 30.0, value_parser = positive_seconds)]
    idle_timeout_seconds: f64,
    /// Seconds a resumable stream (its config sets `resumable`) is kept after its connection
    /// breaks, for its client to reconnect and continue it; 0 turns resuming off.
    #[arg(long, env = "HEARKEN_RESUME_WINDOW_SECONDS", default_value_t = 30.0, value_parser = seconds_or_zero)]
    resume_window_seconds: f64,
    /// Whole-file results kept, so an identical request (same tenant, audio bytes and
    /// options) is answered without the model; 0 turns the cache off.
    #[arg(long, env = "HEARKEN_RESULT_CACHE_ENTRIES", default_value_t = 1024)]
    result_cache_entries: u64,
    /// Memory the result cache may hold (MiB of transcripts); 0 turns it off.
    #[arg(long, env = "HEARKEN_RESULT_CACHE_MB", default_value_t = 64)]
    result_cache_mb: u64,
    /// Web origins allowed to call from a browser (grpc-web, the HTTP API, the Realtime
    /// WebSocket), comma-separated (`https://app.example.com,http://localhost:5173`), or `*`
    /// for any. Default: none; requests without an `Origin` (every non-browser client) and
    /// pages from the server's own origin are not affected.
    #[arg(long, env = "HEARKEN_CORS_ORIGINS", default_value = "", value_parser = Origins::parse)]
    cors_origins: Origins,
    /// Tenants file (TOML): every request then needs `authorization: Bearer KEY` with a key of
    /// one of its tenants, within that tenant's quotas (`hearken keys new TENANT` makes keys).
    /// Without it the server is open to anyone who can reach it.
    #[arg(long, env = "HEARKEN_TENANTS")]
    tenants: Option<std::path::PathBuf>,
    /// PEM certificate chain: serve TLS on both ports (with `--tls-key`). Reloaded on SIGHUP
    /// and when the file changes.
    #[arg(long, env = "HEARKEN_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "HEARKEN_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// PEM CA certificates: require client certificates signed by them (mutual TLS).
    #[arg(long, env = "HEARKEN_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,
    /// Serve `/metrics` on this address only (cleartext), not on the HTTP gateway's port, so
    /// the gateway can be public while scrapers use a private address.
    #[arg(long, env = "HEARKEN_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// gRPC server reflection (`on`: grpcurl and Postman work without proto files).
    #[arg(long, env = "HEARKEN_REFLECTION", default_value = "on", value_parser = on_off)]
    reflection: bool,
    /// Seconds sessions open at SIGTERM get before they are ended: new sessions are refused
    /// (health NOT_SERVING) while live streams keep streaming, then finalize (see
    /// --shutdown-finalize-seconds). Match Kubernetes' terminationGracePeriodSeconds to it.
    #[arg(long, env = "HEARKEN_SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    shutdown_grace_seconds: u64,
    /// The last seconds of the grace, in which live streams are told to end their audio and
    /// get their finals (a stream that ends on its own before then loses nothing); 0 leaves
    /// them no time, the grace or more finalizes them at once.
    #[arg(long, env = "HEARKEN_SHUTDOWN_FINALIZE_SECONDS", default_value_t = 10)]
    shutdown_finalize_seconds: u64,
    /// OTLP/gRPC collector for traces and metrics (`http://collector:4317`); overrides
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`. Unset: nothing is exported.
    #[arg(long, env = "HEARKEN_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

pub(super) fn run(args: ServeArgs) -> anyhow::Result<()> {
    run_then(args, |_| async { Ok(()) })
}

/// Serves until SIGTERM or Ctrl-C, first running `on_ready` against the ready server (the
/// demo's client); a failing `on_ready` stops the server and is returned.
pub(super) fn run_then<F, Fut>(args: ServeArgs, on_ready: F) -> anyhow::Result<()>
where
    F: FnOnce(ReadyServer) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let telemetry = Telemetry::init(&TelemetryConfig::from_env(args.otlp_endpoint.clone())?)?;
    crate::telemetry::init_logging(telemetry.tracer());
    let tenants = args.tenants.as_deref().map(Tenants::load).transpose()?;
    match &tenants {
        Some(tenants) => tracing::info!(
            tenants = tenants.iter().count(),
            "API keys required (--tenants)"
        ),
        None => tracing::warn!(
            "no --tenants file: the server accepts requests without keys from anyone who can \
             reach it"
        ),
    }
    let model = args.model.load()?;
    let model_id = args.model.id();
    let (workers, threads_per_worker) = args.workers.engine();
    let config = ServeConfig {
        grpc_addr: args.grpc_addr,
        http_addr: Some(args.http_addr),
        model_id: model_id.clone(),
        device: args.model.device.to_string(),
        engine: EngineConfig {
            max_batch: args.max_batch as usize,
            max_wait: Duration::from_millis(args.max_wait_ms),
            max_queued: (args.max_sessions as usize * 2).max(16),
            workers,
            threads_per_worker,
            policy: DecodeOptions {
                beam_size: args.beam_size.into(),
                encoder_frames: args.file_encoder.frames(),
                ..DecodeOptions::default()
            },
            ..EngineConfig::default()
        },
        limits: Limits {
            max_message_bytes: args.max_message_bytes,
            max_lead_seconds: args.max_lead_seconds,
            max_sessions: args.max_sessions as usize,
            max_upload_bytes: args.max_upload_bytes,
            max_audio_seconds: args.max_audio_seconds,
            idle_timeout: Duration::from_secs_f64(args.idle_timeout_seconds),
            resume_window: Duration::from_secs_f64(args.resume_window_seconds),
            result_cache: crate::service::ResultCacheSize {
                entries: args.result_cache_entries,
                bytes: args.result_cache_mb << 20,
            },
            ..Limits::default()
        },
        origins: args.cors_origins.clone(),
        tenants,
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.tls_client_ca.clone(),
            }),
            _ => None,
        },
        transport: ServerOptions {
            reflection: args.reflection,
            ..ServerOptions::default()
        },
        metrics_addr: args.metrics_addr,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_seconds),
        shutdown_finalize: Duration::from_secs(args.shutdown_finalize_seconds),
        vad: args.vad.detector()?,
        long_files: args.long_files,
    };
    let tls_on = config.tls.is_some();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("hearken-io")
        .build()?;
    let metrics = telemetry.metrics().clone();
    let served = runtime.block_on(async move {
        let server =
            RunningServer::start_with_metrics(WhisperBackend::from(model), config, metrics).await?;
        let scheme = if tls_on { "https" } else { "http" };
        eprintln!(
            "hearken: serving {model_id} on {} (gRPC + grpc-web{})",
            server.grpc_addr,
            if tls_on { ", TLS" } else { "" }
        );
        if let Some(http_addr) = server.http_addr {
            eprintln!("hearken: OpenAI-compatible API on {scheme}://{http_addr}/v1");
            eprintln!("hearken: browser app on {scheme}://{http_addr}/");
        }
        let ready = ReadyServer {
            grpc_addr: server.grpc_addr,
            http_addr: server.http_addr,
        };
        if let Err(e) = on_ready(ready).await {
            server.shutdown().await?;
            return Err(e);
        }
        wait_for_signal().await;
        eprintln!("hearken: shutting down: finishing live streams");
        server.shutdown().await
    });
    if let Err(e) = telemetry.shutdown() {
        tracing::warn!(error = %e, "telemetry was not fully exported");
    }
    served
}

/// `on` or `off`.
fn on_off(value: &str) -> Result<bool, String> {
    match value {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        other => Err(format!("`{other}`: use on or off")),
    }
}

/// A duration flag: a finite number of seconds above zero.
fn positive_seconds(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds.is_finite() => Ok(seconds),
        Ok(_) => Err(format!("{value} is not a positive number of seconds")),
        Err(e) => Err(format!("{value}: {e}")),
    }
}

/// A duration flag that may be off: a finite number of seconds, zero or more.
fn seconds_or_zero(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(seconds) if seconds >= 0.0 && seconds.is_finite() => Ok(seconds),
        Ok(_) => Err(format!("{value} is not a number of seconds (0 or more)")),
        Err(e) => Err(format!("{value}: {e}")),
    }
}

/// Where a started server listens.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadyServer {
    pub(super) grpc_addr: SocketAddr,
    pub(super) http_addr: Option<SocketAddr>,
}

/// SIGTERM (orchestrators) or Ctrl-C.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

//! Telemetry: OpenTelemetry metrics and traces, and the process's log subscriber.
//!
//! [`Metrics`] holds every instrument a server records into: the engine's (batch size, queue
//! wait, model time, jobs, audio) and the service's (RPC calls and durations, sessions). They
//! are always readable as Prometheus text ([`MetricsRegistry::render`]) and are also pushed
//! over OTLP/gRPC when [`TelemetryConfig`] names an endpoint. Spans are plain `tracing` spans
//! (one per RPC from [`RpcLayer`], one per engine batch) that [`init_logging`] hands to
//! OpenTelemetry when a tracer is given. Nothing here is process-global except the `tracing`
//! subscriber itself: each [`Telemetry`] owns its providers, so tests can run several.

mod config;
mod edge;
mod engine;
mod export;
mod gateway;
mod logging;
mod metrics;
mod prometheus;
mod rpc;
mod service;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

pub use config::TelemetryConfig;
pub use engine::EngineMetrics;
pub use gateway::HttpLayer;
pub use logging::init_logging;
pub use metrics::Metrics;
pub use prometheus::MetricsRegistry;
pub use rpc::RpcLayer;
pub use service::ServiceMetrics;

/// Errors of the telemetry layer; all of them happen at start-up or at the final flush.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A setting is malformed or asks for something hearken does not do.
    #[error("telemetry configuration: {0}")]
    Config(String),
    /// The OTLP exporter could not be built (bad endpoint, TLS setup).
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The exporters' runtime could not start.
    #[error("telemetry runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// The last export on shutdown failed.
    #[error("flushing telemetry: {0}")]
    Flush(#[from] OTelSdkError),
}

/// The process's metric and trace pipelines. Shut it down (or drop it) to flush both.
#[derive(Debug)]
pub struct Telemetry {
    metrics: Metrics,
    meter_provider: Option<SdkMeterProvider>,
    tracer_provider: Option<SdkTracerProvider>,
    /// Carries the exporters' gRPC connections. Separate from the serving runtime so exports
    /// never queue behind requests, and telemetry can start before and stop after serving.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Telemetry {
    /// Builds the pipelines; exporters (and their runtime) exist only for configured signals.
    pub fn init(config: &TelemetryConfig) -> Result<Self, TelemetryError> {
        let runtime = config.exports().then(exporter_runtime).transpose()?;
        let (meter_provider, registry, tracer_provider) = {
            let _context = runtime.as_ref().map(tokio::runtime::Runtime::enter);
            build_providers(config)?
        };
        Ok(Self {
            metrics: Metrics::new(meter_provider.clone(), registry),
            meter_provider: Some(meter_provider),
            tracer_provider,
            runtime,
        })
    }

    /// The instruments to hand to the server.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The tracer for [`init_logging`]; `None` when spans are not exported.
    pub fn tracer(&self) -> Option<SdkTracer> {
        let provider = self.tracer_provider.as_ref()?;
        Some(provider.tracer("hearken"))
    }

    /// Exports what is pending (spans, then a last metric collection) and stops the exporters.
    /// Blocks until the exports finish or time out.
    pub fn shutdown(mut self) -> Result<(), TelemetryError> {
        self.close()
    }

    fn close(&mut self) -> Result<(), TelemetryError> {
        let traces = self.tracer_provider.take().map(|p| p.shutdown());
        let metrics = self.meter_provider.take().map(|p| p.shutdown());
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime blocks, which panics inside async code; the exports are done.
            runtime.shutdown_background();
        }
        traces.transpose()?;
        metrics.transpose()?;
        Ok(())
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!(error = %e, "telemetry flush on drop failed");
        }
    }
}

type Providers = (SdkMeterProvider, MetricsRegistry, Option<SdkTracerProvider>);

/// Must run inside the exporters' runtime when anything is exported.
fn build_providers(config: &TelemetryConfig) -> Result<Providers, TelemetryError> {
    let resource = export::resource(config.service_name.as_deref());
    let registry = MetricsRegistry::new();
    let mut meters = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_reader(registry.reader());
    if let Some(endpoint) = &config.metrics_endpoint {
        meters = meters.with_reader(export::metric_reader(
            endpoint,
            config.metric_export_interval,
        )?);
    }
    let tracer_provider = config
        .traces_endpoint
        .as_deref()
        .map(|endpoint| export::tracer_provider(endpoint, resource))
        .transpose()?;
    Ok((meters.build(), registry, tracer_provider))
}

/// One worker thread is plenty for a few exports a minute.
fn exporter_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("hearken-otel")
        .enable_all()
        .build()
}

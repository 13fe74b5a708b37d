//! The metrics handle a server records into: every instrument, created once on one meter, and
//! the Prometheus view of the same meter.
//!
//! Instruments are created from an explicit [`SdkMeterProvider`] rather than the OpenTelemetry
//! global, so two servers in one process (tests, `bench stream`) never share counts and a test
//! can compare a server's metrics with its [`crate::engine::EngineStats`] exactly.

use opentelemetry::InstrumentationScope;
use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_sdk::metrics::SdkMeterProvider;

use super::engine::EngineMetrics;
use super::prometheus::MetricsRegistry;
use super::service::ServiceMetrics;

/// Bucket bounds for durations in seconds, from a fast RPC (5 ms) to a long stream (5 min).
pub(super) const CALL_SECONDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// Bucket bounds for queue waits: `--max-wait-ms` is 20 ms by default, so resolve around it.
pub(super) const QUEUE_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Bucket bounds for one batched model call: ~40 ms (GPU, short window) to a slow CPU batch.
pub(super) const MODEL_SECONDS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0,
];
/// Bucket bounds for rows per batch: every size up to the default `--max-batch` 8, then
/// coarser up to the largest allowed, 64.
pub(super) const BATCH_ROWS: &[f64] = &[
    1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0,
];

/// Every instrument of a server, plus the Prometheus view of them. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    engine: EngineMetrics,
    service: ServiceMetrics,
    registry: MetricsRegistry,
    /// Keeps the pipeline alive as long as anything records into it.
    _provider: SdkMeterProvider,
}

impl Metrics {
    /// Metrics read only through [`Self::registry`]: what a server gets when no exporter is
    /// configured (tests, benchmarks, `serve` without an OTLP endpoint).
    pub fn in_memory() -> Self {
        let registry = MetricsRegistry::new();
        let provider = SdkMeterProvider::builder()
            .with_reader(registry.reader())
            .build();
        Self::new(provider, registry)
    }

    /// The instruments of `provider`, which must have `registry`'s reader attached.
    pub(super) fn new(provider: SdkMeterProvider, registry: MetricsRegistry) -> Self {
        let meter = hearken_meter(&provider);
        Self {
            engine: EngineMetrics::new(&meter),
            service: ServiceMetrics::new(&meter),
            registry,
            _provider: provider,
        }
    }

    /// The scheduler's instruments.
    pub fn engine(&self) -> &EngineMetrics {
        &self.engine
    }

    /// The RPC and session instruments.
    pub fn service(&self) -> &ServiceMetrics {
        &self.service
    }

    /// The Prometheus text view of every instrument (for `GET /metrics`).
    pub fn registry(&self) -> &MetricsRegistry {
        &self.registry
    }
}

/// hearken's instrumentation scope, versioned so a collector can tell releases apart.
pub(super) fn hearken_meter(provider: &impl MeterProvider) -> Meter {
    let scope = InstrumentationScope::builder("hearken")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    provider.meter_with_scope(scope)
}

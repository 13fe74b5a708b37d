//! The OTLP/gRPC exporters and the resource that names this process in every export.

use std::time::Duration;

use opentelemetry::{Key, KeyValue};
use opentelemetry_otlp::tonic_types::transport::ClientTlsConfig;
use opentelemetry_otlp::{MetricExporter, SpanExporter, WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::PeriodicReader;
use opentelemetry_sdk::trace::SdkTracerProvider;

use super::TelemetryError;

/// `service.name` when neither the config nor `OTEL_RESOURCE_ATTRIBUTES` names one.
const DEFAULT_SERVICE_NAME: &str = "hearken";

/// The resource of every export: the SDK's detectors (`OTEL_RESOURCE_ATTRIBUTES`, SDK
/// version) plus `service.name` and `service.version`.
pub(super) fn resource(service_name: Option<&str>) -> Resource {
    let detected = Resource::builder()
        .build()
        .get(&Key::from_static_str("service.name"))
        .map(|name| name.to_string())
        // The SDK's fallback, `unknown_service`, means nobody named the service.
        .filter(|name| !name.starts_with("unknown_service"));
    let name = service_name
        .map(str::to_string)
        .or(detected)
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
    Resource::builder()
        .with_service_name(name)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Spans batched on the SDK's export thread and sent to `endpoint`. Must run inside a tokio
/// runtime, which then carries the gRPC connection.
pub(super) fn tracer_provider(
    endpoint: &str,
    resource: Resource,
) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = with_platform_roots(
        SpanExporter::builder().with_tonic().with_endpoint(endpoint),
        endpoint,
    )
    .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// A reader that pushes every `interval` (SDK default when `None`) to `endpoint`. Must run
/// inside a tokio runtime, which then carries the gRPC connection.
pub(super) fn metric_reader(
    endpoint: &str,
    interval: Option<Duration>,
) -> Result<PeriodicReader<MetricExporter>, TelemetryError> {
    let exporter = with_platform_roots(
        MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint),
        endpoint,
    )
    .build()?;
    let reader = PeriodicReader::builder(exporter);
    Ok(match interval {
        Some(interval) => reader.with_interval(interval),
        None => reader,
    }
    .build())
}

/// HTTPS endpoints are verified against the platform's CA store, like every other outbound
/// connection hearken makes; the exporter's own default would trust no root at all.
fn with_platform_roots<B: WithTonicConfig>(builder: B, endpoint: &str) -> B {
    let https = endpoint
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
    if https {
        builder.with_tls_config(ClientTlsConfig::new().with_native_roots())
    } else {
        builder
    }
}

//! The process's `tracing` subscriber: human-readable logs on stderr, filtered by
//! `HEARKEN_LOG`, and, when spans are exported, hearken's spans turned into OpenTelemetry spans.

use opentelemetry_sdk::trace::SdkTracer;
use tracing::Level;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber, exporting spans through `tracer` when given. Only the first
/// call in a process takes effect (a test binary may call it from several tests).
pub fn init_logging(tracer: Option<SdkTracer>) {
    // symphonia logs probe failures as errors; hearken reports them itself, with the format named.
    let filter = EnvFilter::try_from_env("HEARKEN_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,symphonia_core=off"));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    // Spans are exported whatever the log level, but only hearken's own: the transport's (h2,
    // hyper, tonic) are too fine-grained to export for every request.
    let spans = tracer.map(|tracer| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(Targets::new().with_target("hearken", Level::INFO))
    });
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init();
}

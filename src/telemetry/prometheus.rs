//! The Prometheus view: the current value of every instrument in the text exposition format
//! (0.0.4), read on demand from the SDK's pull reader.
//!
//! Names follow OpenTelemetry's Prometheus compatibility rules: dots become underscores, the
//! unit becomes a suffix (`s` → `_seconds`; annotations like `{job}` add none) and monotonic
//! sums end in `_total`. The `opentelemetry-prometheus` crate would bring the `prometheus` and
//! `protobuf` crates for what is a few dozen lines of text formatting.

use std::collections::BTreeMap;
use std::fmt::{Display, Write};
use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, HistogramDataPoint, Metric, MetricData, ResourceMetrics,
};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

/// A handle on the current metric values; clones read the same instruments.
#[derive(Clone, Debug, Default)]
pub struct MetricsRegistry {
    reader: Arc<ManualReader>,
}

impl MetricsRegistry {
    /// A registry not yet attached to a meter provider (see [`Self::reader`]).
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// The reader to attach to the meter provider; the SDK takes readers by value.
    pub(super) fn reader(&self) -> SharedReader {
        SharedReader(Arc::clone(&self.reader))
    }

    /// Every instrument's current value in the Prometheus text format (0.0.4). Empty when the
    /// meter provider has shut down.
    pub fn render(&self) -> String {
        let mut metrics = ResourceMetrics::default();
        if let Err(e) = self.reader.collect(&mut metrics) {
            tracing::debug!(error = %e, "metrics collection failed");
            return String::new();
        }
        let mut families = BTreeMap::new();
        for scope in metrics.scope_metrics() {
            for metric in scope.metrics() {
                add_family(&mut families, metric);
            }
        }
        families.values().map(Family::text).collect()
    }
}

/// The registry's reader as the SDK wants it: owned, yet still readable from the registry.
#[derive(Debug)]
pub(super) struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// One metric family: its header and sample lines.
struct Family {
    name: String,
    help: String,
    kind: &'static str,
    samples: String,
}

impl Family {
    fn text(&self) -> String {
        let mut text = String::new();
        if !self.help.is_empty() {
            let help = self.help.replace('\\', r"\\").replace('\n', r"\n");
            let _ = writeln!(text, "# HELP {} {help}", self.name);
        }
        let _ = writeln!(text, "# TYPE {} {}", self.name, self.kind);
        text + &self.samples
    }
}

fn add_family(families: &mut BTreeMap<String, Family>, metric: &Metric) {
    let base = base_name(metric.name(), metric.unit());
    let mut samples = String::new();
    let kind = match metric.data() {
        AggregatedMetrics::F64(data) => write_data(&mut samples, &base, data),
        AggregatedMetrics::U64(data) => write_data(&mut samples, &base, data),
        AggregatedMetrics::I64(data) => write_data(&mut samples, &base, data),
    };
    let Some((kind, suffix)) = kind else { return };
    let name = format!("{base}{suffix}");
    let family = families.entry(name.clone()).or_insert_with(|| Family {
        name,
        help: metric.description().to_string(),
        kind,
        samples: String::new(),
    });
    // Samples of one family must be contiguous: merge same-named metrics (e.g. two scopes).
    family.samples.push_str(&samples);
}

/// Writes the samples; returns the Prometheus type and the family name's suffix, or `None`
/// for aggregations this view does not use (exponential histograms).
fn write_data<T: Copy + Display>(
    out: &mut String,
    base: &str,
    data: &MetricData<T>,
) -> Option<(&'static str, &'static str)> {
    match data {
        MetricData::Gauge(gauge) => {
            for point in gauge.data_points() {
                write_sample(out, base, point.attributes(), None, point.value());
            }
            Some(("gauge", ""))
        }
        MetricData::Sum(sum) => {
            let (kind, suffix) = if sum.is_monotonic() {
                ("counter", "_total")
            } else {
                ("gauge", "")
            };
            let name = format!("{base}{suffix}");
            for point in sum.data_points() {
                write_sample(out, &name, point.attributes(), None, point.value());
            }
            Some((kind, suffix))
        }
        MetricData::Histogram(histogram) => {
            for point in histogram.data_points() {
                write_histogram(out, base, point);
            }
            Some(("histogram", ""))
        }
        MetricData::ExponentialHistogram(_) => None,
    }
}

/// Buckets are cumulative in Prometheus (`le` counts everything at or below the bound) but
/// per-interval in OpenTelemetry, hence the running sum.
fn write_histogram<T: Copy + Display>(out: &mut String, base: &str, point: &HistogramDataPoint<T>) {
    let bucket = format!("{base}_bucket");
    let mut cumulative = 0;
    let counts = point.bucket_counts().collect::<Vec<_>>();
    for (bound, count) in point.bounds().zip(&counts) {
        cumulative += count;
        let le = format_float(bound);
        write_sample(out, &bucket, point.attributes(), Some(&le), cumulative);
    }
    write_sample(
        out,
        &bucket,
        point.attributes(),
        Some("+Inf"),
        point.count(),
    );
    write_sample(
        out,
        &format!("{base}_sum"),
        point.attributes(),
        None,
        point.sum(),
    );
    write_sample(
        out,
        &format!("{base}_count"),
        point.attributes(),
        None,
        point.count(),
    );
}

fn write_sample<'a>(
    out: &mut String,
    name: &str,
    attributes: impl Iterator<Item = &'a KeyValue>,
    le: Option<&str>,
    value: impl Display,
) {
    let mut labels: Vec<(String, String)> = attributes
        .map(|kv| (sanitize(kv.key.as_str()), kv.value.to_string()))
        .collect();
    labels.sort();
    if let Some(le) = le {
        labels.push(("le".to_string(), le.to_string()));
    }
    out.push_str(name);
    if !labels.is_empty() {
        let labels = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
            .collect::<Vec<_>>()
            .join(",");
        let _ = write!(out, "{{{labels}}}");
    }
    let _ = writeln!(out, " {}", format_value(value));
}

/// The family name without type suffixes: sanitized name plus the unit's suffix.
fn base_name(name: &str, unit: &str) -> String {
    let name = sanitize(name);
    match unit_suffix(unit) {
        Some(suffix) if !name.ends_with(&format!("_{suffix}")) => format!("{name}_{suffix}"),
        _ => name,
    }
}

fn unit_suffix(unit: &str) -> Option<String> {
    let suffix = match unit {
        "" | "1" => return None,
        u if u.starts_with('{') => return None,
        "s" => "seconds",
        "ms" => "milliseconds",
        "By" => "bytes",
        other => return Some(sanitize(other)),
    };
    Some(suffix.to_string())
}

/// Metric and label names allow `[a-zA-Z_:][a-zA-Z0-9_:]*`; anything else becomes `_`.
fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// Integers print as they are; floats in the spellings Prometheus parses.
fn format_value(value: impl Display) -> String {
    let text = value.to_string();
    match text.as_str() {
        "inf" => "+Inf".to_string(),
        "-inf" => "-Inf".to_string(),
        _ => text,
    }
}

fn format_float(value: f64) -> String {
    format_value(value)
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider;
    use opentelemetry_sdk::metrics::SdkMeterProvider;

    use super::*;

    fn registry_with_provider() -> (MetricsRegistry, SdkMeterProvider) {
        let registry = MetricsRegistry::new();
        let provider = SdkMeterProvider::builder()
            .with_reader(registry.reader())
            .build();
        (registry, provider)
    }

    #[test]
    fn counters_gauges_and_histograms_render_in_text_format() {
        let (registry, provider) = registry_with_provider();
        let meter = provider.meter("test");
        let counter = meter
            .u64_counter("app.jobs.done")
            .with_unit("{job}")
            .build();
        counter.add(2, &[KeyValue::new("reason", "a\"b")]);
        counter.add(3, &[KeyValue::new("reason", "a\"b")]);
        let up_down = meter.i64_up_down_counter("app.open").build();
        up_down.add(4, &[]);
        up_down.add(-1, &[]);
        let histogram = meter
            .f64_histogram("app.wait")
            .with_unit("s")
            .with_description("Wait\ntime.")
            .with_boundaries(vec![0.25, 1.0])
            .build();
        for v in [0.125, 0.25, 0.5, 2.0, 3.0] {
            histogram.record(v, &[]);
        }
        let text = registry.render();
        let expected = "\
# TYPE app_jobs_done_total counter
app_jobs_done_total{reason=\"a\\\"b\"} 5
# TYPE app_open gauge
app_open 3
# HELP app_wait_seconds Wait\\ntime.
# TYPE app_wait_seconds histogram
app_wait_seconds_bucket{le=\"0.25\"} 2
app_wait_seconds_bucket{le=\"1\"} 3
app_wait_seconds_bucket{le=\"+Inf\"} 5
app_wait_seconds_sum 5.875
app_wait_seconds_count 5
";
        assert_eq!(text, expected);
    }

    #[test]
    fn names_take_unit_suffixes_once_and_lose_invalid_characters() {
        assert_eq!(
            base_name("rpc.server.call.duration", "s"),
            "rpc_server_call_duration_seconds"
        );
        assert_eq!(base_name("queue_wait_seconds", "s"), "queue_wait_seconds");
        assert_eq!(
            base_name("hearken.engine.batch.size", "{row}"),
            "hearken_engine_batch_size"
        );
        assert_eq!(base_name("9lives-x", "By"), "_9lives_x_bytes");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(escape_label("a\\b\nc"), "a\\\\b\\nc");
    }

    #[test]
    fn a_shut_down_provider_renders_nothing() {
        let (registry, provider) = registry_with_provider();
        provider.meter("test").u64_counter("x").build().add(1, &[]);
        provider.shutdown().unwrap();
        assert_eq!(registry.render(), "");
    }
}

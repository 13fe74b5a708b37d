//! Telemetry end to end: a real server (default model, 127.0.0.1:0) exporting OTLP to an
//! in-process collector, and the Prometheus view of a server after a Recognize. Both check the
//! exported values against the engine's own `EngineStats`.

mod otlp_collector;
mod support;

use std::time::{Duration, Instant};

use hearken::engine::EngineStats;
use hearken::engine::WhisperBackend;
use hearken::grpc::proto::RecognizeRequest;
use hearken::grpc::proto::speech_client::SpeechClient;
use hearken::model::whisper::WhisperModel;
use hearken::server::RunningServer;
use hearken::service::Limits;
use hearken::telemetry::{Metrics, Telemetry, TelemetryConfig};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, Metric, number_data_point};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use otlp_collector::{Collector, attribute};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

async fn start(metrics: Metrics) -> RunningServer {
    let model = WhisperModel::load(&support::default_model_dir(), &candle_core::Device::Cpu)
        .expect("load model");
    let config = support::serve_config(Limits::default(), false);
    RunningServer::start_with_metrics(WhisperBackend::from(model), config, metrics)
        .await
        .expect("server starts")
}

/// Recognizes the `jfk` clip (11 s) as a caller in trace `TRACE_ID` would.
async fn recognize_jfk(server: &RunningServer) {
    let (clip, _) = support::clip("jfk");
    let mut client = SpeechClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .expect("connect");
    let mut request = tonic::Request::new(RecognizeRequest {
        config: None,
        audio: std::fs::read(&clip.file).expect("read clip"),
    });
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01");
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    let response = client.recognize(request).await.expect("recognize");
    assert!(response.into_inner().text.contains("ask not"));
}

fn histogram(metric: &Metric) -> &HistogramDataPoint {
    match &metric.data {
        Some(Data::Histogram(h)) if h.data_points.len() == 1 => &h.data_points[0],
        other => panic!(
            "{}: expected one histogram point, got {other:?}",
            metric.name
        ),
    }
}

/// The value of a sum or gauge's point whose attributes include every pair of `matching`.
fn number(metric: &Metric, matching: &[(&str, Value)]) -> f64 {
    let points = match &metric.data {
        Some(Data::Sum(s)) => &s.data_points,
        Some(Data::Gauge(g)) => &g.data_points,
        other => panic!("{}: expected a sum or gauge, got {other:?}", metric.name),
    };
    let point = points
        .iter()
        .find(|p| {
            matching
                .iter()
                .all(|(k, v)| attribute(&p.attributes, k).as_ref() == Some(v))
        })
        .unwrap_or_else(|| panic!("{}: no point with {matching:?}", metric.name));
    match point.value {
        Some(number_data_point::Value::AsInt(v)) => v as f64,
        Some(number_data_point::Value::AsDouble(v)) => v,
        None => panic!("{}: empty point", metric.name),
    }
}

fn recognize_call(status: i64) -> Vec<(&'static str, Value)> {
    vec![
        ("rpc.method", Value::StringValue("Recognize".into())),
        ("rpc.grpc.status_code", Value::IntValue(status)),
    ]
}

/// Polls `collector` until its latest export covers every batch in `stats` and the RPC.
async fn wait_for_export(collector: &Collector, stats: &EngineStats) -> Vec<Metric> {
    let names = [
        "hearken.engine.batch.size",
        "hearken.engine.queue.wait",
        "hearken.engine.model.duration",
        "hearken.rpc.requests",
        "rpc.server.call.duration",
        "hearken.engine.jobs.completed",
        "hearken.engine.audio.processed",
        "hearken.engine.queue.depth",
        "hearken.sessions.active",
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics: Option<Vec<Metric>> =
            names.iter().map(|n| collector.latest_metric(n)).collect();
        if let Some(metrics) = metrics
            && histogram(&metrics[0]).count == stats.batches
        {
            return metrics;
        }
        assert!(
            Instant::now() < deadline,
            "no complete metric export in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Summed durations in `EngineStats` are truncated to whole microseconds.
fn assert_seconds_close(exported: f64, stats: Duration, events: u64) {
    let slack = events as f64 * 1e-6 + 1e-9;
    assert!(
        (exported - stats.as_secs_f64()).abs() <= slack,
        "exported {exported} s, stats {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recognize_exports_metrics_and_spans_over_otlp() {
    let (collector, endpoint) = Collector::start().await;
    let telemetry = Telemetry::init(&TelemetryConfig {
        traces_endpoint: Some(endpoint.clone()),
        metrics_endpoint: Some(endpoint),
        service_name: Some("hearken-test".into()),
        metric_export_interval: Some(Duration::from_millis(200)),
    })
    .expect("telemetry starts");
    hearken::telemetry::init_logging(telemetry.tracer());
    let server = start(telemetry.metrics().clone()).await;
    recognize_jfk(&server).await;
    let stats = server.engine().stats();
    assert!(stats.batches >= 2 && stats.jobs_done == 2, "{stats:?}"); // warm-up + jfk

    let m = wait_for_export(&collector, &stats).await;
    let batch = histogram(&m[0]);
    assert_eq!(batch.sum, Some(stats.rows as f64));
    let queue_wait = histogram(&m[1]);
    assert_eq!(queue_wait.count, stats.jobs_admitted);
    assert_seconds_close(
        queue_wait.sum.unwrap(),
        stats.queue_wait,
        stats.jobs_admitted,
    );
    let model = histogram(&m[2]);
    assert_eq!(model.count, stats.batches);
    assert_seconds_close(model.sum.unwrap(), stats.model_time, stats.batches);
    assert_eq!(number(&m[3], &recognize_call(0)), 1.0);
    let call = &m[4];
    let call_seconds = match &call.data {
        Some(Data::Histogram(h)) => h.data_points[0].sum.unwrap(),
        _ => panic!("rpc duration is a histogram"),
    };
    assert!(call_seconds > 0.0 && call_seconds < 120.0, "{call_seconds}");
    assert_eq!(call.unit, "s");
    assert_eq!(number(&m[5], &[]), stats.jobs_done as f64);
    let audio = number(&m[6], &[]);
    assert!((11.0..=13.0).contains(&audio), "audio seconds {audio}"); // 11 s clip + 1 s warm-up
    assert_eq!(number(&m[7], &[]), 0.0);
    assert_eq!(number(&m[8], &[]), 0.0);
    assert_eq!(collector.service_name().as_deref(), Some("hearken-test"));

    server.shutdown().await.expect("server stops");
    // Flushes the spans; blocking, so off the async workers.
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap()
        .expect("telemetry flushes");
    assert_spans(&collector);
}

/// The RPC span continues the caller's trace, and the batches that served it link to it.
fn assert_spans(collector: &Collector) {
    let spans = collector.spans();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let rpc = spans
        .iter()
        .find(|s| s.name == "hearken.speech.v1.Speech/Recognize" && hex(&s.trace_id) == TRACE_ID)
        .unwrap_or_else(|| panic!("no Recognize span in trace {TRACE_ID}: {spans:#?}"));
    assert_eq!(hex(&rpc.parent_span_id), CALLER_SPAN_ID);
    assert_eq!(rpc.kind, SpanKind::Server as i32);
    let rpc_attribute = |key| attribute(&rpc.attributes, key);
    assert_eq!(
        rpc_attribute("rpc.method"),
        Some(Value::StringValue("Recognize".into()))
    );
    assert_eq!(
        rpc_attribute("rpc.grpc.status_code"),
        Some(Value::IntValue(0))
    );

    let batches: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "engine.batch" && s.links.iter().any(|l| l.span_id == rpc.span_id))
        .collect();
    assert!(!batches.is_empty(), "no engine.batch span links to the RPC");
    for batch in batches {
        let size = attribute(&batch.attributes, "batch.size");
        assert!(
            matches!(size, Some(Value::IntValue(n)) if n >= 1),
            "{batch:?}"
        );
        let model_time = attribute(&batch.attributes, "batch.model_time_s");
        assert!(
            matches!(model_time, Some(Value::DoubleValue(s)) if s > 0.0),
            "{batch:?}"
        );
    }
}

/// The value of the sample line that starts with `series` (name and labels, as rendered).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample `{series}` in:\n{text}"))
        .parse()
        .unwrap()
}

/// Checks the histogram `name` at the series with `labels` (rendered, sorted, may be empty):
/// cumulative buckets ending in `+Inf` = `_count`. Returns (`_sum`, `_count`).
fn prometheus_histogram(text: &str, name: &str, labels: &str) -> (f64, u64) {
    assert!(
        text.contains(&format!("# TYPE {name} histogram\n")),
        "{name} type"
    );
    let (bucket_prefix, series) = match labels {
        "" => (format!("{name}_bucket{{le=\""), String::new()),
        _ => (
            format!("{name}_bucket{{{labels},le=\""),
            format!("{{{labels}}}"),
        ),
    };
    let buckets: Vec<(String, f64)> = text
        .lines()
        .filter_map(|line| line.strip_prefix(&bucket_prefix))
        .map(|rest| {
            let (le, value) = rest.split_once("\"} ").unwrap();
            (le.to_string(), value.parse().unwrap())
        })
        .collect();
    assert!(buckets.len() > 2, "{name}: buckets {buckets:?}");
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "{name} not cumulative: {buckets:?}"
    );
    let (last_le, last) = buckets.last().unwrap();
    assert_eq!(last_le, "+Inf");
    let count = sample(text, &format!("{name}_count{series}"));
    assert_eq!(*last, count);
    (sample(text, &format!("{name}_sum{series}")), count as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_view_matches_engine_stats_after_recognize() {
    let server = start(Metrics::in_memory()).await;
    recognize_jfk(&server).await;
    let mut client = SpeechClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap();
    let not_audio = RecognizeRequest {
        config: None,
        audio: b"this is not audio at all".repeat(20),
    };
    client.recognize(not_audio).await.unwrap_err();
    let stats = server.engine().stats();
    let text = server.service.metrics().registry().render();

    let (rows, batches) = prometheus_histogram(&text, "hearken_engine_batch_size", "");
    assert_eq!((rows as u64, batches), (stats.rows, stats.batches));
    let (waited, admitted) = prometheus_histogram(&text, "hearken_engine_queue_wait_seconds", "");
    assert_eq!(admitted, stats.jobs_admitted);
    assert_seconds_close(waited, stats.queue_wait, admitted);
    let (model, batches) = prometheus_histogram(&text, "hearken_engine_model_duration_seconds", "");
    assert_eq!(batches, stats.batches);
    assert_seconds_close(model, stats.model_time, batches);

    assert!(text.contains("# TYPE hearken_engine_jobs_admitted_total counter\n"));
    let admitted = sample(&text, "hearken_engine_jobs_admitted_total");
    assert_eq!(admitted as u64, stats.jobs_admitted);
    let completed = sample(&text, "hearken_engine_jobs_completed_total");
    assert_eq!(completed as u64, stats.jobs_done);
    let labels = |code| {
        format!(
            "rpc_grpc_status_code=\"{code}\",rpc_method=\"Recognize\",\
             rpc_service=\"hearken.speech.v1.Speech\",rpc_system=\"grpc\""
        )
    };
    let requests = |code| {
        sample(
            &text,
            &format!("hearken_rpc_requests_total{{{}}}", labels(code)),
        )
    };
    assert_eq!(requests(0), 1.0);
    assert_eq!(
        requests(3),
        1.0,
        "the undecodable audio is INVALID_ARGUMENT"
    );
    let call = "rpc_server_call_duration_seconds";
    let (seconds, calls) = prometheus_histogram(&text, call, &labels(0));
    assert_eq!(calls, 1);
    assert!(seconds > 0.0 && seconds < 120.0, "{seconds}");
    assert!(text.contains("# TYPE hearken_engine_queue_depth gauge\n"));
    assert_eq!(sample(&text, "hearken_engine_queue_depth"), 0.0);
    assert_eq!(sample(&text, "hearken_sessions_active"), 0.0);
    assert!(text.contains("# TYPE hearken_decode_suppressed_total counter\n"));
    for reason in ["loop", "stock_phrase", "no_speech"] {
        assert!(
            text.contains(&format!(
                "hearken_decode_suppressed_total{{reason=\"{reason}\""
            )),
            "no suppressed-segment count for {reason}"
        );
    }
}

//! The speech service's instruments: RPC calls by method and status, their duration, HTTP
//! gateway requests by route and status, and session slots (open and refused).
//!
//! RPC attributes follow OpenTelemetry's RPC conventions (`rpc.system`, `rpc.service`,
//! `rpc.method`, `rpc.grpc.status_code`), so dashboards built for other gRPC servers work.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, NoopMeterProvider};

use super::engine::seconds_histogram;
use super::metrics::{CALL_SECONDS, hearken_meter};

/// What [`ServiceMetrics::stream_resume`] counts.
const RESUME_EVENTS: [&str; 4] = ["detached", "resumed", "expired", "refused"];

/// Instruments of one service. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ServiceMetrics {
    meter: Meter,
    requests: Counter<u64>,
    duration: Histogram<f64>,
    http_duration: Histogram<f64>,
    sessions_rejected: Counter<u64>,
    tenant_sessions: Counter<u64>,
    tenant_audio: Counter<f64>,
    result_cache: Counter<u64>,
    resumes: Counter<u64>,
}

impl ServiceMetrics {
    /// Creates the instruments on `meter`.
    pub fn new(meter: &Meter) -> Self {
        let metrics = Self {
            meter: meter.clone(),
            requests: meter
                .u64_counter("hearken.rpc.requests")
                .with_unit("{request}")
                .with_description("gRPC calls served, by method and status code.")
                .build(),
            duration: seconds_histogram(
                meter,
                "rpc.server.call.duration",
                "Time from a call's request headers to its status (streams: the whole stream).",
                CALL_SECONDS,
            ),
            http_duration: seconds_histogram(
                meter,
                "http.server.request.duration",
                "HTTP gateway requests, from the request to the end of the response body.",
                CALL_SECONDS,
            ),
            sessions_rejected: meter
                .u64_counter("hearken.sessions.rejected")
                .with_unit("{session}")
                .with_description(
                    "Sessions refused, by reason (capacity, tenant_quota, shutting_down).",
                )
                .build(),
            tenant_sessions: meter
                .u64_counter("hearken.tenant.sessions")
                .with_unit("{session}")
                .with_description("Sessions opened, by tenant (`anonymous` without keys).")
                .build(),
            tenant_audio: meter
                .f64_counter("hearken.tenant.audio")
                .with_unit("s")
                .with_description(
                    "Seconds of audio accepted, by tenant (`anonymous` without keys).",
                )
                .build(),
            result_cache: meter
                .u64_counter("hearken.result_cache.lookups")
                .with_unit("{request}")
                .with_description(
                    "Whole-file requests looked up in the result cache, by result (hit, miss).",
                )
                .build(),
            resumes: meter
                .u64_counter("hearken.stream.resume")
                .with_unit("{event}")
                .with_description(
                    "Resumable streams by event: detached (the connection broke), resumed, \
                     expired (the resume window passed), refused (a resume that failed).",
                )
                .build(),
        };
        // Zero series from the start, so alerts on their rate work before the first refusal.
        for reason in ["capacity", "tenant_quota", "shutting_down"] {
            metrics
                .sessions_rejected
                .add(0, &[KeyValue::new("reason", reason)]);
        }
        for event in RESUME_EVENTS {
            metrics.resumes.add(0, &[KeyValue::new("event", event)]);
        }
        for result in ["hit", "miss"] {
            metrics
                .result_cache
                .add(0, &[KeyValue::new("result", result)]);
        }
        metrics
    }

    /// Instruments that record nothing.
    pub fn noop() -> Self {
        Self::new(&hearken_meter(&NoopMeterProvider::new()))
    }

    /// One finished call with its `rpc.*` attributes.
    pub(super) fn call(&self, attributes: &[KeyValue], duration: Duration) {
        self.requests.add(1, attributes);
        self.duration.record(duration.as_secs_f64(), attributes);
    }

    /// One finished HTTP gateway request with its `http.*` attributes.
    pub(super) fn http_request(&self, attributes: &[KeyValue], duration: Duration) {
        self.http_duration
            .record(duration.as_secs_f64(), attributes);
    }

    /// A session was refused; `reason` is a fixed, low-cardinality word.
    pub fn session_rejected(&self, reason: &'static str) {
        self.sessions_rejected
            .add(1, &[KeyValue::new("reason", reason)]);
    }

    /// Something happened to a resumable stream: one of [`RESUME_EVENTS`].
    pub fn stream_resume(&self, event: &'static str) {
        debug_assert!(RESUME_EVENTS.contains(&event), "{event}");
        self.resumes.add(1, &[KeyValue::new("event", event)]);
    }

    /// A whole-file request was looked up in the result cache.
    pub fn result_cache_lookup(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.result_cache.add(1, &[KeyValue::new("result", result)]);
    }

    /// A session was opened for `tenant`.
    pub fn tenant_session(&self, tenant: &str) {
        self.tenant_sessions
            .add(1, &[KeyValue::new("tenant", tenant.to_string())]);
    }

    /// `seconds` of audio were accepted from `tenant`.
    pub fn tenant_audio(&self, tenant: &str, seconds: f64) {
        if seconds > 0.0 {
            self.tenant_audio
                .add(seconds, &[KeyValue::new("tenant", tenant.to_string())]);
        }
    }

    /// Reports open sessions at each collection; `open` returns `None` once the service is
    /// gone (callbacks cannot be unregistered, so it must not keep the service alive).
    pub fn observe_sessions(&self, open: impl Fn() -> Option<u64> + Send + Sync + 'static) {
        self.meter
            .u64_observable_gauge("hearken.sessions.active")
            .with_unit("{session}")
            .with_description("Sessions open: streams plus in-flight whole-audio requests.")
            .with_callback(move |observer| {
                if let Some(open) = open() {
                    observer.observe(open, &[]);
                }
            })
            .build();
    }
}

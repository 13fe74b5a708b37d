//! The gateway's router driven with `oneshot` over a serving core on the scripted backend:
//! status codes, envelopes, readiness and refusals without a socket or model weights.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use super::{GatewayState, router};
use crate::engine::backend::scripted::say;
use crate::engine::{Engine, EngineConfig, ScriptedBackend};
use crate::service::{Caller, Limits, Origins, ServedModel, Service};
use crate::telemetry::Metrics;

fn service(backend: &ScriptedBackend, limits: Limits) -> Arc<Service> {
    service_for(backend, limits, Origins::none())
}

fn service_for(backend: &ScriptedBackend, limits: Limits, origins: Origins) -> Arc<Service> {
    let engine = Engine::start(backend.clone(), EngineConfig::default());
    let model = ServedModel {
        id: "tiny.en".into(),
        device: "cpu".into(),
    };
    let service =
        Service::new(Arc::new(engine), model, limits, Metrics::in_memory()).with_origins(origins);
    service.set_ready(true);
    Arc::new(service)
}

/// 16-bit mono 16 kHz WAV.
fn wav(samples: &[f32]) -> Vec<u8> {
    let data = crate::audio::f32_to_pcm16le(samples);
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&16_000u32.to_le_bytes());
    out.extend_from_slice(&32_000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

const BOUNDARY: &str = "hearken-test-boundary";

fn upload(path: &str, file: &[u8], fields: &[(&str, &str)]) -> Request<Body> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"speech.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    Request::post(path)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(body))
        .unwrap()
}

async fn call(
    service: &Arc<Service>,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    let app = router(Arc::new(GatewayState::new(Arc::clone(service))));
    let response = app.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (parts.status, parts.headers, json)
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn healthz_follows_readiness_and_shutdown() {
    let service = service(&ScriptedBackend::english(), Limits::default());
    service.set_ready(false);
    assert_eq!(
        call(&service, get("/healthz")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    service.set_ready(true);
    let (status, _, body) = call(&service, get("/healthz")).await;
    assert_eq!(
        (status, body["model"].as_str()),
        (StatusCode::OK, Some("tiny.en"))
    );
    service.begin_shutdown();
    assert_eq!(
        call(&service, get("/healthz")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn transcribes_an_upload() {
    let service = service(&ScriptedBackend::english(), Limits::default());
    let request = upload(
        "/v1/audio/transcriptions",
        &wav(&say(&["three", "nine"])),
        &[("model", "whisper-1")],
    );
    let (status, _, body) = call(&service, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["text"], "three nine");
    assert_eq!(service.open_sessions(), 0, "the slot is given back");
}

#[tokio::test]
async fn a_model_failure_is_a_500_without_its_detail() {
    let backend = ScriptedBackend::english();
    let service = service(&backend, Limits::default());
    backend.fail_next(1);
    let request = upload("/v1/audio/transcriptions", &wav(&say(&["one"])), &[]);
    let (status, _, body) = call(&service, request).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["type"], "server_error");
    assert!(!body.to_string().contains("scripted"), "{body}");
    assert!(!body.to_string().contains("CUDA"), "{body}");
}

#[tokio::test]
async fn full_slots_are_a_429_with_retry_after() {
    let limits = Limits {
        max_sessions: 1,
        ..Limits::default()
    };
    let service = service(&ScriptedBackend::english(), limits);
    let _held = service.open_session(&Caller::anonymous()).unwrap();
    let request = upload("/v1/audio/transcriptions", &wav(&say(&["one"])), &[]);
    let (status, headers, body) = call(&service, request).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::RETRY_AFTER], "2");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn refusals_name_the_field_and_the_route() {
    let service = service(&ScriptedBackend::english(), Limits::default());
    let request = upload("/v1/audio/translations", &wav(&say(&["one"])), &[]);
    let (status, _, body) = call(&service, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["param"], "model", "{body}");
    let request = upload(
        "/v1/audio/transcriptions",
        &wav(&say(&["one"])),
        &[("model", "base")],
    );
    let (status, _, body) = call(&service, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "model_not_found", "{body}");
    let (status, _, body) = call(&service, get("/v1/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/nothing")
    );
    let (status, _, body) = call(&service, get("/v1/realtime?intent=transcription")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"]["code"], "websocket_upgrade_required",
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/realtime is a WebSocket endpoint"),
        "{body}"
    );
    let (status, _, body) = call(&service, get("/v1/models")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"][0]["id"], "tiny.en");
}

/// An upload whose body arrives through the returned sender: the test decides its pace.
fn trickled_upload() -> (
    tokio::sync::mpsc::Sender<Result<axum::body::Bytes, std::io::Error>>,
    Request<Body>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let request = Request::post("/v1/audio/transcriptions")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .unwrap();
    (tx, request)
}

fn file_part_head() -> axum::body::Bytes {
    axum::body::Bytes::from(format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
         filename=\"speech.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_holds_no_slot_and_is_cut_off() {
    let limits = Limits {
        max_sessions: 1,
        body_pace: crate::service::BodyPace {
            stall: std::time::Duration::from_millis(300),
            ..Default::default()
        },
        ..Limits::default()
    };
    let service = service(&ScriptedBackend::english(), limits);
    let (tx, stalled) = trickled_upload();
    tx.send(Ok(file_part_head())).await.unwrap();
    tx.send(Ok(axum::body::Bytes::from(
        wav(&say(&["one"]))[..1_000].to_vec(),
    )))
    .await
    .unwrap();
    let stalled = tokio::spawn({
        let service = Arc::clone(&service);
        async move { call(&service, stalled).await }
    });
    // While it stalls, the only slot is free for another client.
    let request = upload("/v1/audio/transcriptions", &wav(&say(&["two"])), &[]);
    let (status, _, body) = call(&service, request).await;
    assert_eq!(
        (status, body["text"].as_str()),
        (StatusCode::OK, Some("two"))
    );
    let (status, _, body) = stalled.await.unwrap();
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
    assert_eq!(body["error"]["code"], "timeout");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("the request body stalled: no data for 0.3 s"),
        "{message}"
    );
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crawling_upload_is_cut_off_at_the_minimum_rate() {
    let limits = Limits {
        body_pace: crate::service::BodyPace {
            stall: std::time::Duration::from_secs(5),
            min_bytes_per_second: 2_000,
            grace: std::time::Duration::from_millis(300),
        },
        ..Limits::default()
    };
    let service = service(&ScriptedBackend::english(), limits);
    let (tx, request) = trickled_upload();
    let sender = tokio::spawn(async move {
        tx.send(Ok(file_part_head())).await.unwrap();
        // 20 bytes every 50 ms: 400 B/s, a fifth of the minimum, but never a stall.
        while tx
            .send(Ok(axum::body::Bytes::from(vec![0u8; 20])))
            .await
            .is_ok()
        {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    let started = std::time::Instant::now();
    let (status, _, body) = call(&service, request).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("arriving too slowly"), "{message}");
    assert!(message.contains("the minimum is 2000 bytes/s"), "{message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    sender.abort();
}

fn from_origin(mut request: Request<Body>, origin: &str) -> Request<Body> {
    let headers = request.headers_mut();
    headers.insert(header::ORIGIN, origin.parse().unwrap());
    headers.insert(header::HOST, "hearken.internal:8000".parse().unwrap());
    request
}

#[tokio::test]
async fn foreign_origins_are_refused_before_any_work_and_listed_ones_get_cors() {
    let backend = ScriptedBackend::english();
    let origins = Origins::parse("https://app.example.com").unwrap();
    let service = service_for(&backend, Limits::default(), origins);
    let speech = || upload("/v1/audio/transcriptions", &wav(&say(&["five"])), &[]);
    // A page elsewhere: its form POST (no preflight) and its WebSocket are refused.
    for request in [
        from_origin(speech(), "https://evil.example"),
        from_origin(
            get("/v1/realtime?intent=transcription"),
            "https://evil.example",
        ),
        from_origin(speech(), "null"),
    ] {
        let (status, headers, body) = call(&service, request).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"]["code"], "origin_not_allowed");
        assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }
    assert!(backend.batches().is_empty(), "nothing was transcribed");
    // The listed origin, the server's own pages and non-browser clients are served.
    for request in [
        from_origin(speech(), "https://app.example.com"),
        from_origin(speech(), "http://hearken.internal:8000"),
        speech(),
    ] {
        let (status, headers, body) = call(&service, request).await;
        assert_eq!(
            (status, body["text"].as_str()),
            (StatusCode::OK, Some("five"))
        );
        assert!(
            headers
                .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
                .is_none()
        );
    }
    // Preflights: a grant for the listed origin only.
    let preflight = |origin: &str| {
        Request::options("/v1/audio/transcriptions")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
            .body(Body::empty())
            .unwrap()
    };
    let (_, headers, _) = call(&service, preflight("https://app.example.com")).await;
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    let (_, headers, _) = call(&service, preflight("https://evil.example")).await;
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

#[tokio::test]
async fn with_tenants_every_api_route_needs_a_key_but_health_and_metrics_do_not() {
    use crate::service::tenants::digest_line;
    let tenants = crate::service::Tenants::parse(&format!(
        "[[tenant]]\nid = \"acme\"\nkeys = [\"{}\"]\n",
        digest_line("hk_acme")
    ))
    .unwrap();
    let engine = Engine::start(ScriptedBackend::english(), EngineConfig::default());
    let model = ServedModel {
        id: "tiny.en".into(),
        device: "cpu".into(),
    };
    let service = Service::new(
        Arc::new(engine),
        model,
        Limits::default(),
        Metrics::in_memory(),
    )
    .with_tenants(tenants);
    service.set_ready(true);
    let service = Arc::new(service);
    let keyed = |mut request: Request<Body>, value: &str| {
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, value.parse().unwrap());
        request
    };
    let speech = || upload("/v1/audio/transcriptions", &wav(&say(&["six"])), &[]);
    for request in [
        speech(),
        keyed(speech(), "Bearer hk_wrong"),
        get("/v1/models"),
        get("/v1/realtime?intent=transcription"),
    ] {
        let (status, _, body) = call(&service, request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    let (status, _, body) = call(&service, keyed(speech(), "Bearer hk_acme")).await;
    assert_eq!(
        (status, body["text"].as_str()),
        (StatusCode::OK, Some("six"))
    );
    assert_eq!(call(&service, get("/healthz")).await.0, StatusCode::OK);
    let (status, _, _) = call(&service, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bad_http_requests_are_refused_naming_the_problem_and_the_server_stays_healthy() {
    let panics_before = crate::test_support::panics_so_far();
    let limits = Limits {
        max_audio_seconds: 60.0,
        max_upload_bytes: 1 << 20,
        ..Limits::default()
    };
    let service = service(&ScriptedBackend::english(), limits);
    let speech = wav(&say(&["one"]));
    let mut nan = say(&["one"]);
    nan[3_000] = f32::NAN;
    let nan = crate::test_support::f32le_bytes(&nan);
    let form =
        |file: &[u8], fields: &[(&str, &str)]| upload("/v1/audio/transcriptions", file, fields);
    let two_files = {
        let mut body = Vec::new();
        for _ in 0..2 {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
                     filename=\"a.wav\"\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(&speech);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        Request::post("/v1/audio/transcriptions")
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(Body::from(body))
            .unwrap()
    };
    let no_file = {
        let body = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n\
             --{BOUNDARY}--\r\n"
        );
        Request::post("/v1/audio/transcriptions")
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(Body::from(body))
            .unwrap()
    };
    let json_body = Request::post("/v1/audio/transcriptions")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"file": "speech.wav"}"#))
        .unwrap();
    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        ("no file part", no_file, StatusCode::BAD_REQUEST, "`file`"),
        (
            "two file parts",
            two_files,
            StatusCode::BAD_REQUEST,
            "exactly one `file`",
        ),
        (
            "a JSON body",
            json_body,
            StatusCode::BAD_REQUEST,
            "multipart/form-data",
        ),
        (
            "unknown response_format",
            form(&speech, &[("response_format", "xml")]),
            StatusCode::BAD_REQUEST,
            "unsupported response_format `xml`",
        ),
        (
            "temperature over 1",
            form(&speech, &[("temperature", "1.5")]),
            StatusCode::BAD_REQUEST,
            "between 0 and 1",
        ),
        (
            "temperature not a number",
            form(&speech, &[("temperature", "warm")]),
            StatusCode::BAD_REQUEST,
            "`warm`",
        ),
        (
            "unknown granularity",
            form(&speech, &[("timestamp_granularities[]", "char")]),
            StatusCode::BAD_REQUEST,
            "granularity `char`",
        ),
        (
            "stream not a boolean",
            form(&speech, &[("stream", "yes")]),
            StatusCode::BAD_REQUEST,
            "true or false",
        ),
        (
            "stream with srt",
            form(&speech, &[("stream", "true"), ("response_format", "srt")]),
            StatusCode::BAD_REQUEST,
            "json or text only",
        ),
        (
            "another catalog model",
            form(&speech, &[("model", "base")]),
            StatusCode::NOT_FOUND,
            "unknown model `base`",
        ),
        (
            "a language the model lacks",
            form(&speech, &[("language", "xx")]),
            StatusCode::BAD_REQUEST,
            "xx",
        ),
        (
            "translation on an English-only model",
            upload("/v1/audio/translations", &speech, &[]),
            StatusCode::BAD_REQUEST,
            "multilingual",
        ),
        (
            "an empty file",
            form(b"", &[]),
            StatusCode::BAD_REQUEST,
            "empty",
        ),
        (
            "text, not audio",
            form(b"this is a transcript, not audio\n", &[]),
            StatusCode::BAD_REQUEST,
            "not a recognised audio format",
        ),
        (
            "a truncated WAV header",
            form(&speech[..30], &[]),
            StatusCode::BAD_REQUEST,
            "malformed wav",
        ),
        (
            "a WAV claiming 1 Hz",
            form(
                &crate::test_support::wav_with(1, 16, 1, &[0; 4_000], None),
                &[],
            ),
            StatusCode::BAD_REQUEST,
            "sample rate 1 Hz",
        ),
        (
            "a WAV claiming 0 Hz",
            form(
                &crate::test_support::wav_with(1, 16, 0, &[0; 4_000], None),
                &[],
            ),
            StatusCode::BAD_REQUEST,
            "sample rate 0 Hz",
        ),
        (
            "a WAV claiming 1 MHz",
            form(
                &crate::test_support::wav_with(1, 16, 1_000_000, &[0; 4_000], None),
                &[],
            ),
            StatusCode::BAD_REQUEST,
            "1000000 Hz",
        ),
        (
            "a NaN in a float WAV",
            form(
                &crate::test_support::wav_with(3, 32, 16_000, &nan, None),
                &[],
            ),
            StatusCode::BAD_REQUEST,
            "is NaN",
        ),
        (
            "audio over the length limit",
            form(
                &crate::test_support::wav_with(1, 8, 8_000, &vec![128; 8_000 * 61], None),
                &[],
            ),
            StatusCode::BAD_REQUEST,
            "at most 60 s",
        ),
        (
            "a file over the upload limit",
            form(&vec![0; (1 << 20) + 10], &[]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than this server accepts",
        ),
        (
            "a route that does not exist",
            get("/v1/audio/speech"),
            StatusCode::NOT_FOUND,
            "/v1/audio/speech",
        ),
        (
            "GET on an upload route",
            get("/v1/audio/transcriptions"),
            StatusCode::METHOD_NOT_ALLOWED,
            "GET",
        ),
        (
            "a plain GET on the WebSocket",
            get("/v1/realtime?intent=transcription"),
            StatusCode::BAD_REQUEST,
            "WebSocket endpoint",
        ),
        (
            "a Realtime intent other than transcription",
            get("/v1/realtime?intent=conversation"),
            StatusCode::BAD_REQUEST,
            "conversation",
        ),
    ];
    let count = cases.len();
    for (name, request, status, needle) in cases {
        let (got, _, body) = call(&service, request).await;
        assert_eq!(got, status, "{name}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{name}: `{needle}` not in {message}"
        );
        assert!(body["error"]["type"].is_string(), "{name}: {body}");
        assert_eq!(
            call(&service, get("/healthz")).await.0,
            StatusCode::OK,
            "{name}"
        );
    }
    assert!(count >= 25);
    assert_eq!(
        service.open_sessions(),
        0,
        "every refusal gave its slot back"
    );
    assert_eq!(
        crate::test_support::panics_so_far(),
        panics_before,
        "a bad input made something panic"
    );
}

//! The OpenAI-compatible HTTP gateway end to end: a real server on 127.0.0.1:0 with the default
//! model, driven over plain HTTP with multipart uploads as OpenAI's SDKs send them.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use hearken::engine::EngineConfig;
use hearken::engine::WhisperBackend;
use hearken::eval::english_wer;
use hearken::grpc::proto::RecognizeRequest;
use hearken::grpc::proto::speech_client::SpeechClient;
use hearken::model::whisper::WhisperModel;
use hearken::server::{RunningServer, ServeConfig};
use hearken::service::{Limits, LongFiles};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tokio_stream::StreamExt;

/// A server on 127.0.0.1:0 for both gRPC and HTTP, serving tiny.en.
fn config(limits: Limits, engine: EngineConfig) -> ServeConfig {
    ServeConfig {
        engine,
        ..support::serve_config(limits, true)
    }
}

async fn start_with(limits: Limits, engine: EngineConfig) -> RunningServer {
    let model = WhisperModel::load(&support::default_model_dir(), &candle_core::Device::Cpu)
        .expect("load model");
    RunningServer::start(WhisperBackend::from(model), config(limits, engine))
        .await
        .expect("server starts")
}

async fn start() -> RunningServer {
    start_with(Limits::default(), EngineConfig::default()).await
}

fn url(server: &RunningServer, path: &str) -> String {
    format!("http://{}{path}", server.http_addr.expect("http is on"))
}

/// A corpus clip's file bytes and reference text.
fn clip_file(id: &str) -> (Vec<u8>, String) {
    let (clip, _) = support::clip(id);
    (std::fs::read(&clip.file).expect("read clip"), clip.text)
}

/// `file` first (as the SDKs send it), then the text fields.
fn form(bytes: Vec<u8>, filename: &str, fields: &[(&str, &str)]) -> Form {
    let mut form = Form::new().part("file", Part::bytes(bytes).file_name(filename.to_string()));
    for (name, value) in fields {
        form = form.text(name.to_string(), value.to_string());
    }
    form
}

/// Text fields of a form.
type Fields = [(&'static str, &'static str)];

async fn post(server: &RunningServer, path: &str, form: Form) -> reqwest::Response {
    hearken::tls::http_client()
        .unwrap()
        .post(url(server, path))
        .multipart(form)
        .send()
        .await
        .expect("request is answered")
}

async fn transcribe(server: &RunningServer, bytes: Vec<u8>, fields: &[(&str, &str)]) -> String {
    let response = post(
        server,
        "/v1/audio/transcriptions",
        form(bytes, "clip.wav", fields),
    )
    .await;
    assert_eq!(response.status(), 200, "{fields:?}");
    response.text().await.unwrap()
}

/// Checks OpenAI's error envelope and returns its message.
async fn error_message(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("error body is JSON");
    let error = &body["error"];
    for key in ["message", "type", "param", "code"] {
        assert!(error.get(key).is_some(), "envelope lacks {key}: {body}");
    }
    error["message"].as_str().unwrap().to_string()
}

fn assert_wer(reference: &str, text: &str, bound: f64) {
    let wer = english_wer(reference, text).wer();
    assert!(wer <= bound, "WER {wer:.3}: {text:?}");
}

/// The text lines of SubRip or WebVTT cues.
fn cue_text(subtitles: &str) -> String {
    subtitles
        .lines()
        .filter(|l| !l.is_empty() && !l.contains("-->") && *l != "WEBVTT")
        .filter(|l| l.parse::<u32>().is_err())
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_format_matches_openai() {
    let server = start().await;
    let (wav, reference) = clip_file("jfk");

    let json: Value =
        serde_json::from_str(&transcribe(&server, wav.clone(), &[("model", "whisper-1")]).await)
            .unwrap();
    let text = json["text"].as_str().unwrap();
    assert_wer(&reference, text, 0.1);
    assert_eq!(
        json["usage"],
        serde_json::json!({"type": "duration", "seconds": 11})
    );

    let plain = transcribe(&server, wav.clone(), &[("response_format", "text")]).await;
    assert_eq!(plain, format!("{text}\n"));

    // The same file over gRPC gives the same words (grpc-web is checked against gRPC in
    // grpc_mesh.rs): one engine behind every front end. Only the punctuation may differ, as
    // json and text answers carry no times and decode without timestamps.
    let mut grpc = SpeechClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap();
    let request = RecognizeRequest {
        config: None,
        audio: wav.clone(),
    };
    let over_grpc = grpc.recognize(request).await.unwrap().into_inner();
    let differences = english_wer(&over_grpc.text, text);
    assert_eq!(differences.errors(), 0, "{:?} vs {text:?}", over_grpc.text);

    let srt = transcribe(&server, wav.clone(), &[("response_format", "srt")]).await;
    assert!(srt.starts_with("1\n00:00:00,000 --> 00:00:"), "{srt}");
    assert_wer(&reference, &cue_text(&srt), 0.1);
    let vtt = transcribe(&server, wav.clone(), &[("response_format", "vtt")]).await;
    assert!(
        vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:"),
        "{vtt}"
    );
    assert_wer(&reference, &cue_text(&vtt), 0.1);

    let verbose: Value = serde_json::from_str(
        &transcribe(&server, wav.clone(), &[("response_format", "verbose_json")]).await,
    )
    .unwrap();
    assert_eq!(verbose["task"], "transcribe");
    assert_eq!(verbose["language"], "english");
    assert!((verbose["duration"].as_f64().unwrap() - 11.0).abs() < 0.01);
    let verbose_text = verbose["text"].as_str().unwrap();
    assert_eq!(
        english_wer(verbose_text, text).errors(),
        0,
        "{verbose_text:?}"
    );
    let segment = &verbose["segments"][0];
    for key in [
        "id",
        "seek",
        "start",
        "end",
        "text",
        "tokens",
        "temperature",
        "avg_logprob",
        "compression_ratio",
        "no_speech_prob",
    ] {
        assert!(segment.get(key).is_some(), "segment lacks {key}: {segment}");
    }
    assert!(verbose.get("words").is_none(), "words without being asked");

    // Both granularities, the bracketed and the bare field name, file sent last.
    let with_words = Form::new()
        .text("response_format", "verbose_json")
        .text("timestamp_granularities[]", "word")
        .text("timestamp_granularities", "segment")
        .part("file", Part::bytes(wav).file_name("jfk.wav"));
    let response = post(&server, "/v1/audio/transcriptions", with_words).await;
    assert_eq!(response.status(), 200);
    let verbose: Value = response.json().await.unwrap();
    let words = verbose["words"].as_array().expect("words array");
    assert!(words.len() >= 20, "{words:?}");
    assert!(
        verbose["segments"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );
    let mut last = 0.0;
    for word in words {
        let (start, end) = (
            word["start"].as_f64().unwrap(),
            word["end"].as_f64().unwrap(),
        );
        assert!(
            start >= last - 1e-6 && start <= end && end <= 11.05,
            "{word}"
        );
        assert!(!word["word"].as_str().unwrap().starts_with(' '), "{word}");
        last = start;
    }
    server.shutdown().await.unwrap();
}

/// Parses an SSE body into its `data:` payloads (comments dropped).
fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_sends_deltas_then_done_then_the_done_marker() {
    let server = start().await;
    // Long enough for several chunks, so several deltas (a window's text comes as one).
    let (wav, _) = clip_file("librivox_sonnets_1_3");
    let whole: Value = serde_json::from_str(&transcribe(&server, wav.clone(), &[]).await).unwrap();

    let response = post(
        &server,
        "/v1/audio/transcriptions",
        form(wav, "three.wav", &[("stream", "true")]),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let data = sse_data(&response.text().await.unwrap());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    let events: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("event is JSON"))
        .collect();
    let (done, deltas) = events.split_last().expect("a done event");
    assert_eq!(done["type"], "transcript.text.done");
    assert!(deltas.len() >= 2, "{deltas:?}");
    assert!(deltas.iter().all(|d| d["type"] == "transcript.text.delta"));
    let joined: String = deltas
        .iter()
        .map(|d| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(done["text"], whole["text"]);
    assert_eq!(joined.trim(), whole["text"].as_str().unwrap());
    assert_eq!(done["usage"]["type"], "duration");
    server.shutdown().await.unwrap();
}

/// Reads SSE events from `body` until one carrying a delta; returns what was read.
async fn read_to_first_delta(
    body: &mut (impl tokio_stream::Stream<Item = reqwest::Result<axum::body::Bytes>> + Unpin),
) -> String {
    let mut seen = String::new();
    while let Some(chunk) = body.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("stream chunk")));
        if seen.contains("transcript.text.delta") {
            return seen;
        }
        assert!(!seen.contains("[DONE]"), "stream ended without a delta");
    }
    panic!("stream closed without a delta: {seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_cancels_queued_and_running_streams() {
    // One window per model call, so a second long job waits in the queue; each file is one
    // job, window after window (a chunked file's chunks are cancelled together too: see the
    // engine's chunked tests).
    let engine = EngineConfig {
        max_batch: 1,
        ..EngineConfig::default()
    };
    let model = WhisperModel::load(&support::default_model_dir(), &candle_core::Device::Cpu)
        .expect("load model");
    let config = ServeConfig {
        long_files: LongFiles::Sequential,
        ..config(Limits::default(), engine)
    };
    let server = RunningServer::start(WhisperBackend::from(model), config)
        .await
        .expect("server starts");
    let (long, _) = clip_file("librivox_sonnets_1_3");
    let stream = |bytes: Vec<u8>| form(bytes, "sonnets.wav", &[("stream", "true")]);
    let before = server.engine().stats();

    let running = post(&server, "/v1/audio/transcriptions", stream(long.clone())).await;
    assert_eq!(running.status(), 200);
    let queued = post(&server, "/v1/audio/transcriptions", stream(long)).await;
    assert_eq!(queued.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.engine().queued() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        server.engine().queued(),
        1,
        "the second stream never queued"
    );
    drop(queued);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.engine().queued() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        server.engine().queued(),
        0,
        "a dropped stream stayed queued"
    );

    // The first delta comes after one 30 s window of a 158 s clip, long before the end.
    let mut body = Box::pin(running.bytes_stream());
    let events = read_to_first_delta(&mut body).await;
    assert!(!events.contains("transcript.text.done"), "{events}");
    assert_eq!(server.engine().stats().jobs_done, before.jobs_done);
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.engine().stats().jobs_cancelled() < before.jobs_cancelled() + 2
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = server.engine().stats();
    assert_eq!(
        after.jobs_cancelled(),
        before.jobs_cancelled() + 2,
        "{after:?}"
    );
    assert_eq!(
        after.jobs_done, before.jobs_done,
        "a cancelled job ran to the end"
    );
    assert_eq!(server.service.open_sessions(), 0, "session slots leaked");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_health_and_errors_use_openai_envelopes() {
    let server = start().await;
    let client = hearken::tls::http_client().unwrap();
    let get = |path: &str| client.get(url(&server, path)).send();

    let list: Value = get("/v1/models").await.unwrap().json().await.unwrap();
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"][0]["id"], "tiny.en");
    assert_eq!(list["data"][0]["object"], "model");
    assert_eq!(list["data"][0]["owned_by"], "hearken");
    assert!(list["data"][0]["created"].as_u64().is_some());
    let one: Value = get("/v1/models/tiny.en")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one, list["data"][0]);
    let missing = error_message(get("/v1/models/base").await.unwrap(), 404).await;
    assert!(missing.contains("base"), "{missing}");
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    let metrics = get("/metrics").await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("# TYPE hearken_engine_queue_depth gauge\n"),
        "{text}"
    );
    // The warm-up ran one batch before the server reported ready.
    assert!(
        text.contains("hearken_engine_batch_size_count 1\n"),
        "{text}"
    );
    // Requests are measured by route template, method and status (the model lookups above).
    let count = |route: &str, status: u16| {
        text.lines()
            .find(|l| {
                l.starts_with("http_server_request_duration_seconds_count{")
                    && l.contains(&format!("http_route=\"{route}\""))
                    && l.contains("http_request_method=\"GET\"")
                    && l.contains(&format!("http_response_status_code=\"{status}\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
    };
    assert_eq!(count("/v1/models", 200), Some(1), "{text}");
    assert_eq!(count("/v1/models/{id}", 200), Some(1), "{text}");
    assert_eq!(count("/v1/models/{id}", 404), Some(1), "{text}");
    error_message(get("/v1/nothing").await.unwrap(), 404).await;
    let wrong_method = client
        .delete(url(&server, "/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.headers()["allow"], "GET,HEAD");
    error_message(wrong_method, 405).await;

    let text_file = b"this is not audio, just some text in a file\n".repeat(20);
    let response = post(
        &server,
        "/v1/audio/transcriptions",
        form(text_file, "notes.mp3", &[]),
    )
    .await;
    let message = error_message(response, 400).await;
    assert!(
        message.contains("not a recognised audio format"),
        "{message}"
    );

    let no_file = Form::new().text("model", "whisper-1");
    let message = error_message(
        post(&server, "/v1/audio/transcriptions", no_file).await,
        400,
    )
    .await;
    assert!(message.contains("file"), "{message}");

    let (wav, _) = clip_file("sb_spk2_snt2");
    // (endpoint, form fields, status, a word the message must contain)
    let cases: [(&str, &Fields, u16, &str); 5] = [
        (
            "/v1/audio/transcriptions",
            &[("response_format", "xml")],
            400,
            "xml",
        ),
        (
            "/v1/audio/transcriptions",
            &[("temperature", "3")],
            400,
            "temperature",
        ),
        (
            "/v1/audio/transcriptions",
            &[("model", "base")],
            404,
            "base",
        ),
        (
            "/v1/audio/transcriptions",
            &[("stream", "true"), ("response_format", "srt")],
            400,
            "stream",
        ),
        (
            "/v1/audio/translations",
            &[("model", "whisper-1")],
            400,
            "English-only",
        ),
    ];
    for (path, fields, status, needle) in cases {
        let response = post(&server, path, form(wav.clone(), "a.wav", fields)).await;
        let message = error_message(response, status).await;
        assert!(message.contains(needle), "{fields:?}: {message}");
    }
    let not_multipart = client
        .post(url(&server, "/v1/audio/transcriptions"))
        .body("{}")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    error_message(not_multipart, 400).await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_over_the_limit_get_413() {
    let limits = Limits {
        max_upload_bytes: 200_000,
        ..Limits::default()
    };
    let server = start_with(limits, EngineConfig::default()).await;
    let (wav, _) = clip_file("jfk"); // 352 kB
    let response = post(
        &server,
        "/v1/audio/transcriptions",
        form(wav, "jfk.wav", &[]),
    )
    .await;
    let message = error_message(response, 413).await;
    assert!(message.contains("200000"), "{message}");
    let (small, reference) = clip_file("sb_spk1_snt1"); // 92 kB: under the limit
    let json: Value = serde_json::from_str(&transcribe(&server, small, &[]).await).unwrap();
    assert_wer(&reference, json["text"].as_str().unwrap(), 0.2);
    server.shutdown().await.unwrap();
}

/// Converts the jfk clip with ffmpeg (required, as in tests/audio_decode.rs).
fn ffmpeg(args: &[&str], name: &str) -> (tempfile::TempDir, PathBuf) {
    let (clip, _) = support::clip("jfk");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(name);
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-i"])
        .arg(&clip.file)
        .args(args)
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("ffmpeg could not be run ({e}): apt-get install -y ffmpeg"));
    assert!(status.success(), "ffmpeg {args:?} failed");
    (dir, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_are_sniffed_from_content_webm_opus_included() {
    let server = start().await;
    let (_, reference) = clip_file("jfk");
    // Wrong extensions and a generic content type: the bytes decide.
    for (args, name, sent_as) in [
        (&["-c:a", "libmp3lame"][..], "jfk.mp3", "jfk.wav"),
        (&["-c:a", "aac"][..], "jfk.m4a", "jfk.bin"),
        (&["-c:a", "flac"][..], "jfk.flac", "jfk"),
        // What browsers' MediaRecorder uploads.
        (&["-c:a", "libopus"][..], "jfk.webm", "recording.wav"),
    ] {
        let (_dir, path) = ffmpeg(args, name);
        let part = Part::bytes(std::fs::read(&path).unwrap())
            .file_name(sent_as.to_string())
            .mime_str("application/octet-stream")
            .unwrap();
        let response = post(
            &server,
            "/v1/audio/transcriptions",
            Form::new().part("file", part),
        )
        .await;
        assert_eq!(response.status(), 200, "{name}");
        let json: Value = response.json().await.unwrap();
        assert_wer(&reference, json["text"].as_str().unwrap(), 0.1);
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multilingual_model_translates_and_detects_the_language() {
    let dir = hearken::model::store::ModelStore::from_env()
        .resolve("base")
        .expect("fetch base")
        .dir;
    let model = WhisperModel::load(&dir, &candle_core::Device::Cpu).expect("load base");
    let config = ServeConfig {
        model_id: "base".into(),
        ..config(Limits::default(), EngineConfig::default())
    };
    let server = RunningServer::start(WhisperBackend::from(model), config)
        .await
        .expect("server starts");
    let (spanish, _) = clip_file("pv_leopard_es");

    let response = post(
        &server,
        "/v1/audio/translations",
        form(
            spanish.clone(),
            "es.wav",
            &[("response_format", "verbose_json")],
        ),
    )
    .await;
    assert_eq!(response.status(), 200);
    let translated: Value = response.json().await.unwrap();
    assert_eq!(translated["task"], "translate");
    let text = translated["text"].as_str().unwrap().to_lowercase();
    assert!(text.contains("sand") && text.contains("white"), "{text}");

    let detected: Value = serde_json::from_str(
        &transcribe(&server, spanish, &[("response_format", "verbose_json")]).await,
    )
    .unwrap();
    assert_eq!(detected["language"], "spanish");
    let (wav, _) = clip_file("sb_spk2_snt2");
    let response = post(
        &server,
        "/v1/audio/transcriptions",
        form(wav, "a.wav", &[("model", "tiny.en")]),
    )
    .await;
    let message = error_message(response, 404).await;
    assert!(
        message.contains("tiny.en") && message.contains("base"),
        "{message}"
    );
    server.shutdown().await.unwrap();
}

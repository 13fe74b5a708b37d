//! The browser app in a real browser: Debian's Chromium, driven headless by Playwright
//! (`clients/web/tests/drive.py`), against a server started here with the real model. The
//! microphone is Chromium's fake capture device playing a corpus clip once. The driver reports
//! what the page showed; this test scores it. Screenshots land in
//! `target/tmp/web-app-screenshots/`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use hearken::engine::WhisperBackend;
use hearken::eval::english_wer;
use hearken::model::whisper::WhisperModel;
use hearken::server::{RunningServer, ServeConfig};
use hearken::service::{Limits, Origins};
use hearken::session::Detector;
use serde_json::Value;

const INSTALL: &str =
    "apt-get install chromium && python3 -m pip install -r clients/python/requirements.txt";

/// One browser scenario at a time: the microphone test runs in real time on 2 cores.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-app-screenshots")
}

/// A server as `serve` runs by default (Silero VAD, the HTTP gateway serving the app), with
/// `origins` allowed cross-origin.
async fn start(origins: Origins) -> RunningServer {
    let model = WhisperModel::load(&support::default_model_dir(), &candle_core::Device::Cpu)
        .expect("load model");
    let config = ServeConfig {
        origins,
        vad: Detector::Silero(support::silero_vad()),
        ..support::serve_config(Limits::default(), true)
    };
    RunningServer::start(WhisperBackend::from(model), config)
        .await
        .expect("server starts")
}

fn app_url(server: &RunningServer) -> String {
    format!("http://{}", server.http_addr.expect("http is on"))
}

/// Runs one scenario of the driver; its JSON report. Fails with the install command when
/// Chromium or Playwright is missing.
async fn drive(args: Vec<String>) -> Value {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "the browser tests need Debian's Chromium; run: {INSTALL}"
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg("clients/web/tests/drive.py")
            .args(&args)
            .arg("--shots")
            .arg(screenshots())
            .current_dir(repo())
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'playwright'"),
        "the browser tests need Playwright; run: {INSTALL}"
    );
    assert!(
        output.status.success(),
        "the browser driver failed:\n{stderr}"
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "driver printed no JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn text(report: &Value, field: &str) -> String {
    report[field].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microphone_is_transcribed_live_with_tentative_text_before_each_final() {
    let _one_browser = BROWSER.lock().await;
    let server = start(Origins::none()).await;
    let (clip, _) = support::clip("jfk");
    let report = drive(vec![
        "mic".into(),
        "--url".into(),
        app_url(&server),
        "--clip".into(),
        clip.file.display().to_string(),
        "--seconds".into(),
        "14".into(),
    ])
    .await;
    let shown = text(&report, "transcript");
    assert!(!report["status_is_error"].as_bool().unwrap(), "{report:#}");
    let wer = english_wer(&clip.text, &shown).wer();
    assert!(wer <= 0.10, "WER {wer:.3} > 0.10: {shown:?}\n{report:#}");
    let utterances = report["utterances"].as_array().unwrap();
    assert!(!utterances.is_empty(), "{report:#}");
    // The longest utterance (5 s of speech) must have shown tentative words while spoken.
    let words = |u: &Value| u["committed"].as_str().unwrap().split_whitespace().count();
    let longest = (0..utterances.len())
        .max_by_key(|&i| words(&utterances[i]))
        .unwrap();
    let tentative_first: Vec<u64> = report["tentative_before_final"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap())
        .collect();
    assert!(
        tentative_first.contains(&(longest as u64)),
        "utterance {longest} showed no tentative text before its final: {report:#}"
    );
    for utterance in utterances {
        assert!(utterance["final"].as_bool().unwrap(), "{utterance}");
        assert!(utterance["latency"].as_str().is_some(), "{utterance}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_grpc_web_shows_segments_progress_and_downloads() {
    let _one_browser = BROWSER.lock().await;
    let server = start(Origins::none()).await;
    // 158 s: six windows' worth.
    let (clip, _) = support::clip("librivox_sonnets_1_3");
    let report = drive(vec![
        "file".into(),
        "--url".into(),
        app_url(&server),
        "--clip".into(),
        clip.file.display().to_string(),
        "--seconds".into(),
        "240".into(),
    ])
    .await;
    assert!(!report["status_is_error"].as_bool().unwrap(), "{report:#}");
    let segments: Vec<&str> = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let wer = english_wer(&clip.text, &segments.join(" ")).wer();
    assert!(wer <= 0.15, "WER {wer:.3}: {segments:?}");

    // Progress moved forward in several steps and ended at the whole recording.
    let progress: Vec<(f64, f64)> = report["progress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
        .filter(|(done, _)| *done > 0.0)
        .collect();
    assert!(progress.len() >= 3, "too few progress steps: {progress:?}");
    assert!(
        progress.windows(2).all(|w| w[0].0 <= w[1].0),
        "{progress:?}"
    );
    let (done, total) = *progress.last().unwrap();
    assert!((total - clip.seconds).abs() < 0.1, "{progress:?}");
    assert!((done - total).abs() < 1e-6, "{progress:?}");

    let downloads = &report["downloads"];
    let srt = downloads["srt"].as_str().unwrap();
    assert_eq!(srt.matches(" --> ").count(), segments.len(), "{srt}");
    assert!(srt.starts_with("1\n00:00:"), "{srt}");
    let vtt = downloads["vtt"].as_str().unwrap();
    assert!(vtt.starts_with("WEBVTT\n"), "{vtt}");
    assert_eq!(vtt.matches(" --> ").count(), segments.len());
    let json: Value = serde_json::from_str(downloads["json"].as_str().unwrap()).unwrap();
    assert_eq!(json["segments"].as_array().unwrap().len(), segments.len());
    assert!(
        json["segments"][0]["words"]
            .as_array()
            .is_some_and(|w| !w.is_empty())
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_origin_is_refused_unless_the_origin_is_allowed() {
    let _one_browser = BROWSER.lock().await;
    let refusing = start(Origins::none()).await;
    let allowing = start(Origins::any()).await;
    let (clip, _) = support::clip("jfk");
    let report = drive(vec![
        "cross-origin".into(),
        "--refusing".into(),
        app_url(&refusing),
        "--allowing".into(),
        app_url(&allowing),
        "--clip".into(),
        clip.file.display().to_string(),
    ])
    .await;
    let refused = &report["refusing"];
    assert!(refused["status_is_error"].as_bool().unwrap(), "{report:#}");
    assert!(
        text(refused, "status").contains("--cors-origins"),
        "the refusal should say what to change: {report:#}"
    );
    assert_eq!(refused["models"], serde_json::json!([]), "{report:#}");
    assert_eq!(text(refused, "transcript"), "");
    let allowed = &report["allowing"];
    assert!(!allowed["status_is_error"].as_bool().unwrap(), "{report:#}");
    assert!(
        allowed["models"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("tiny.en")),
        "{report:#}"
    );
    refusing.shutdown().await.unwrap();
    allowing.shutdown().await.unwrap();
}

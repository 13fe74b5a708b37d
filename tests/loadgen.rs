//! `hearken loadgen` as a user runs it: the binary against a real server on 127.0.0.1:0 with
//! the default model, over each protocol (gRPC over TLS with a key, the Realtime WebSocket,
//! HTTP transcriptions with and without `stream=true`), its JSON read back; refusals by a full
//! server counted as refused, not failed; and the capacity search finding a server's session
//! limit.

mod support;

use std::path::Path;
use std::process::Command;

use hearken::server::{RunningServer, ServeConfig};
use hearken::service::tenants::digest_line;
use hearken::service::{Limits, Tenants};
use serde_json::Value;

const KEY: &str = "hk_loadgen_test";

/// One run at a time: the runs stream at real-time pace and expect interims, which a 2-core
/// machine running several servers and load generators at once may not have the time for.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The clips every run plays: the first three English clips of at most 6 s (13 s of audio).
const CLIPS: [&str; 4] = ["--limit", "3", "--max-clip-seconds", "6"];

async fn start(config: ServeConfig) -> RunningServer {
    support::start_server(config).await
}

/// Runs `hearken loadgen ARGS --json FILE` and returns the report it wrote.
async fn loadgen(args: Vec<String>, dir: &Path) -> Value {
    let json = dir.join("report.json");
    let json_arg = json.to_string_lossy().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_hearken"))
            .arg("loadgen")
            .args(&args)
            .args(["--json", &json_arg])
            .env_remove("HEARKEN_API_KEY")
            .output()
            .expect("running hearken loadgen")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "loadgen failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    eprintln!("{stdout}");
    serde_json::from_slice(&std::fs::read(&json).expect("the JSON report")).unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Every session of every round completed, with a transcript close to its reference.
fn assert_all_completed(report: &Value) {
    for round in report["rounds"].as_array().unwrap() {
        let a = &round["aggregate"];
        assert_eq!(a["sessions"], a["completed"], "{a}");
        assert!(a["wer"].as_f64().unwrap() <= 0.15, "WER {}", a["wer"]);
        for session in round["round"]["sessions"].as_array().unwrap() {
            assert_eq!(session["outcome"], "completed", "{session}");
            assert!(session["final_latency_s"].as_f64().is_some(), "{session}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_with_a_key_measures_commit_lag_from_word_timings() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let pki = support::Pki::new();
    let tenants = Tenants::parse(&format!(
        "[[tenant]]\nid = \"load\"\nkeys = [\"{}\"]\n",
        digest_line(KEY)
    ))
    .unwrap();
    let server = start(ServeConfig {
        tenants: Some(tenants),
        tls: Some(pki.server_files()),
        ..support::serve_config(Limits::default(), false)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let target = format!("grpcs://localhost:{}", server.grpc_addr.port());
    let ca = pki.path("ca.crt").to_string_lossy().to_string();
    let mut run = args(&[&target, "--sessions", "1,2", "--ca", &ca, "--api-key", KEY]);
    run.extend(args(&CLIPS));
    run.extend(args(&["--slo", "final_p95=30s", "--report"]));
    run.push(html.to_string_lossy().to_string());
    let report = loadgen(run, dir.path()).await;
    assert_eq!(report["protocol"], "grpc");
    assert_all_completed(&report);
    let rounds = report["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    for round in rounds {
        let a = &round["aggregate"];
        assert_eq!(a["sessions"], 3, "every clip once per round");
        assert_eq!(a["commit_timing"], "word_timings");
        // Committed words arrive after their audio was sent, and not minutes later.
        let commit = &a["commit_lag_s"];
        assert!(commit["count"].as_u64().unwrap() >= 20, "{commit}");
        let p50 = commit["p50"].as_f64().unwrap();
        assert!((0.0..15.0).contains(&p50), "{commit}");
        assert!(a["first_interim_s"]["p50"].as_f64().is_some(), "{a}");
        assert!(round["misses"].as_array().unwrap().is_empty(), "{round}");
    }
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("Latency against concurrency"));

    // The same without the key: every session fails with the gRPC code, none completes.
    let mut run = args(&[&target, "--sessions", "1", "--ca", &ca, "--fast"]);
    run.extend(args(&CLIPS));
    let report = loadgen(run, dir.path()).await;
    let a = &report["rounds"][0]["aggregate"];
    assert_eq!(
        (a["completed"].as_u64(), a["failed"].as_u64()),
        (Some(0), Some(3)),
        "{a}"
    );
    assert_eq!(a["errors_by_code"]["UNAUTHENTICATED"], 3, "{a}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_realtime_websocket_and_http_transcriptions() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = start(support::serve_config(Limits::default(), true)).await;
    let http = server.http_addr.unwrap();
    let dir = tempfile::tempdir().unwrap();

    let mut run = args(&[&format!("ws://{http}"), "--sessions", "2"]);
    run.extend(args(&CLIPS));
    let report = loadgen(run, dir.path()).await;
    assert_eq!(report["protocol"], "realtime");
    assert_all_completed(&report);
    let a = &report["rounds"][0]["aggregate"];
    assert_eq!(a["commit_timing"], "item_span");
    assert!(a["commit_lag_s"]["count"].as_u64().unwrap() >= 20, "{a}");
    assert!(a["first_words_s"]["p50"].as_f64().is_some(), "{a}");

    for stream in [false, true] {
        let mut run = args(&[&format!("http://{http}"), "--sessions", "2"]);
        run.extend(args(&CLIPS));
        if stream {
            run.push("--stream".into());
        }
        let report = loadgen(run, dir.path()).await;
        assert_eq!(report["protocol"], "http");
        assert_all_completed(&report);
        let a = &report["rounds"][0]["aggregate"];
        // Whole uploads: no commit lag; a first delta only when streamed.
        assert_eq!(a["commit_lag_s"]["count"], 0, "{a}");
        assert_eq!(
            a["first_interim_s"]["count"].as_u64() == Some(3),
            stream,
            "{a}"
        );
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_refuses_and_the_capacity_search_finds_its_limit() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let limits = Limits {
        max_sessions: 2,
        ..Limits::default()
    };
    let server = start(support::serve_config(limits, true)).await;
    let dir = tempfile::tempdir().unwrap();

    // Four at once against a limit of two: the extra sessions are refused (retryable), not
    // failed, over gRPC and the Realtime handshake alike.
    for target in [
        format!("grpc://{}", server.grpc_addr),
        format!("ws://{}", server.http_addr.unwrap()),
    ] {
        let mut run = args(&[&target, "--sessions", "4", "--clips-per-session", "1"]);
        run.extend(args(&CLIPS));
        let report = loadgen(run, dir.path()).await;
        let a = &report["rounds"][0]["aggregate"];
        assert_eq!(a["sessions"], 4, "{a}");
        assert_eq!(a["failed"], 0, "{a}");
        assert!(a["refused"].as_u64().unwrap() >= 1, "{a}");
        assert!(a["completed"].as_u64().unwrap() >= 2, "{a}");
        let code = if target.starts_with("grpc") {
            "RESOURCE_EXHAUSTED"
        } else {
            "HTTP 429"
        };
        assert_eq!(a["errors_by_code"][code], a["refused"], "{a}");
    }

    // Refusals miss any target: the search settles on the limit.
    let target = format!("grpc://{}", server.grpc_addr);
    let mut run = args(&[
        &target,
        "--capacity",
        "--slo",
        "final_p95=60s",
        "--max-sessions",
        "4",
        "--duration",
        "1s",
        "--fast",
    ]);
    run.extend(args(&CLIPS));
    let report = loadgen(run, dir.path()).await;
    let tried: Vec<u64> = report["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["aggregate"]["workload"]["concurrency"].as_u64().unwrap())
        .collect();
    assert_eq!(tried, [1, 2, 4, 3], "{report}");
    assert_eq!(report["capacity"], 2, "{report}");
    server.shutdown().await.unwrap();
}

//! `hearken stream` as a user runs it: the binary against a real server on 127.0.0.1:0 with the
//! default model and an API key, a file and stdin PCM, JSON lines out; a missing key is an error
//! that names the refusal. The same over the Realtime protocol and over TLS, and Ctrl-C, which
//! stops the audio but still prints the final. A connection cut mid-stream is resumed with
//! the same transcript.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use hearken::engine::WhisperBackend;
use hearken::eval::english_wer;
use hearken::model::whisper::WhisperModel;
use hearken::server::{RunningServer, ServeConfig};
use hearken::service::tenants::digest_line;
use hearken::service::{Limits, Tenants};
use hearken::testing::CutProxy;

const KEY: &str = "hk_stream_test";

/// One test at a time: each streams at real-time pace and expects interims, which a 2-core
/// machine running three servers at once may not have the time for.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A keyed server with the HTTP gateway on; over TLS with `pki`'s certificate.
async fn start_with(pki: Option<&support::Pki>) -> RunningServer {
    let tenants = Tenants::parse(&format!(
        "[[tenant]]\nid = \"cli\"\nkeys = [\"{}\"]\n",
        digest_line(KEY)
    ))
    .unwrap();
    let config = ServeConfig {
        tenants: Some(tenants),
        tls: pki.map(support::Pki::server_files),
        ..support::serve_config(Limits::default(), true)
    };
    let model = WhisperModel::load(&support::default_model_dir(), &candle_core::Device::Cpu)
        .expect("load model");
    RunningServer::start(WhisperBackend::from(model), config)
        .await
        .expect("server starts")
}

async fn start() -> RunningServer {
    start_with(None).await
}

/// Runs `hearken stream ARGS` with `stdin` on its standard input.
async fn hearken_stream(args: Vec<String>, stdin: Vec<u8>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hearken"))
            .arg("stream")
            .args(&args)
            .env_remove("HEARKEN_API_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting hearken stream");
        let mut input = child.stdin.take().unwrap();
        // Written from a thread: the child may answer before it has read it all.
        let writer = std::thread::spawn(move || input.write_all(&stdin));
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap().ok();
        output
    })
    .await
    .unwrap()
}

/// The JSON lines of a run, and the text of its finals.
fn updates(output: &Output) -> (Vec<serde_json::Value>, String) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let updates: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let finals = updates
        .iter()
        .filter(|u| u["is_final"] == true)
        .map(|u| u["committed"].as_str().unwrap().trim().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    (updates, finals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_a_file_and_stdin_pcm_and_names_a_refusal() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = start().await;
    let url = format!("http://{}", server.grpc_addr);
    let (clip, samples) = support::clip("jfk");
    let file = clip.file.to_string_lossy().into_owned();
    let with_key = |input: &str| -> Vec<String> {
        [
            "--server",
            &url,
            "--api-key",
            KEY,
            "--format",
            "jsonl",
            input,
        ]
        .map(String::from)
        .to_vec()
    };

    // A file, at real-time pace: interims while it plays, then finals.
    let output = hearken_stream(with_key(&file), Vec::new()).await;
    assert!(output.status.success(), "{output:?}");
    let (lines, text) = updates(&output);
    let wer = english_wer(&clip.text, &text).wer();
    assert!(wer <= 0.15, "WER {wer:.2}: {text:?}");
    assert!(lines.iter().any(|u| u["is_final"] == false), "interims too");
    assert!(lines.iter().all(|u| u["language"] == "en"), "{lines:?}");
    let words = lines.last().unwrap()["words"].as_array().unwrap().len();
    assert!(words > 0, "final words are timed");

    // Raw PCM16 on stdin at 16 kHz, as fast as it is read.
    let pcm = hearken::audio::f32_to_pcm16le(&samples);
    let output = hearken_stream(with_key("-"), pcm).await;
    assert!(output.status.success(), "{output:?}");
    let (_, text) = updates(&output);
    let wer = english_wer(&clip.text, &text).wer();
    assert!(wer <= 0.15, "stdin WER {wer:.2}: {text:?}");

    // No key: refused, and the error says so.
    let args = ["--server", &url, "--format", "jsonl", &file].map(String::from);
    let output = hearken_stream(args.to_vec(), Vec::new()).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Unauthenticated") && stderr.contains("API key"),
        "{stderr}"
    );
    server.shutdown().await.unwrap();
}

/// `--api-key KEY --format jsonl` and `extra`.
fn keyed(extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--api-key", KEY, "--format", "jsonl"];
    args.extend_from_slice(extra);
    args.into_iter().map(String::from).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaks_the_realtime_protocol_and_tls_with_a_given_ca() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let pki = support::Pki::new();
    let server = start_with(Some(&pki)).await;
    let (clip, _) = support::clip("jfk");
    let file = clip.file.to_string_lossy().into_owned();
    let ca = pki.path("ca.crt").to_string_lossy().into_owned();
    let grpc = format!("https://localhost:{}", server.grpc_addr.port());
    let realtime = format!("wss://localhost:{}", server.http_addr.unwrap().port());

    // gRPC over TLS, trusting the test CA.
    let output = hearken_stream(
        keyed(&["--server", &grpc, "--ca", &ca, "--fast", &file]),
        Vec::new(),
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let wer = english_wer(&clip.text, &updates(&output).1).wer();
    assert!(wer <= 0.15, "gRPC over TLS: WER {wer:.2}");

    // The Realtime protocol over TLS, at real-time pace: tentative words, then finals.
    let output = hearken_stream(
        keyed(&["--realtime-ws", &realtime, "--ca", &ca, &file]),
        Vec::new(),
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let (lines, text) = updates(&output);
    let wer = english_wer(&clip.text, &text).wer();
    assert!(wer <= 0.15, "Realtime: WER {wer:.2}: {text:?}");
    assert!(
        lines
            .iter()
            .any(|u| u["is_final"] == false && u["tentative"] != ""),
        "tentative text while it played: {lines:?}"
    );

    // Without the CA the system's roots do not know the server: refused, and said so.
    let output = hearken_stream(
        keyed(&["--realtime-ws", &realtime, "--fast", &file]),
        Vec::new(),
    )
    .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TLS"), "{stderr}");
    // A wrong key: the HTTP status and the server's message.
    let args = [
        "--realtime-ws",
        &realtime,
        "--ca",
        &ca,
        "--api-key",
        "hk_wrong",
        &file,
    ];
    let output = hearken_stream(args.map(String::from).to_vec(), Vec::new()).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_the_audio_and_still_prints_the_final() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = start().await;
    let (clip, _) = support::clip("jfk");
    let file = clip.file.to_string_lossy().into_owned();
    let url = format!("http://{}", server.grpc_addr);
    let realtime = format!("ws://{}", server.http_addr.unwrap());
    for protocol in [
        ["--server", url.as_str()],
        ["--realtime-ws", realtime.as_str()],
    ] {
        let mut args = keyed(&protocol);
        args.push(file.clone());
        let output = tokio::task::spawn_blocking(move || {
            let child = Command::new(env!("CARGO_BIN_EXE_hearken"))
                .arg("stream")
                .args(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("starting hearken stream");
            // Four seconds into the 11 s clip: "And so, my fellow Americans" has been said.
            std::thread::sleep(std::time::Duration::from_secs(4));
            let sent = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(sent.success());
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        assert!(output.status.success(), "{protocol:?}: {output:?}");
        let (_, text) = updates(&output);
        let heard = hearken::eval::normalize_english(&text);
        assert!(heard.contains("fellow americans"), "{protocol:?}: {text:?}");
        assert!(
            !heard.contains("for your country"),
            "{protocol:?}: the audio went on: {text:?}"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("waiting for the last final"), "{stderr}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_resumed_with_nothing_lost_or_repeated() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = start().await;
    let proxy = CutProxy::start(server.grpc_addr).await.unwrap();
    let (clip, _) = support::clip("jfk");
    let mut args = keyed(&["--server", &format!("http://{}", proxy.addr)]);
    args.push(clip.file.to_string_lossy().into_owned());

    let whole = hearken_stream(args.clone(), Vec::new()).await;
    assert!(whole.status.success(), "{whole:?}");
    let (_, uninterrupted) = updates(&whole);

    // The same run, its connection cut mid-utterance ("my fellow Americans" is being said).
    let cut = async {
        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
        proxy.cut()
    };
    let (output, cuts) = tokio::join!(hearken_stream(args, Vec::new()), cut);
    assert_eq!(cuts, 1, "the stream's connection was cut");
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("dropped 1 time(s)"), "{stderr}");
    let (lines, resumed) = updates(&output);
    // Every update once, in order: each utterance's revisions count up from 1 without a gap.
    let mut revisions: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
    for line in &lines {
        let id = line["utterance_id"].as_u64().unwrap();
        revisions
            .entry(id)
            .or_default()
            .push(line["revision"].as_u64().unwrap());
    }
    for (id, seen) in &revisions {
        let expected: Vec<u64> = (1..=seen.len() as u64).collect();
        assert_eq!(seen, &expected, "utterance {id}");
    }
    // No audio lost or doubled: the transcript is the uninterrupted one's (finals of a
    // stream can differ by a word between runs, as interims land at other moments).
    let drift = english_wer(&uninterrupted, &resumed).wer();
    assert!(drift <= 0.1, "{drift:.3}: {uninterrupted:?} / {resumed:?}");
    let words = |text: &str| text.split_whitespace().count() as i64;
    assert!(
        (words(&uninterrupted) - words(&resumed)).abs() <= 1,
        "{uninterrupted:?} / {resumed:?}"
    );
    let wer = english_wer(&clip.text, &resumed).wer();
    assert!(wer <= 0.15, "WER {wer:.2}: {resumed:?}");
    server.shutdown().await.unwrap();
}

//! `hearken stream` as a user runs it: the binary against a real server on 127.0.0.1:0 with the
//! default model and an API key, a file and stdin PCM, JSON lines out; a missing key is an error
//! that names the refusal.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use hearken::engine::WhisperBackend;
use hearken::eval::english_wer;
use hearken::model::whisper::WhisperModel;
use hearken::server::{RunningServer, ServeConfig};
use hearken::service::tenants::digest_line;
use hearken::service::{Limits, Tenants};

const KEY: &str = "hk_stream_test";

async fn start() -> RunningServer {
    let tenants = Tenants::parse(&format!(
        "[[tenant]]\nid = \"cli\"\nkeys = [\"{}\"]\n",
        digest_line(KEY)
    ))
    .unwrap();
    let config = ServeConfig {
        tenants: Some(tenants),
        ..support::serve_config(Limits::default(), false)
    };
    let model = WhisperModel::load(&support::default_model_dir(), &candle_core::Device::Cpu)
        .expect("load model");
    RunningServer::start(WhisperBackend::from(model), config)
        .await
        .expect("server starts")
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

//! Whole files never invent text: silence, noise, tones, music and a sliver of speech give an
//! empty transcript on every whole-file entry point (gRPC `Recognize` and `RecognizeStream`,
//! HTTP `/v1/audio/transcriptions`, `hearken transcribe`), and speech inside long silence comes
//! back as exactly that speech, at its place in the file. The server runs Silero VAD, as it
//! does by default.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use hearken::grpc::proto::speech_client::SpeechClient;
use hearken::grpc::proto::streaming_recognize_response::Event;
use hearken::grpc::proto::{RecognizeRequest, RecognizeResponse};
use hearken::server::RunningServer;
use tokio_stream::StreamExt;

/// A 16 kHz mono 16-bit WAV made by sox from `effects` (`synth ...`).
fn sox(dir: &Path, name: &str, effects: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("sox")
        .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
        .arg(&path)
        .args(effects)
        .status()
        .expect("sox runs");
    assert!(status.success(), "sox {effects:?}");
    path
}

fn wav_of(dir: &Path, name: &str, samples: &[f32]) -> PathBuf {
    let path = dir.join(name);
    let mut bytes = Vec::new();
    let data = hearken::audio::f32_to_pcm16le(samples);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&16_000u32.to_le_bytes());
    bytes.extend_from_slice(&32_000u32.to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&data);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The non-speech inputs of the issue, by name.
fn non_speech(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let jfk = support::clip("jfk").1;
    // 0.1 s from the middle of "fellow".
    let sliver = &jfk[(1.3 * 16_000.0) as usize..(1.4 * 16_000.0) as usize];
    vec![
        (
            "10 min of digital silence",
            sox(dir, "silence.wav", &["trim", "0", "600"]),
        ),
        (
            "60 s of white noise",
            sox(
                dir,
                "white.wav",
                &["synth", "60", "whitenoise", "vol", "0.1"],
            ),
        ),
        (
            "60 s of pink noise",
            sox(dir, "pink.wav", &["synth", "60", "pinknoise", "vol", "0.1"]),
        ),
        (
            "a pure tone",
            sox(
                dir,
                "tone.wav",
                &["synth", "5", "sine", "440", "vol", "0.5"],
            ),
        ),
        (
            "guitar-like chords",
            sox(
                dir,
                "chords.wav",
                &[
                    "synth", "2", "pl", "G2", "pl", "B2", "pl", "D3", "pl", "G3", "pl", "D4", "pl",
                    "G4", "delay", "0", ".05", ".1", ".15", ".2", ".25", "remix", "-", "fade", "0",
                    "2", ".1", "norm", "-3", "repeat", "4",
                ],
            ),
        ),
        ("0.1 s of speech", wav_of(dir, "sliver.wav", sliver)),
    ]
}

async fn recognize(server: &RunningServer, bytes: Vec<u8>) -> RecognizeResponse {
    let mut client = SpeechClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap()
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    client
        .recognize(RecognizeRequest {
            config: None,
            audio: bytes,
        })
        .await
        .unwrap()
        .into_inner()
}

/// `RecognizeStream`'s final text.
async fn recognize_stream(server: &RunningServer, bytes: Vec<u8>) -> String {
    let mut client = SpeechClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap()
        .max_encoding_message_size(64 << 20);
    let mut responses = client
        .recognize_stream(RecognizeRequest {
            config: None,
            audio: bytes,
        })
        .await
        .unwrap()
        .into_inner();
    let mut text = Vec::new();
    while let Some(response) = responses.next().await {
        if let Some(Event::Transcript(t)) = response.unwrap().event
            && t.is_final
        {
            text.push(t.committed);
        }
    }
    text.join(" ").trim().to_string()
}

async fn http_text(server: &RunningServer, bytes: Vec<u8>) -> String {
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name("audio.wav"),
        )
        .text("model", "tiny.en")
        .text("response_format", "text");
    let response = hearken::tls::http_client()
        .unwrap()
        .post(format!(
            "http://{}/v1/audio/transcriptions",
            server.http_addr.unwrap()
        ))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap().trim().to_string()
}

fn cli_text(path: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_hearken"))
        .args(["transcribe", "--vad", "silero"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_noise_tones_music_and_a_sliver_of_speech_give_no_text_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::silero_server(true).await;
    for (name, path) in non_speech(dir.path()) {
        let bytes = std::fs::read(&path).unwrap();
        let recognized = recognize(&server, bytes.clone()).await;
        assert_eq!(recognized.text, "", "Recognize on {name}");
        assert!(recognized.segments.is_empty(), "Recognize on {name}");
        assert_eq!(
            recognize_stream(&server, bytes.clone()).await,
            "",
            "RecognizeStream on {name}"
        );
        assert_eq!(http_text(&server, bytes).await, "", "HTTP on {name}");
        assert_eq!(cli_text(&path), "", "hearken transcribe on {name}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_inside_long_silence_is_that_speech_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let (clip, jfk) = support::clip("jfk");
    let mut samples = vec![0.0; 60 * 16_000];
    samples.extend(&jfk);
    samples.extend(vec![0.0; 60 * 16_000]);
    let path = wav_of(dir.path(), "embedded.wav", &samples);
    let server = support::silero_server(true).await;
    let response = recognize(&server, std::fs::read(&path).unwrap()).await;
    let wer = hearken::eval::english_wer(&clip.text, &response.text).wer();
    assert!(wer <= 0.1, "WER {wer:.3}: {:?}", response.text);
    assert!((response.duration_seconds - 131.0).abs() < 0.01);
    let first = response.segments.first().expect("segments");
    let last = response.segments.last().unwrap();
    // jfk.wav's speech starts about 0.3 s in and runs to its end, 11 s; the model gets 0.4 s
    // of padding before the speech, and may start the first segment there.
    assert!(
        (59.8..61.0).contains(&first.start),
        "first segment {first:?}"
    );
    assert!((69.5..71.5).contains(&last.end), "last segment {last:?}");
    let cli = cli_text(&path);
    let cli_wer = hearken::eval::english_wer(&clip.text, &cli).wer();
    assert!(
        cli_wer <= 0.1,
        "hearken transcribe WER {cli_wer:.3}: {cli:?}"
    );
    server.shutdown().await.unwrap();
}

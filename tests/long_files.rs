//! A long file through the server both ways (`--long-files batched`, the default, and
//! `sequential`) with the real model: the chunks of the batched way share model calls, yet the
//! answer reads like the sequential one: the same words within a few errors, segments in the
//! file's order and times, ids counting up.

mod support;

use hearken::eval::english_wer;
use hearken::grpc::proto::speech_client::SpeechClient;
use hearken::grpc::proto::{RecognizeRequest, RecognizeResponse};
use hearken::server::{RunningServer, ServeConfig};
use hearken::service::{Limits, LongFiles};

async fn server(long_files: LongFiles) -> RunningServer {
    let config = ServeConfig {
        vad: hearken::session::Detector::Silero(support::silero_vad()),
        long_files,
        ..support::serve_config(Limits::default(), false)
    };
    let model = hearken::model::whisper::WhisperModel::load(
        &support::default_model_dir(),
        &candle_core::Device::Cpu,
    )
    .expect("load model");
    RunningServer::start(hearken::engine::WhisperBackend::from(model), config)
        .await
        .expect("server starts")
}

async fn recognize(server: &RunningServer, samples: &[f32]) -> RecognizeResponse {
    let mut client = SpeechClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap()
        .max_encoding_message_size(64 << 20);
    let wav = hearken::audio::f32_to_pcm16le(samples);
    let config = hearken::grpc::proto::RecognitionConfig {
        encoding: hearken::grpc::proto::AudioEncoding::Linear16 as i32,
        sample_rate_hertz: 16_000,
        ..Default::default()
    };
    client
        .recognize(RecognizeRequest {
            config: Some(config),
            audio: wav,
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_file_batched_reads_like_the_sequential_one() {
    let (clip, samples) = support::clip("librivox_sonnets_1_3");
    let duration = samples.len() as f64 / 16_000.0;
    let mut texts = Vec::new();
    for long_files in [LongFiles::Batched, LongFiles::Sequential] {
        let server = server(long_files).await;
        let before = server.engine().stats();
        let response = recognize(&server, &samples).await;
        let after = server.engine().stats();
        let wer = english_wer(&clip.text, &response.text).wer();
        assert!(
            wer < 0.14,
            "{long_files:?}: WER {wer:.3}: {}",
            response.text
        );
        assert!((response.duration_seconds - duration).abs() < 0.01);
        let segments = &response.segments;
        assert!(
            segments.len() >= 10,
            "{long_files:?}: {} segments",
            segments.len()
        );
        for (i, pair) in segments.windows(2).enumerate() {
            assert_eq!(pair[0].id as usize, i);
            assert!(pair[0].start <= pair[0].end, "{:?}", pair[0]);
            assert!(
                pair[0].end <= pair[1].start + 0.5,
                "{:?} then {:?}",
                pair[0],
                pair[1]
            );
        }
        assert!(segments.last().unwrap().end <= duration + 0.01);
        let jobs = after.jobs_submitted - before.jobs_submitted;
        let largest = after.largest_batch;
        match long_files {
            // 158 s of speech: six chunks or so, queued together, sharing model calls.
            LongFiles::Batched => {
                assert!(jobs >= 5, "{jobs} chunks");
                assert!(largest >= 2, "largest batch {largest}");
            }
            LongFiles::Sequential => assert_eq!(jobs, 1),
        }
        texts.push(response.text);
        server.shutdown().await.unwrap();
    }
    let apart = english_wer(&texts[1], &texts[0]).wer();
    assert!(apart < 0.1, "the two ways differ by {apart:.3}");
}

//! Client side of `StreamingRecognize`, for hearken's own tools (`hearken demo`, `hearken bench
//! stream`): 16 kHz samples sent as LINEAR16 frames, optionally at real-time pace, the way a
//! microphone client would send them.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::proto::streaming_recognize_request::Request;
use super::proto::{AudioChunk, AudioEncoding, RecognitionConfig, StreamingRecognizeRequest};
use crate::audio::{WHISPER_SAMPLE_RATE, f32_to_pcm16le};

/// The request stream of one session: `config` (its encoding and rate are set to LINEAR16 at
/// 16 kHz) then `samples` in `frame` slices, each sent when its audio would have been spoken if
/// `realtime`. The receiver reports when each frame went out (the last is the client's "end of
/// audio", from which final latency is measured; frame `i` ends the audio at `(i + 1) *
/// frame`, from which commit lag is); it is dropped if the server hangs up first.
pub fn pcm16_stream(
    config: RecognitionConfig,
    samples: &[f32],
    frame: Duration,
    realtime: bool,
) -> (
    ReceiverStream<StreamingRecognizeRequest>,
    oneshot::Receiver<Vec<Instant>>,
) {
    let frame_samples = (frame.as_secs_f64() * f64::from(WHISPER_SAMPLE_RATE)).max(1.0) as usize;
    let frames: Vec<Vec<u8>> = samples.chunks(frame_samples).map(f32_to_pcm16le).collect();
    let config = RecognitionConfig {
        encoding: AudioEncoding::Linear16 as i32,
        sample_rate_hertz: WHISPER_SAMPLE_RATE,
        channels: 1,
        ..config
    };
    let (tx, rx) = mpsc::channel(8);
    let (done_tx, done_rx) = oneshot::channel();
    tokio::spawn(async move {
        let started = Instant::now();
        if tx.send(request(Request::Config(config))).await.is_err() {
            return;
        }
        let mut sent = Vec::with_capacity(frames.len());
        for (i, data) in frames.into_iter().enumerate() {
            if realtime {
                tokio::time::sleep_until((started + frame * (i as u32 + 1)).into()).await;
            }
            let chunk = AudioChunk {
                data,
                sequence: i as u64 + 1,
            };
            if tx.send(request(Request::Audio(chunk))).await.is_err() {
                return;
            }
            sent.push(Instant::now());
        }
        let _ = done_tx.send(sent);
    });
    (ReceiverStream::new(rx), done_rx)
}

fn request(request: Request) -> StreamingRecognizeRequest {
    StreamingRecognizeRequest {
        request: Some(request),
    }
}

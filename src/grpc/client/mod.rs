//! Client side of `StreamingRecognize`, for hearken's own tools (`hearken demo`, `hearken
//! stream`, `hearken bench stream`): 16 kHz samples sent as LINEAR16 frames, optionally at
//! real-time pace, or raw PCM from a reader as it arrives, the way a microphone client sends;
//! [`resume::resumable_session`] carries such a stream through dropped connections.

pub mod resume;

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
    let config = RecognitionConfig {
        encoding: AudioEncoding::Linear16 as i32,
        sample_rate_hertz: WHISPER_SAMPLE_RATE,
        channels: 1,
        ..config
    };
    let first = request(Request::Config(config));
    paced_frames(samples, frame, realtime, Some(first), |chunk| {
        request(Request::Audio(chunk))
    })
}

/// `samples` as numbered LINEAR16 chunks of `frame` (for [`resume::resumable_session`]),
/// paced and timed as [`pcm16_stream`] does.
pub fn pcm16_chunks(
    samples: &[f32],
    frame: Duration,
    realtime: bool,
) -> (ReceiverStream<AudioChunk>, oneshot::Receiver<Vec<Instant>>) {
    paced_frames(samples, frame, realtime, None, |chunk| chunk)
}

/// `first`, then `samples` as numbered chunks of `frame` (wrapped by `wrap`), each sent when
/// its audio would have been spoken if `realtime`; the receiver gets when each chunk went.
fn paced_frames<T: Send + 'static>(
    samples: &[f32],
    frame: Duration,
    realtime: bool,
    first: Option<T>,
    wrap: impl Fn(AudioChunk) -> T + Send + 'static,
) -> (ReceiverStream<T>, oneshot::Receiver<Vec<Instant>>) {
    let frame_samples = (frame.as_secs_f64() * f64::from(WHISPER_SAMPLE_RATE)).max(1.0) as usize;
    let frames: Vec<Vec<u8>> = samples.chunks(frame_samples).map(f32_to_pcm16le).collect();
    let (tx, rx) = mpsc::channel(8);
    let (done_tx, done_rx) = oneshot::channel();
    tokio::spawn(async move {
        let started = Instant::now();
        if let Some(first) = first
            && tx.send(first).await.is_err()
        {
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
            if tx.send(wrap(chunk)).await.is_err() {
                return;
            }
            sent.push(Instant::now());
        }
        let _ = done_tx.send(sent);
    });
    (ReceiverStream::new(rx), done_rx)
}

/// The request stream of one session fed by `input`, raw PCM16 (little-endian, `rate` Hz,
/// `channels` interleaved): `config` (set to LINEAR16 at that rate) then 100 ms messages as the
/// bytes arrive, read on a thread of its own (a pipe from a microphone blocks).
pub fn pcm16_reader_stream(
    config: RecognitionConfig,
    input: impl std::io::Read + Send + 'static,
    rate: u32,
    channels: u32,
) -> ReceiverStream<StreamingRecognizeRequest> {
    let config = RecognitionConfig {
        encoding: AudioEncoding::Linear16 as i32,
        sample_rate_hertz: rate,
        channels,
        ..config
    };
    let (tx, rx) = mpsc::channel(8);
    let chunks = pcm16_reader_chunks(input, rate, channels);
    tokio::spawn(async move {
        if tx.send(request(Request::Config(config))).await.is_err() {
            return;
        }
        let mut chunks = chunks;
        while let Some(chunk) = tokio_stream::StreamExt::next(&mut chunks).await {
            if tx.send(request(Request::Audio(chunk))).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// Raw PCM16 from `input` as numbered 100 ms chunks ([`pcm16_frames`]), read on a thread of
/// its own as the bytes arrive.
pub fn pcm16_reader_chunks(
    mut input: impl std::io::Read + Send + 'static,
    rate: u32,
    channels: u32,
) -> ReceiverStream<AudioChunk> {
    let (tx, rx) = mpsc::channel(8);
    std::thread::spawn(move || {
        for (sequence, data) in (1..).zip(pcm16_frames(&mut input, rate, channels)) {
            if tx.blocking_send(AudioChunk { data, sequence }).is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// 100 ms frames of raw PCM16 (`rate` Hz, `channels` interleaved) read from `input` until it
/// ends, each holding whole samples of every channel (a trailing partial one is dropped).
/// Blocking: run it on a thread of its own.
pub fn pcm16_frames(
    input: &mut impl std::io::Read,
    rate: u32,
    channels: u32,
) -> impl Iterator<Item = Vec<u8>> + '_ {
    let sample_bytes = 2 * channels.max(1) as usize;
    let frame_bytes = (rate as usize * sample_bytes / 10).max(sample_bytes);
    let mut buffer = vec![0u8; frame_bytes];
    std::iter::from_fn(move || {
        let filled = read_up_to(input, &mut buffer);
        let whole = filled - filled % sample_bytes;
        (whole > 0).then(|| buffer[..whole].to_vec())
    })
}

/// Fills `buffer` from `input` until it is full or the input ends; the bytes read.
fn read_up_to(input: &mut impl std::io::Read, buffer: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    filled
}

fn request(request: Request) -> StreamingRecognizeRequest {
    StreamingRecognizeRequest {
        request: Some(request),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_100_ms_of_whole_samples_of_every_channel() {
        // 16 kHz stereo: 6,400 bytes per frame; 2.5 frames and a stray byte.
        let bytes: Vec<u8> = (0..16_001u32).map(|i| i as u8).collect();
        let mut input = bytes.as_slice();
        let frames: Vec<Vec<u8>> = pcm16_frames(&mut input, 16_000, 2).collect();
        let sizes: Vec<usize> = frames.iter().map(Vec::len).collect();
        assert_eq!(sizes, [6_400, 6_400, 3_200]);
        assert_eq!(frames[1][0], bytes[6_400]);
        // Less than one sample of every channel is no frame at all.
        assert_eq!(
            pcm16_frames(&mut [1u8, 2, 3].as_slice(), 16_000, 2).count(),
            0
        );
    }
}

//! Entry points for the cargo-fuzz targets in `fuzz/` and for replaying their findings in
//! `cargo test` (`tests/fuzz_regressions.rs`): each takes arbitrary bytes and must return
//! without panicking, however malformed they are.

use std::sync::{Arc, OnceLock};

use crate::audio::stream::{StreamDecoder, StreamEncoding};
use crate::audio::{DecodeLimits, decode_bytes};
use crate::engine::{Engine, EngineConfig, ScriptedBackend};
use crate::service::{Limits, ServedModel, Service};
use crate::telemetry::Metrics;

/// Lets panics unwind to the server's own `catch_unwind` guards, as they do in production.
///
/// libFuzzer's panic hook aborts at the panic itself, before a guard can catch it; but a
/// decoder that panics on crafted input (symphonia's MKV reader does) is caught and answered
/// with a 400 by the server. Targets call this once at start-up, so only panics that escape
/// every guard end the run (libfuzzer-sys aborts on those when they reach its boundary).
pub fn unwind_to_guards() {
    std::panic::set_hook(Box::new(|_| {}));
}

/// A fuzz target: arbitrary bytes in, no panic out.
pub type Target = fn(&[u8]);

/// The targets, by name: what `fuzz/run.sh` runs and the regression test replays.
pub const TARGETS: [(&str, Target); 5] = [
    ("container", container),
    ("raw_stream", raw_stream),
    ("realtime_events", realtime_events),
    ("multipart_form", multipart_form),
    ("stream_config", stream_config),
];

/// Container sniffing and decoding of an upload, within a 60 s limit.
pub fn container(data: &[u8]) {
    let _ = decode_bytes(data.to_vec(), None, &DecodeLimits::max_seconds(60.0));
}

/// Raw PCM / G.711 stream framing: the first byte picks the encoding, the next four the rate,
/// the next one the channels, and each following byte the length of the next chunk.
pub fn raw_stream(data: &[u8]) {
    let [kind, r0, r1, r2, r3, channels, rest @ ..] = data else {
        return;
    };
    let encoding = match kind % 5 {
        0 => StreamEncoding::Linear16,
        1 => StreamEncoding::Float32Le,
        2 => StreamEncoding::Mulaw,
        3 => StreamEncoding::Alaw,
        _ => StreamEncoding::Container,
    };
    let rate = u32::from_le_bytes([*r0, *r1, *r2, *r3]);
    let Ok(decoder) = StreamDecoder::new(encoding, rate, u32::from(*channels)) else {
        return;
    };
    let mut decoder = decoder
        .with_max_buffered_bytes(1 << 20)
        .with_decode_limits(DecodeLimits::max_seconds(60.0));
    let mut rest = rest;
    while let [len, tail @ ..] = rest {
        let (chunk, next) = tail.split_at((*len as usize).min(tail.len()));
        if decoder.push(chunk).is_err() {
            return;
        }
        rest = next;
    }
    let _ = decoder.finish();
}

/// Realtime client events, one per line, into a live session.
pub fn realtime_events(data: &[u8]) {
    crate::http::fuzz_events(service(), &String::from_utf8_lossy(data));
}

/// An OpenAI `multipart/form-data` transcription request body.
pub fn multipart_form(data: &[u8]) {
    crate::http::fuzz_form(data);
}

/// A protobuf `RecognitionConfig`, validated as a stream's first message.
pub fn stream_config(data: &[u8]) {
    crate::grpc::fuzz_config(service(), data);
}

/// One serving core on the scripted backend, shared by every input.
fn service() -> &'static Arc<Service> {
    static SERVICE: OnceLock<Arc<Service>> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let engine = Engine::start(ScriptedBackend::multilingual(), EngineConfig::default());
        let model = ServedModel {
            id: "scripted".into(),
            device: "cpu".into(),
        };
        Arc::new(Service::new(
            Arc::new(engine),
            model,
            Limits::default(),
            Metrics::in_memory(),
        ))
    })
}

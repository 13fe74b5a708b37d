//! The candle Silero VAD against onnxruntime running silero-vad's own ONNX export.
//!
//! `tests/fixtures/silero/probs.txt` holds onnxruntime's probability for each 32 ms chunk of
//! jfk.wav, 3 s of silence and 2 s of another speaker (made once by `make_fixture.py` beside
//! it), so the test needs no ONNX runtime.

mod support;

use hearken::model::silero::{CHUNK_SAMPLES, SileroState};
use hearken::session::{Detector, Vad, VadConfig, VadEvent, speech_regions};

const FIXTURE: &str = include_str!("fixtures/silero/probs.txt");

fn fixture_input() -> Vec<f32> {
    let mut audio = support::clip("jfk").1;
    audio.extend(std::iter::repeat_n(0.0, 3 * 16_000));
    audio.extend_from_slice(&support::clip("ls_61-70968-0000").1[..2 * 16_000]);
    audio
}

fn reference() -> Vec<f32> {
    FIXTURE
        .lines()
        .map(|line| line.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn probabilities_match_onnxruntime_within_1e_4() {
    let vad = support::silero_vad();
    let expected = reference();
    assert!(
        expected.len() >= 400,
        "fixture has {} chunks",
        expected.len()
    );
    let probs = vad
        .probabilities(&fixture_input(), &mut SileroState::new())
        .unwrap();
    let diff = max_abs_diff(&probs, &expected);
    assert!(diff <= 1e-4, "max abs diff {diff}");
    // The fixture is not trivially flat: it holds confident speech and confident silence.
    assert!(expected.iter().filter(|&&p| p > 0.9).count() > 100);
    assert!(expected.iter().filter(|&&p| p < 0.1).count() > 100);
}

#[test]
fn feeding_chunk_by_chunk_gives_the_batched_probabilities() {
    let vad = support::silero_vad();
    let input = fixture_input();
    let mut state = SileroState::new();
    let streamed: Vec<f32> = input
        .chunks_exact(CHUNK_SAMPLES)
        .flat_map(|chunk| vad.probabilities(chunk, &mut state).unwrap())
        .collect();
    assert!(max_abs_diff(&streamed, &reference()) <= 1e-4);
}

/// Deterministic white noise of RMS `rms` (xorshift), `seconds` long.
fn noise(seconds: f64, rms: f32, seed: u64) -> Vec<f32> {
    let mut state = seed.max(1);
    let peak = rms * 3f32.sqrt();
    (0..(seconds * 16_000.0) as usize)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            peak * ((state >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0)
        })
        .collect()
}

fn tone(seconds: f64, hz: f64, amplitude: f32) -> Vec<f32> {
    (0..(seconds * 16_000.0) as usize)
        .map(|i| amplitude * (2.0 * std::f64::consts::PI * hz * i as f64 / 16_000.0).sin() as f32)
        .collect()
}

/// Whether the whole-file gate finds any speech.
fn contains_speech(samples: &[f32], gate: &VadConfig) -> bool {
    !speech_regions(samples, gate).is_empty()
}

fn silero_gate() -> VadConfig {
    VadConfig::whole_file(Detector::Silero(support::silero_vad()))
}

#[test]
fn the_whole_file_gate_refuses_noise_and_tones_and_passes_speech() {
    let gate = silero_gate();
    let loud_noise = noise(5.0, 0.1, 3);
    let a_tone = tone(3.0, 440.0, 0.3);
    assert!(!contains_speech(&vec![0.0; 16_000 * 10], &gate));
    assert!(!contains_speech(&loud_noise, &gate));
    assert!(!contains_speech(&a_tone, &gate));
    // The energy detector takes a steady tone that starts after a quiet second for speech;
    // this is what Silero is for.
    let mut tone_after_quiet = vec![0.0; 16_000];
    tone_after_quiet.extend(&a_tone);
    assert!(contains_speech(
        &tone_after_quiet,
        &VadConfig::whole_file(Detector::Energy)
    ));
    assert!(!contains_speech(&tone_after_quiet, &gate));
    assert!(contains_speech(&support::clip("jfk").1, &gate));
}

#[test]
fn a_stream_finds_speech_between_noise_pads_at_its_place() {
    let mut signal = noise(2.0, 0.02, 5);
    signal.extend(support::clip("jfk").1);
    signal.extend(noise(2.0, 0.02, 6));
    let mut vad = Vad::new(&VadConfig {
        detector: Detector::Silero(support::silero_vad()),
        ..VadConfig::default()
    });
    let events: Vec<VadEvent> = signal.chunks(320).flat_map(|c| vad.push(c)).collect();
    let starts: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            VadEvent::SpeechStarted { at_seconds } => Some(*at_seconds),
            _ => None,
        })
        .collect();
    let ends: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            VadEvent::SpeechEnded { at_seconds } => Some(*at_seconds),
            _ => None,
        })
        .collect();
    // jfk.wav's first word starts about 0.3 s in and its speech runs to its end (11 s); the
    // noise after it must not hold the utterance open for long.
    assert!(
        starts.first().is_some_and(|&s| (2.1..2.6).contains(&s)),
        "{events:?}"
    );
    assert!(
        starts.iter().all(|&s| s >= 2.0),
        "a start in the noise: {events:?}"
    );
    assert!(
        ends.last().is_some_and(|&e| (12.2..13.5).contains(&e)),
        "{events:?}"
    );
}

/// A Silero server streams speech between loud noise pads: the session says it gates with
/// SILERO, no utterance opens in the noise, and the final is the clip's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silero_server_transcribes_speech_between_noise_and_nothing_else() {
    use hearken::grpc::proto::speech_client::SpeechClient;
    use hearken::grpc::proto::streaming_recognize_request::Request;
    use hearken::grpc::proto::streaming_recognize_response::Event;
    use hearken::grpc::proto::{
        AudioChunk, AudioEncoding, RecognitionConfig, StreamingRecognizeRequest,
        VoiceActivityDetector, speech_event,
    };
    use tokio_stream::StreamExt;

    let (clip, speech) = support::clip("jfk");
    let mut signal = noise(2.0, 0.05, 7);
    signal.extend(speech);
    signal.extend(noise(3.0, 0.05, 8));
    let server = support::silero_server(false).await;
    let mut client = SpeechClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap();
    let mut messages = vec![StreamingRecognizeRequest {
        request: Some(Request::Config(RecognitionConfig {
            encoding: AudioEncoding::Linear16 as i32,
            sample_rate_hertz: 16_000,
            ..Default::default()
        })),
    }];
    for (i, frame) in signal.chunks(1600).enumerate() {
        messages.push(StreamingRecognizeRequest {
            request: Some(Request::Audio(AudioChunk {
                data: hearken::audio::f32_to_pcm16le(frame),
                sequence: i as u64 + 1,
            })),
        });
    }
    let mut responses = client
        .streaming_recognize(tokio_stream::iter(messages))
        .await
        .unwrap()
        .into_inner();
    let (mut detector, mut starts, mut finals) = (None, Vec::new(), Vec::new());
    while let Some(response) = responses.next().await {
        match response.unwrap().event {
            Some(Event::SessionStarted(started)) => {
                detector = started.effective_config.map(|c| c.vad);
            }
            Some(Event::Speech(event))
                if event.kind == speech_event::Kind::SpeechStarted as i32 =>
            {
                starts.push(event.time);
            }
            Some(Event::Transcript(t)) if t.is_final => finals.push(t.committed),
            _ => {}
        }
    }
    assert_eq!(detector, Some(VoiceActivityDetector::Silero as i32));
    assert!(
        !starts.is_empty() && starts.iter().all(|&s| s >= 2.0),
        "starts {starts:?}"
    );
    let text = finals.join(" ");
    let wer = hearken::eval::english_wer(&clip.text, &text).wer();
    assert!(wer <= 0.15, "WER {wer:.3}: {text:?}");
    server.shutdown().await.unwrap();
}

/// A file's config picks its detector: a tone after a quiet second is no speech to the
/// server's Silero (the model never runs) but is to the energy detector a client asks for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recognize_config_picks_the_detector_for_its_file() {
    use hearken::grpc::proto::speech_client::SpeechClient;
    use hearken::grpc::proto::{
        AudioEncoding, RecognitionConfig, RecognizeRequest, VoiceActivityDetector,
    };

    let server = support::silero_server(false).await;
    let mut client = SpeechClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap();
    let mut audio = vec![0.0; 16_000];
    audio.extend(tone(3.0, 440.0, 0.3));
    let request = |vad: VoiceActivityDetector| RecognizeRequest {
        config: Some(RecognitionConfig {
            encoding: AudioEncoding::Linear16 as i32,
            sample_rate_hertz: 16_000,
            vad: vad as i32,
            ..Default::default()
        }),
        audio: hearken::audio::f32_to_pcm16le(&audio),
    };
    let submitted = || server.service.engine().stats().jobs_submitted;
    let before = submitted();
    let silero = client
        .recognize(request(VoiceActivityDetector::Unspecified))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(silero.text, "");
    assert_eq!(submitted(), before, "the model ran on a tone");
    client
        .recognize(request(VoiceActivityDetector::Energy))
        .await
        .unwrap();
    assert_eq!(
        submitted(),
        before + 1,
        "the energy detector let the tone through"
    );
    server.shutdown().await.unwrap();
}

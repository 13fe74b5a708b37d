//! The whole-file pipeline both front ends share (gRPC `Recognize`/`RecognizeStream`, HTTP
//! `/v1/audio/transcriptions` and `/translations`): check the length the payload declares,
//! decode it off the async runtime within the length limit, find its speech, skip the model
//! when there is none, cut out long silences when there are some ([`speech_only`]) or, for a
//! recording longer than one window, cut it at its pauses into chunks transcribed side by side
//! ([`LongFiles`]), and submit it to the engine with the way back to the recording's times.

use crate::audio::stream::{StreamDecoder, StreamEncoding};
use crate::audio::{AudioError, DecodeLimits, WHISPER_SAMPLE_RATE, decode_bytes};
use crate::audio::{ChunkPlan, MAX_CHUNK_SECONDS, Splice};
use crate::engine::{Engine, EngineError, JobHandle, JobOptions};
use crate::model::whisper::decode::Transcript;
use crate::session::{Detector, VadConfig, speech_regions};

use super::result_cache::{CacheKey, KeyParts, ResultCache};
use super::{Caller, Service, ServiceError};

/// How a payload's bytes are encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioFormat {
    /// A container (WAV, FLAC, MP3, Ogg, WebM, M4A), sniffed from its bytes; the file name's
    /// extension, when there is one, is a hint for formats that cannot be sniffed.
    Sniffed {
        /// `mp3`, `wav`, …
        extension_hint: Option<String>,
    },
    /// Headerless samples (or a container type declared by the client).
    Declared {
        /// The encoding.
        encoding: StreamEncoding,
        /// Samples per second.
        sample_rate: u32,
        /// Interleaved channels.
        channels: u32,
    },
}

impl Service {
    /// Decodes `bytes` to 16 kHz mono on the blocking pool (a long MP3 must not stall the
    /// runtime), refuses audio over `max_audio_seconds` (from the declared length before
    /// decoding when there is one, else as soon as decoding passes it), and queues the job.
    /// Audio without speech never reaches the model: it gets an empty transcript at once.
    /// The audio counts against the caller's per-minute allowance.
    pub async fn submit_file(
        &self,
        caller: &Caller,
        bytes: Vec<u8>,
        format: AudioFormat,
        job: &JobOptions,
    ) -> Result<JobHandle, ServiceError> {
        let detector = self.detector().clone();
        self.submit_file_gated(caller, bytes, format, job, detector)
            .await
    }

    /// [`Self::submit_file`] with the speech found by `detector` instead of the server's (a
    /// gRPC config's `vad`).
    pub async fn submit_file_gated(
        &self,
        caller: &Caller,
        bytes: Vec<u8>,
        format: AudioFormat,
        job: &JobOptions,
        detector: Detector,
    ) -> Result<JobHandle, ServiceError> {
        let (bytes, cached) = self
            .cached_result(caller, bytes, &format, job, &detector)
            .await?;
        if let Some((_, _, Some(transcript))) = &cached {
            // The same audio still counts against the caller's allowance; the model is not run.
            self.charge_audio(caller, transcript.duration)?;
            return Ok(JobHandle::completed(Transcript::clone(transcript)));
        }
        let limits = DecodeLimits::max_seconds(self.limits().max_audio_seconds);
        let samples = decode(bytes, format, limits).await?;
        let seconds = samples.len() as f64 / f64::from(WHISPER_SAMPLE_RATE);
        self.charge_audio(caller, seconds)?;
        let gate = VadConfig::whole_file(detector);
        let long_files = self.long_files();
        // The detector reads the whole file: minutes of audio are seconds of work.
        let speech = tokio::task::spawn_blocking(move || prepare(samples, &gate, long_files))
            .await
            .map_err(|_| EngineError::Model("the speech detector panicked".into()))?;
        speech.log(seconds);
        let handle = speech.submit(self.engine(), job, seconds)?;
        Ok(match cached {
            Some((cache, key, None)) => handle.on_done(move |t| cache.insert(key, t)),
            _ => handle,
        })
    }

    /// `bytes` back and, with the result cache on: the cache, this request's key, and the
    /// transcript when an identical request (same tenant, bytes and options) was answered
    /// before.
    async fn cached_result(
        &self,
        caller: &Caller,
        bytes: Vec<u8>,
        format: &AudioFormat,
        job: &JobOptions,
        detector: &Detector,
    ) -> Result<(Vec<u8>, Option<CacheLookup>), ServiceError> {
        let Some(cache) = self.result_cache() else {
            return Ok((bytes, None));
        };
        let options = KeyParts {
            tenant: caller.tenant_id(),
            model: self.model_id(),
            format,
            job,
            detector: detector.name(),
            long_files: self.long_files(),
        }
        .describe();
        // Hashing up to a message's 32 MiB takes tens of milliseconds: off the async runtime.
        let (bytes, key) = tokio::task::spawn_blocking(move || {
            let key = CacheKey::new(&bytes, &options);
            (bytes, key)
        })
        .await
        .map_err(|_| EngineError::Model("hashing the request panicked".into()))?;
        let hit = cache.get(&key);
        self.metrics().service().result_cache_lookup(hit.is_some());
        Ok((bytes, Some((cache.clone(), key, hit))))
    }
}

/// The result cache, a request's key in it, and what it held for that key.
type CacheLookup = (ResultCache, CacheKey, Option<std::sync::Arc<Transcript>>);

/// How whole files longer than one window are transcribed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LongFiles {
    /// Cut at the speech's pauses into chunks of up to 30 s, transcribed side by side in shared
    /// batches: a long file finishes in a fraction of its window-after-window time.
    #[default]
    Batched,
    /// Window after window, each conditioned on the text before it (Whisper's own way).
    Sequential,
}

/// Audio kept around each stretch of speech (faster-whisper's `speech_pad_ms`): breath and
/// soft word edges the detector leaves out.
pub const SPEECH_PAD_SECONDS: f64 = 0.4;
/// Silences this long or longer are cut out of a whole file transcribed in one piece
/// (faster-whisper's `vad_filter` `min_silence_duration_ms`): shorter pauses stay inside the
/// speech handed to the model, which keeps its context across them.
const CUT_PAUSE_SECONDS: f64 = 2.0;
/// Cutting pays only when it removes this share of the audio or more; below it the joints cost
/// the model context for little saving.
const MIN_CUT_SHARE: f64 = 0.1;

/// What of a whole recording the model gets.
#[derive(Debug)]
pub enum SpeechOnly {
    /// No speech at all: the transcript is empty and the model is not run.
    Nothing,
    /// Speech throughout (or silences too short to cut): the recording as it is.
    Whole(Vec<f32>),
    /// The speech, joined, and the map back to the recording's times.
    Cut(Vec<f32>, Splice),
    /// The recording and its chunks, transcribed side by side ([`LongFiles::Batched`]).
    Chunked(Vec<f32>, ChunkPlan),
}

impl SpeechOnly {
    /// Queues the model's part on `engine` (none when there is no speech: the handle then
    /// holds the empty transcript of the recording's `seconds`).
    pub fn submit(
        self,
        engine: &Engine,
        job: &JobOptions,
        seconds: f64,
    ) -> Result<JobHandle, EngineError> {
        match self {
            Self::Nothing => Ok(JobHandle::completed(no_speech(seconds, job))),
            Self::Whole(samples) => engine.submit(samples.into(), job),
            Self::Cut(samples, splice) => Ok(engine.submit(samples.into(), job)?.through(splice)),
            Self::Chunked(samples, plan) => engine.submit_chunked(samples.into(), plan, job),
        }
    }

    /// Records in the debug log what the model will get of a recording of `seconds`.
    pub fn log(&self, seconds: f64) {
        match self {
            Self::Nothing => {
                tracing::debug!(seconds, "no speech in the audio; the model is not run")
            }
            Self::Whole(_) => {}
            Self::Cut(_, splice) => tracing::debug!(
                seconds,
                kept = splice.kept_seconds(),
                "transcribing the speech only"
            ),
            Self::Chunked(_, plan) => tracing::debug!(
                seconds,
                kept = plan.kept_seconds(),
                chunks = plan.len(),
                "transcribing the speech in chunks side by side"
            ),
        }
    }
}

/// [`speech_only`], and with [`LongFiles::Batched`] a recording whose speech fills more than
/// one chunk is cut into chunks instead.
pub fn prepare(samples: Vec<f32>, gate: &VadConfig, long_files: LongFiles) -> SpeechOnly {
    let regions = speech_regions(&samples, gate);
    if regions.is_empty() {
        return SpeechOnly::Nothing;
    }
    if long_files == LongFiles::Batched {
        let plan = ChunkPlan::new(&samples, &regions, SPEECH_PAD_SECONDS, MAX_CHUNK_SECONDS);
        if plan.len() > 1 {
            return SpeechOnly::Chunked(samples, plan);
        }
    }
    cut_silences(samples, &bridge_pauses(&regions, CUT_PAUSE_SECONDS))
}

/// `regions` with every pause shorter than `pause` bridged: one stretch of speech across it.
fn bridge_pauses(regions: &[(f64, f64)], pause: f64) -> Vec<(f64, f64)> {
    let mut bridged: Vec<(f64, f64)> = Vec::with_capacity(regions.len());
    for &(start, end) in regions {
        match bridged.last_mut() {
            Some(last) if start - last.1 < pause => last.1 = end,
            _ => bridged.push((start, end)),
        }
    }
    bridged
}

/// Finds the speech in `samples` with `gate`'s detector and cuts out silences worth cutting.
pub fn speech_only(samples: Vec<f32>, gate: &VadConfig) -> SpeechOnly {
    prepare(samples, gate, LongFiles::Sequential)
}

/// The recording without its silences between `regions`, when that removes enough to pay.
fn cut_silences(samples: Vec<f32>, regions: &[(f64, f64)]) -> SpeechOnly {
    let (joined, splice) = Splice::keep(&samples, regions, SPEECH_PAD_SECONDS);
    if splice.kept_seconds() > (1.0 - MIN_CUT_SHARE) * splice.original_seconds() {
        SpeechOnly::Whole(samples)
    } else {
        SpeechOnly::Cut(joined, splice)
    }
}

/// The transcript of audio without speech: no text, no segments. The language is the one
/// asked for, else English (there is nothing to detect a language from).
pub(crate) fn no_speech(seconds: f64, job: &JobOptions) -> Transcript {
    Transcript {
        text: String::new(),
        segments: Vec::new(),
        language: job.language.clone().unwrap_or_else(|| "en".to_string()),
        language_probability: None,
        duration: seconds,
    }
}

/// Decodes a whole payload to 16 kHz mono off the async runtime. A decoder that panics is
/// reported as undecodable audio (the input made it panic), never as a server failure.
async fn decode(
    bytes: Vec<u8>,
    format: AudioFormat,
    limits: DecodeLimits,
) -> Result<Vec<f32>, ServiceError> {
    let label = match &format {
        AudioFormat::Sniffed { .. } => "upload".to_string(),
        AudioFormat::Declared { encoding, .. } => format!("{encoding:?}"),
    };
    let decoded = tokio::task::spawn_blocking(move || decode_now(bytes, format, &limits))
        .await
        .map_err(|_| AudioError::DecoderPanic { format: label })?;
    decoded.map_err(too_long)
}

fn decode_now(
    bytes: Vec<u8>,
    format: AudioFormat,
    limits: &DecodeLimits,
) -> Result<Vec<f32>, AudioError> {
    match format {
        AudioFormat::Sniffed { extension_hint } => {
            Ok(decode_bytes(bytes, extension_hint.as_deref(), limits)?.samples)
        }
        AudioFormat::Declared {
            encoding,
            sample_rate,
            channels,
        } => {
            let mut decoder = StreamDecoder::new(encoding, sample_rate, channels)?
                .with_max_buffered_bytes(bytes.len())
                .with_decode_limits(*limits);
            encoding.check_whole_samples(bytes.len())?;
            if let Some(seconds) = encoding.seconds_in(bytes.len(), sample_rate, channels) {
                limits.check_declared(seconds)?;
            }
            let mut samples = decoder.push(&bytes)?;
            samples.extend(decoder.finish()?);
            Ok(samples)
        }
    }
}

/// Over-long audio is the service's `AudioTooLong`, whichever way it was found.
fn too_long(error: AudioError) -> ServiceError {
    match error {
        AudioError::TooLong {
            seconds,
            limit_seconds,
            declared,
        } => ServiceError::AudioTooLong {
            seconds,
            limit_seconds,
            at_least: !declared,
        },
        other => ServiceError::Audio(other),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::backend::scripted::{WORDS, say, silence};
    use crate::engine::{Engine, EngineConfig, ScriptedBackend};
    use crate::service::{Limits, ServedModel};
    use crate::telemetry::Metrics;

    fn service(max_audio_seconds: f64) -> Service {
        service_over(ScriptedBackend::english(), max_audio_seconds)
    }

    fn service_over(backend: ScriptedBackend, max_audio_seconds: f64) -> Service {
        let engine = Engine::start(backend, EngineConfig::default());
        let limits = Limits {
            max_audio_seconds,
            ..Limits::default()
        };
        let model = ServedModel {
            id: "scripted".into(),
            device: "cpu".into(),
        };
        Service::new(Arc::new(engine), model, limits, Metrics::in_memory())
    }

    fn pcm16(samples: &[f32]) -> Vec<u8> {
        crate::audio::f32_to_pcm16le(samples)
    }

    fn linear16() -> AudioFormat {
        AudioFormat::Declared {
            encoding: StreamEncoding::Linear16,
            sample_rate: 16_000,
            channels: 1,
        }
    }

    #[tokio::test]
    async fn decodes_submits_and_transcribes() {
        let service = service(60.0);
        let audio = pcm16(&say(&["six", "two"]));
        let handle = service
            .submit_file(
                &Caller::anonymous(),
                audio,
                linear16(),
                &JobOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(handle.finish().await.unwrap().text, "six two");
    }

    #[tokio::test]
    async fn long_silences_are_cut_out_and_times_still_point_into_the_file() {
        let service = service(120.0);
        let mut audio = silence(30.0);
        audio.extend(say(&["six"]));
        audio.extend(silence(40.0));
        audio.extend(say(&["two"]));
        audio.extend(silence(10.0));
        let job = JobOptions {
            word_timestamps: true,
            ..JobOptions::default()
        };
        let mut handle = service
            .submit_file(&Caller::anonymous(), pcm16(&audio), linear16(), &job)
            .await
            .unwrap();
        let mut progress = Vec::new();
        let transcript = loop {
            match handle.next().await.unwrap() {
                crate::engine::JobEvent::Window(w) => {
                    progress.push((w.done_seconds, w.total_seconds))
                }
                crate::engine::JobEvent::Done(t) => break t,
                crate::engine::JobEvent::Failed(e) => panic!("{e}"),
            }
        };
        assert_eq!(transcript.text, "six two");
        assert!(
            (transcript.duration - 81.3).abs() < 0.01,
            "{}",
            transcript.duration
        );
        let words: Vec<(f64, f64)> = transcript
            .segments
            .iter()
            .flat_map(|s| s.words.iter().map(|w| (w.start, w.end)))
            .collect();
        // "six" sounds from 30.0 s, "two" from 70.65 s: the 40 s between never reached the
        // model, yet the times are the file's.
        assert_eq!(words.len(), 2, "{transcript:?}");
        assert!((words[0].0 - 30.0).abs() < 0.1, "{words:?}");
        assert!((words[1].0 - 70.65).abs() < 0.1, "{words:?}");
        assert!(
            progress
                .iter()
                .all(|&(_, total)| (total - 81.3).abs() < 0.01)
        );
    }

    #[test]
    fn pauses_under_the_cut_length_are_bridged() {
        let regions = [(1.0, 2.0), (2.5, 4.0), (7.0, 8.0), (9.9, 10.0)];
        assert_eq!(
            bridge_pauses(&regions, 2.0),
            [(1.0, 4.0), (7.0, 10.0)],
            "0.5 s and 1.9 s bridged, 3 s kept"
        );
    }

    #[tokio::test]
    async fn a_long_file_is_cut_at_pauses_into_chunks_decoded_side_by_side() {
        // 60 words without a pause the detector would end speech at (39 s), 20 s of silence,
        // then 10 more words.
        let words: Vec<&str> = WORDS.iter().copied().cycle().take(70).collect();
        let mut audio = say(&words[..60]);
        audio.extend(silence(20.0));
        audio.extend(say(&words[60..]));
        let expected = words.join(" ");
        let job = JobOptions {
            word_timestamps: true,
            ..JobOptions::default()
        };
        for long_files in [LongFiles::Batched, LongFiles::Sequential] {
            let backend = ScriptedBackend::english();
            let service = service_over(backend.clone(), 3_600.0).with_long_files(long_files);
            let handle = service
                .submit_file(&Caller::anonymous(), pcm16(&audio), linear16(), &job)
                .await
                .unwrap();
            let transcript = handle.finish().await.unwrap();
            let batches = backend.batches();
            match long_files {
                LongFiles::Batched => {
                    assert_eq!(transcript.text, expected);
                    assert!(batches[0] >= 2, "chunks side by side: {batches:?}");
                    // The last ten words keep their place after the 20 s of silence.
                    let last = transcript.segments.last().unwrap().words.last().unwrap();
                    let end = audio.len() as f64 / 16_000.0 - 0.25;
                    assert!((last.end - end).abs() < 0.1, "{last:?} vs {end}");
                }
                LongFiles::Sequential => {
                    assert!(batches.iter().all(|&rows| rows == 1), "{batches:?}")
                }
            }
        }
    }

    #[tokio::test]
    async fn refuses_audio_over_the_limit_and_bytes_that_are_not_audio() {
        let service = service(2.0);
        let long = pcm16(&silence(2.5));
        let err = service
            .submit_file(
                &Caller::anonymous(),
                long,
                linear16(),
                &JobOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ServiceError::AudioTooLong { .. }), "{err:?}");
        let sniffed = AudioFormat::Sniffed {
            extension_hint: None,
        };
        let err = service
            .submit_file(
                &Caller::anonymous(),
                b"definitely not audio".to_vec(),
                sniffed,
                &JobOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ServiceError::Audio(_)), "{err:?}");
        assert_eq!(err.grpc_code(), tonic::Code::InvalidArgument);
    }

    fn declared(encoding: StreamEncoding, sample_rate: u32) -> AudioFormat {
        AudioFormat::Declared {
            encoding,
            sample_rate,
            channels: 1,
        }
    }

    /// Deterministic white noise at `amplitude`.
    fn noise(seconds: f64, amplitude: f32) -> Vec<f32> {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        (0..(seconds * 16_000.0) as usize)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                amplitude * ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
            })
            .collect()
    }

    #[tokio::test]
    async fn audio_without_speech_gets_no_text_and_never_reaches_the_model() {
        let backend = ScriptedBackend::english();
        let service = service_over(backend.clone(), 3_600.0);
        let tone: Vec<f32> = (0..160_000)
            .map(|i| 0.5 * (std::f32::consts::TAU * 1_000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let mut click = silence(2.0);
        click.extend(&say(&["nine"])[..1_600]); // 0.1 s of a word
        click.extend(silence(2.0));
        for (name, audio) in [
            ("10 min of digital silence", silence(600.0)),
            ("60 s of white noise", noise(60.0, 0.3)),
            ("a 1 kHz tone", tone),
            ("0.1 s of a word", click),
        ] {
            let seconds = audio.len() as f64 / 16_000.0;
            let handle = service
                .submit_file(
                    &Caller::anonymous(),
                    pcm16(&audio),
                    linear16(),
                    &JobOptions::default(),
                )
                .await
                .unwrap();
            let transcript = handle.finish().await.unwrap();
            assert_eq!(transcript.text, "", "{name}");
            assert!(transcript.segments.is_empty(), "{name}");
            assert!((transcript.duration - seconds).abs() < 0.01, "{name}");
        }
        assert!(backend.batches().is_empty(), "{:?}", backend.batches());
        let speech = service
            .submit_file(
                &Caller::anonymous(),
                pcm16(&say(&["four"])),
                linear16(),
                &JobOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(speech.finish().await.unwrap().text, "four");
        assert_eq!(backend.batches().len(), 1);
    }

    #[tokio::test]
    async fn a_claimed_rate_outside_8_to_192_khz_is_refused_naming_it() {
        let service = service(3_600.0);
        // 16 KB claiming 1 Hz once resampled to 1.25 GB before the length check.
        for rate in [1, 7_999, 192_001] {
            let err = service
                .submit_file(
                    &Caller::anonymous(),
                    vec![0; 16_000],
                    declared(StreamEncoding::Linear16, rate),
                    &JobOptions::default(),
                )
                .await
                .unwrap_err();
            assert_eq!(err.grpc_code(), tonic::Code::InvalidArgument, "{err}");
            assert_eq!(err.http_status(), http::StatusCode::BAD_REQUEST);
            assert!(
                err.to_string()
                    .contains(&format!("sample rate {rate} Hz is out of range")),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_decoding() {
        let service = service(60.0);
        // Two hours of 8 kHz mu-law: refused from its byte count, nothing decoded.
        let err = service
            .submit_file(
                &Caller::anonymous(),
                vec![0xFF; 8_000 * 7_200],
                declared(StreamEncoding::Mulaw, 8_000),
                &JobOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ServiceError::AudioTooLong { seconds, at_least: false, .. } if seconds == 7_200.0
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "audio is 7200 s long; this server accepts at most 60 s per request \
             (--max-audio-seconds)"
        );
    }

    #[tokio::test]
    async fn a_non_finite_sample_is_refused_not_silently_transcribed_around() {
        let service = service(3_600.0);
        let mut audio = say(&["one", "two", "three"]);
        audio[20_000] = f32::NAN;
        let bytes: Vec<u8> = audio.iter().flat_map(|s| s.to_le_bytes()).collect();
        let err = service
            .submit_file(
                &Caller::anonymous(),
                bytes,
                declared(StreamEncoding::Float32Le, 16_000),
                &JobOptions::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.grpc_code(), tonic::Code::InvalidArgument);
        assert!(
            err.to_string().contains("sample 20000 (at 1.250 s) is NaN"),
            "{err}"
        );
    }
}

//! Incremental audio input for live streams: bytes in as the client sends them, 16 kHz mono out.
//!
//! A streaming session receives audio in chunks of arbitrary size and wants every sample as soon as
//! it can be known. [`StreamDecoder`] converts raw PCM or G.711 chunk by chunk, carries an
//! interleaved frame that a chunk boundary split over to the next chunk, and resamples with a
//! stateful windowed-sinc filter whose output, concatenated over all pushes and [`finish`], equals
//! the whole-buffer [`resample`](super::resample) of the same audio to float rounding, on the same
//! timeline: output sample `k` is input time `k / 16000`, and the filter's latency stays inside
//! the decoder until more input or [`finish`] arrives. Containers (WAV, FLAC, Ogg, MP3, ...) cannot
//! be decoded from an arbitrary prefix, so their bytes are buffered, up to a limit, and decoded
//! whole at [`finish`].
//!
//! [`finish`]: StreamDecoder::finish

use super::resample::StreamResampler;
use super::{
    AudioError, DecodeLimits, WHISPER_SAMPLE_RATE, check_sample_rate, decode_bytes,
    find_invalid_sample, pcm,
};

/// Default cap on the bytes a [`StreamEncoding::Container`] stream may buffer before `finish`.
pub const MAX_CONTAINER_BYTES: usize = 64 * 1024 * 1024;

/// The most interleaved channels a raw stream may carry.
const MAX_CHANNELS: u32 = 8;

/// How a stream's bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEncoding {
    /// Signed 16-bit little-endian PCM, channels interleaved.
    Linear16,
    /// IEEE 32-bit float little-endian PCM, channels interleaved.
    Float32Le,
    /// G.711 mu-law, one byte per sample.
    Mulaw,
    /// G.711 A-law, one byte per sample.
    Alaw,
    /// A container file (FLAC, Ogg, WAV, MP3, ...): buffered and decoded whole at `finish`.
    Container,
}

impl StreamEncoding {
    /// The name used in error messages.
    fn name(self) -> &'static str {
        match self {
            Self::Linear16 => "pcm_s16le",
            Self::Float32Le => "pcm_f32le",
            Self::Mulaw => "mulaw",
            Self::Alaw => "alaw",
            Self::Container => "container",
        }
    }

    /// Seconds of audio in `len` bytes of this raw encoding at `sample_rate` with `channels`;
    /// `None` for containers (their length is in their header) or a zero rate or channel count.
    pub fn seconds_in(self, len: usize, sample_rate: u32, channels: u32) -> Option<f64> {
        if self == Self::Container || sample_rate == 0 || channels == 0 {
            return None;
        }
        let frames = len / (self.width() * channels as usize);
        Some(frames as f64 / f64::from(sample_rate))
    }

    /// Checks that a whole raw upload of `len` bytes holds whole samples (containers always
    /// pass). Uploads are refused as a whole, not as a stream chunk, so the message says so.
    pub fn check_whole_samples(self, len: usize) -> Result<(), AudioError> {
        let width = self.width();
        if len.is_multiple_of(width) {
            Ok(())
        } else {
            Err(AudioError::PartialSample {
                encoding: self.name(),
                len,
                width,
            })
        }
    }

    /// Bytes per sample of a raw encoding.
    fn width(self) -> usize {
        match self {
            Self::Linear16 => 2,
            Self::Float32Le => 4,
            Self::Mulaw | Self::Alaw | Self::Container => 1,
        }
    }
}

/// Turns a client's audio chunks into Whisper's 16 kHz mono samples as they arrive.
pub struct StreamDecoder {
    encoding: StreamEncoding,
    sample_rate: u32,
    state: State,
    bytes_in: u64,
    samples_out: u64,
    finished: bool,
}

enum State {
    Raw {
        channels: usize,
        /// Samples of an interleaved frame the last chunk ended inside.
        carry: Vec<f32>,
        /// Boxed: rubato's filter state is large next to the container variant.
        resampler: Box<StreamResampler>,
    },
    Container {
        bytes: Vec<u8>,
        limit: usize,
        decode: DecodeLimits,
    },
}

impl StreamDecoder {
    /// A decoder for `encoding` at `sample_rate_hz` with `channels` interleaved channels.
    ///
    /// Raw encodings need a rate in [`ACCEPTED_SAMPLE_RATES`](super::ACCEPTED_SAMPLE_RATES) and
    /// `1..=8` channels (G.711's customary 8000 Hz is for the caller to fill in); a container
    /// carries its own format, so both are ignored.
    pub fn new(
        encoding: StreamEncoding,
        sample_rate_hz: u32,
        channels: u32,
    ) -> Result<Self, AudioError> {
        let state = if encoding == StreamEncoding::Container {
            State::Container {
                bytes: Vec::new(),
                limit: MAX_CONTAINER_BYTES,
                decode: DecodeLimits::NONE,
            }
        } else {
            check_sample_rate(sample_rate_hz)?;
            if !(1..=MAX_CHANNELS).contains(&channels) {
                return Err(AudioError::ChannelsOutOfRange {
                    channels,
                    max: MAX_CHANNELS,
                });
            }
            // About 10 ms of input per filter block keeps the held-back audio short.
            let block = (sample_rate_hz / 100).clamp(32, 1024) as usize;
            State::Raw {
                channels: channels as usize,
                carry: Vec::new(),
                resampler: Box::new(StreamResampler::new(
                    sample_rate_hz,
                    WHISPER_SAMPLE_RATE,
                    block,
                )?),
            }
        };
        Ok(Self {
            encoding,
            sample_rate: sample_rate_hz,
            state,
            bytes_in: 0,
            samples_out: 0,
            finished: false,
        })
    }

    /// Replaces the [`MAX_CONTAINER_BYTES`] cap on buffered container bytes; no effect on raw
    /// encodings, which buffer no more than one filter block.
    pub fn with_max_buffered_bytes(mut self, max: usize) -> Self {
        if let State::Container { limit, .. } = &mut self.state {
            *limit = max;
        }
        self
    }

    /// Bounds the decode of a container stream at [`finish`](Self::finish) (raw streams are
    /// live and have no length limit).
    pub fn with_decode_limits(mut self, limits: DecodeLimits) -> Self {
        if let State::Container { decode, .. } = &mut self.state {
            *decode = limits;
        }
        self
    }

    /// Accepts the next chunk and returns the 16 kHz mono samples it made available (none for
    /// containers, which decode at [`finish`](Self::finish)).
    ///
    /// A raw chunk must hold whole samples; an interleaved frame may span chunks.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<f32>, AudioError> {
        if self.finished {
            return Err(AudioError::StreamFinished);
        }
        let received = self.bytes_in + bytes.len() as u64;
        let mut out = Vec::new();
        match &mut self.state {
            State::Container {
                bytes: buf, limit, ..
            } => {
                if received > *limit as u64 {
                    return Err(AudioError::StreamTooLarge {
                        limit: *limit,
                        received,
                    });
                }
                buf.extend_from_slice(bytes);
            }
            State::Raw {
                channels,
                carry,
                resampler,
            } => {
                let samples = to_samples(self.encoding, bytes)?;
                check_samples(
                    self.encoding,
                    self.sample_rate,
                    self.bytes_in,
                    &samples,
                    *channels,
                )?;
                let mono = downmix_carrying(samples, *channels, carry);
                resampler.push(&mono, &mut out)?;
            }
        }
        self.bytes_in = received;
        self.samples_out += out.len() as u64;
        Ok(out)
    }

    /// Ends the stream and returns the samples still held back: the resampler's tail, or for a
    /// container the whole decoded audio. Later calls return nothing.
    ///
    /// A container decode is CPU work proportional to the stream; async callers should run it
    /// off the runtime's worker threads. An empty stream yields no samples, not an error.
    pub fn finish(&mut self) -> Result<Vec<f32>, AudioError> {
        if std::mem::replace(&mut self.finished, true) {
            return Ok(Vec::new());
        }
        let out = match &mut self.state {
            State::Container { bytes, .. } if bytes.is_empty() => Vec::new(),
            State::Container { bytes, decode, .. } => {
                decode_bytes(std::mem::take(bytes), None, decode)?.samples
            }
            State::Raw {
                channels,
                carry,
                resampler,
            } => {
                if !carry.is_empty() {
                    return Err(AudioError::PartialFrame {
                        samples: carry.len(),
                        channels: *channels,
                    });
                }
                let mut out = Vec::new();
                resampler.finish(&mut out)?;
                out
            }
        };
        self.samples_out += out.len() as u64;
        Ok(out)
    }

    /// Total 16 kHz samples returned so far; divided by 16000, the stream time reached.
    pub fn samples_out(&self) -> u64 {
        self.samples_out
    }

    /// Total bytes accepted so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// The encoding this decoder was opened with.
    pub fn encoding(&self) -> StreamEncoding {
        self.encoding
    }
}

/// Decodes one raw chunk, which must hold whole samples.
fn to_samples(encoding: StreamEncoding, bytes: &[u8]) -> Result<Vec<f32>, AudioError> {
    let width = encoding.width();
    if !bytes.len().is_multiple_of(width) {
        return Err(AudioError::ChunkPartialSample {
            encoding: encoding.name(),
            len: bytes.len(),
            width,
        });
    }
    Ok(match encoding {
        StreamEncoding::Linear16 => pcm::pcm16le_to_f32(bytes)?,
        StreamEncoding::Float32Le => pcm::f32le_bytes_to_f32(bytes)?,
        StreamEncoding::Mulaw => pcm::mulaw_to_f32(bytes),
        StreamEncoding::Alaw => pcm::alaw_to_f32(bytes),
        StreamEncoding::Container => unreachable!("containers are buffered, not decoded per chunk"),
    })
}

/// Refuses a float chunk holding NaN, an infinity or a huge value, naming where it is in the
/// stream (`bytes_before` bytes in); integer encodings cannot hold one.
fn check_samples(
    encoding: StreamEncoding,
    sample_rate: u32,
    bytes_before: u64,
    samples: &[f32],
    channels: usize,
) -> Result<(), AudioError> {
    if encoding != StreamEncoding::Float32Le {
        return Ok(());
    }
    let Some((index, value)) = find_invalid_sample(samples) else {
        return Ok(());
    };
    let sample = bytes_before / encoding.width() as u64 + index as u64;
    let frame = sample / channels as u64;
    Err(AudioError::InvalidSample {
        format: encoding.name().to_string(),
        frame,
        seconds: frame as f64 / f64::from(sample_rate),
        value,
    })
}

/// Downmixes the whole frames of `carry ++ samples`, keeping a trailing partial frame in `carry`.
fn downmix_carrying(samples: Vec<f32>, channels: usize, carry: &mut Vec<f32>) -> Vec<f32> {
    if channels == 1 {
        return samples;
    }
    carry.extend_from_slice(&samples);
    let whole = carry.len() / channels * channels;
    let mono = pcm::downmix_interleaved(&carry[..whole], channels);
    carry.drain(..whole);
    mono
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::resample;
    use std::f64::consts::TAU;

    /// A 0.5-amplitude chirp sweeping 100 Hz to 7 kHz, inside the band every rate here keeps.
    fn chirp(rate: u32, seconds: f64) -> Vec<f32> {
        let n = (f64::from(rate) * seconds) as usize;
        let (f0, f1) = (100.0, 7_000.0);
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                let phase = TAU * (f0 * t + (f1 - f0) * t * t / (2.0 * seconds));
                (0.5 * phase.sin()) as f32
            })
            .collect()
    }

    fn f32_bytes(samples: &[f32]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    fn pcm16_bytes(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    /// Deterministic pseudo-random chunk sizes in `1..=max` units of `unit` bytes.
    fn random_chunks(bytes: &[u8], unit: usize, max: usize, seed: u64) -> Vec<&[u8]> {
        let mut state = seed;
        let mut rest = bytes;
        let mut chunks = Vec::new();
        while !rest.is_empty() {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let units = 1 + (state >> 33) as usize % max;
            let (chunk, tail) = rest.split_at((units * unit).min(rest.len()));
            chunks.push(chunk);
            rest = tail;
        }
        chunks
    }

    /// Pushes every chunk, then finishes; returns the concatenated output.
    fn feed(decoder: &mut StreamDecoder, chunks: &[&[u8]]) -> Vec<f32> {
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(decoder.push(chunk).unwrap());
        }
        out.extend(decoder.finish().unwrap());
        out
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn chunked_stream_matches_whole_buffer_resample() {
        for (rate, seed) in [(48_000, 1), (44_100, 2), (8_000, 3), (22_050, 4)] {
            let input = chirp(rate, 2.0);
            let whole = resample(&input, rate, 16_000).unwrap();
            let bytes = f32_bytes(&input);
            let mut decoder = StreamDecoder::new(StreamEncoding::Float32Le, rate, 1).unwrap();
            let streamed = feed(&mut decoder, &random_chunks(&bytes, 4, 700, seed));
            assert_eq!(streamed.len(), 32_000, "{rate} Hz");
            assert_eq!(streamed.len(), whole.len(), "{rate} Hz");
            let diff = max_abs_diff(&streamed, &whole);
            assert!(diff < 1e-5, "{rate} Hz: max abs diff {diff}");
            assert_eq!(decoder.samples_out(), 32_000);
            assert_eq!(decoder.bytes_in(), bytes.len() as u64);
        }
    }

    #[test]
    fn clicks_land_at_their_time_throughout_the_stream() {
        for rate in [48_000u32, 44_100, 8_000] {
            // Output samples whose time is also a whole input sample at each of these rates.
            let expected = [1_600, 16_000, 40_000];
            let mut input = vec![0.0f32; rate as usize * 3];
            for k in expected {
                assert_eq!(k * rate as usize % 16_000, 0);
                input[k * rate as usize / 16_000] = 1.0;
            }
            let bytes = f32_bytes(&input);
            let mut decoder = StreamDecoder::new(StreamEncoding::Float32Le, rate, 1).unwrap();
            let out = feed(
                &mut decoder,
                &random_chunks(&bytes, 4, 500, u64::from(rate)),
            );
            for k in expected {
                let window = &out[k - 20..=k + 20];
                let peak = (0..window.len())
                    .max_by(|&a, &b| window[a].total_cmp(&window[b]))
                    .unwrap();
                assert_eq!(
                    peak,
                    20,
                    "{rate} Hz click at sample {k} peaked at {}",
                    k + peak - 20
                );
                // A sub-sample shift tilts the main lobe: for this filter the neighbours differ by
                // about 2.1x the shift (in samples) times the peak, so 0.04 bounds it near 0.02
                // samples (44.1 kHz's alignment leaves 0.009); half a sample would read about 1.
                let asymmetry = (out[k - 1] - out[k + 1]).abs() / out[k];
                assert!(
                    asymmetry < 0.04,
                    "{rate} Hz click at {k}: asymmetry {asymmetry}"
                );
            }
        }
    }

    #[test]
    fn latency_is_held_back_not_added() {
        for rate in [8_000u32, 44_100, 48_000] {
            let input = chirp(rate, 1.0);
            let mut decoder = StreamDecoder::new(StreamEncoding::Float32Le, rate, 1).unwrap();
            let mut frames_in = 0u64;
            for chunk in input.chunks(rate as usize / 50) {
                decoder.push(&f32_bytes(chunk)).unwrap();
                frames_in += chunk.len() as u64;
                let due = frames_in * 16_000 / u64::from(rate);
                let held = due - decoder.samples_out();
                // One ~10 ms filter block plus half of the 256-tap filter, at most 30 ms.
                assert!(
                    held <= 480,
                    "{rate} Hz: {held} samples held after {frames_in} frames"
                );
            }
            decoder.finish().unwrap();
            assert_eq!(decoder.samples_out(), 16_000);
        }
    }

    #[test]
    fn sixteen_khz_mono_passes_through_bit_exact_without_delay() {
        let samples: Vec<i16> = (0..4_000)
            .map(|i| ((i * 37) % 65_536 - 32_768) as i16)
            .collect();
        let bytes = pcm16_bytes(&samples);
        let mut decoder = StreamDecoder::new(StreamEncoding::Linear16, 16_000, 1).unwrap();
        for chunk in random_chunks(&bytes, 2, 300, 7) {
            let out = decoder.push(chunk).unwrap();
            assert_eq!(out, pcm::pcm16le_to_f32(chunk).unwrap());
        }
        assert!(decoder.finish().unwrap().is_empty());
        assert_eq!(decoder.samples_out(), 4_000);
    }

    #[test]
    fn stereo_frames_split_across_chunks_are_carried_over() {
        let frames: Vec<[i16; 2]> = (0..3_001i32)
            .map(|i| [(i * 11 % 20_000) as i16, -((i * 7 % 15_000) as i16)])
            .collect();
        let interleaved: Vec<i16> = frames.iter().flatten().copied().collect();
        let bytes = pcm16_bytes(&interleaved);
        let mono: Vec<f32> = frames
            .iter()
            .map(|[l, r]| (f32::from(*l) + f32::from(*r)) / 32_768.0 * 0.5)
            .collect();
        // 3-sample (6-byte) chunks end mid-frame every other time.
        let mut decoder = StreamDecoder::new(StreamEncoding::Linear16, 16_000, 2).unwrap();
        let split: Vec<&[u8]> = bytes.chunks(6).collect();
        assert_eq!(feed(&mut decoder, &split), mono);
        // And through the resampler, in random whole-sample chunks.
        let mut decoder = StreamDecoder::new(StreamEncoding::Linear16, 44_100, 2).unwrap();
        let streamed = feed(&mut decoder, &random_chunks(&bytes, 2, 301, 9));
        let whole = resample(&mono, 44_100, 16_000).unwrap();
        assert_eq!(streamed.len(), whole.len());
        assert!(max_abs_diff(&streamed, &whole) < 1e-5);
    }

    #[test]
    fn a_chunk_with_a_partial_sample_is_an_error() {
        let mut decoder = StreamDecoder::new(StreamEncoding::Linear16, 16_000, 1).unwrap();
        let err = decoder.push(&[0, 0, 0]).unwrap_err();
        assert!(matches!(
            err,
            AudioError::ChunkPartialSample {
                len: 3,
                width: 2,
                ..
            }
        ));
        let message = err.to_string();
        assert!(
            message.contains("pcm_s16le") && message.contains("whole"),
            "{message}"
        );
        let mut decoder = StreamDecoder::new(StreamEncoding::Float32Le, 16_000, 2).unwrap();
        assert!(decoder.push(&[0; 6]).is_err());
    }

    #[test]
    fn a_stream_ending_mid_frame_is_an_error() {
        let mut decoder = StreamDecoder::new(StreamEncoding::Linear16, 16_000, 2).unwrap();
        decoder.push(&[0; 6]).unwrap();
        let err = decoder.finish().unwrap_err();
        assert!(matches!(
            err,
            AudioError::PartialFrame {
                samples: 1,
                channels: 2
            }
        ));
    }

    #[test]
    fn mulaw_at_8khz_is_upsampled_like_the_whole_buffer() {
        let bytes: Vec<u8> = (0..8_000u32).map(|i| (i * 131 % 256) as u8).collect();
        let mut decoder = StreamDecoder::new(StreamEncoding::Mulaw, 8_000, 1).unwrap();
        let streamed = feed(&mut decoder, &random_chunks(&bytes, 1, 333, 11));
        let whole = resample(&pcm::mulaw_to_f32(&bytes), 8_000, 16_000).unwrap();
        assert_eq!(streamed.len(), 16_000);
        assert_eq!(streamed.len(), whole.len());
        assert!(max_abs_diff(&streamed, &whole) < 1e-5);
        let mut decoder = StreamDecoder::new(StreamEncoding::Alaw, 8_000, 1).unwrap();
        let streamed = feed(&mut decoder, &random_chunks(&bytes, 1, 333, 12));
        let whole = resample(&pcm::alaw_to_f32(&bytes), 8_000, 16_000).unwrap();
        assert!(max_abs_diff(&streamed, &whole) < 1e-5);
    }

    /// A minimal PCM16 WAV file.
    fn wav(samples: &[i16], rate: u32, channels: u16) -> Vec<u8> {
        let data = pcm16_bytes(samples);
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
        out.extend_from_slice(&(2 * channels).to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&data);
        out
    }

    #[test]
    fn container_bytes_are_decoded_at_finish() {
        let samples: Vec<i16> = chirp(22_050, 0.5)
            .iter()
            .flat_map(|&s| [(s * 32_767.0) as i16, 0])
            .collect();
        let file = wav(&samples, 22_050, 2);
        let mut decoder = StreamDecoder::new(StreamEncoding::Container, 0, 0).unwrap();
        for chunk in random_chunks(&file, 1, 999, 5) {
            assert!(decoder.push(chunk).unwrap().is_empty());
        }
        let out = decoder.finish().unwrap();
        let mono =
            pcm::downmix_interleaved(&pcm::pcm16le_to_f32(&pcm16_bytes(&samples)).unwrap(), 2);
        assert_eq!(out, resample(&mono, 22_050, 16_000).unwrap());
        assert_eq!(decoder.samples_out(), out.len() as u64);
        assert_eq!(decoder.bytes_in(), file.len() as u64);
    }

    #[test]
    fn container_buffer_is_capped() {
        let mut decoder = StreamDecoder::new(StreamEncoding::Container, 16_000, 1)
            .unwrap()
            .with_max_buffered_bytes(100);
        decoder.push(&[0; 60]).unwrap();
        let err = decoder.push(&[0; 60]).unwrap_err();
        assert!(matches!(
            err,
            AudioError::StreamTooLarge {
                limit: 100,
                received: 120
            }
        ));
        assert!(err.to_string().contains("100-byte"), "{err}");
    }

    #[test]
    fn formats_are_validated_with_the_bad_value_named() {
        let new = |rate, channels| StreamDecoder::new(StreamEncoding::Linear16, rate, channels);
        for (rate, channels, needle) in [
            (
                0,
                1,
                "sample rate 0 Hz is out of range: accepted rates are 8000 to 192000 Hz",
            ),
            (1, 1, "sample rate 1 Hz is out of range"),
            (7_999, 1, "7999 Hz"),
            (192_001, 1, "192001 Hz"),
            (16_000, 0, "count 0"),
            (16_000, 9, "count 9"),
        ] {
            let err = new(rate, channels).err().expect("invalid format accepted");
            assert!(err.to_string().contains(needle), "{err}");
        }
        assert!(new(192_000, 8).is_ok() && new(8_000, 1).is_ok());
        assert!(StreamDecoder::new(StreamEncoding::Mulaw, 0, 1).is_err());
    }

    #[test]
    fn non_finite_and_huge_float_samples_are_refused_where_they_are() {
        for (bad, shown) in [
            (f32::NAN, "NaN"),
            (f32::INFINITY, "inf"),
            (-1e9, "-1000000000"),
        ] {
            // Stereo at 8 kHz: frame 20_000 is 2.5 s in; the bad sample is its right channel,
            // in the third chunk.
            let mut samples = vec![0.25f32; 2 * 24_000];
            samples[2 * 20_000 + 1] = bad;
            let bytes = f32_bytes(&samples);
            let mut decoder = StreamDecoder::new(StreamEncoding::Float32Le, 8_000, 2).unwrap();
            let mut chunks = bytes.chunks(64_000);
            decoder.push(chunks.next().unwrap()).unwrap();
            decoder.push(chunks.next().unwrap()).unwrap();
            let err = decoder.push(chunks.next().unwrap()).unwrap_err();
            let AudioError::InvalidSample { frame, seconds, .. } = err else {
                panic!("{err:?}");
            };
            assert_eq!((frame, seconds), (20_000, 2.5));
            let message = err.to_string();
            assert!(
                message.contains("pcm_f32le: sample 20000 (at 2.500 s)") && message.contains(shown),
                "{message}"
            );
        }
        // Float audio somewhat over full scale is legitimate.
        let mut decoder = StreamDecoder::new(StreamEncoding::Float32Le, 16_000, 1).unwrap();
        assert_eq!(decoder.push(&f32_bytes(&[1.5, -3.0])).unwrap().len(), 2);
    }

    #[test]
    fn a_container_stream_is_decoded_within_its_length_limit() {
        let wav = |seconds: usize| {
            let mut out = Vec::new();
            let spec = wav_header(8_000, seconds * 8_000);
            out.extend(spec);
            out.extend(vec![0u8; seconds * 8_000 * 2]);
            out
        };
        let limited = |bytes: &[u8]| {
            let mut decoder = StreamDecoder::new(StreamEncoding::Container, 0, 0)
                .unwrap()
                .with_decode_limits(DecodeLimits::max_seconds(2.0));
            decoder.push(bytes).unwrap();
            decoder.finish()
        };
        assert_eq!(limited(&wav(2)).unwrap().len(), 32_000);
        let err = limited(&wav(3)).unwrap_err();
        assert!(
            matches!(err, AudioError::TooLong { declared: true, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "audio is 3.0 s long (from its header); the limit is 2 s"
        );
    }

    /// A 44-byte PCM16 mono WAV header for `frames` frames at `rate`.
    fn wav_header(rate: u32, frames: usize) -> Vec<u8> {
        let data = (frames * 2) as u32;
        let mut h = Vec::new();
        h.extend(b"RIFF");
        h.extend((36 + data).to_le_bytes());
        h.extend(b"WAVEfmt ");
        h.extend(16u32.to_le_bytes());
        h.extend(1u16.to_le_bytes()); // PCM
        h.extend(1u16.to_le_bytes()); // mono
        h.extend(rate.to_le_bytes());
        h.extend((rate * 2).to_le_bytes());
        h.extend(2u16.to_le_bytes());
        h.extend(16u16.to_le_bytes());
        h.extend(b"data");
        h.extend(data.to_le_bytes());
        h
    }

    #[test]
    fn decoder_can_move_into_a_session_task() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<StreamDecoder>();
    }

    #[test]
    fn a_finished_stream_takes_no_more_audio() {
        let mut decoder = StreamDecoder::new(StreamEncoding::Linear16, 48_000, 1).unwrap();
        decoder.push(&[1; 200]).unwrap();
        assert!(!decoder.finish().unwrap().is_empty());
        assert!(decoder.finish().unwrap().is_empty());
        assert!(matches!(
            decoder.push(&[0; 2]),
            Err(AudioError::StreamFinished)
        ));
        let mut empty = StreamDecoder::new(StreamEncoding::Container, 0, 0).unwrap();
        assert!(empty.finish().unwrap().is_empty());
    }
}

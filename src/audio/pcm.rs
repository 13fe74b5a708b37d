//! Raw sample conversions for audio that arrives without a container.
//!
//! Streaming clients (gRPC, websockets, telephony bridges) send bare little-endian PCM16, `f32`
//! or G.711 bytes with the format agreed out of band; these helpers turn such payloads into the
//! `f32` samples in `[-1, 1)` the rest of the pipeline uses. Integer formats are scaled by 2^15
//! so that a PCM16 payload and the same audio decoded from a WAV file give identical samples.

use super::AudioError;

/// Full scale of 16-bit audio, the divisor that maps `i16` (and G.711's 14/13-bit values) to `f32`.
const I16_SCALE: f32 = 32_768.0;

/// Converts little-endian signed 16-bit PCM to `f32`.
///
/// An odd byte count is an error rather than a silently dropped byte, because it means the
/// client's framing is off and every later sample would be garbage.
pub fn pcm16le_to_f32(bytes: &[u8]) -> Result<Vec<f32>, AudioError> {
    check_width(bytes, 2, "pcm_s16le")?;
    Ok(bytes
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / I16_SCALE)
        .collect())
}

/// Encodes samples as little-endian signed 16-bit PCM, clipping to full scale: what a
/// streaming client sends as LINEAR16 (the benchmark and tests use it).
pub fn f32_to_pcm16le(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32_767.0).round() as i16).to_le_bytes())
        .collect()
}

/// A mono 16-bit PCM WAV file of `samples` at `rate`: what a client uploads when it has
/// samples rather than a file (the load generator's HTTP target).
pub fn f32_to_wav_pcm16(samples: &[f32], rate: u32) -> Vec<u8> {
    let data = f32_to_pcm16le(samples);
    let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&36u32.saturating_add(size).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&data);
    out
}

/// Converts little-endian IEEE `f32` bytes to samples; the length must be a multiple of 4.
pub fn f32le_bytes_to_f32(bytes: &[u8]) -> Result<Vec<f32>, AudioError> {
    check_width(bytes, 4, "pcm_f32le")?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Decodes G.711 mu-law (North American/Japanese telephony) to `f32`.
pub fn mulaw_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .iter()
        .map(|&b| f32::from(mulaw_to_i16(b)) / I16_SCALE)
        .collect()
}

/// Decodes G.711 A-law (European telephony) to `f32`.
pub fn alaw_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .iter()
        .map(|&b| f32::from(alaw_to_i16(b)) / I16_SCALE)
        .collect()
}

/// Averages interleaved frames down to mono.
///
/// Averaging (rather than summing or taking the left channel) keeps the level in range and keeps
/// speech that was panned to one side. A trailing partial frame is dropped; `channels == 0`
/// yields no samples.
pub fn downmix_interleaved(samples: &[f32], channels: usize) -> Vec<f32> {
    match channels {
        0 => Vec::new(),
        1 => samples.to_vec(),
        n => {
            let scale = 1.0 / n as f32;
            samples
                .chunks_exact(n)
                .map(|frame| frame.iter().sum::<f32>() * scale)
                .collect()
        }
    }
}

fn check_width(bytes: &[u8], width: usize, encoding: &'static str) -> Result<(), AudioError> {
    if bytes.len().is_multiple_of(width) {
        Ok(())
    } else {
        Err(AudioError::PartialSample {
            encoding,
            len: bytes.len(),
            width,
        })
    }
}

/// ITU-T G.711 mu-law expansion (the classic Sun `ulaw2linear`), range ±32124.
fn mulaw_to_i16(byte: u8) -> i16 {
    const BIAS: i16 = 0x84;
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let magnitude = (((i16::from(u & 0x0F)) << 3) + BIAS) << exponent;
    if u & 0x80 != 0 {
        BIAS - magnitude
    } else {
        magnitude - BIAS
    }
}

/// ITU-T G.711 A-law expansion (the classic Sun `alaw2linear`), range ±32256.
fn alaw_to_i16(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let exponent = (a >> 4) & 0x07;
    let mantissa = i16::from(a & 0x0F) << 4;
    let magnitude = match exponent {
        0 => mantissa + 8,
        e => (mantissa + 0x108) << (e - 1),
    };
    // In A-law a set sign bit means positive, the opposite of mu-law.
    if a & 0x80 != 0 { magnitude } else { -magnitude }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm16_scales_to_unit_range() {
        let bytes = [0x00, 0x80, 0xFF, 0x7F, 0x00, 0x00, 0x00, 0x40];
        let s = pcm16le_to_f32(&bytes).unwrap();
        assert_eq!(s, vec![-1.0, 32_767.0 / 32_768.0, 0.0, 0.5]);
    }

    #[test]
    fn pcm16_odd_length_is_an_error() {
        let err = pcm16le_to_f32(&[0, 0, 0]).unwrap_err();
        assert!(matches!(
            err,
            AudioError::PartialSample {
                len: 3,
                width: 2,
                ..
            }
        ));
        assert!(err.to_string().contains("pcm_s16le"));
    }

    #[test]
    fn f32_bytes_round_trip_and_reject_partial() {
        let bytes: Vec<u8> = [0.25f32, -1.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(f32le_bytes_to_f32(&bytes).unwrap(), vec![0.25, -1.0]);
        assert!(f32le_bytes_to_f32(&bytes[..5]).is_err());
    }

    #[test]
    fn mulaw_known_values() {
        // 0xFF/0x7F are the two zeros; 0x80/0x00 full scale; 0xEF is segment 1, mantissa 0.
        for (code, linear) in [
            (0xFF, 0),
            (0x7F, 0),
            (0x80, 32_124),
            (0x00, -32_124),
            (0xEF, 132),
        ] {
            assert_eq!(mulaw_to_i16(code), linear, "mu-law {code:#04x}");
        }
        assert_eq!(mulaw_to_f32(&[0x80])[0], 32_124.0 / 32_768.0);
    }

    #[test]
    fn alaw_known_values() {
        for (code, linear) in [(0xD5, 8), (0x55, -8), (0xAA, 32_256), (0x2A, -32_256)] {
            assert_eq!(alaw_to_i16(code), linear, "A-law {code:#04x}");
        }
        assert_eq!(alaw_to_f32(&[0x2A])[0], -32_256.0 / 32_768.0);
    }

    #[test]
    fn g711_decoding_is_monotonic_per_sign() {
        // Mu-law codes 0x80..=0xFF run from the loudest positive value down to zero.
        let positive: Vec<i16> = (0x80..=0xFFu8).map(mulaw_to_i16).collect();
        assert!(positive.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn downmix_averages_frames() {
        assert_eq!(
            downmix_interleaved(&[1.0, 0.0, 0.5, 0.5, 9.0], 2),
            vec![0.5, 0.5]
        );
        assert_eq!(downmix_interleaved(&[0.1, 0.2], 1), vec![0.1, 0.2]);
        assert!(downmix_interleaved(&[0.1], 0).is_empty());
    }
}

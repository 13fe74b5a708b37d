//! Human-readable names for the container and codec of an input.
//!
//! symphonia 0.5's prober returns a reader without saying which format matched, and names only
//! the codecs it can decode. Logs, `DecodedAudio::format` and error messages still need to say
//! "wav/pcm_s24le" or "ogg audio uses the opus codec", so the leading bytes and codec ids are
//! named here. These names are labels only: symphonia alone decides how the bytes are parsed.

use symphonia::core::codecs::{
    CODEC_TYPE_AC4, CODEC_TYPE_ATRAC1, CODEC_TYPE_ATRAC3, CODEC_TYPE_ATRAC3PLUS, CODEC_TYPE_ATRAC9,
    CODEC_TYPE_DCA, CODEC_TYPE_EAC3, CODEC_TYPE_MONKEYS_AUDIO, CODEC_TYPE_MUSEPACK,
    CODEC_TYPE_OPUS, CODEC_TYPE_SPEEX, CODEC_TYPE_TTA, CODEC_TYPE_WAVPACK, CODEC_TYPE_WMA,
    CodecType,
};

/// How many leading bytes [`sniff`] and [`wav_sample_rate`] look at: enough for a WAV's chunk
/// list to reach `fmt ` past the usual `JUNK`, `bext` or `LIST` chunks.
pub(super) const HEAD_LEN: usize = 4096;

/// The sample rate in a WAV header's `fmt ` chunk, when it lies within `head`.
///
/// Read before symphonia parses the file, because its WAV reader panics on a rate of 0.
pub(super) fn wav_sample_rate(head: &[u8]) -> Option<u32> {
    let u32_at = |at: usize| Some(u32::from_le_bytes(head.get(at..at + 4)?.try_into().ok()?));
    if sniff(head) != Some("wav") {
        return None;
    }
    let mut at = 12usize;
    loop {
        let id = head.get(at..at + 4)?;
        let size = u32_at(at + 4)? as usize;
        if id == b"fmt " {
            // WAVEFORMAT: format tag (2), channels (2), samples per second (4).
            return u32_at(at + 12);
        }
        at = at.checked_add(8 + size + (size & 1))?;
    }
}

/// Names the container from its signature, or `None` when the stream starts with an ID3 tag or
/// no known signature (then [`from_codec`] names it once the codec is known).
pub(super) fn sniff(head: &[u8]) -> Option<&'static str> {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    if at(0, b"RIFF") && at(8, b"WAVE") {
        Some("wav")
    } else if at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC")) {
        Some("aiff")
    } else if at(0, b"fLaC") {
        Some("flac")
    } else if at(0, b"OggS") {
        Some("ogg")
    } else if at(4, b"ftyp") {
        Some("mp4")
    } else if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        Some("mkv")
    } else if at(0, b"caff") {
        Some("caf")
    } else {
        mpeg_frame(head)
    }
}

/// Makes an in-memory WAV's `data` chunk (and the RIFF size) claim no more than the bytes
/// present. A WAV written to a pipe says 0xFFFFFFFF, a cut-off upload more than it holds;
/// symphonia refuses both ("chunk length exceeds parent chunk length"), though every byte
/// there is good audio. Returns whether anything was changed.
pub(super) fn clamp_wav_sizes(bytes: &mut [u8]) -> bool {
    if sniff(bytes) != Some("wav") {
        return false;
    }
    let len = bytes.len();
    let mut at = 12usize;
    while let Some(header) = bytes.get(at..at + 8) {
        let size = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
        let body = at + 8;
        if &header[..4] == b"data" {
            let present = len - body;
            if size <= present {
                return false;
            }
            let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
            bytes[at + 4..body].copy_from_slice(&clamp(present));
            bytes[4..8].copy_from_slice(&clamp(len - 8));
            return true;
        }
        match body.checked_add(size + (size & 1)) {
            Some(next) => at = next,
            None => return false,
        }
    }
    false
}

/// Names a stream that starts directly with an MPEG audio or ADTS frame header.
fn mpeg_frame(head: &[u8]) -> Option<&'static str> {
    let [0xFF, b1, ..] = *head else { return None };
    if b1 & 0xE0 != 0xE0 {
        return None;
    }
    // Bits 2..1 of the second byte: the MPEG layer, or 00 for AAC's ADTS framing.
    match (b1 >> 1) & 0x03 {
        0b00 => Some("adts"),
        0b01 => Some("mp3"),
        0b10 => Some("mp2"),
        _ => Some("mp1"),
    }
}

/// The container a headerless (or ID3-tagged) stream of this codec must be in.
pub(super) fn from_codec(codec: &str) -> &'static str {
    match codec {
        "mp1" => "mp1",
        "mp2" => "mp2",
        "mp3" => "mp3",
        "aac" => "adts",
        "flac" => "flac",
        _ => "unknown",
    }
}

/// Names a codec symphonia has an id for but no decoder, so "unsupported codec" errors are useful.
pub(super) fn unsupported_codec_name(codec: CodecType) -> String {
    let name = match codec {
        CODEC_TYPE_OPUS => "opus",
        CODEC_TYPE_SPEEX => "speex",
        CODEC_TYPE_EAC3 => "eac3",
        CODEC_TYPE_AC4 => "ac4",
        CODEC_TYPE_DCA => "dts",
        CODEC_TYPE_WMA => "wma",
        CODEC_TYPE_WAVPACK => "wavpack",
        CODEC_TYPE_MONKEYS_AUDIO => "ape",
        CODEC_TYPE_TTA => "tta",
        CODEC_TYPE_MUSEPACK => "musepack",
        CODEC_TYPE_ATRAC1 | CODEC_TYPE_ATRAC3 | CODEC_TYPE_ATRAC3PLUS | CODEC_TYPE_ATRAC9 => {
            "atrac"
        }
        other => return format!("unknown (symphonia id {other})"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_common_signatures() {
        assert_eq!(sniff(b"RIFF\x24\0\0\0WAVEfmt "), Some("wav"));
        assert_eq!(sniff(b"fLaC\0\0\0\x22"), Some("flac"));
        assert_eq!(sniff(b"OggS\0\x02"), Some("ogg"));
        assert_eq!(sniff(b"\0\0\0\x20ftypM4A "), Some("mp4"));
        assert_eq!(sniff(&[0xFF, 0xFB, 0x90, 0x64]), Some("mp3"));
        assert_eq!(sniff(&[0xFF, 0xF1, 0x50, 0x80]), Some("adts"));
    }

    #[test]
    fn id3_and_garbage_are_left_to_the_codec() {
        assert_eq!(sniff(b"ID3\x04\0\0\0\0\0\0"), None);
        assert_eq!(sniff(b"hello world"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(from_codec("mp3"), "mp3");
        assert_eq!(from_codec("aac"), "adts");
    }

    #[test]
    fn names_unsupported_codecs() {
        assert_eq!(unsupported_codec_name(CODEC_TYPE_OPUS), "opus");
        let custom = symphonia::core::codecs::decl_codec_type(b"hrkn");
        assert!(unsupported_codec_name(custom).starts_with("unknown (symphonia id 0x"));
    }
}

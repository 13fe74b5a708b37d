//! Transcript output formats shared by the CLI and the HTTP gateway: plain text, OpenAI's
//! `json` and `verbose_json`, SubRip and WebVTT.

use serde::Serialize;

use crate::model::whisper::decode::{Segment, Transcript};
use crate::model::whisper::tokens::{Task, language_name};

/// The response formats OpenAI's transcription API offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ResponseFormat {
    /// The text alone.
    Text,
    /// `{"text": ...}`.
    #[default]
    Json,
    /// Text plus language, duration and segments.
    #[value(name = "verbose_json", alias = "verbose-json")]
    VerboseJson,
    /// SubRip subtitles.
    Srt,
    /// WebVTT subtitles.
    Vtt,
}

impl ResponseFormat {
    /// The format named as OpenAI's `response_format` field names it (`verbose_json`).
    pub fn from_api_name(name: &str) -> Option<Self> {
        <Self as clap::ValueEnum>::from_str(name, false).ok()
    }

    /// The media type of a body in this format, as OpenAI's API labels it.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Json | Self::VerboseJson => "application/json",
            Self::Text | Self::Srt | Self::Vtt => "text/plain; charset=utf-8",
        }
    }
}

/// What goes into a rendered transcript besides the transcript itself.
#[derive(Debug, Clone, Copy)]
pub struct RenderOptions {
    /// Transcribe or translate; named by `verbose_json`.
    pub task: Task,
    /// `verbose_json` carries `segments` (OpenAI's `segment` timestamp granularity).
    pub segments: bool,
    /// `verbose_json` carries a top-level `words` array (the `word` granularity); the transcript
    /// must have been decoded with word timestamps.
    pub words: bool,
    /// `json` and `verbose_json` carry OpenAI's `usage` (seconds of audio billed); the CLI
    /// leaves it out.
    pub usage: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            task: Task::Transcribe,
            segments: true,
            words: false,
            usage: false,
        }
    }
}

#[derive(Serialize)]
struct VerboseSegment<'a> {
    id: usize,
    seek: usize,
    start: f64,
    end: f64,
    text: &'a str,
    tokens: &'a [u32],
    temperature: f32,
    avg_logprob: f64,
    compression_ratio: f32,
    no_speech_prob: f32,
}

impl<'a> From<&'a Segment> for VerboseSegment<'a> {
    fn from(s: &'a Segment) -> Self {
        Self {
            id: s.id,
            seek: s.seek,
            start: round3(s.start),
            end: round3(s.end),
            text: &s.text,
            tokens: &s.tokens,
            temperature: s.temperature,
            avg_logprob: s.avg_logprob,
            compression_ratio: s.compression_ratio,
            no_speech_prob: s.no_speech_prob,
        }
    }
}

/// One entry of `verbose_json`'s `words`: OpenAI writes the word without Whisper's leading
/// space.
#[derive(Serialize)]
struct VerboseWord<'a> {
    word: &'a str,
    start: f64,
    end: f64,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Renders a transcript in `format`.
pub fn render(t: &Transcript, format: ResponseFormat, options: &RenderOptions) -> String {
    match format {
        ResponseFormat::Text => format!("{}\n", t.text),
        ResponseFormat::Json => json(t, options).to_string(),
        ResponseFormat::VerboseJson => verbose_json(t, options).to_string(),
        ResponseFormat::Srt => subtitles(t, Cue::Srt),
        ResponseFormat::Vtt => subtitles(t, Cue::Vtt),
    }
}

/// OpenAI's `json` body: the text, and `usage` when asked for.
pub fn json(t: &Transcript, options: &RenderOptions) -> serde_json::Value {
    let mut body = serde_json::json!({ "text": t.text });
    if options.usage {
        body["usage"] = usage(t.duration);
    }
    body
}

/// OpenAI's `verbose_json` body.
pub fn verbose_json(t: &Transcript, options: &RenderOptions) -> serde_json::Value {
    let mut body = serde_json::json!({
        "task": match options.task { Task::Transcribe => "transcribe", Task::Translate => "translate" },
        "language": language_name(&t.language).unwrap_or(&t.language),
        "duration": round3(t.duration),
        "text": t.text,
    });
    if options.segments {
        let segments: Vec<VerboseSegment<'_>> = t.segments.iter().map(Into::into).collect();
        body["segments"] = serde_json::json!(segments);
    }
    if options.words {
        let words: Vec<VerboseWord<'_>> = t
            .segments
            .iter()
            .flat_map(|s| &s.words)
            .map(|w| VerboseWord {
                word: w.word.trim(),
                start: round3(w.start),
                end: round3(w.end),
            })
            .collect();
        body["words"] = serde_json::json!(words);
    }
    if options.usage {
        body["usage"] = usage(t.duration);
    }
    body
}

/// OpenAI's duration-based `usage` object; like OpenAI, it bills whole seconds, rounded up.
pub fn usage(duration_seconds: f64) -> serde_json::Value {
    let seconds = duration_seconds.max(0.0).ceil() as u64;
    serde_json::json!({ "type": "duration", "seconds": seconds })
}

#[derive(Clone, Copy)]
enum Cue {
    Srt,
    Vtt,
}

fn subtitles(t: &Transcript, cue: Cue) -> String {
    let mut out = String::new();
    if let Cue::Vtt = cue {
        out.push_str("WEBVTT\n\n");
    }
    for (i, s) in t.segments.iter().enumerate() {
        if let Cue::Srt = cue {
            out.push_str(&format!("{}\n", i + 1));
        }
        let sep = match cue {
            Cue::Srt => ',',
            Cue::Vtt => '.',
        };
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            timestamp(s.start, sep),
            timestamp(s.end, sep),
            s.text.trim()
        ));
    }
    out
}

/// `HH:MM:SS,mmm` (SubRip) or `HH:MM:SS.mmm` (WebVTT).
fn timestamp(seconds: f64, sep: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}{sep}{ms:03}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::whisper::decode::Word;

    fn transcript() -> Transcript {
        let seg = |id, start, end, text: &str| Segment {
            id,
            seek: 0,
            start,
            end,
            text: text.into(),
            tokens: vec![1, 2],
            temperature: 0.0,
            avg_logprob: -0.2,
            compression_ratio: 1.1,
            no_speech_prob: 0.01,
            words: Vec::new(),
        };
        Transcript {
            text: "Hello there. General Kenobi.".into(),
            segments: vec![
                seg(0, 0.0, 1.5, " Hello there."),
                seg(1, 1.5, 3661.25, " General Kenobi."),
            ],
            language: "en".into(),
            language_probability: None,
            duration: 3662.0,
        }
    }

    #[test]
    fn srt_and_vtt_cues() {
        let options = RenderOptions::default();
        let srt = render(&transcript(), ResponseFormat::Srt, &options);
        assert!(
            srt.starts_with("1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n"),
            "{srt}"
        );
        assert!(srt.contains("00:00:01,500 --> 01:01:01,250\nGeneral Kenobi."));
        let vtt = render(&transcript(), ResponseFormat::Vtt, &options);
        assert!(
            vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there."),
            "{vtt}"
        );
    }

    #[test]
    fn verbose_json_has_openai_fields() {
        let v = verbose_json(&transcript(), &RenderOptions::default());
        assert_eq!(v["task"], "transcribe");
        assert_eq!(v["language"], "english");
        assert_eq!(v["segments"][1]["id"], 1);
        for key in [
            "seek",
            "start",
            "end",
            "text",
            "tokens",
            "temperature",
            "avg_logprob",
            "compression_ratio",
            "no_speech_prob",
        ] {
            assert!(v["segments"][0].get(key).is_some(), "missing {key}");
        }
        assert!(v.get("words").is_none() && v.get("usage").is_none());
        let json: serde_json::Value = serde_json::from_str(&render(
            &transcript(),
            ResponseFormat::Json,
            &RenderOptions::default(),
        ))
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"text": "Hello there. General Kenobi."})
        );
    }

    #[test]
    fn api_options_add_words_and_usage_and_can_drop_segments() {
        let mut t = transcript();
        t.segments[0].words = vec![Word {
            word: " Hello".into(),
            start: 0.1234,
            end: 0.5,
            probability: 0.9,
        }];
        let options = RenderOptions {
            task: Task::Translate,
            segments: false,
            words: true,
            usage: true,
        };
        let v = verbose_json(&t, &options);
        assert_eq!(v["task"], "translate");
        assert!(v.get("segments").is_none());
        assert_eq!(
            v["words"],
            serde_json::json!([{"word": "Hello", "start": 0.123, "end": 0.5}])
        );
        // 3662.0 s bills 3662 s; a fraction of a second more bills one more.
        assert_eq!(
            v["usage"],
            serde_json::json!({"type": "duration", "seconds": 3662})
        );
        assert_eq!(usage(2.01)["seconds"], 3);
        assert_eq!(json(&t, &options)["usage"]["seconds"], 3662);
    }

    #[test]
    fn api_names_and_media_types() {
        assert_eq!(
            ResponseFormat::from_api_name("verbose_json"),
            Some(ResponseFormat::VerboseJson)
        );
        assert_eq!(
            ResponseFormat::from_api_name("srt"),
            Some(ResponseFormat::Srt)
        );
        assert_eq!(ResponseFormat::from_api_name("xml"), None);
        assert_eq!(ResponseFormat::Json.media_type(), "application/json");
        assert!(ResponseFormat::Vtt.media_type().starts_with("text/plain"));
    }
}

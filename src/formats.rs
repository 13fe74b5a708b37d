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

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Renders a transcript in `format`. `task` only affects `verbose_json`.
pub fn render(t: &Transcript, format: ResponseFormat, task: Task) -> String {
    match format {
        ResponseFormat::Text => format!("{}\n", t.text),
        ResponseFormat::Json => serde_json::json!({ "text": t.text }).to_string(),
        ResponseFormat::VerboseJson => verbose_json(t, task).to_string(),
        ResponseFormat::Srt => subtitles(t, Cue::Srt),
        ResponseFormat::Vtt => subtitles(t, Cue::Vtt),
    }
}

/// OpenAI's `verbose_json` body.
pub fn verbose_json(t: &Transcript, task: Task) -> serde_json::Value {
    let segments: Vec<VerboseSegment<'_>> = t.segments.iter().map(Into::into).collect();
    serde_json::json!({
        "task": match task { Task::Transcribe => "transcribe", Task::Translate => "translate" },
        "language": language_name(&t.language).unwrap_or(&t.language),
        "duration": round3(t.duration),
        "text": t.text,
        "segments": segments,
    })
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
        let srt = render(&transcript(), ResponseFormat::Srt, Task::Transcribe);
        assert!(
            srt.starts_with("1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n"),
            "{srt}"
        );
        assert!(srt.contains("00:00:01,500 --> 01:01:01,250\nGeneral Kenobi."));
        let vtt = render(&transcript(), ResponseFormat::Vtt, Task::Transcribe);
        assert!(
            vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there."),
            "{vtt}"
        );
    }

    #[test]
    fn verbose_json_has_openai_fields() {
        let v = verbose_json(&transcript(), Task::Transcribe);
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
        let json: serde_json::Value = serde_json::from_str(&render(
            &transcript(),
            ResponseFormat::Json,
            Task::Transcribe,
        ))
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"text": "Hello there. General Kenobi."})
        );
    }
}

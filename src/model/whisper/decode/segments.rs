//! Splitting a window's tokens into timed segments and deciding where the next window starts,
//! exactly as openai-whisper's `transcribe()` does.

use crate::model::whisper::tokens::WhisperTokenizer;

/// Seconds per timestamp token.
pub const TIME_PRECISION: f64 = 0.02;
/// Mel frames per timestamp token (the encoder halves the frame rate).
const FRAMES_PER_TIMESTAMP: usize = 2;

/// A segment inside one window, times relative to the window start.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSegment {
    /// Start, seconds from the window start.
    pub start: f64,
    /// End, seconds from the window start.
    pub end: f64,
    /// Tokens of the segment, timestamps included.
    pub tokens: Vec<u32>,
}

/// Segments of a window and how many mel frames the window consumed.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSplit {
    /// The segments, in order.
    pub segments: Vec<WindowSegment>,
    /// Frames to advance the seek position by.
    pub advance_frames: usize,
}

/// Splits `tokens` (without end-of-text) of a window holding `segment_frames` frames of audio.
pub fn split_window(tokens: &[u32], segment_frames: usize, tok: &WhisperTokenizer) -> WindowSplit {
    let ts_begin = tok.special().timestamp_begin;
    let is_ts: Vec<bool> = tokens.iter().map(|&t| t >= ts_begin).collect();
    let n = tokens.len();
    let single_timestamp_ending = n >= 2 && !is_ts[n - 2] && is_ts[n - 1];
    let mut cuts: Vec<usize> = (1..n).filter(|&i| is_ts[i - 1] && is_ts[i]).collect();
    let ts_value = |t: u32| (t - ts_begin) as f64 * TIME_PRECISION;

    if cuts.is_empty() {
        // No closed segment: the window is one segment ending at its last timestamp (if any).
        let duration = segment_frames as f64 * 0.01;
        let end = match tokens.iter().rev().find(|&&t| t >= ts_begin) {
            Some(&last) if last > ts_begin => ts_value(last),
            _ => duration,
        };
        let segments = vec![WindowSegment {
            start: 0.0,
            end,
            tokens: tokens.to_vec(),
        }];
        return WindowSplit {
            segments,
            advance_frames: segment_frames,
        };
    }
    if single_timestamp_ending {
        cuts.push(n);
    }
    let mut segments = Vec::with_capacity(cuts.len());
    let mut last = 0;
    for &cut in &cuts {
        let slice = &tokens[last..cut];
        segments.push(WindowSegment {
            start: ts_value(slice[0].max(ts_begin)),
            end: ts_value(slice[slice.len() - 1].max(ts_begin)),
            tokens: slice.to_vec(),
        });
        last = cut;
    }
    let advance_frames = if single_timestamp_ending {
        segment_frames
    } else {
        (tokens[last - 1] - ts_begin) as usize * FRAMES_PER_TIMESTAMP
    };
    WindowSplit {
        segments,
        advance_frames,
    }
}

//! One session over OpenAI's Realtime transcription WebSocket, on the library's protocol
//! client: 100 ms PCM16 frames at the protocol's 24 kHz, server turn detection. The protocol
//! has no word timings, so commit lags are estimated from each item's speech span
//! ([`CommitTiming::ItemSpan`]).

use std::collections::HashMap;
use std::time::Instant;

use futures_util::StreamExt;

use super::super::clips::Clip;
use super::super::record::{CommitTiming, FRAME, Failure, Observation, Pace};
use super::super::target::Target;
use crate::http::realtime::client::{
    ItemUpdate, PROTOCOL_RATE, RealtimeOptions, RealtimeRefusal, transcribe,
};

/// One item's words as they were committed.
#[derive(Default)]
struct ItemCommits {
    /// When each word was committed, in order.
    arrivals: Vec<Instant>,
    audio_start_ms: Option<u64>,
    audio_end_ms: Option<u64>,
}

/// Streams `clip` through one Realtime session.
pub(super) async fn session(
    target: &Target,
    clip: &Clip,
    pace: Pace,
    seen: &mut Observation,
) -> Result<(), Failure> {
    let frames = clip.realtime_frames().map_err(|e| Failure {
        code: "client".into(),
        message: format!("{e:#}"),
        retryable: false,
    })?;
    let log = seen.sent.clone();
    let opened = tokio::time::Instant::now();
    let audio = futures_util::stream::iter((0..frames.len()).map(move |i| (i, frames[i].clone())))
        .then(move |(i, pcm)| {
            let log = log.clone();
            async move {
                if pace == Pace::RealTime {
                    tokio::time::sleep_until(opened + FRAME * (i as u32 + 1)).await;
                }
                log.sent();
                pcm
            }
        });
    let options = RealtimeOptions {
        url: target.url.clone(),
        api_key: target.api_key.clone(),
        ca_pem: target.ca_pem.clone(),
        rate: PROTOCOL_RATE,
        model: target.model.clone(),
        language: target.language.clone(),
        prompt: None,
    };
    let mut items: HashMap<u64, ItemCommits> = HashMap::new();
    let on_update = |update: ItemUpdate| {
        let item = items.entry(update.index).or_default();
        item.audio_start_ms = update.audio_start_ms;
        item.audio_end_ms = update.audio_end_ms.or(item.audio_end_ms);
        let words = update.committed_delta.split_whitespace().count();
        item.arrivals
            .extend(std::iter::repeat_n(Instant::now(), words));
        if let Some(start) = update
            .audio_start_ms
            .filter(|_| seen.speech_onset.is_none())
        {
            seen.speech_onset = Some(start as f64 / 1000.0);
        }
        if update.is_final {
            seen.finished_utterance(&update.committed);
        } else {
            seen.interim(&format!("{}{}", update.committed, update.tentative));
        }
        Ok(())
    };
    transcribe(&options, Box::pin(audio), std::future::pending(), on_update)
        .await
        .map_err(failure)?;
    let audio_end = clip.seconds();
    seen.commit_timing = Some(CommitTiming::ItemSpan);
    for item in items.values() {
        seen.commits.extend(spread_over_span(item, audio_end));
    }
    Ok(())
}

/// Each committed word of `item` with the audio time it is taken to end at: the k-th of n
/// words ends k/n through the item's speech span.
fn spread_over_span(item: &ItemCommits, audio_end: f64) -> Vec<(Instant, f64)> {
    let start = item.audio_start_ms.map_or(0.0, |ms| ms as f64 / 1000.0);
    let end = item
        .audio_end_ms
        .map_or(audio_end, |ms| ms as f64 / 1000.0)
        .max(start);
    let n = item.arrivals.len() as f64;
    item.arrivals
        .iter()
        .enumerate()
        .map(|(k, &arrived)| (arrived, start + (k as f64 + 1.0) / n * (end - start)))
        .collect()
}

/// The client's error, sorted: a refused handshake by its HTTP status, an `error` event by
/// its code.
fn failure(error: anyhow::Error) -> Failure {
    let message = format!("{error:#}");
    match error.downcast_ref::<RealtimeRefusal>() {
        Some(RealtimeRefusal::Handshake { status, .. }) => Failure {
            code: format!("HTTP {status}"),
            message,
            retryable: matches!(status, 429 | 503),
        },
        Some(RealtimeRefusal::Event { code, .. }) => {
            let code = code.clone().unwrap_or_else(|| "error".into());
            let retryable = code.contains("rate_limit") || code.contains("unavailable");
            Failure {
                code,
                message,
                retryable,
            }
        }
        None => Failure {
            code: "transport".into(),
            message,
            retryable: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_spread_over_their_items_speech() {
        let t = Instant::now();
        let item = ItemCommits {
            arrivals: vec![t; 4],
            audio_start_ms: Some(1000),
            audio_end_ms: Some(3000),
        };
        let ends: Vec<f64> = spread_over_span(&item, 9.0).iter().map(|c| c.1).collect();
        assert_eq!(ends, [1.5, 2.0, 2.5, 3.0]);
        // No speech_stopped yet: the span runs to the end of the audio.
        let open = ItemCommits {
            audio_end_ms: None,
            ..item
        };
        assert_eq!(spread_over_span(&open, 9.0).last().unwrap().1, 9.0);
    }

    #[test]
    fn refusals_are_sorted_by_status() {
        let full = failure(
            RealtimeRefusal::Handshake {
                url: "ws://h".into(),
                status: 429,
                message: "too many sessions".into(),
            }
            .into(),
        );
        assert_eq!((full.code.as_str(), full.retryable), ("HTTP 429", true));
        let key = failure(
            RealtimeRefusal::Handshake {
                url: "ws://h".into(),
                status: 401,
                message: "bad key".into(),
            }
            .into(),
        );
        assert!(!key.retryable);
        assert_eq!(failure(anyhow::anyhow!("reset")).code, "transport");
    }
}

//! One session per protocol: each driver plays a clip to its target and notes what it saw in
//! an [`Observation`]; none of them knows about workloads or figures.

mod grpc;
mod http;
mod realtime;

use std::time::Instant;

use super::clips::Clip;
use super::record::{Observation, Pace, SessionRecord};
use super::target::{Protocol, Target};

/// Plays `clip` through one session of `target` and measures it.
pub(super) async fn run_session(
    target: &Target,
    clip: &Clip,
    pace: Pace,
    run_started: Instant,
) -> SessionRecord {
    let mut seen = Observation::new();
    let started = seen.started;
    let result = match target.protocol {
        Protocol::Grpc => grpc::session(target, clip, pace, &mut seen).await,
        Protocol::Realtime => realtime::session(target, clip, pace, &mut seen).await,
        Protocol::Http => http::session(target, clip, &mut seen).await,
    };
    match result {
        Ok(()) => SessionRecord::completed(seen, clip, run_started),
        Err(failure) => SessionRecord::failed(failure, clip, started, run_started),
    }
}

//! A load generator for speech servers: many sessions of real speech against hearken's gRPC
//! API, OpenAI's Realtime WebSocket or OpenAI's HTTP transcriptions (hearken's or any other
//! server speaking them), measured from the outside the way a user feels them.
//!
//! The layers: [`target`] names the server, [`clips`] the audio, [`drivers`] play one session
//! per protocol into a [`record::SessionRecord`], [`run`] opens sessions by a workload (a
//! concurrency or a Poisson arrival rate), [`stats`] sums a round up, [`slo`] judges it and
//! searches for capacity, and [`report`] prints, writes JSON and draws the HTML page.
//! `hearken loadgen` and `hearken bench stream` are thin uses of it.

pub mod clips;
mod drivers;
pub mod record;
pub mod report;
pub mod run;
pub mod slo;
pub mod stats;
pub mod target;

pub use clips::{Clip, CorpusSelection, load_corpus, load_files};
pub use record::{CommitTiming, Outcome, Pace, SessionRecord};
pub use report::{RoundReport, RunReport};
pub use run::{Round, RunOptions, Workload, run_round};
pub use slo::{CapacitySearch, Slo};
pub use stats::{Aggregate, Percentiles};
pub use target::{Protocol, Target};

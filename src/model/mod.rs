//! Speech models: the Whisper network, the Silero VAD network, where their weights come from,
//! and where they run.

pub mod device;
pub mod silero;
pub mod store;
pub mod whisper;

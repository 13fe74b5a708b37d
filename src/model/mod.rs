//! Speech models: the Whisper network, where its weights come from, and where it runs.

pub mod device;
pub mod store;
pub mod whisper;

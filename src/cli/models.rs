//! `hearken models`: the known models, and which are cached.

use clap::Args;

use crate::model::store::{ModelStore, SILERO_VAD};

/// Arguments of `hearken models`.
#[derive(Debug, Args)]
pub(super) struct ModelsArgs {
    /// Fetch this known model now (e.g. `tiny.en`, or `silero-vad` for the speech detector)
    /// instead of only listing.
    #[arg(long)]
    fetch: Option<String>,
}

pub(super) fn run(args: ModelsArgs) -> anyhow::Result<()> {
    let store = ModelStore::from_env();
    if let Some(id) = args.fetch {
        if id == SILERO_VAD.id {
            println!("{id} ready at {}", store.silero_vad()?.display());
            return Ok(());
        }
        let resolved = store.resolve(&id)?;
        println!("{} ready at {}", resolved.id, resolved.dir.display());
        return Ok(());
    }
    println!("cache: {}", store.root().display());
    println!("{:<10} {:<8} {:>9}  description", "id", "cached", "size");
    for m in store.list() {
        let size = if m.cached {
            format!("{:.1} MB", m.size_bytes as f64 / 1e6)
        } else {
            "-".into()
        };
        println!(
            "{:<10} {:<8} {:>9}  {}",
            m.entry.id,
            if m.cached { "yes" } else { "no" },
            size,
            m.entry.description
        );
    }
    Ok(())
}

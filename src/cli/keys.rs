//! `hearken keys new TENANT`: a fresh API key and the line that gives it to a tenant.

use clap::{Args, Subcommand};

use crate::service::tenants;

/// `hearken keys …`.
#[derive(Debug, Subcommand)]
pub(super) enum KeysCommand {
    /// Print a fresh random API key for TENANT, and the `[[tenant]]` entry (with the key's
    /// SHA-256 digest, never the key) to put in the tenants file.
    New(NewArgs),
}

/// Arguments of `hearken keys new`.
#[derive(Debug, Args)]
pub(super) struct NewArgs {
    /// The tenant the key is for (letters, digits, `-`, `_`, `.`).
    tenant: String,
}

pub(super) fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::New(args) => new(&args.tenant),
    }
}

fn new(tenant: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !tenant.is_empty()
            && tenant.len() <= 64
            && tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
        "tenant id `{tenant}` must be 1 to 64 letters, digits, `-`, `_` or `.`"
    );
    let (key, digest) = tenants::new_key()?;
    println!("{key}");
    eprintln!(
        "\nGive the key above to `{tenant}` (it is shown once and not stored). Add its digest \
         to the tenants file, in the tenant's `keys` list:\n\n\
         [[tenant]]\nid = \"{tenant}\"\nkeys = [\"{digest}\"]\n"
    );
    Ok(())
}

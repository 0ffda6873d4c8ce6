//! `palisade keys`: the plugin keyring (named 256-bit keys in a 0600 file). Key bytes are
//! never printed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::CliError;
use crate::plugin::Keyring;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new random 256-bit key called NAME (a running broker picks it up).
    New {
        name: String,
        /// The keyring file (created with mode 0600 if missing).
        #[arg(long, default_value = "keyring.json")]
        keyring: PathBuf,
    },
    /// List key names and creation times (never key bytes).
    List {
        #[arg(long, default_value = "keyring.json")]
        keyring: PathBuf,
    },
}

pub fn run(command: KeysCommand) -> Result<ExitCode, CliError> {
    match command {
        KeysCommand::New { name, keyring } => {
            let mut ring = Keyring::load_or_empty(&keyring)?;
            ring.generate(&name)?;
            ring.save(&keyring)?;
            println!("added key `{name}` to {}", keyring.display());
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::List { keyring } => {
            let ring = Keyring::load(&keyring)?;
            for (name, created_ms) in ring.names() {
                println!("{name}\tcreated_ms={created_ms}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

//! The `palisade` subcommands. `main.rs` parses flags and calls [`run`].

pub mod anchor_file;
pub mod audit;
pub mod certs;
pub mod config_cmd;
pub mod keys;
pub mod plugin;
pub mod plugin_deploy;
pub mod plugin_new;
pub mod policy;
pub mod posture;
pub mod serve;
pub mod upstream_check;
pub mod user;
pub mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "palisade",
    version,
    about = "A Kafka-compatible message broker with security built in"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker (the embedded dev default when no --config is given).
    Serve {
        /// Path to a TOML config file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Run as a gateway in front of this Kafka cluster (`host:port` of a broker, repeat or
        /// separate with commas for more), reached over PLAINTEXT unless the config's
        /// `[gateway]` says otherwise; replaces `gateway.bootstrap_servers`.
        #[arg(long, value_name = "HOST:PORT", value_delimiter = ',')]
        upstream: Vec<String>,
    },
    /// Print or check configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage SASL users (SCRAM/PLAIN credentials; passwords are never stored).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Check every stored batch against the tamper-evidence chain.
    Verify {
        /// Data directory to check (default: the data dir of --config, else ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Config whose data dir is checked.
        #[arg(long)]
        config: Option<PathBuf>,
        /// After a clean check, write every partition's head (offset and chain digest) to
        /// FILE: keep it where this host cannot write and pass it to --anchor next time.
        #[arg(long, value_name = "FILE")]
        heads_out: Option<PathBuf>,
        /// Heads written by an earlier run: each partition must still reach that offset with
        /// that digest, so a log rewritten together with its chain is found.
        #[arg(long, value_name = "FILE")]
        anchor: Option<PathBuf>,
    },
    /// Check, test and explain Cedar policies.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Generate certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Check the audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Check or scaffold WebAssembly plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Manage the plugin keyring.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write a development CA, a loopback server certificate, client certificates and an
    /// empty CRL. Not for production.
    Dev {
        /// Directory to write into (created if missing).
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// A client certificate to issue with CN=NAME (repeatable).
        #[arg(long = "client", value_name = "NAME")]
        clients: Vec<String>,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Load every listener's TLS material as `serve` would and list when each certificate
    /// and CRL expires; exit non-zero if any has expired or expires within `--warn-days`
    /// (for cron or a CI job).
    Check {
        /// Broker config file (default: the embedded dev default).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Fail when anything expires within this many days.
        #[arg(long, default_value_t = 30)]
        warn_days: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the embedded default config, with a comment on every key.
    PrintDefault,
    /// Validate a config file and exit non-zero on any error; also lists security checklist
    /// warnings (clear-text listeners, audit off, no quotas ...).
    Check {
        file: PathBuf,
        /// Fail on checklist warnings too (for production deployments).
        #[arg(long)]
        strict: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Start(#[from] crate::broker::StartError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    Certs(#[from] crate::tls::CertsError),
    #[error(transparent)]
    Credentials(#[from] crate::sasl::CredentialError),
    #[error("{0}")]
    Policy(String),
    /// A refused argument or input, explained.
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Keyring(#[from] crate::plugin::keyring::KeyringError),
}

/// Runs one subcommand.
pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Serve { config, upstream } => serve::run(config.as_deref(), upstream),
        Command::Config(ConfigCommand::PrintDefault) => {
            print!("{}", crate::config::DEFAULT_CONFIG);
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check { file, strict }) => config_cmd::check(&file, strict),
        Command::Verify {
            data_dir,
            config,
            heads_out,
            anchor,
        } => verify::run(
            data_dir,
            config.as_deref(),
            heads_out.as_deref(),
            anchor.as_deref(),
        ),
        Command::Certs(CertsCommand::Dev {
            dir,
            clients,
            force,
        }) => certs::dev(&dir, &clients, force),
        Command::Certs(CertsCommand::Check { config, warn_days }) => {
            certs::check(config.as_deref(), warn_days)
        }
        Command::User(command) => user::run(command),
        Command::Policy(command) => policy::run(command),
        Command::Audit(command) => audit::run(command),
        Command::Plugin(command) => plugin::run(command),
        Command::Keys(command) => keys::run(command),
    }
}

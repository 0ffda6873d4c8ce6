//! `palisade user add|remove|list|rotate-secret`: manage the SASL credential file.
//!
//! The default file is [`DEFAULT_CREDENTIALS_PATH`], the one `palisade serve` uses when started
//! in the same working directory; a running broker reloads it on change. Passwords are read
//! from stdin only (never from arguments, which other users can see in `ps`), never echoed,
//! logged or stored: the file keeps SCRAM keys only.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use super::CliError;
use crate::sasl::credentials::CredentialError;
use crate::sasl::{CredentialStore, Mechanism, DEFAULT_CREDENTIALS_PATH, DEFAULT_ITERATIONS};

/// Longest password accepted on stdin, in bytes.
const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user, or replace all of its credentials (a password change).
    Add {
        /// The user name (the principal after authentication).
        name: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512; repeat for both (default: both).
        #[arg(long = "mechanism", value_parser = parse_mechanism)]
        mechanisms: Vec<Mechanism>,
        /// PBKDF2 iterations (4096 to 16384).
        #[arg(long, default_value_t = DEFAULT_ITERATIONS)]
        iterations: u32,
        /// Read the password from the first line of stdin (required).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Accept a password shorter than 12 characters (development only).
        #[arg(long)]
        allow_short_password: bool,
        /// The credential file.
        #[arg(long, default_value = DEFAULT_CREDENTIALS_PATH)]
        store: PathBuf,
    },
    /// Remove a user; fails for an unknown user.
    Remove {
        name: String,
        /// The credential file.
        #[arg(long, default_value = DEFAULT_CREDENTIALS_PATH)]
        store: PathBuf,
    },
    /// List users and their mechanisms (never keys).
    List {
        /// The credential file.
        #[arg(long, default_value = DEFAULT_CREDENTIALS_PATH)]
        store: PathBuf,
    },
    /// Replace the store's secret (what unknown users' fake salts are derived from) with a
    /// fresh random one. Users and their passwords stay valid; a running broker reloads it.
    RotateSecret {
        /// The credential file.
        #[arg(long, default_value = DEFAULT_CREDENTIALS_PATH)]
        store: PathBuf,
    },
}

fn parse_mechanism(name: &str) -> Result<Mechanism, String> {
    Mechanism::from_name(name)
        .ok_or_else(|| format!("`{name}` is not SCRAM-SHA-256 or SCRAM-SHA-512"))
}

pub fn run(command: UserCommand) -> Result<ExitCode, CliError> {
    match command {
        UserCommand::Add {
            name,
            mechanisms,
            iterations,
            password_stdin: _,
            allow_short_password,
            store,
        } => add(&name, &mechanisms, iterations, allow_short_password, &store),
        UserCommand::Remove { name, store: path } => {
            let mut store = CredentialStore::load(&path)?;
            store.remove_user(&name)?;
            store.save(&path)?;
            println!("removed user `{name}` from {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::RotateSecret { store: path } => {
            let mut store = CredentialStore::load_to_rotate(&path)?;
            store.rotate_secret()?;
            store.save(&path)?;
            println!(
                "wrote a new random secret to {}; users and their passwords are unchanged",
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::List { store: path } => {
            if !path.exists() {
                eprintln!("no credential file at {}", path.display());
                return Ok(ExitCode::SUCCESS);
            }
            for (name, mechanisms) in CredentialStore::load(&path)?.list_users() {
                let names: Vec<&str> = mechanisms.iter().map(|m| m.name()).collect();
                println!("{name}\t{}", names.join(","));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Fewer characters than this are refused unless `--allow-short-password`: a SCRAM store
/// that leaks can be brute-forced offline, and length is what slows that down most.
pub const MIN_PASSWORD_CHARS: usize = 12;

fn add(
    name: &str,
    mechanisms: &[Mechanism],
    iterations: u32,
    allow_short: bool,
    path: &Path,
) -> Result<ExitCode, CliError> {
    // Validate everything cheap before asking for the password.
    crate::sasl::credentials::validate_user_name(name)?;
    crate::sasl::credentials::check_iterations(iterations)?;
    let mechanisms = if mechanisms.is_empty() {
        Mechanism::ALL.to_vec()
    } else {
        mechanisms.to_vec()
    };
    // Nothing is written unless the whole command succeeds.
    let mut store = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => CredentialStore::new()?,
        _ => CredentialStore::load(path)?,
    };
    let password = read_password()?;
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS && !allow_short {
        return Err(CliError::Usage(format!(
            "the password has {chars} characters; at least {MIN_PASSWORD_CHARS} are required (--allow-short-password accepts it anyway, for development)"
        )));
    }
    store.add_user(name, &mechanisms, iterations, password.as_bytes())?;
    drop(password);
    store.save(path)?;
    let names: Vec<&str> = mechanisms.iter().map(|m| m.name()).collect();
    println!(
        "added user `{name}` ({}) to {}",
        names.join(", "),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// One line of stdin without its line ending. On a terminal, echo is turned off meanwhile.
fn read_password() -> Result<String, CliError> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    if terminal {
        eprint!("password: ");
        let _ = std::io::stderr().flush();
        set_echo(false);
    }
    let mut line = String::new();
    let read = stdin
        .lock()
        .take(MAX_PASSWORD_BYTES as u64 + 2)
        .read_line(&mut line);
    if terminal {
        set_echo(true);
        eprintln!();
    }
    read?;
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line);
    if password.is_empty() {
        return Err(CredentialError::Invalid("the password on stdin is empty").into());
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(CredentialError::Invalid("the password is longer than 1024 bytes").into());
    }
    Ok(password.to_string())
}

/// Best effort: `stty` on the inherited terminal (no `unsafe` termios calls).
fn set_echo(on: bool) {
    let _ = std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status();
}

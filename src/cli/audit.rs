//! `palisade audit verify FILE|DIR...`: check the audit trail's hash chain.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::CliError;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of audit files (in rotation order; a directory stands for its
    /// audit-<N>.jsonl files). Names the first altered, removed or reordered event as
    /// file:line and exits 1; exits 0 when the trail is intact.
    Verify {
        #[arg(required = true, value_name = "FILE|DIR")]
        paths: Vec<PathBuf>,
    },
}

pub fn run(command: AuditCommand) -> Result<ExitCode, CliError> {
    match command {
        AuditCommand::Verify { paths } => {
            let report = crate::audit::verify::verify(&paths)
                .map_err(|e| CliError::Io(std::io::Error::other(e.to_string())))?;
            if report.files == 0 {
                eprintln!("error: no audit files found in the given paths");
                return Ok(ExitCode::from(2));
            }
            match report.problem {
                Some(finding) => {
                    println!("TAMPERED {finding}");
                    println!(
                        "({} event(s) before it verified, in {} file(s))",
                        report.events, report.files
                    );
                    Ok(ExitCode::from(1))
                }
                None => {
                    match report.started_at {
                        Some(seq) => println!(
                            "ok: {} event(s) in {} file(s), chain intact from seq {seq} (earlier files not given)",
                            report.events, report.files
                        ),
                        None => println!(
                            "ok: {} event(s) in {} file(s), chain intact",
                            report.events, report.files
                        ),
                    }
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
    }
}

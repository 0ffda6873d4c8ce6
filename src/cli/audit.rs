//! `palisade audit verify FILE|DIR...`: check the audit trail's hash chain, optionally against
//! the head an earlier run wrote (an anchor kept off this host).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde::{Deserialize, Serialize};

use super::anchor_file::{self, Formatted};
use super::CliError;
use crate::audit::verify::Anchor;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of audit files (in rotation order; a directory stands for its
    /// audit-<N>.jsonl files). Names the first altered, removed or reordered event as
    /// file:line and exits 1; exits 0 when the trail is intact.
    Verify {
        #[arg(required = true, value_name = "FILE|DIR")]
        paths: Vec<PathBuf>,
        /// After a clean check, write the last event's seq and hash to FILE: keep it where
        /// this host cannot write and pass it to --anchor next time.
        #[arg(long, value_name = "FILE")]
        head_out: Option<PathBuf>,
        /// A head written by an earlier run: that event must still be in the trail,
        /// unchanged, so a trail rewritten with a recomputed chain is found.
        #[arg(long, value_name = "FILE")]
        anchor: Option<PathBuf>,
    },
}

const FORMAT: &str = "palisade-audit-head-v1";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadFile {
    format: String,
    seq: u64,
    sha256: String,
}

impl Formatted for HeadFile {
    const FORMAT: &'static str = FORMAT;
    fn format(&self) -> &str {
        &self.format
    }
}

pub fn run(command: AuditCommand) -> Result<ExitCode, CliError> {
    let AuditCommand::Verify {
        paths,
        head_out,
        anchor,
    } = command;
    let anchor = anchor
        .as_deref()
        .map(anchor_file::read::<HeadFile>)
        .transpose()?
        .map(|f| Anchor {
            seq: f.seq,
            sha256: f.sha256,
        });
    let report = crate::audit::verify::verify_against(&paths, anchor.as_ref())
        .map_err(|e| CliError::Io(std::io::Error::other(e.to_string())))?;
    if report.files == 0 {
        eprintln!("error: no audit files found in the given paths");
        return Ok(ExitCode::from(2));
    }
    if let Some(finding) = report.problem {
        println!("TAMPERED {finding}");
        println!(
            "({} event(s) before it verified, in {} file(s))",
            report.events, report.files
        );
        return Ok(ExitCode::from(1));
    }
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
    if let Some(a) = &anchor {
        match report.anchor_matched {
            Some(true) => println!("anchor: event seq {} is unchanged", a.seq),
            _ => println!(
                "note: the anchored seq {} is older than the files given (not checked)",
                a.seq
            ),
        }
    }
    if let Some(head) = &report.head {
        println!("head seq={} sha256={}", head.seq, head.sha256);
        if let Some(path) = &head_out {
            let file = HeadFile {
                format: FORMAT.to_string(),
                seq: head.seq,
                sha256: head.sha256.clone(),
            };
            anchor_file::write(path, &file)?;
            println!("head written to {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

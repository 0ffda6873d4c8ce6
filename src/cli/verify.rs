//! `palisade verify`: walk every partition and check the tamper-evidence chain, optionally
//! against the heads an earlier run wrote (an anchor kept off this host).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use super::anchor_file::{self, Formatted};
use super::CliError;
use crate::config::Config;
use crate::storage::{verify_against, PartitionHead, VerifyFinding};

/// The heads file: what `--heads-out` writes and `--anchor` reads.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadsFile {
    format: String,
    heads: Vec<PartitionHead>,
}

const FORMAT: &str = "palisade-heads-v1";

impl Formatted for HeadsFile {
    const FORMAT: &'static str = FORMAT;
    fn format(&self) -> &str {
        &self.format
    }
}

pub fn run(
    data_dir: Option<PathBuf>,
    config: Option<&Path>,
    heads_out: Option<&Path>,
    anchor: Option<&Path>,
) -> Result<ExitCode, CliError> {
    let dir = match (data_dir, config) {
        (Some(d), _) => d,
        (None, Some(c)) => Config::load(c)?.storage.data_dir,
        (None, None) => Config::dev_default()?.storage.data_dir,
    };
    let anchored: Vec<PartitionHead> = match anchor {
        Some(path) => anchor_file::read::<HeadsFile>(path)?.heads,
        None => Vec::new(),
    };
    let report = verify_against(&dir, &anchored)?;
    for note in &report.notes {
        println!("note: {note}");
    }
    if report.findings.is_empty() {
        println!(
            "{}: {} batches verified, chain intact",
            dir.display(),
            report.batches
        );
        if let Some(path) = anchor {
            println!(
                "anchor {}: {} partition(s) still reach their anchored heads",
                path.display(),
                anchored.len().saturating_sub(report.notes.len())
            );
        }
        for h in &report.heads {
            println!(
                "head {} next_offset={} sha256={}",
                h.partition, h.next_offset, h.digest
            );
        }
        if let Some(path) = heads_out {
            let file = HeadsFile {
                format: FORMAT.to_string(),
                heads: report.heads.clone(),
            };
            anchor_file::write(path, &file)?;
            println!("heads written to {}", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    for VerifyFinding::Mismatch {
        partition,
        offset,
        reason,
    } in &report.findings
    {
        println!("TAMPERED {partition} offset {offset}: {reason}");
    }
    Ok(ExitCode::FAILURE)
}

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
    heads: Vec<Head>,
}

const FORMAT: &str = "palisade-heads-v1";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Head {
    partition: String,
    next_offset: i64,
    sha256: String,
}

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
        Some(path) => anchor_file::read::<HeadsFile>(path)?
            .heads
            .into_iter()
            .map(|h| PartitionHead {
                partition: h.partition,
                next_offset: h.next_offset,
                digest: h.sha256,
            })
            .collect(),
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
                heads: report
                    .heads
                    .iter()
                    .map(|h| Head {
                        partition: h.partition.clone(),
                        next_offset: h.next_offset,
                        sha256: h.digest.clone(),
                    })
                    .collect(),
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

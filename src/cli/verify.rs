//! `palisade verify`: walk every partition and check the tamper-evidence chain, optionally
//! against the heads an earlier run wrote (an anchor kept off this host).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

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

fn read_anchor(path: &Path) -> Result<Vec<PartitionHead>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read anchor `{}`: {e}", path.display())))?;
    let file: HeadsFile = serde_json::from_str(&text).map_err(|e| {
        CliError::Usage(format!(
            "anchor `{}` line {} column {}: {e}",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    if file.format != FORMAT {
        return Err(CliError::Usage(format!(
            "anchor `{}` is `{}`, not `{FORMAT}`",
            path.display(),
            file.format
        )));
    }
    Ok(file
        .heads
        .into_iter()
        .map(|h| PartitionHead {
            partition: h.partition,
            next_offset: h.next_offset,
            digest: h.sha256,
        })
        .collect())
}

fn write_heads(path: &Path, heads: &[PartitionHead]) -> Result<(), CliError> {
    let file = HeadsFile {
        format: FORMAT.to_string(),
        heads: heads
            .iter()
            .map(|h| Head {
                partition: h.partition.clone(),
                next_offset: h.next_offset,
                sha256: h.digest.clone(),
            })
            .collect(),
    };
    let mut text = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
    text.push(b'\n');
    std::fs::write(path, text)?;
    Ok(())
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
    let anchored = match anchor {
        Some(path) => read_anchor(path)?,
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
            write_heads(path, &report.heads)?;
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

//! `palisade verify`: walk every partition and check the tamper-evidence chain.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::CliError;
use crate::config::Config;
use crate::storage::{verify_data_dir, VerifyFinding};

pub fn run(data_dir: Option<PathBuf>, config: Option<&Path>) -> Result<ExitCode, CliError> {
    let dir = match (data_dir, config) {
        (Some(d), _) => d,
        (None, Some(c)) => Config::load(c)?.storage.data_dir,
        (None, None) => Config::dev_default()?.storage.data_dir,
    };
    let (findings, batches) = verify_data_dir(&dir)?;
    if findings.is_empty() {
        println!(
            "{}: {batches} batches verified, chain intact",
            dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for VerifyFinding::Mismatch {
        partition,
        offset,
        reason,
    } in &findings
    {
        println!("TAMPERED {partition} offset {offset}: {reason}");
    }
    Ok(ExitCode::FAILURE)
}

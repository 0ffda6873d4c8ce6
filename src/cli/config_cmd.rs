//! `palisade config check`.

use std::path::Path;
use std::process::ExitCode;

use super::CliError;
use crate::config::Config;

pub fn check(file: &Path) -> Result<ExitCode, CliError> {
    match Config::load(file) {
        Ok(_) => {
            println!("{}: ok", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

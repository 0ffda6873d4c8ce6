//! `palisade config check`: everything `serve` would refuse, found before starting it, then
//! the security checklist ([`super::posture`]). A gateway config's upstream is reached and
//! logged in to ([`super::upstream_check`]). Every problem of the file is reported in one
//! run, one `error: FILE:LINE:COL: message` line each.

use std::path::Path;
use std::process::ExitCode;

use super::CliError;
use crate::config::{Config, ConfigError};

pub fn check(file: &Path, strict: bool) -> Result<ExitCode, CliError> {
    let config = match Config::load(file) {
        Ok(c) => c,
        Err(ConfigError::Invalid { path, problems }) => {
            for p in &problems {
                eprintln!(
                    "error: {}:{}:{}: {}",
                    path.display(),
                    p.line,
                    p.column,
                    p.message
                );
            }
            eprintln!("{}: {} problem(s)", path.display(), problems.len());
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    // The TLS material of every listener must load as `serve` would load it: certificate
    // and key that match, a CA bundle, unexpired CRLs.
    let mut failed = false;
    for listener in &config.listeners {
        if let Some(tls) = &listener.tls {
            if let Err(e) = crate::tls::load_material(tls) {
                eprintln!("error: listener `{}`: {e}", listener.name);
                failed = true;
            }
        }
    }
    // The policy folder must validate as `serve` would load it.
    let policies = &config.authorization.policy_dir;
    if let Err(diagnostics) = crate::authz::PolicyStore::load(policies) {
        for d in diagnostics {
            eprintln!("error: policy folder `{}`: {d}", policies.display());
        }
        failed = true;
    }
    // Plugins and the keyring load as `serve` would load them (compiled, `init` run).
    if let Err(e) =
        crate::plugin::PluginHost::builder(&config.plugins, &config.storage.data_dir).open()
    {
        eprintln!("error: {e}");
        failed = true;
    }
    // In gateway mode the upstream must answer and accept the login, as `serve` needs.
    if config.gateway.is_enabled() && !super::upstream_check::check(&config.gateway) {
        failed = true;
    }
    if failed {
        return Ok(ExitCode::FAILURE);
    }
    let warnings = super::posture::warnings(&config);
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if strict && !warnings.is_empty() {
        eprintln!(
            "{}: {} security checklist warning(s) with --strict",
            file.display(),
            warnings.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    println!("{}: ok", file.display());
    Ok(ExitCode::SUCCESS)
}

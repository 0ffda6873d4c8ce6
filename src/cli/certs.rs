//! `palisade certs dev`: write a development PKI (CA, loopback server certificate, clients, CRL).
//! `palisade certs check`: when the TLS material of each listener expires.

use std::path::Path;
use std::process::ExitCode;

use super::CliError;
use crate::tls::generate_dev_pki;

pub fn dev(dir: &Path, clients: &[String], force: bool) -> Result<ExitCode, CliError> {
    let pki = generate_dev_pki(dir, clients, force)?;
    println!("wrote a development PKI to {}", pki.dir.display());
    println!(
        "  ca:     {} (key {})",
        pki.ca_cert.display(),
        pki.ca_key.display()
    );
    println!(
        "  server: {} (key {}) for localhost, 127.0.0.1, ::1",
        pki.server_cert.display(),
        pki.server_key.display()
    );
    println!("  crl:    {}", pki.crl.display());
    for c in &pki.clients {
        println!(
            "  client `{}`: {} (key {})",
            c.name,
            c.cert.display(),
            c.key.display()
        );
    }
    println!(
        "keys are mode 0600 and ignored by {}",
        pki.dir.join(".gitignore").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Lists every listener's certificates and CRLs with their expiry; fails on anything expired,
/// unloadable or expiring within `warn_days`.
pub fn check(config: Option<&Path>, warn_days: u32) -> Result<ExitCode, CliError> {
    let config = match config {
        Some(path) => crate::config::Config::load(path)?,
        None => crate::config::Config::dev_default()?,
    };
    let now = crate::tls::material::now_unix();
    let mut failed = false;
    let mut any = false;
    for listener in &config.listeners {
        let Some(settings) = &listener.tls else {
            continue;
        };
        any = true;
        match crate::tls::load_material(settings) {
            Err(e) => {
                println!("listener `{}`: error: {e}", listener.name);
                failed = true;
            }
            Ok(material) => {
                for e in &material.expiries {
                    let days = e.days_left(now);
                    let verdict = if days < i64::from(warn_days) {
                        failed = true;
                        "EXPIRES SOON"
                    } else {
                        "ok"
                    };
                    println!(
                        "listener `{}`: {} {} `{}`: {} {} ({days} days left) {verdict}",
                        listener.name,
                        e.kind.as_str(),
                        e.path.display(),
                        e.subject,
                        if e.kind == crate::tls::ExpiryKind::Crl {
                            "next update"
                        } else {
                            "not after"
                        },
                        iso(e.not_after),
                    );
                }
            }
        }
    }
    if !any {
        println!("no listener uses TLS");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn iso(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

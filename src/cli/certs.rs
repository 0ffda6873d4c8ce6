//! `palisade certs dev`: write a development PKI (CA, loopback server certificate, clients, CRL).

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

//! `palisade serve`: run until SIGINT/SIGTERM, then shut down gracefully.

use std::path::Path;
use std::process::ExitCode;

use super::CliError;
use crate::broker::Running;
use crate::config::Config;

pub fn run(config_path: Option<&Path>, upstream: Vec<String>) -> Result<ExitCode, CliError> {
    let mut config = match config_path {
        Some(p) => Config::load(p)?,
        None => Config::dev_default()?,
    };
    if !upstream.is_empty() {
        config.gateway.bootstrap_servers = upstream;
        config.gateway.enabled = Some(true);
    }
    init_logging(&config);
    if config.gateway.is_enabled() {
        tracing::info!(upstream = ?config.gateway.bootstrap_servers, "gateway mode: every request passes the layers here, then goes to the upstream cluster");
    }
    match config_path {
        Some(p) => tracing::info!(config = %p.display(), "starting palisade"),
        None => tracing::info!(
            "starting palisade with the embedded dev default (loopback only, ./data)"
        ),
    }
    if config_path.is_none() {
        ensure_dev_pki(&config)?;
        ensure_dev_policies(&config)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let running = Running::start(config).await?;
        wait_for_signal().await?;
        tracing::info!("signal received, shutting down");
        running.shutdown().await;
        tracing::info!("stopped cleanly");
        Ok(ExitCode::SUCCESS)
    })
}

/// The dev default serves TLS from `./certs`: when that holds no server certificate yet,
/// create a development PKI there (CA, server certificate for localhost, a client `admin`).
fn ensure_dev_pki(config: &Config) -> Result<(), CliError> {
    let Some(tls) = config.listeners.iter().find_map(|l| l.tls.as_ref()) else {
        return Ok(());
    };
    if tls.cert.exists() {
        return Ok(());
    }
    let dir = tls.cert.parent().unwrap_or(Path::new("."));
    let pki = crate::tls::generate_dev_pki(dir, &["admin".to_string()], false)?;
    tracing::warn!(
        dir = %pki.dir.display(),
        ca = %pki.ca_cert.display(),
        "created a development PKI (CA, server certificate for localhost, client certificate `admin`); for development only"
    );
    Ok(())
}

/// The dev default reads `./policies`: outside a checkout, where there is none, write the
/// schema and the dev loopback rule there, so `palisade serve` works in any directory while
/// every non-loopback request is still denied until policies say otherwise.
fn ensure_dev_policies(config: &Config) -> Result<(), CliError> {
    let dir = &config.authorization.policy_dir;
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    for (name, text) in [
        (
            "schema.cedarschema",
            include_str!("../../policies/schema.cedarschema"),
        ),
        (
            "00-dev-loopback.cedar",
            include_str!("../../policies/00-dev-loopback.cedar"),
        ),
    ] {
        std::fs::write(dir.join(name), text)?;
    }
    tracing::warn!(
        dir = %dir.display(),
        "created a development policy folder (schema and a rule allowing PLAINTEXT from 127.0.0.1); everything else is denied until you add policies"
    );
    Ok(())
}

async fn wait_for_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only on a terminal: log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // JSON escapes control characters itself; the human format escapes every value so that
    // no client-chosen string can forge a log line.
    let _ = if config.log.format == "json" {
        builder.json().try_init()
    } else {
        builder
            .fmt_fields(crate::log_escape::EscapedFields)
            .try_init()
    };
}

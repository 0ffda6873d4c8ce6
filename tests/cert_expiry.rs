//! Expiry of TLS material seen from outside: the metrics a monitor scrapes, and
//! `palisade certs check` for cron or CI, before and after a certificate is replaced.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::path::Path;
use std::time::Duration;

use palisade::tls::{generate_dev_pki, DevCa};
use time::OffsetDateTime;

const DAY: i64 = 86_400;

/// A dev PKI in `certs` whose server certificate expires in `days` days, signed by a CA of
/// its own (written over the generated CA, with a CRL of that CA).
fn certs_expiring_in(certs: &Path, days: i64) -> DevCa {
    generate_dev_pki(certs, &[], false).unwrap();
    let ca = DevCa::generate("expiry test CA").unwrap();
    let now = OffsetDateTime::now_utc();
    write_server(&ca, certs, days);
    std::fs::write(certs.join("ca.pem"), ca.cert_pem()).unwrap();
    let crl = ca
        .crl_pem(
            &[],
            now - time::Duration::minutes(5),
            now + time::Duration::days(200),
        )
        .unwrap();
    std::fs::write(certs.join("ca.crl.pem"), crl).unwrap();
    ca
}

fn write_server(ca: &DevCa, certs: &Path, days: i64) {
    let now = OffsetDateTime::now_utc();
    let issued = ca
        .issue_server_valid(
            "localhost",
            &["localhost", "127.0.0.1"],
            now - time::Duration::days(2),
            now + time::Duration::days(days),
        )
        .unwrap();
    // The key first: the reloader then sees a matching pair once the certificate lands.
    std::fs::write(certs.join("server-key.pem"), issued.key_pem).unwrap();
    std::fs::write(certs.join("server.pem"), issued.cert_pem).unwrap();
}

fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The value of `palisade_tls_expiry_timestamp_seconds{listener, kind}`, once published.
fn gauge(running: &palisade::broker::Running, listener: &str, kind: &str) -> Option<i64> {
    let prefix = format!(
        "palisade_tls_expiry_timestamp_seconds{{listener=\"{listener}\",kind=\"{kind}\"}} "
    );
    let text = running.broker.metrics.render();
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
}

fn certs_check(config: &Path, warn_days: &str) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["certs", "check", "--config"])
        .arg(config)
        .args(["--warn-days", warn_days])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn expiry_is_published_checked_and_follows_a_replaced_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let ca = certs_expiring_in(&certs, 10);
    let text = common::secure_config_text(dir.path(), &certs, &[]);
    let config_file = dir.path().join("palisade.toml");
    std::fs::write(&config_file, &text).unwrap();

    // The CLI: 10 days left fails the default 30-day check and passes a 5-day one.
    let (ok, out) = certs_check(&config_file, "30");
    assert!(!ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("listener `SSL`: certificate"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("CN=localhost") && line.contains("EXPIRES SOON"),
        "{line}"
    );
    assert!(
        line.contains("(9 days left)") || line.contains("(10 days left)"),
        "{line}"
    );
    assert!(out.contains("listener `SSL`: crl"), "{out}");
    assert!(out.contains("listener `SSL`: client_ca"), "{out}");
    let (ok, out) = certs_check(&config_file, "5");
    assert!(ok, "{out}");

    // The broker publishes the soonest expiry per listener and kind.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = palisade::config::Config::parse(&text, Path::new("<test>")).unwrap();
    let running = rt
        .block_on(palisade::broker::Running::start(config))
        .unwrap();
    let in_ten_days = now_unix() + 10 * DAY;
    let cert = common::wait_for(Duration::from_secs(5), || {
        gauge(&running, "SSL", "certificate")
    })
    .expect("no certificate expiry published");
    assert!(
        (in_ten_days - 120..=in_ten_days + 5).contains(&cert),
        "{cert} vs {in_ten_days}"
    );
    assert!(gauge(&running, "SASL_SSL", "certificate").is_some());
    let crl = gauge(&running, "SSL", "crl").unwrap();
    assert!((crl - (now_unix() + 200 * DAY)).abs() < 600, "{crl}");
    assert!(gauge(&running, "SSL", "client_ca").unwrap() > now_unix() + 300 * DAY);
    assert_eq!(gauge(&running, "PLAINTEXT", "certificate"), None);

    // Replaced by a certificate valid for a year: reloaded, published, and the check passes.
    write_server(&ca, &certs, 365);
    let in_a_year = now_unix() + 365 * DAY;
    common::wait_for(Duration::from_secs(10), || {
        gauge(&running, "SSL", "certificate").filter(|t| *t > in_a_year - 600)
    })
    .expect("the replaced certificate's expiry was never published");
    let (ok, out) = certs_check(&config_file, "30");
    assert!(ok, "{out}");
    rt.block_on(running.shutdown());
}

#[test]
fn an_expired_certificate_fails_the_check_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    certs_expiring_in(&certs, -1);
    let config_file = dir.path().join("palisade.toml");
    std::fs::write(
        &config_file,
        common::secure_config_text(dir.path(), &certs, &[]),
    )
    .unwrap();
    let (ok, out) = certs_check(&config_file, "0");
    assert!(!ok, "{out}");
    assert!(
        out.contains("listener `SSL`: error:") && out.contains("server.pem"),
        "{out}"
    );
}

//! A development PKI: one CA, a server certificate for loopback, client certificates and an
//! empty CRL. Used by `palisade certs dev`, by `serve` when `./certs` is empty, and by tests.
//!
//! Private keys are created with mode 0600 (never written world-readable first), and the
//! directory gets a `.gitignore` for `*-key.pem`.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateRevocationListParams,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// Writing the development PKI failed.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("invalid client name `{name}`: {reason}")]
    InvalidClientName { name: String, reason: &'static str },
    #[error("`{path}` already exists; use --force to overwrite")]
    Exists { path: PathBuf },
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate certificates: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The files written by [`generate_dev_pki`].
#[derive(Debug)]
pub struct DevPki {
    pub dir: PathBuf,
    /// `ca.pem`: the CA certificate (trust this as `client_ca` and on clients).
    pub ca_cert: PathBuf,
    /// `ca-key.pem` (0600).
    pub ca_key: PathBuf,
    /// `server.pem`: server certificate then CA.
    pub server_cert: PathBuf,
    /// `server-key.pem` (0600).
    pub server_key: PathBuf,
    /// `ca.crl.pem`: an empty CRL signed by the CA, valid for a year.
    pub crl: PathBuf,
    /// `NAME.pem` / `NAME-key.pem` per client.
    pub clients: Vec<DevClient>,
    /// The CA, in memory, to issue more certificates or CRLs (tests).
    pub ca: DevCa,
}

/// One client's files.
#[derive(Debug, Clone)]
pub struct DevClient {
    pub name: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate issued by a [`DevCa`], in memory.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub serial: Vec<u8>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("serial", &hex::encode(&self.serial))
            .finish_non_exhaustive()
    }
}

/// A CA able to issue certificates and CRLs.
pub struct DevCa {
    cert: Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").finish_non_exhaustive()
    }
}

impl DevCa {
    /// A new self-signed CA (ECDSA P-256, ten years).
    pub fn generate(common_name: &str) -> Result<Self, CertsError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(3650);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self { cert, key })
    }

    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA's private key in PEM. Secret.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A server certificate for `sans` (DNS names or IP addresses), valid for a year.
    pub fn issue_server(&self, common_name: &str, sans: &[&str]) -> Result<Issued, CertsError> {
        let now = OffsetDateTime::now_utc();
        self.issue_server_valid(
            common_name,
            sans,
            now - Duration::minutes(5),
            now + Duration::days(365),
        )
    }

    /// A server certificate with an explicit validity (tests: certificates about to expire).
    pub fn issue_server_valid(
        &self,
        common_name: &str,
        sans: &[&str],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Issued, CertsError> {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        self.issue(
            common_name,
            sans,
            ExtendedKeyUsagePurpose::ServerAuth,
            not_before,
            not_after,
        )
    }

    /// A client certificate with `CN=common_name`, valid for a year.
    pub fn issue_client(&self, common_name: &str) -> Result<Issued, CertsError> {
        let now = OffsetDateTime::now_utc();
        self.issue_client_valid(
            common_name,
            now - Duration::minutes(5),
            now + Duration::days(365),
        )
    }

    /// A client certificate with an explicit validity (tests: expired certificates).
    pub fn issue_client_valid(
        &self,
        common_name: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Issued, CertsError> {
        self.issue(
            common_name,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            not_before,
            not_after,
        )
    }

    fn issue(
        &self,
        common_name: &str,
        sans: Vec<String>,
        usage: ExtendedKeyUsagePurpose,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Issued, CertsError> {
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name = dn(common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let serial = random_serial();
        params.serial_number = Some(serial.clone());
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial: serial.to_bytes(),
        })
    }

    /// A CRL revoking `serials`, issued now and due for update at `next_update`.
    pub fn crl_pem(
        &self,
        serials: &[Vec<u8>],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<String, CertsError> {
        let revoked_certs = serials
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from_slice(s),
                revocation_time: this_update,
                reason_code: None,
                invalidity_date: None,
            })
            .collect();
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: random_serial(),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.cert, &self.key)?.pem()?)
    }
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// 16 random bytes, positive and without a leading zero byte.
fn random_serial() -> SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    if let Some(first) = bytes.first_mut() {
        *first = (*first & 0x7f).max(1);
    }
    SerialNumber::from_slice(&bytes)
}

const RESERVED: [&str; 3] = ["ca", "server", "ca.crl"];

fn check_client_name(name: &str) -> Result<(), CertsError> {
    let bad = |reason| CertsError::InvalidClientName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() || name.len() > 64 {
        return Err(bad("must be 1 to 64 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || name.starts_with(['.', '-'])
    {
        return Err(bad(
            "use letters, digits, `-`, `_` and `.`, not first `.` or `-`",
        ));
    }
    if RESERVED.contains(&name) || name.ends_with("-key") {
        return Err(bad("collides with the ca, server or key file names"));
    }
    Ok(())
}

/// Writes a development PKI into `dir` (created if missing): `ca.pem`, `ca-key.pem`,
/// `server.pem` (server + CA, SANs `localhost`, `127.0.0.1`, `::1`), `server-key.pem`,
/// `ca.crl.pem`, `NAME.pem`/`NAME-key.pem` per client, and `.gitignore`.
///
/// Without `force`, refuses before writing anything if any of these files exists.
pub fn generate_dev_pki(dir: &Path, clients: &[String], force: bool) -> Result<DevPki, CertsError> {
    for (i, name) in clients.iter().enumerate() {
        check_client_name(name)?;
        if clients.iter().take(i).any(|n| n == name) {
            return Err(CertsError::InvalidClientName {
                name: name.clone(),
                reason: "given twice",
            });
        }
    }
    let ca = DevCa::generate("Palisade dev CA")?;
    let server = ca.issue_server("localhost", &["localhost", "127.0.0.1", "::1"])?;
    let now = OffsetDateTime::now_utc();
    let crl = ca.crl_pem(&[], now - Duration::minutes(5), now + Duration::days(365))?;

    // (file name, content, secret)
    let mut files: Vec<(String, String, bool)> = vec![
        ("ca.pem".into(), ca.cert_pem(), false),
        ("ca-key.pem".into(), ca.key_pem(), true),
        (
            "server.pem".into(),
            format!("{}{}", server.cert_pem, ca.cert_pem()),
            false,
        ),
        ("server-key.pem".into(), server.key_pem, true),
        ("ca.crl.pem".into(), crl, false),
    ];
    let mut dev_clients = Vec::new();
    for name in clients {
        let issued = ca.issue_client(name)?;
        files.push((format!("{name}.pem"), issued.cert_pem, false));
        files.push((format!("{name}-key.pem"), issued.key_pem, true));
        dev_clients.push(DevClient {
            name: name.clone(),
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
        });
    }

    std::fs::create_dir_all(dir).map_err(|source| CertsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    if !force {
        if let Some((name, _, _)) = files.iter().find(|(n, _, _)| dir.join(n).exists()) {
            return Err(CertsError::Exists {
                path: dir.join(name),
            });
        }
    }
    for (name, content, secret) in &files {
        write_file(&dir.join(name), content.as_bytes(), *secret, force)?;
    }
    ensure_gitignore(dir)?;
    Ok(DevPki {
        dir: dir.to_path_buf(),
        ca_cert: dir.join("ca.pem"),
        ca_key: dir.join("ca-key.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server-key.pem"),
        crl: dir.join("ca.crl.pem"),
        clients: dev_clients,
        ca,
    })
}

/// Makes the directory's `.gitignore` ignore private keys, keeping whatever else it says (a
/// checkout ships `certs/.gitignore` already).
fn ensure_gitignore(dir: &Path) -> Result<(), CertsError> {
    let path = dir.join(".gitignore");
    let existing = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(CertsError::Write { path, source }),
    };
    if existing.lines().any(|l| l.trim() == "*-key.pem") {
        return Ok(());
    }
    let mut content = existing;
    if !content.is_empty() && !content.ends_with('\n') {
        content.push('\n');
    }
    content.push_str("# Private keys written by `palisade certs dev`.\n*-key.pem\n");
    std::fs::write(&path, content).map_err(|source| CertsError::Write { path, source })
}

/// Writes `path` with its final mode from creation (see [`crate::atomic_file`]). With
/// `force` an existing file is replaced (its looser mode is not inherited); without, it is an
/// error.
fn write_file(path: &Path, content: &[u8], secret: bool, force: bool) -> Result<(), CertsError> {
    let mode = if secret { 0o600 } else { 0o644 };
    let written = if force {
        crate::atomic_file::replace(path, content, mode)
    } else {
        crate::atomic_file::create_new(path, content, mode)
    };
    written.map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => CertsError::Exists {
            path: path.to_path_buf(),
        },
        _ => CertsError::Write {
            path: path.to_path_buf(),
            source,
        },
    })
}

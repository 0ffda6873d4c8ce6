//! Upstream credentials: passwords read from private files, held in a type that never prints
//! them.

use std::path::{Path, PathBuf};

use super::settings::ClientMechanism;

/// A password. `Debug` and `Display` print `<redacted>`; only [`Secret::expose`] gives the
/// bytes, to the SASL client that sends them.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The password bytes, for the SASL exchange only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Who the gateway logs in to the upstream as: a mechanism, a user name and its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub mechanism: ClientMechanism,
    pub username: String,
    pub password: Secret,
}

impl Credential {
    /// SHA-256 over mechanism, user name and password: equal for the same login, different
    /// when any part differs (connections are shared only by identical credentials). Never
    /// shown anywhere.
    pub fn fingerprint(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for part in [
            self.mechanism.name().as_bytes(),
            self.username.as_bytes(),
            self.password.expose(),
        ] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hash.finalize().into()
    }
}

/// Reading a secret file failed. Never carries the file's content.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "`{path}` is readable or writable by other users (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("`{path}` is empty")]
    Empty { path: PathBuf },
}

/// Reads a password file: mode 0600 (no group or other access), one trailing newline
/// (`\n` or `\r\n`) dropped, not empty.
pub fn read_password_file(path: &Path) -> Result<Secret, SecretError> {
    let text = read_private(path)?;
    let password = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if password.is_empty() {
        return Err(SecretError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Secret::new(password.as_bytes()))
}

/// Reads a file only the gateway's user may read.
pub fn read_private(path: &Path) -> Result<String, SecretError> {
    crate::private_file::read(path).map_err(|e| match e {
        crate::private_file::ReadError::Io(source) => SecretError::Read {
            path: path.to_path_buf(),
            source,
        },
        crate::private_file::ReadError::Permissions(mode) => SecretError::Permissions {
            path: path.to_path_buf(),
            mode,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn debug_never_shows_the_password() {
        let c = Credential {
            mechanism: ClientMechanism::ScramSha512,
            username: "svc".into(),
            password: Secret::new("hunter2-very-secret"),
        };
        let shown = format!("{c:?} {}", c.password);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("svc") && shown.contains("<redacted>"));
    }

    #[test]
    fn password_files_must_be_private_and_lose_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_password_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("chmod 600") && !err.contains("s3cret"),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_password_file(&path).unwrap().expose(), b"s3cret");
        std::fs::write(&path, "two\n\n").unwrap();
        assert_eq!(read_password_file(&path).unwrap().expose(), b"two\n");
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            read_password_file(&path),
            Err(SecretError::Empty { .. })
        ));
        assert!(matches!(
            read_password_file(&dir.path().join("missing")),
            Err(SecretError::Read { .. })
        ));
    }
}

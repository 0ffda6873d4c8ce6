//! The credential file: JSON, mode 0600, replaced atomically.
//!
//! ```json
//! {
//!   "version": 1,
//!   "secret": "<base64, 32 random bytes: fake salts for unknown users>",
//!   "users": {
//!     "alice": {
//!       "SCRAM-SHA-256": { "salt": "<b64>", "iterations": 8192,
//!                          "stored_key": "<b64>", "server_key": "<b64>" }
//!     }
//!   }
//! }
//! ```
//!
//! A file readable or writable by group or others is refused with an error naming the file and
//! the fix (`chmod 600`), and so is a file whose secret is one that was published
//! ([`super::published_secret`]), naming `palisade user rotate-secret`. Writes go to a temporary file in the same directory (created 0600),
//! are fsynced, renamed over the target, and the directory is fsynced.

use std::collections::BTreeMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::credentials::{CredentialError, CredentialStore, ScramCredential};
use super::Mechanism;

const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    version: u32,
    secret: String,
    users: BTreeMap<String, BTreeMap<Mechanism, FileCredential>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCredential {
    salt: String,
    iterations: u32,
    stored_key: String,
    server_key: String,
}

fn parse_error(path: &Path, message: impl Into<String>) -> CredentialError {
    CredentialError::Parse {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Parses the file's text; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<CredentialStore, CredentialError> {
    let file: FileFormat =
        serde_json::from_str(text).map_err(|e| parse_error(path, e.to_string()))?;
    if file.version != VERSION {
        return Err(parse_error(
            path,
            format!(
                "unsupported version `{}` (expected {VERSION})",
                file.version
            ),
        ));
    }
    let b64 = |user: &str, field: &str, value: &str| {
        B64.decode(value)
            .map_err(|_| parse_error(path, format!("user `{user}`: `{field}` is not base64")))
    };
    let secret = b64("", "secret", &file.secret)?;
    let mut users = BTreeMap::new();
    for (name, creds) in file.users {
        let mut parsed = BTreeMap::new();
        for (mechanism, c) in creds {
            let credential = ScramCredential {
                salt: b64(&name, "salt", &c.salt)?,
                iterations: c.iterations,
                stored_key: b64(&name, "stored_key", &c.stored_key)?,
                server_key: b64(&name, "server_key", &c.server_key)?,
            };
            let bad = |what: &str| parse_error(path, format!("user `{name}` {mechanism}: {what}"));
            if !(super::MIN_ITERATIONS..=super::MAX_ITERATIONS).contains(&credential.iterations) {
                return Err(bad("iterations out of range"));
            }
            if credential.salt.is_empty()
                || credential.stored_key.len() != mechanism.key_len()
                || credential.server_key.len() != mechanism.key_len()
            {
                return Err(bad("salt or key has the wrong length"));
            }
            parsed.insert(mechanism, credential);
        }
        users.insert(name, parsed);
    }
    CredentialStore::from_parts(secret, users).map_err(|e| parse_error(path, e.to_string()))
}

/// Serializes a store (keys base64, users sorted).
pub fn to_json(store: &CredentialStore) -> Result<String, CredentialError> {
    let users = store
        .users()
        .iter()
        .map(|(name, creds)| {
            let creds = creds
                .iter()
                .map(|(m, c)| {
                    let c = FileCredential {
                        salt: B64.encode(&c.salt),
                        iterations: c.iterations,
                        stored_key: B64.encode(&c.stored_key),
                        server_key: B64.encode(&c.server_key),
                    };
                    (*m, c)
                })
                .collect();
            (name.clone(), creds)
        })
        .collect();
    let file = FileFormat {
        version: VERSION,
        secret: B64.encode(store.secret()),
        users,
    };
    serde_json::to_string_pretty(&file)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| CredentialError::Invalid(if e.is_io() { "io" } else { "serialization" }))
}

/// Reads and checks a credential file.
pub fn load(path: &Path) -> Result<CredentialStore, CredentialError> {
    let store = load_to_rotate(path)?;
    if super::published_secret::is_published(store.secret()) {
        return Err(CredentialError::PublishedSecret {
            path: path.to_path_buf(),
        });
    }
    Ok(store)
}

/// Reads and checks a credential file, except for a published secret (what rotating needs).
pub fn load_to_rotate(path: &Path) -> Result<CredentialStore, CredentialError> {
    let text = crate::private_file::read(path).map_err(|e| match e {
        crate::private_file::ReadError::Io(source) => CredentialError::Read {
            path: path.to_path_buf(),
            source,
        },
        crate::private_file::ReadError::Permissions(mode) => CredentialError::Permissions {
            path: path.to_path_buf(),
            mode,
        },
    })?;
    parse(&text, path)
}

/// Reads a credential file, or creates an empty store there if none exists.
pub fn load_or_create(path: &Path) -> Result<CredentialStore, CredentialError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let store = CredentialStore::new()?;
            save(&store, path)?;
            Ok(store)
        }
        _ => load(path),
    }
}

/// Writes atomically: temp file (0600) + fsync + rename + directory fsync.
pub fn save(store: &CredentialStore, path: &Path) -> Result<(), CredentialError> {
    let text = to_json(store)?;
    let write_error = |source| CredentialError::Write {
        path: path.to_path_buf(),
        source,
    };
    crate::private_file::write(path, text.as_bytes()).map_err(write_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn round_trip_with_mode_0600_and_no_password_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.json");
        let mut store = CredentialStore::load_or_create(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        store
            .add_user("alice", &Mechanism::ALL, 8192, b"correct-horse-battery")
            .unwrap();
        store.save(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        let loaded = CredentialStore::load(&path).unwrap();
        assert_eq!(loaded, store);
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(!text.contains("correct-horse-battery"));
        assert!(!text.contains(&B64.encode("correct-horse-battery")));
        assert!(text.contains("\"SCRAM-SHA-512\"") && text.contains("\"iterations\": 8192"));
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn group_or_world_accessible_file_is_refused_naming_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds.json");
        CredentialStore::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = CredentialStore::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("creds.json") && err.contains("chmod 600"),
            "{err}"
        );
        assert!(CredentialStore::load_or_create(&path).is_err());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(CredentialStore::load(&path).is_ok());
    }

    #[test]
    fn invalid_files_are_refused_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        let store = CredentialStore::load_or_create(&path).unwrap();
        let good = to_json(&store).unwrap();
        for bad in [
            "{".to_string(),
            good.replace("\"version\": 1", "\"version\": 2"),
            good.replace("\"users\"", "\"userz\""),
        ] {
            let err = parse(&bad, &path).unwrap_err().to_string();
            assert!(err.contains("c.json"), "{err}");
        }
        let mut weak = store.clone();
        weak.add_user("a", &[Mechanism::ScramSha256], 4096, b"pw")
            .unwrap();
        let text = to_json(&weak)
            .unwrap()
            .replace("\"iterations\": 4096", "\"iterations\": 1");
        assert!(parse(&text, &path)
            .unwrap_err()
            .to_string()
            .contains("iterations"));
    }
}

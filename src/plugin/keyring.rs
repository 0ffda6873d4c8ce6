//! The broker keyring: named 256-bit keys in a JSON file of mode 0600, written atomically and
//! reloaded when it changes. Key bytes never leave this module except into the crypto host
//! functions; `Debug` and listings show names only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

const VERSION: u32 = 1;

/// Length of every keyring key (AES-256, HMAC-SHA256).
pub const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("cannot read keyring `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write keyring `{path}`: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("keyring `{path}` has mode {mode:o}; it must not be readable by group or others (chmod 600)")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("invalid keyring `{path}`: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("key `{0}` already exists in the keyring")]
    Exists(String),
    #[error("invalid key name `{0}` (use letters, digits, `-`, `_`, `.`; at most 64)")]
    BadName(String),
    #[error("the system random source failed")]
    Random,
}

/// One key. The bytes are private; only crypto code in this module tree reads them.
#[derive(Clone)]
pub struct Key {
    bytes: [u8; KEY_LEN],
    pub created_ms: i64,
}

impl Key {
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").finish_non_exhaustive()
    }
}

/// A set of named keys.
#[derive(Clone, Default, Debug)]
pub struct Keyring {
    keys: BTreeMap<String, Key>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    version: u32,
    keys: BTreeMap<String, FileKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    key: String,
    created_ms: i64,
}

/// Key names appear in manifests, ciphertexts and logs: keep them short and plain.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub(crate) fn random<const N: usize>() -> Result<[u8; N], KeyringError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|_| KeyringError::Random)?;
    Ok(out)
}

impl Keyring {
    pub fn get(&self, name: &str) -> Option<&Key> {
        self.keys.get(name)
    }

    /// Names and creation times, never key bytes.
    pub fn names(&self) -> impl Iterator<Item = (&str, i64)> {
        self.keys.iter().map(|(n, k)| (n.as_str(), k.created_ms))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds a fresh random key called `name`.
    pub fn generate(&mut self, name: &str) -> Result<(), KeyringError> {
        if !valid_name(name) {
            return Err(KeyringError::BadName(name.to_string()));
        }
        if self.keys.contains_key(name) {
            return Err(KeyringError::Exists(name.to_string()));
        }
        let created_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.keys.insert(
            name.to_string(),
            Key {
                bytes: random()?,
                created_ms,
            },
        );
        Ok(())
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, KeyringError> {
        let bad = |message: String| KeyringError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let file: FileFormat = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if file.version != VERSION {
            return Err(bad(format!(
                "unsupported version `{}` (expected {VERSION})",
                file.version
            )));
        }
        let mut keys = BTreeMap::new();
        for (name, k) in file.keys {
            if !valid_name(&name) {
                return Err(bad(format!("invalid key name `{name}`")));
            }
            let bytes = B64
                .decode(k.key.as_bytes())
                .ok()
                .and_then(|b| <[u8; KEY_LEN]>::try_from(b.as_slice()).ok())
                .ok_or_else(|| bad(format!("key `{name}` is not {KEY_LEN} base64 bytes")))?;
            keys.insert(
                name,
                Key {
                    bytes,
                    created_ms: k.created_ms,
                },
            );
        }
        Ok(Keyring { keys })
    }

    /// Reads `path`, refusing a file readable by group or others.
    pub fn load(path: &Path) -> Result<Self, KeyringError> {
        let text = crate::private_file::read(path).map_err(|e| match e {
            crate::private_file::ReadError::Io(source) => KeyringError::Read {
                path: path.to_path_buf(),
                source,
            },
            crate::private_file::ReadError::Permissions(mode) => KeyringError::Permissions {
                path: path.to_path_buf(),
                mode,
            },
        })?;
        Self::parse(&text, path)
    }

    /// Like [`load`](Self::load), but a missing file is an empty keyring.
    pub fn load_or_empty(path: &Path) -> Result<Self, KeyringError> {
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Keyring::default()),
            _ => Self::load(path),
        }
    }

    /// Writes the keyring to `path` atomically (temp file of mode 0600, fsync, rename, fsync
    /// of the directory).
    pub fn save(&self, path: &Path) -> Result<(), KeyringError> {
        let file = FileFormat {
            version: VERSION,
            keys: self
                .keys
                .iter()
                .map(|(n, k)| {
                    (
                        n.clone(),
                        FileKey {
                            key: B64.encode(k.bytes),
                            created_ms: k.created_ms,
                        },
                    )
                })
                .collect(),
        };
        let mut text = serde_json::to_string_pretty(&file).map_err(|e| KeyringError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        text.push('\n');
        write_atomically(path, text.as_bytes()).map_err(|source| KeyringError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

pub(crate) use crate::private_file::write as write_atomically;

/// The keyring the broker serves, swapped whole on reload.
#[derive(Clone, Debug)]
pub struct SharedKeyring {
    path: PathBuf,
    current: Arc<ArcSwap<Keyring>>,
    generation: Arc<std::sync::atomic::AtomicU64>,
    reloads: Arc<crate::reload::Reloads>,
}

impl SharedKeyring {
    /// Loads `path` (missing = empty).
    pub fn open(path: &Path) -> Result<Self, KeyringError> {
        Ok(Self::serving(path, Keyring::load_or_empty(path)?))
    }

    /// A keyring not backed by a file (tests, benches, `plugin check`).
    pub fn fixed(keyring: Keyring) -> Self {
        Self::serving(Path::new(""), keyring)
    }

    fn serving(path: &Path, keyring: Keyring) -> Self {
        SharedKeyring {
            path: path.to_path_buf(),
            current: Arc::new(ArcSwap::from_pointee(keyring)),
            generation: Arc::new(std::sync::atomic::AtomicU64::new(1)),
            reloads: Arc::default(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn current(&self) -> Arc<Keyring> {
        self.current.load_full()
    }

    /// Re-reads the file ([`crate::reload::run`]); on error the current keyring stays and the
    /// error is returned. The number of keys now serving.
    pub fn reload(&self) -> Result<usize, KeyringError> {
        crate::reload::run(self)?;
        Ok(self.current().len())
    }
}

impl crate::reload::Reloadable for SharedKeyring {
    type Next = Keyring;
    type Error = KeyringError;

    fn kind(&self) -> &'static str {
        "keyring"
    }

    fn load(&self) -> Result<Keyring, KeyringError> {
        Keyring::load_or_empty(&self.path)
    }

    fn swap(&self, next: Keyring) -> Option<u64> {
        self.current.store(Arc::new(next));
        Some(
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1,
        )
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn problems(&self, error: &KeyringError) -> Vec<crate::reload::Problem> {
        vec![crate::reload::Problem::unlocated(error.to_string())]
    }

    fn reloads(&self) -> &crate::reload::Reloads {
        &self.reloads
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn keys_round_trip_through_a_0600_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let mut ring = Keyring::load_or_empty(&path).unwrap();
        assert!(ring.is_empty());
        ring.generate("orders-key").unwrap();
        ring.generate("other").unwrap();
        assert!(matches!(
            ring.generate("orders-key"),
            Err(KeyringError::Exists(_))
        ));
        assert!(matches!(
            ring.generate("bad name"),
            Err(KeyringError::BadName(_))
        ));
        ring.save(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        let loaded = Keyring::load(&path).unwrap();
        assert_eq!(
            loaded.get("orders-key").unwrap().bytes(),
            ring.get("orders-key").unwrap().bytes()
        );
        assert_ne!(
            loaded.get("orders-key").unwrap().bytes(),
            loaded.get("other").unwrap().bytes()
        );
        // Debug never shows key bytes.
        let shown = format!("{loaded:?}");
        let b64 = B64.encode(ring.get("other").unwrap().bytes());
        assert!(!shown.contains(&b64), "{shown}");
    }

    #[test]
    fn a_group_readable_keyring_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let mut ring = Keyring::default();
        ring.generate("k").unwrap();
        ring.save(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = Keyring::load(&path).unwrap_err().to_string();
        assert!(err.contains("640") && err.contains("keyring.json"), "{err}");
    }

    #[test]
    fn malformed_files_name_the_problem() {
        let p = Path::new("ring.json");
        let short = r#"{"version":1,"keys":{"k":{"key":"AAAA","created_ms":0}}}"#;
        let err = Keyring::parse(short, p).unwrap_err().to_string();
        assert!(err.contains("`k`") && err.contains("ring.json"), "{err}");
        let unknown = r#"{"version":1,"keys":{},"extra":1}"#;
        assert!(Keyring::parse(unknown, p).is_err());
        let version = r#"{"version":2,"keys":{}}"#;
        assert!(Keyring::parse(version, p).is_err());
    }

    #[test]
    fn reload_keeps_the_previous_keyring_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let mut ring = Keyring::default();
        ring.generate("a").unwrap();
        ring.save(&path).unwrap();
        let shared = SharedKeyring::open(&path).unwrap();
        assert!(shared.current().get("a").is_some());
        std::fs::write(&path, "not json").unwrap();
        assert!(shared.reload().is_err());
        assert!(shared.current().get("a").is_some());
        ring.generate("b").unwrap();
        ring.save(&path).unwrap();
        assert_eq!(shared.reload().unwrap(), 2);
    }
}

//! [`CredentialStore`]: users and their SCRAM keys, never a password.
//!
//! A store is a cheap-to-clone immutable snapshot (`Arc` inside); the mutating methods copy on
//! write. A [`super::ScramServer`] clones the snapshot it starts with, so a reload never changes
//! an exchange half-way.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::mechanism::random_bytes;
use super::{Mechanism, SaslError, DEFAULT_ITERATIONS, MAX_ITERATIONS, MIN_ITERATIONS, SALT_LEN};

/// Longest user name accepted, in bytes.
pub const MAX_USER_NAME_BYTES: usize = 255;

/// Length of the per-store secret that fake salts are derived from.
pub const SECRET_LEN: usize = 32;

/// One user's credential for one mechanism (what RFC 5802 calls the server's stored data).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("salt_len", &self.salt.len())
            .field("iterations", &self.iterations)
            .field("stored_key", &"<redacted>")
            .field("server_key", &"<redacted>")
            .finish()
    }
}

impl ScramCredential {
    /// Derives a credential from a password with a fresh random salt.
    pub fn from_password(
        mechanism: Mechanism,
        password: &[u8],
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        check_iterations(iterations)?;
        let salt = random_bytes(SALT_LEN)?;
        let salted = mechanism.salted_password(password, &salt, iterations);
        Self::from_salted_password(mechanism, salt, iterations, &salted)
    }

    /// Builds a credential from `Hi(password, salt, iterations)` (what Kafka's
    /// AlterUserScramCredentials sends).
    pub fn from_salted_password(
        mechanism: Mechanism,
        salt: Vec<u8>,
        iterations: u32,
        salted_password: &[u8],
    ) -> Result<Self, CredentialError> {
        check_iterations(iterations)?;
        if salt.is_empty() {
            return Err(CredentialError::Invalid("the salt is empty"));
        }
        if salted_password.len() != mechanism.key_len() {
            return Err(CredentialError::Invalid(
                "the salted password has the wrong length for the mechanism",
            ));
        }
        let (stored_key, server_key) = mechanism.keys_from_salted_password(salted_password)?;
        Ok(ScramCredential {
            salt,
            iterations,
            stored_key,
            server_key,
        })
    }
}

/// A digest of everything stored for one user; changes whenever any credential changes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserFingerprint([u8; 32]);

impl fmt::Debug for UserFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UserFingerprint({})",
            hex::encode(self.0.get(..4).unwrap_or_default())
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("invalid user name {0:?}: {1}")]
    InvalidUserName(String, &'static str),
    #[error("iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}, not `{0}`")]
    Iterations(u32),
    #[error("unknown user `{0}`")]
    UnknownUser(String),
    #[error("user `{0}` has no {1} credential")]
    UnknownCredential(String, Mechanism),
    #[error("invalid credential: {0}")]
    Invalid(&'static str),
    #[error("cannot read credential file `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write credential file `{path}`: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid credential file `{path}`: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "credential file `{path}` is accessible by group or others (mode {mode:03o}); \
         run `chmod 600 {path}`"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error(
        "credential file `{path}` holds the fake-salt secret that was published in Palisade's \
         source repository, so anyone can tell which user names exist; run \
         `palisade user rotate-secret --store {path}` (users and their passwords stay valid)"
    )]
    PublishedSecret { path: PathBuf },
    #[error(transparent)]
    Sasl(#[from] SaslError),
}

/// Checks an iteration count against [`MIN_ITERATIONS`]..=[`MAX_ITERATIONS`].
pub fn check_iterations(iterations: u32) -> Result<(), CredentialError> {
    if (MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        Ok(())
    } else {
        Err(CredentialError::Iterations(iterations))
    }
}

/// Checks a user name: non-empty, at most 255 bytes, no control characters.
pub fn validate_user_name(name: &str) -> Result<(), CredentialError> {
    let invalid = |reason| Err(CredentialError::InvalidUserName(name.to_string(), reason));
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > MAX_USER_NAME_BYTES {
        return invalid("it is longer than 255 bytes");
    }
    if name.chars().any(char::is_control) {
        return invalid("it contains control characters");
    }
    Ok(())
}

type Users = BTreeMap<String, BTreeMap<Mechanism, ScramCredential>>;

#[derive(Clone, PartialEq, Eq)]
struct StoreData {
    secret: Vec<u8>,
    users: Users,
}

/// Users and their SCRAM credentials, plus the secret fake salts are derived from.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialStore {
    inner: Arc<StoreData>,
}

impl fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialStore")
            .field("users", &self.inner.users.len())
            .finish_non_exhaustive()
    }
}

impl CredentialStore {
    /// An empty store with a fresh random secret.
    pub fn new() -> Result<Self, CredentialError> {
        Self::from_parts(random_bytes(SECRET_LEN)?, Users::new())
    }

    pub(crate) fn from_parts(secret: Vec<u8>, users: Users) -> Result<Self, CredentialError> {
        if secret.len() < 16 {
            return Err(CredentialError::Invalid("the store secret is too short"));
        }
        for name in users.keys() {
            validate_user_name(name)?;
        }
        Ok(CredentialStore {
            inner: Arc::new(StoreData { secret, users }),
        })
    }

    pub(crate) fn secret(&self) -> &[u8] {
        &self.inner.secret
    }

    pub(crate) fn users(&self) -> &Users {
        &self.inner.users
    }

    /// Reads a store; see [`super::store_file`] for the format and the checks.
    pub fn load(path: &Path) -> Result<Self, CredentialError> {
        super::store_file::load(path)
    }

    /// Reads a store, or creates an empty one (mode 0600) if the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, CredentialError> {
        super::store_file::load_or_create(path)
    }

    /// Reads a store even if its secret is a published one, so that
    /// [`CredentialStore::rotate_secret`] can replace it; every other check applies.
    pub fn load_to_rotate(path: &Path) -> Result<Self, CredentialError> {
        super::store_file::load_to_rotate(path)
    }

    /// Replaces the secret fake salts are derived from with a fresh random one. Users and their
    /// credentials are untouched: only what unknown users see changes.
    pub fn rotate_secret(&mut self) -> Result<(), CredentialError> {
        Arc::make_mut(&mut self.inner).secret = random_bytes(SECRET_LEN)?;
        Ok(())
    }

    /// Writes the store atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), CredentialError> {
        super::store_file::save(self, path)
    }

    /// Adds a user or replaces all of its credentials (a password change), one per mechanism.
    pub fn add_user(
        &mut self,
        name: &str,
        mechanisms: &[Mechanism],
        iterations: u32,
        password: &[u8],
    ) -> Result<(), CredentialError> {
        validate_user_name(name)?;
        check_iterations(iterations)?;
        if mechanisms.is_empty() {
            return Err(CredentialError::Invalid(
                "at least one mechanism is required",
            ));
        }
        let mut credentials = BTreeMap::new();
        for &mechanism in mechanisms {
            let credential = ScramCredential::from_password(mechanism, password, iterations)?;
            credentials.insert(mechanism, credential);
        }
        Arc::make_mut(&mut self.inner)
            .users
            .insert(name.to_string(), credentials);
        Ok(())
    }

    /// Removes a user and all of its credentials.
    pub fn remove_user(&mut self, name: &str) -> Result<(), CredentialError> {
        if !self.inner.users.contains_key(name) {
            return Err(CredentialError::UnknownUser(name.to_string()));
        }
        Arc::make_mut(&mut self.inner).users.remove(name);
        Ok(())
    }

    /// User names with their mechanisms, sorted by name. Never keys.
    pub fn list_users(&self) -> Vec<(String, Vec<Mechanism>)> {
        self.inner
            .users
            .iter()
            .map(|(name, creds)| (name.clone(), creds.keys().copied().collect()))
            .collect()
    }

    /// The credential of `name` for `mechanism`, if any.
    pub fn lookup(&self, name: &str, mechanism: Mechanism) -> Option<&ScramCredential> {
        self.inner.users.get(name)?.get(&mechanism)
    }

    /// Sets one credential from a salt and salted password (AlterUserScramCredentials upsert).
    pub fn set_credential(
        &mut self,
        name: &str,
        mechanism: Mechanism,
        salt: &[u8],
        iterations: u32,
        salted_password: &[u8],
    ) -> Result<(), CredentialError> {
        validate_user_name(name)?;
        let credential = ScramCredential::from_salted_password(
            mechanism,
            salt.to_vec(),
            iterations,
            salted_password,
        )?;
        Arc::make_mut(&mut self.inner)
            .users
            .entry(name.to_string())
            .or_default()
            .insert(mechanism, credential);
        Ok(())
    }

    /// Deletes one credential (AlterUserScramCredentials deletion); a user left without
    /// credentials is removed.
    pub fn delete_credential(
        &mut self,
        name: &str,
        mechanism: Mechanism,
    ) -> Result<(), CredentialError> {
        if self.lookup(name, mechanism).is_none() {
            return Err(CredentialError::UnknownCredential(
                name.to_string(),
                mechanism,
            ));
        }
        let users = &mut Arc::make_mut(&mut self.inner).users;
        if let Some(creds) = users.get_mut(name) {
            creds.remove(&mechanism);
            if creds.is_empty() {
                users.remove(name);
            }
        }
        Ok(())
    }

    /// A digest of everything stored for `name`, or `None` for an unknown user.
    pub fn fingerprint(&self, name: &str) -> Option<UserFingerprint> {
        let creds = self.inner.users.get(name)?;
        let mut h = Sha256::new();
        for (mechanism, c) in creds {
            for part in [
                mechanism.name().as_bytes(),
                &c.salt,
                &c.iterations.to_be_bytes(),
                &c.stored_key,
                &c.server_key,
            ] {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part);
            }
        }
        Some(UserFingerprint(h.finalize().into()))
    }

    /// Every user's fingerprint: what [`super::SharedCredentials::subscribe`] publishes.
    pub fn fingerprints(&self) -> BTreeMap<String, UserFingerprint> {
        self.inner
            .users
            .keys()
            .filter_map(|name| Some((name.clone(), self.fingerprint(name)?)))
            .collect()
    }

    /// The most common iteration count among stored credentials of `mechanism`.
    fn typical_iterations(&self, mechanism: Mechanism) -> u32 {
        let mut counts: std::collections::BTreeMap<u32, usize> = std::collections::BTreeMap::new();
        for creds in self.inner.users.values() {
            if let Some(c) = creds.get(&mechanism) {
                *counts.entry(c.iterations).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .max_by_key(|(iterations, n)| (*n, *iterations))
            .map_or(DEFAULT_ITERATIONS, |(iterations, _)| iterations)
    }

    /// The credential an unknown user appears to have: salt `HMAC(secret, mechanism, name)`,
    /// the iteration count most real users of the mechanism have (so the count does not tell
    /// an unknown user from a real one; [`DEFAULT_ITERATIONS`] in an empty store), and keys no
    /// password produces (also derived from the secret). Deterministic, so repeated attempts
    /// see the same salt, like a real user.
    pub fn fake_credential(
        &self,
        name: &str,
        mechanism: Mechanism,
    ) -> Result<ScramCredential, SaslError> {
        let derive = |label: &str, len: usize| -> Result<Vec<u8>, SaslError> {
            let mut data = Vec::with_capacity(label.len() + name.len() + 16);
            for part in [
                label.as_bytes(),
                mechanism.name().as_bytes(),
                name.as_bytes(),
            ] {
                data.extend_from_slice(&(part.len() as u64).to_be_bytes());
                data.extend_from_slice(part);
            }
            let mut out = Mechanism::ScramSha512.hmac(self.secret(), &data)?;
            out.truncate(len);
            Ok(out)
        };
        Ok(ScramCredential {
            salt: derive("fake salt", SALT_LEN)?,
            iterations: self.typical_iterations(mechanism),
            stored_key: derive("fake stored key", mechanism.key_len())?,
            server_key: derive("fake server key", mechanism.key_len())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_users_get_the_iteration_count_real_users_have() {
        let mut store = CredentialStore::new().unwrap();
        assert_eq!(
            store
                .fake_credential("ghost", Mechanism::ScramSha256)
                .unwrap()
                .iterations,
            DEFAULT_ITERATIONS
        );
        for name in ["a", "b"] {
            store
                .add_user(name, &[Mechanism::ScramSha256], MIN_ITERATIONS, b"pw")
                .unwrap();
        }
        let fake = store
            .fake_credential("ghost", Mechanism::ScramSha256)
            .unwrap();
        assert_eq!(fake.iterations, MIN_ITERATIONS);
    }

    #[test]
    fn add_list_remove() {
        let mut store = CredentialStore::new().unwrap();
        store
            .add_user("alice", &Mechanism::ALL, DEFAULT_ITERATIONS, b"pw")
            .unwrap();
        store
            .add_user("bob", &[Mechanism::ScramSha256], MIN_ITERATIONS, b"pw")
            .unwrap();
        assert_eq!(
            store.list_users(),
            vec![
                (
                    "alice".to_string(),
                    vec![Mechanism::ScramSha256, Mechanism::ScramSha512]
                ),
                ("bob".to_string(), vec![Mechanism::ScramSha256]),
            ]
        );
        assert!(store.lookup("bob", Mechanism::ScramSha512).is_none());
        store.remove_user("alice").unwrap();
        assert!(matches!(
            store.remove_user("alice"),
            Err(CredentialError::UnknownUser(_))
        ));
        store
            .delete_credential("bob", Mechanism::ScramSha256)
            .unwrap();
        assert!(store.list_users().is_empty());
    }

    #[test]
    fn iterations_and_names_are_checked() {
        let mut store = CredentialStore::new().unwrap();
        let err = store
            .add_user("a", &Mechanism::ALL, 4095, b"pw")
            .unwrap_err();
        assert!(matches!(err, CredentialError::Iterations(4095)), "{err}");
        assert!(store
            .add_user("a", &Mechanism::ALL, MAX_ITERATIONS + 1, b"pw")
            .is_err());
        for bad in ["", "a\nb", "tab\there", &"x".repeat(256)] {
            assert!(
                store.add_user(bad, &Mechanism::ALL, 4096, b"pw").is_err(),
                "{bad:?}"
            );
        }
        assert!(store
            .add_user(&"x".repeat(255), &Mechanism::ALL, 4096, b"pw")
            .is_ok());
        assert!(store
            .add_user("ünïcode user", &[Mechanism::ScramSha256], 4096, b"pw")
            .is_ok());
    }

    #[test]
    fn set_credential_matches_password_derivation_and_changes_fingerprint() {
        let mut store = CredentialStore::new().unwrap();
        let m = Mechanism::ScramSha512;
        let salted = m.salted_password(b"secret", b"salty", 4096);
        store
            .set_credential("carol", m, b"salty", 4096, &salted)
            .unwrap();
        let before = store.fingerprint("carol").unwrap();
        let c = store.lookup("carol", m).unwrap().clone();
        let (stored, server) = m.keys_from_salted_password(&salted).unwrap();
        assert_eq!(
            (c.stored_key.clone(), c.server_key.clone()),
            (stored, server)
        );
        assert!(store
            .set_credential("carol", m, b"salty", 4096, &salted[..10])
            .is_err());
        assert!(store
            .set_credential("carol", m, b"salty", 100, &salted)
            .is_err());
        store.add_user("carol", &[m], 4096, b"other").unwrap();
        assert_ne!(store.fingerprint("carol").unwrap(), before);
        assert!(store.fingerprint("nobody").is_none());
    }

    #[test]
    fn debug_redacts_keys() {
        let c = ScramCredential::from_password(Mechanism::ScramSha256, b"pw", 4096).unwrap();
        let text = format!("{c:?}");
        assert!(text.contains("<redacted>"));
        assert!(!text.contains(&format!("{:?}", c.stored_key)));
    }

    #[test]
    fn rotating_the_secret_changes_fake_salts_and_keeps_users() {
        let mut store = CredentialStore::new().unwrap();
        store
            .add_user("alice", &Mechanism::ALL, MIN_ITERATIONS, b"pw")
            .unwrap();
        let users = store.users().clone();
        let m = Mechanism::ScramSha512;
        let before = store.fake_credential("ghost", m).unwrap();
        let old_secret = store.secret().to_vec();
        store.rotate_secret().unwrap();
        assert_ne!(store.secret(), old_secret.as_slice());
        assert_eq!(store.secret().len(), SECRET_LEN);
        assert_eq!(store.users(), &users);
        assert_ne!(store.fake_credential("ghost", m).unwrap().salt, before.salt);
    }

    #[test]
    fn fake_credentials_are_deterministic_and_per_store() {
        let store = CredentialStore::new().unwrap();
        let other = CredentialStore::new().unwrap();
        let m = Mechanism::ScramSha256;
        let a = store.fake_credential("ghost", m).unwrap();
        assert_eq!(a, store.fake_credential("ghost", m).unwrap());
        assert_eq!(a.salt.len(), SALT_LEN);
        assert_eq!(a.iterations, DEFAULT_ITERATIONS);
        assert_ne!(a.salt, store.fake_credential("ghost2", m).unwrap().salt);
        assert_ne!(a.salt, other.fake_credential("ghost", m).unwrap().salt);
    }
}

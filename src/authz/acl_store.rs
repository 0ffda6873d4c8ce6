//! Changes to the managed ACL file ([`ACL_FILE`]): read, change, write atomically, reload.
//!
//! A change is only kept if the whole policy folder still validates with it: otherwise the
//! previous file is put back and the error returned, so a CreateAcls can never leave the
//! broker with a folder it would refuse at the next start.

use std::path::Path;

use parking_lot::Mutex;

use super::acls::{parse, render, AclBinding, ACL_FILE};
use super::decide::Authorizer;

/// Serializes read-modify-write cycles of the managed file.
static LOCK: Mutex<()> = Mutex::new(());

/// Why an ACL change was not applied.
#[derive(Debug, thiserror::Error)]
pub enum AclStoreError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot write `{path}`: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the policy folder does not validate with this change: {0}")]
    Rejected(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AclStoreError + '_ {
    move |source| AclStoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The bindings stored now.
pub fn list(authorizer: &Authorizer) -> Result<Vec<AclBinding>, AclStoreError> {
    let path = authorizer.current().dir().join(ACL_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text).map_err(|e| AclStoreError::Invalid(e.0)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Applies `change` to the stored bindings, writes them and reloads the folder; on a folder
/// that no longer validates, restores the previous file.
pub fn modify<R>(
    authorizer: &Authorizer,
    change: impl FnOnce(&mut Vec<AclBinding>) -> R,
) -> Result<R, AclStoreError> {
    let _guard = LOCK.lock();
    let dir = authorizer.current().dir().to_path_buf();
    let path = dir.join(ACL_FILE);
    let previous = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(&path)(e)),
    };
    let mut bindings = match &previous {
        Some(text) => parse(text).map_err(|e| AclStoreError::Invalid(e.0))?,
        None => Vec::new(),
    };
    let before = bindings.clone();
    let result = change(&mut bindings);
    if bindings == before {
        // Nothing to write (a duplicate creation, a delete matching nothing).
        return Ok(result);
    }
    let text = render(&bindings).map_err(|e| AclStoreError::Invalid(e.0))?;
    write_atomically(&path, &text)?;
    if let Err(diagnostics) = authorizer.reload() {
        let restored = match &previous {
            Some(old) => write_atomically(&path, old),
            None => std::fs::remove_file(&path).map_err(io(&path)),
        };
        if let Err(e) = restored {
            tracing::error!("restoring the previous ACL file failed: {e}");
        }
        let _ = authorizer.reload();
        let message = diagnostics
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(AclStoreError::Rejected(message));
    }
    Ok(result)
}

/// Replaces the file atomically; the temporary file's dot name is one the loader skips.
fn write_atomically(path: &Path, text: &str) -> Result<(), AclStoreError> {
    crate::atomic_file::replace(path, text.as_bytes(), crate::atomic_file::SHARED).map_err(io(path))
}

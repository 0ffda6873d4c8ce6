//! The one way Palisade replaces a file on disk: a reader (or a restart after a crash) sees the
//! old contents or the new, never a mix, and never a moment where the file had a wider mode
//! than asked for.
//!
//! The bytes go to a uniquely named temporary file beside the target, created with its final
//! mode, fsynced, renamed over the target (or linked, when an existing file must not be
//! replaced), then the directory is fsynced so the rename itself survives a crash. Every error
//! is returned; on failure the temporary file is removed and the old file is left as it was.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Only the broker's user may read or write (keys, credentials, ACLs).
pub const PRIVATE: u32 = 0o600;
/// The usual mode for data files; the process umask narrows it as for any created file.
pub const SHARED: u32 = 0o666;

/// Suffix of every temporary file this module creates (so a loader can skip them, and
/// [`remove_leftovers`] can find the ones a crash left behind).
const TMP_SUFFIX: &str = ".tmp";

/// Replaces `path` with `bytes`, creating it with `mode` if it did not exist. An existing
/// file's mode is not inherited: the new file has `mode` from its creation.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    write(path, bytes, mode, Place::Replace)
}

/// Creates `path` with `bytes` and `mode`, failing with `AlreadyExists` (and writing nothing)
/// if it exists. Readers never see it half written.
pub fn create_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    write(path, bytes, mode, Place::CreateNew)
}

/// Removes temporary files a crash left beside `path` (the target itself is untouched).
pub fn remove_leftovers(path: &Path) -> std::io::Result<()> {
    let (dir, prefix) = temp_prefix(path)?;
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_temp_name(name, &prefix) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Place {
    Replace,
    CreateNew,
}

fn write(path: &Path, bytes: &[u8], mode: u32, place: Place) -> std::io::Result<()> {
    let (dir, prefix) = temp_prefix(path)?;
    let mut created = None;
    let result = (|| {
        let (tmp, mut file) = open_temp(&dir, prefix, mode)?;
        let tmp = created.insert(tmp);
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        match place {
            Place::Replace => std::fs::rename(&*tmp, path)?,
            Place::CreateNew => {
                // A hard link fails if `path` exists, where a rename would replace it.
                std::fs::hard_link(&*tmp, path)?;
                std::fs::remove_file(&*tmp)?;
            }
        }
        created = None;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if let Some(tmp) = created {
        // The write failed before the temporary file was placed: take it away, keep the
        // first error (the one worth reporting).
        let _ = std::fs::remove_file(tmp);
    }
    result
}

/// Creates a fresh temporary file in `dir` with `mode` set by the `open` call itself, so no
/// other user can open it between its creation and a later `chmod`.
fn open_temp(dir: &Path, prefix: OsString, mode: u32) -> std::io::Result<(PathBuf, std::fs::File)> {
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|_| std::io::Error::other("random source failed"))?;
    let mut tmp_name = prefix;
    tmp_name.push(hex::encode(suffix));
    tmp_name.push(TMP_SUFFIX);
    let tmp = dir.join(tmp_name);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    Ok((tmp, file))
}

/// The directory of `path` and the `.<file name>.` prefix of its temporary files.
fn temp_prefix(path: &Path) -> std::io::Result<(PathBuf, OsString)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
    })?;
    let mut prefix = OsString::from(".");
    prefix.push(file_name);
    prefix.push(".");
    Ok((dir, prefix))
}

fn is_temp_name(name: &str, prefix: &OsString) -> bool {
    let Some(prefix) = prefix.to_str() else {
        return false;
    };
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(TMP_SUFFIX))
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {

    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_temporary_file_has_its_mode_before_any_byte_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let (dir_path, prefix) = temp_prefix(&dir.path().join("secret")).unwrap();
        let (tmp, _file) = open_temp(&dir_path, prefix, PRIVATE).unwrap();
        assert_eq!(mode_of(&tmp), 0o600);
        assert_eq!(std::fs::metadata(&tmp).unwrap().len(), 0);
    }

    #[test]
    fn replace_does_not_inherit_a_looser_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        replace(&path, b"new", PRIVATE).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(entries(dir.path()), ["secret"]);
    }

    #[test]
    fn a_failed_replace_keeps_the_old_contents_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty directory cannot be renamed over: the write reaches the last step
        // and fails there.
        let path = dir.path().join("target");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("old"), b"old").unwrap();
        assert!(replace(&path, b"new", PRIVATE).is_err());
        assert_eq!(std::fs::read(path.join("old")).unwrap(), b"old");
        assert_eq!(entries(dir.path()), ["target"]);
    }

    #[test]
    fn create_new_refuses_an_existing_file_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        create_new(&path, b"first", PRIVATE).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        let err = create_new(&path, b"second", PRIVATE).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(entries(dir.path()), ["key.pem"]);
    }

    #[test]
    fn shared_mode_is_narrowed_only_by_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.json");
        replace(&path, b"{}", SHARED).unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"").unwrap();
        assert_eq!(mode_of(&path), mode_of(&plain));
    }

    #[test]
    fn leftovers_of_a_crash_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offsets.log");
        std::fs::write(&path, b"log").unwrap();
        let (dir_path, prefix) = temp_prefix(&path).unwrap();
        let (tmp, file) = open_temp(&dir_path, prefix, SHARED).unwrap();
        drop(file);
        std::fs::write(dir.path().join(".offsets.log.notours.tmp"), b"").unwrap();
        std::fs::write(dir.path().join(".other.0123456789abcdef.tmp"), b"").unwrap();
        remove_leftovers(&path).unwrap();
        assert!(!tmp.exists());
        assert_eq!(
            entries(dir.path()),
            [
                ".offsets.log.notours.tmp",
                ".other.0123456789abcdef.tmp",
                "offsets.log"
            ]
        );
    }
}

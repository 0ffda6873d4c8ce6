//! Gateway mode's tags: `<data_dir>/topic-tags.json`, loaded whole at start and held in
//! memory (a read is a map lookup), replaced through [`crate::atomic_file`] on every change
//! before the change is visible, so what authorization reads is always what a restart loads.
//!
//! The file is `{"version": 1, "topics": {"<topic>": ["tag", ...]}}`. A file that does not
//! parse, or lists a topic with tags outside [`super::validate`]'s bounds, stops the start
//! with its path: guessing a topic's tags would move it between policies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{validate, TagError, TagStore, TopicTags};
use crate::atomic_file;

/// The file's name in the data directory.
pub const FILE_NAME: &str = "topic-tags.json";

const VERSION: u32 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TagFile {
    version: u32,
    topics: BTreeMap<String, Vec<String>>,
}

pub struct FileTags {
    path: PathBuf,
    tags: RwLock<BTreeMap<String, Arc<[String]>>>,
    /// Held across a whole change (copy, write, swap), so changes are written in order and
    /// none is lost.
    writing: Mutex<()>,
    creations: Arc<super::creations::Creations>,
}

impl FileTags {
    /// Loads `<data_dir>/topic-tags.json` (none yet: no topic has tags).
    pub fn open(data_dir: &Path) -> Result<Self, TagError> {
        let path = data_dir.join(FILE_NAME);
        let io = |source| TagError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        atomic_file::remove_leftovers(&path).map_err(io)?;
        let topics = match std::fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io(e)),
        };
        Ok(FileTags {
            path,
            tags: RwLock::new(topics),
            writing: Mutex::new(()),
            creations: Arc::default(),
        })
    }

    /// Where the tags are kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies `change` to a copy of the map, writes it, then makes it the one read.
    fn change(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, Arc<[String]>>) -> bool,
    ) -> Result<(), TagError> {
        let _writing = self.writing.lock();
        let mut next = self.tags.read().clone();
        if !change(&mut next) {
            return Ok(());
        }
        let file = TagFile {
            version: VERSION,
            topics: next.iter().map(|(k, v)| (k.clone(), v.to_vec())).collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| TagError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        atomic_file::replace(&self.path, &bytes, atomic_file::SHARED).map_err(|source| {
            TagError::Io {
                path: self.path.clone(),
                source,
            }
        })?;
        *self.tags.write() = next;
        Ok(())
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, Arc<[String]>>, TagError> {
    let corrupt = |reason: String| TagError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let file: TagFile = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if file.version != VERSION {
        return Err(corrupt(format!(
            "version {} is not the one this broker reads ({VERSION})",
            file.version
        )));
    }
    let mut topics = BTreeMap::new();
    for (topic, tags) in file.topics {
        validate(&tags).map_err(|e| corrupt(format!("topic `{topic}`: {e}")))?;
        if tags.iter().any(|t| t.is_empty() || t.contains(',')) {
            return Err(corrupt(format!(
                "topic `{topic}`: a tag is empty or contains a comma"
            )));
        }
        if !tags.is_empty() {
            topics.insert(topic, Arc::from(tags));
        }
    }
    Ok(topics)
}

impl TagStore for FileTags {
    fn creations(&self) -> &Arc<super::creations::Creations> {
        &self.creations
    }

    fn get(&self, topic: &str) -> Arc<[String]> {
        self.tags
            .read()
            .get(topic)
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }

    fn set(&self, topic: &str, tags: &TopicTags) -> Result<(), TagError> {
        validate(tags.as_slice())?;
        self.change(|map| {
            if tags.as_slice().is_empty() {
                map.remove(topic).is_some()
            } else {
                let next: Arc<[String]> = Arc::from(tags.as_slice());
                let same = map.get(topic).is_some_and(|t| *t == next);
                map.insert(topic.to_string(), next);
                !same
            }
        })
    }

    fn remove(&self, topic: &str) -> Result<(), TagError> {
        self.change(|map| map.remove(topic).is_some())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn tags(value: &str) -> TopicTags {
        TopicTags::parse(value).unwrap()
    }

    #[test]
    fn tags_persist_across_a_reopen_and_go_with_the_topic() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = FileTags::open(dir.path()).unwrap();
            assert!(store.get("orders").is_empty());
            store.set("orders", &tags("pii,payments")).unwrap();
            store.set("vault", &tags("classified")).unwrap();
            assert_eq!(*store.get("orders"), ["pii", "payments"]);
        }
        let store = FileTags::open(dir.path()).unwrap();
        assert_eq!(*store.get("orders"), ["pii", "payments"]);
        assert_eq!(*store.get("vault"), ["classified"]);

        store.remove("orders").unwrap();
        store.set("vault", &TopicTags::none()).unwrap();
        assert!(store.get("orders").is_empty());
        let reopened = FileTags::open(dir.path()).unwrap();
        assert!(reopened.get("orders").is_empty());
        assert!(reopened.get("vault").is_empty());
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(
            !text.contains("orders") && !text.contains("vault"),
            "{text}"
        );
    }

    #[test]
    fn a_corrupt_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        for bad in [
            "{not json".to_string(),
            r#"{"version":2,"topics":{}}"#.to_string(),
            r#"{"version":1,"topics":{"t":["a,b"]}}"#.to_string(),
            format!(
                r#"{{"version":1,"topics":{{"t":["{}"]}}}}"#,
                "x".repeat(super::super::MAX_TAG_BYTES + 1)
            ),
        ] {
            std::fs::write(&path, &bad).unwrap();
            let err = FileTags::open(dir.path()).err().unwrap();
            assert!(matches!(err, TagError::Corrupt { .. }), "{bad}: {err}");
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{err}"
            );
        }
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = FileTags::open(&data).unwrap();
        store.set("orders", &tags("a")).unwrap();
        // The directory is gone: the write fails, and reads keep the last written tags.
        std::fs::remove_dir_all(&data).unwrap();
        assert!(matches!(
            store.set("orders", &tags("b")),
            Err(TagError::Io { .. })
        ));
        assert_eq!(*store.get("orders"), ["a"]);
    }
}

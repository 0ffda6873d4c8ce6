//! Broker mode's tags: the topic's `palisade.tags` config in the log's metadata
//! (`meta/topics.json`), where earlier versions kept them, parsed once per change by the log
//! (`Topic::tags`) so a read is a clone of an `Arc`. Deleting the topic deletes its config,
//! tags included.

use std::sync::Arc;

use super::{TagError, TagStore, TopicTags, TAGS_CONFIG};
use crate::storage::{LogManager, StorageError};

pub struct LocalTags {
    logs: Arc<LogManager>,
    creations: Arc<super::creations::Creations>,
}

impl LocalTags {
    pub fn new(logs: Arc<LogManager>) -> Self {
        LocalTags {
            logs,
            creations: Arc::default(),
        }
    }
}

impl TagStore for LocalTags {
    fn creations(&self) -> &Arc<super::creations::Creations> {
        &self.creations
    }

    fn get(&self, topic: &str) -> Arc<[String]> {
        self.logs
            .topic(topic)
            .map_or_else(|| Arc::from(Vec::new()), |t| t.tags())
    }

    fn set(&self, topic: &str, tags: &TopicTags) -> Result<(), TagError> {
        let changed = self.logs.update_topic_config(topic, |config| {
            if tags.as_slice().is_empty() {
                config.extra.remove(TAGS_CONFIG);
            } else {
                config.extra.insert(TAGS_CONFIG.to_string(), tags.value());
            }
            Ok::<(), TagError>(())
        });
        match changed {
            Ok(result) => result,
            Err(StorageError::UnknownTopic(name)) => Err(TagError::UnknownTopic(name)),
            Err(e) => Err(e.into()),
        }
    }

    fn remove(&self, _topic: &str) -> Result<(), TagError> {
        // The topic's config, tags included, went with the topic.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::storage::{StorageConfig, TopicConfig};

    #[test]
    fn tags_live_in_the_topic_config_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let logs = LogManager::open(StorageConfig::new(dir.path())).unwrap();
            let mut retained = TopicConfig::default();
            retained.set("retention.ms", "1000").unwrap();
            logs.create_topic("orders", 1, retained).unwrap();
            let store = LocalTags::new(logs.clone());
            assert!(store.get("orders").is_empty());
            store
                .set("orders", &TopicTags::parse("pii, payments").unwrap())
                .unwrap();
            assert_eq!(*store.get("orders"), ["pii", "payments"]);
            // Other configs are kept.
            assert_eq!(logs.topic("orders").unwrap().config().retention_ms, 1000);
            assert!(matches!(
                store.set("nope", &TopicTags::parse("x").unwrap()),
                Err(TagError::UnknownTopic(_))
            ));
            assert!(store.get("nope").is_empty());
            logs.shutdown().unwrap();
        }
        let logs = LogManager::open(StorageConfig::new(dir.path())).unwrap();
        let store = LocalTags::new(logs.clone());
        assert_eq!(*store.get("orders"), ["pii", "payments"]);
        assert_eq!(
            logs.topic("orders")
                .unwrap()
                .config()
                .extra
                .get(TAGS_CONFIG)
                .map(String::as_str),
            Some("pii,payments")
        );
        store.set("orders", &TopicTags::none()).unwrap();
        assert!(store.get("orders").is_empty());
        assert!(!logs
            .topic("orders")
            .unwrap()
            .config()
            .extra
            .contains_key(TAGS_CONFIG));
        logs.shutdown().unwrap();
    }

    #[test]
    fn tags_written_by_earlier_versions_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("meta")).unwrap();
        // As an earlier version wrote it: the value as the client sent it.
        let id = uuid::Uuid::new_v4();
        std::fs::write(
            dir.path().join("meta/topics.json"),
            format!(
                r#"{{"version":1,"topics":[{{"name":"vault","id":"{id}","partitions":1,"config":{{"retention_ms":604800000,"retention_bytes":-1,"segment_bytes":1073741824,"segment_ms":604800000,"cleanup_policy":"delete","max_message_bytes":1048588,"message_timestamp_type":"CreateTime","extra":{{"palisade.tags":"orders, classified"}}}}}}]}}"#
            ),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("vault-0")).unwrap();
        let logs = LogManager::open(StorageConfig::new(dir.path())).unwrap();
        let store = LocalTags::new(logs.clone());
        assert_eq!(*store.get("vault"), ["orders", "classified"]);
        logs.shutdown().unwrap();
    }
}

//! Quotas set through the Kafka admin API (AlterClientQuotas), kept in
//! `<data dir>/client-quotas.json` so they survive a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::entity::Entity;
use super::QuotaKind;

pub const FILE_NAME: &str = "client-quotas.json";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    quotas: Vec<StoredEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<super::entity::Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<super::entity::Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    producer_byte_rate: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    consumer_byte_rate: Option<u64>,
}

pub type Table = BTreeMap<(Entity, QuotaKind), u64>;

pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Reads the stored quotas; a missing file is none.
pub fn load(path: &Path) -> Result<Table, String> {
    let text = match crate::private_file::read(path) {
        Ok(t) => t,
        Err(crate::private_file::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Table::new())
        }
        Err(crate::private_file::ReadError::Io(e)) => {
            return Err(format!("cannot read `{}`: {e}", path.display()))
        }
        Err(crate::private_file::ReadError::Permissions(mode)) => {
            return Err(format!(
                "`{}` is accessible to other users (mode {mode:o}); make it 0600",
                path.display()
            ))
        }
    };
    let file: File = serde_json::from_str(&text).map_err(|e| {
        format!(
            "`{}` line {} column {}: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })?;
    let mut table = Table::new();
    for (i, e) in file.quotas.into_iter().enumerate() {
        let entity = Entity::new(e.user, e.client_id)
            .map_err(|m| format!("`{}` quotas[{i}]: {m}", path.display()))?;
        for (kind, rate) in [
            (QuotaKind::Produce, e.producer_byte_rate),
            (QuotaKind::Fetch, e.consumer_byte_rate),
        ] {
            match rate {
                Some(0) => {
                    return Err(format!(
                        "`{}` quotas[{i}]: `{}` must be positive",
                        path.display(),
                        kind.key()
                    ))
                }
                Some(r) => {
                    table.insert((entity.clone(), kind), r);
                }
                None => {}
            }
        }
    }
    Ok(table)
}

/// Replaces the stored quotas with `table` (atomically, mode 0600).
pub fn save(path: &Path, table: &Table) -> std::io::Result<()> {
    let mut by_entity: BTreeMap<&Entity, StoredEntry> = BTreeMap::new();
    for ((entity, kind), rate) in table {
        let entry = by_entity.entry(entity).or_insert_with(|| StoredEntry {
            user: entity.user.clone(),
            client_id: entity.client_id.clone(),
            producer_byte_rate: None,
            consumer_byte_rate: None,
        });
        match kind {
            QuotaKind::Produce => entry.producer_byte_rate = Some(*rate),
            QuotaKind::Fetch => entry.consumer_byte_rate = Some(*rate),
        }
    }
    let file = File {
        quotas: by_entity.into_values().collect(),
    };
    let mut text = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
    text.push(b'\n');
    crate::private_file::write(path, &text)
}

#[cfg(test)]
mod tests {
    use super::super::entity::Name;
    use super::*;

    #[test]
    fn quotas_survive_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        assert!(load(&path).unwrap().is_empty());
        let mut table = Table::new();
        let alice = Entity::new(Some(Name::Named("alice".into())), Some(Name::Default)).unwrap();
        table.insert((alice.clone(), QuotaKind::Produce), 1000);
        table.insert((alice.clone(), QuotaKind::Fetch), 2000);
        let app = Entity::new(None, Some(Name::Named("app".into()))).unwrap();
        table.insert((app, QuotaKind::Fetch), 3000);
        save(&path, &table).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"client_id\": \"<default>\""), "{text}");
        assert_eq!(load(&path).unwrap(), table);
    }

    #[test]
    fn a_broken_file_is_named_with_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        crate::private_file::write(&path, b"{\"quotas\": [\n {\"user\": 5}]}").unwrap();
        let e = load(&path).unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        crate::private_file::write(&path, b"{\"quotas\": [{\"producer_byte_rate\": 5}]}").unwrap();
        let e = load(&path).unwrap_err();
        assert!(e.contains("quotas[0]"), "{e}");
    }
}

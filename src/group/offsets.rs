//! OffsetCommit and OffsetFetch, plus replaying and snapshotting the offset log.
//!
//! Validation follows Kafka's `GroupCoordinator.handleCommitOffsets`: members of the current
//! generation may commit (also while a rebalance is being prepared, so a revoking consumer can
//! commit), and "simple" consumers (generation -1, no member id) may commit to a group that has
//! no members. Offsets are applied in memory and appended to the log under the group lock (so
//! memory and log agree on order), then the response waits for the fsync.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use super::offset_store::Record;
use super::state::{CommittedOffset, Group, GroupState};
use super::Inner;

/// Per topic, per partition: the error code of a commit.
type CommitResults = Vec<(StrBytes, Vec<(i32, i16)>)>;

/// Per topic, per partition: the committed offset, if any.
type FetchResults = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Inner {
    pub(super) async fn offset_commit(
        &self,
        req: OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        let (mut results, seq) = self.commit_locked(&req, version);
        if let Some(seq) = seq {
            if let Err(e) = self.store.sync(seq).await {
                tracing::error!(group = %req.group_id.as_str(), error = %e, "offset commit not durable");
                let code = ResponseError::KafkaStorageError.code();
                for (_, partitions) in results.iter_mut() {
                    for (_, error) in partitions.iter_mut().filter(|(_, e)| *e == 0) {
                        *error = code;
                    }
                }
            }
        }
        let mut resp = OffsetCommitResponse::default();
        resp.topics = results
            .into_iter()
            .map(|(name, partitions)| {
                let mut topic = OffsetCommitResponseTopic::default();
                topic.name = name.into();
                topic.partitions = partitions
                    .into_iter()
                    .map(|(index, error)| {
                        let mut p = OffsetCommitResponsePartition::default();
                        p.partition_index = index;
                        p.error_code = error;
                        p
                    })
                    .collect();
                topic
            })
            .collect();
        resp
    }

    fn commit_locked(
        &self,
        req: &OffsetCommitRequest,
        version: i16,
    ) -> (CommitResults, Option<u64>) {
        let group_id = req.group_id.as_str();
        let instance_id = if version >= 7 {
            req.group_instance_id.as_ref().map(|s| s.as_str())
        } else {
            None
        };
        let mut groups = self.groups.lock();
        let allowed = match groups.get_mut(group_id) {
            None if req.generation_id_or_member_epoch < 0 => Ok(()),
            None => Err(ResponseError::IllegalGeneration),
            Some(group) => check_committer(
                group,
                req.generation_id_or_member_epoch,
                req.member_id.as_str(),
                instance_id,
            ),
        };
        if let Err(error) = allowed {
            let results = req
                .topics
                .iter()
                .map(|t| {
                    let parts = t
                        .partitions
                        .iter()
                        .map(|p| (p.partition_index, error.code()));
                    (t.name.0.clone(), parts.collect())
                })
                .collect();
            return (results, None);
        }
        let group = groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id));
        let timestamp_ms = now_ms();
        // Offsets live in memory and in the log for as long as the group does: bounded per
        // group, counting partitions (an update of a stored partition is always accepted).
        let mut stored: usize = group.offsets.values().map(|p| p.len()).sum();
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(req.topics.len());
        for topic in &req.topics {
            let name = topic.name.as_str();
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for p in &topic.partitions {
                let metadata_len = p.committed_metadata.as_ref().map_or(0, |m| m.len());
                let error = if name.is_empty() || p.partition_index < 0 {
                    ResponseError::UnknownTopicOrPartition.code()
                } else if metadata_len > self.settings.max_metadata_bytes {
                    ResponseError::OffsetMetadataTooLarge.code()
                } else if stored >= self.settings.max_offsets_per_group
                    && !group
                        .offsets
                        .get(name)
                        .is_some_and(|parts| parts.contains_key(&p.partition_index))
                {
                    ResponseError::PolicyViolation.code()
                } else {
                    let offset = CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: if version >= 6 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        commit_timestamp_ms: timestamp_ms,
                    };
                    records.push(commit_record(group_id, name, p.partition_index, &offset));
                    let replaced = group
                        .offsets
                        .entry(name.to_string())
                        .or_default()
                        .insert(p.partition_index, offset);
                    if replaced.is_none() {
                        stored += 1;
                    }
                    0
                };
                partitions.push((p.partition_index, error));
            }
            results.push((topic.name.0.clone(), partitions));
        }
        let seq = (!records.is_empty()).then(|| self.store.append(&records));
        (results, seq)
    }

    pub(super) fn offset_fetch(
        &self,
        req: OffsetFetchRequest,
        version: i16,
    ) -> OffsetFetchResponse {
        let groups = self.groups.lock();
        let mut resp = OffsetFetchResponse::default();
        if version >= 8 {
            resp.groups = req
                .groups
                .iter()
                .map(|g| {
                    let topics = g.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                            .collect()
                    });
                    let mut group = OffsetFetchResponseGroup::default();
                    group.group_id = g.group_id.clone();
                    group.topics = fetch(groups.get(g.group_id.as_str()), topics)
                        .into_iter()
                        .map(|(name, partitions)| v8_topic(name, partitions))
                        .collect();
                    group
                })
                .collect();
        } else {
            let topics = req.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            resp.topics = fetch(groups.get(req.group_id.as_str()), topics)
                .into_iter()
                .map(|(name, partitions)| v1_topic(name, partitions, version))
                .collect();
        }
        resp
    }

    pub(super) fn topic_deleted(&self, topic: &str) {
        let seq = {
            let mut groups = self.groups.lock();
            let mut found = false;
            for group in groups.values_mut() {
                found |= group.offsets.remove(topic).is_some();
            }
            if !found {
                return;
            }
            tracing::info!(topic, "dropping committed offsets of deleted topic");
            self.store.append(&[Record::DeleteTopic {
                topic: topic.to_string(),
            }])
        };
        self.flush_in_background(seq);
    }

    /// Makes `seq` durable without blocking an async caller.
    pub(super) fn flush_in_background(&self, seq: u64) {
        self.store.flush_detached(seq);
    }
}

/// May this (generation, member) commit to `group`? Refreshes the member's session if so.
fn check_committer(
    group: &mut Group,
    generation: i32,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<(), ResponseError> {
    if generation < 0 && group.state == GroupState::Empty {
        return Ok(());
    }
    if group.is_fenced(instance_id, member_id) {
        return Err(ResponseError::FencedInstanceId);
    }
    let current = group.generation;
    let state = group.state;
    let member = group
        .members
        .get_mut(member_id)
        .ok_or(ResponseError::UnknownMemberId)?;
    if generation != current {
        return Err(ResponseError::IllegalGeneration);
    }
    if state == GroupState::CompletingRebalance {
        return Err(ResponseError::RebalanceInProgress);
    }
    member.touch(Instant::now());
    Ok(())
}

/// Offsets of `group` for the requested topics (`None`: every topic with an offset).
fn fetch(group: Option<&Group>, topics: Option<Vec<(String, Vec<i32>)>>) -> FetchResults {
    let lookup = |topic: &str, partition: i32| {
        group
            .and_then(|g| g.offsets.get(topic))
            .and_then(|parts| parts.get(&partition))
            .cloned()
    };
    match topics {
        Some(topics) => topics
            .into_iter()
            .map(|(topic, partitions)| {
                let found = partitions
                    .into_iter()
                    .map(|p| (p, lookup(&topic, p)))
                    .collect();
                (topic, found)
            })
            .collect(),
        None => group
            .map(|g| {
                g.offsets
                    .iter()
                    .map(|(topic, parts)| {
                        let found = parts.iter().map(|(p, o)| (*p, Some(o.clone()))).collect();
                        (topic.clone(), found)
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Kafka answers "no offset" with offset -1, metadata "" and no error.
fn fields(offset: Option<CommittedOffset>) -> (i64, i32, StrBytes) {
    match offset {
        Some(o) => (
            o.offset,
            o.leader_epoch,
            StrBytes::from_string(o.metadata.unwrap_or_default()),
        ),
        None => (-1, -1, StrBytes::default()),
    }
}

fn v1_topic(
    name: String,
    partitions: Vec<(i32, Option<CommittedOffset>)>,
    version: i16,
) -> OffsetFetchResponseTopic {
    let mut topic = OffsetFetchResponseTopic::default();
    topic.name = StrBytes::from_string(name).into();
    topic.partitions = partitions
        .into_iter()
        .map(|(index, offset)| {
            let (committed, epoch, metadata) = fields(offset);
            let mut p = OffsetFetchResponsePartition::default();
            p.partition_index = index;
            p.committed_offset = committed;
            if version >= 5 {
                p.committed_leader_epoch = epoch;
            }
            p.metadata = Some(metadata);
            p
        })
        .collect();
    topic
}

fn v8_topic(
    name: String,
    partitions: Vec<(i32, Option<CommittedOffset>)>,
) -> OffsetFetchResponseTopics {
    let mut topic = OffsetFetchResponseTopics::default();
    topic.name = StrBytes::from_string(name).into();
    topic.partitions = partitions
        .into_iter()
        .map(|(index, offset)| {
            let (committed, epoch, metadata) = fields(offset);
            let mut p = OffsetFetchResponsePartitions::default();
            p.partition_index = index;
            p.committed_offset = committed;
            p.committed_leader_epoch = epoch;
            p.metadata = Some(metadata);
            p
        })
        .collect();
    topic
}

fn commit_record(group: &str, topic: &str, partition: i32, offset: &CommittedOffset) -> Record {
    Record::Commit {
        group: group.to_string(),
        topic: topic.to_string(),
        partition,
        offset: offset.offset,
        leader_epoch: offset.leader_epoch,
        metadata: offset.metadata.clone(),
        timestamp_ms: offset.commit_timestamp_ms,
    }
}

/// Rebuilds groups (offsets only; membership is not persisted) from the log.
pub(super) fn replay(groups: &mut HashMap<String, Group>, records: Vec<Record>) {
    for record in records {
        match record {
            Record::Commit {
                group,
                topic,
                partition,
                offset,
                leader_epoch,
                metadata,
                timestamp_ms,
            } => {
                let g = groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group));
                g.offsets.entry(topic).or_default().insert(
                    partition,
                    CommittedOffset {
                        offset,
                        leader_epoch,
                        metadata,
                        commit_timestamp_ms: timestamp_ms,
                    },
                );
            }
            Record::DeleteGroup { group } => {
                groups.remove(&group);
            }
            Record::DeleteTopic { topic } => {
                for g in groups.values_mut() {
                    g.offsets.remove(&topic);
                }
            }
        }
    }
    groups.retain(|_, g| !g.offsets.is_empty());
}

/// One commit record per live offset: the compacted log.
pub(super) fn snapshot(groups: &HashMap<String, Group>) -> Vec<Record> {
    let mut records = Vec::new();
    for group in groups.values() {
        for (topic, partitions) in &group.offsets {
            for (partition, offset) in partitions {
                records.push(commit_record(&group.id, topic, *partition, offset));
            }
        }
    }
    records
}

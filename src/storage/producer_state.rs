//! Idempotent producer bookkeeping: per producer id, the epoch and the last five batches'
//! sequence ranges, checked under the partition's writer lock together with the append.

use std::collections::{HashMap, VecDeque};

use super::{ProducerInfo, StorageError};

/// Kafka keeps this many batches per producer for duplicate detection.
const TRACKED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchSeq {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
}

#[derive(Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchSeq>,
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    Append,
    /// A retry of a batch already stored at this base offset.
    Duplicate(i64),
}

#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

/// The sequence after `seq`; sequences wrap from `i32::MAX` to 0.
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// The last sequence of a batch of `count` records starting at `first`, with wrap-around.
fn last_seq(first: i32, count: i32) -> i32 {
    let modulus = i64::from(i32::MAX) + 1;
    let last = (i64::from(first) + i64::from(count.max(1)) - 1).rem_euclid(modulus);
    i32::try_from(last).unwrap_or(0)
}

impl ProducerStates {
    pub fn check(&self, p: &ProducerInfo) -> Result<SeqCheck, StorageError> {
        if p.producer_id < 0 {
            return Ok(SeqCheck::Append);
        }
        let pid = p.producer_id;
        let Some(entry) = self.producers.get(&pid) else {
            return if p.base_sequence == 0 {
                Ok(SeqCheck::Append)
            } else {
                Err(StorageError::OutOfOrderSequence(pid))
            };
        };
        if p.producer_epoch < entry.epoch {
            return Err(StorageError::ProducerFenced(pid));
        }
        if p.producer_epoch > entry.epoch {
            return if p.base_sequence == 0 {
                Ok(SeqCheck::Append)
            } else {
                Err(StorageError::OutOfOrderSequence(pid))
            };
        }
        let last = last_seq(p.base_sequence, p.record_count);
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == p.base_sequence && b.last_seq == last)
        {
            return Ok(SeqCheck::Duplicate(dup.base_offset));
        }
        match entry.batches.back() {
            Some(prev) if p.base_sequence == next_seq(prev.last_seq) => Ok(SeqCheck::Append),
            None if p.base_sequence == 0 => Ok(SeqCheck::Append),
            _ => Err(StorageError::OutOfOrderSequence(pid)),
        }
    }

    /// Records a batch that was appended (or found during recovery) at `base_offset`.
    pub fn record(
        &mut self,
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        record_count: i32,
        base_offset: i64,
    ) {
        if producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(producer_id).or_default();
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(BatchSeq {
            first_seq: base_sequence,
            last_seq: last_seq(base_sequence, record_count),
            base_offset,
        });
        while entry.batches.len() > TRACKED_BATCHES {
            entry.batches.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pid: i64, epoch: i16, seq: i32, count: i32) -> ProducerInfo {
        ProducerInfo {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: count,
        }
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let mut states = ProducerStates::default();
        states.record(7, 0, i32::MAX - 1, 2, 0);
        assert_eq!(states.check(&info(7, 0, 0, 1)).ok(), Some(SeqCheck::Append));
        assert!(states.check(&info(7, 0, 1, 1)).is_err());
        assert_eq!(last_seq(i32::MAX, 3), 1);
    }

    #[test]
    fn unknown_producer_must_start_at_zero() {
        let states = ProducerStates::default();
        assert_eq!(states.check(&info(1, 0, 0, 3)).ok(), Some(SeqCheck::Append));
        assert!(matches!(
            states.check(&info(1, 0, 5, 3)),
            Err(StorageError::OutOfOrderSequence(1))
        ));
    }
}

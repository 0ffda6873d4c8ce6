//! Storage errors as Kafka error codes, in one place.

use kafka_protocol::error::ResponseError;

use crate::storage::StorageError;

/// The Kafka error a client should see for a storage error.
pub fn storage_error(e: &StorageError) -> ResponseError {
    match e {
        StorageError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        StorageError::UnknownTopic(_) | StorageError::UnknownPartition(..) => {
            ResponseError::UnknownTopicOrPartition
        }
        StorageError::OffsetOutOfRange(_) => ResponseError::OffsetOutOfRange,
        StorageError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        StorageError::PartitionLimit { .. } => ResponseError::PolicyViolation,
        StorageError::InvalidConfig(_) => ResponseError::InvalidConfig,
        StorageError::BatchTooLarge(..) => ResponseError::MessageTooLarge,
        StorageError::OutOfOrderSequence(_) => ResponseError::OutOfOrderSequenceNumber,
        StorageError::ProducerFenced(_) => ResponseError::InvalidProducerEpoch,
        StorageError::LogDirFailed(..) | StorageError::Io { .. } | StorageError::Corrupt { .. } => {
            ResponseError::KafkaStorageError
        }
    }
}

/// The numeric code of a storage error.
pub fn storage_code(e: &StorageError) -> i16 {
    storage_error(e).code()
}

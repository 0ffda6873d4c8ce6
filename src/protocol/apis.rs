//! The API table: which Kafka APIs and versions Palisade serves.
//!
//! ApiVersions answers from [`APIS`], so what is advertised and what is handled cannot drift;
//! a test of the router walks the table and fails for any entry it does not route.
//! [`TRANSACTION_APIS`] are served only in front of a backend that has transactions (an
//! upstream cluster): the broker's own table leaves them out.

use kafka_protocol::messages::ApiKey;

/// One served API and its version range (never wider than `kafka-protocol` can encode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiEntry {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

const fn entry(key: ApiKey, min: i16, max: i16) -> ApiEntry {
    ApiEntry { key, min, max }
}

/// Every API the broker serves. Transactions are deliberately absent.
pub const APIS: &[ApiEntry] = &[
    entry(ApiKey::Produce, 3, 9),
    entry(ApiKey::Fetch, 4, 12),
    entry(ApiKey::ListOffsets, 1, 8),
    entry(ApiKey::Metadata, 0, 12),
    entry(ApiKey::OffsetCommit, 2, 8),
    entry(ApiKey::OffsetFetch, 1, 8),
    entry(ApiKey::FindCoordinator, 0, 4),
    entry(ApiKey::JoinGroup, 0, 9),
    entry(ApiKey::Heartbeat, 0, 4),
    entry(ApiKey::LeaveGroup, 0, 5),
    entry(ApiKey::SyncGroup, 0, 5),
    entry(ApiKey::DescribeGroups, 0, 5),
    entry(ApiKey::ListGroups, 0, 4),
    entry(ApiKey::ApiVersions, 0, 3),
    entry(ApiKey::CreateTopics, 2, 7),
    entry(ApiKey::DeleteTopics, 1, 6),
    entry(ApiKey::DeleteRecords, 0, 2),
    entry(ApiKey::InitProducerId, 0, 4),
    entry(ApiKey::DescribeConfigs, 1, 4),
    entry(ApiKey::CreatePartitions, 0, 3),
    entry(ApiKey::DeleteGroups, 0, 2),
    entry(ApiKey::IncrementalAlterConfigs, 0, 1),
    entry(ApiKey::DescribeCluster, 0, 1),
    entry(ApiKey::DescribeUserScramCredentials, 0, 0),
    entry(ApiKey::AlterUserScramCredentials, 0, 0),
    entry(ApiKey::DescribeClientQuotas, 0, 1),
    entry(ApiKey::AlterClientQuotas, 0, 1),
    entry(ApiKey::DescribeAcls, 1, 3),
    entry(ApiKey::CreateAcls, 1, 3),
    entry(ApiKey::DeleteAcls, 1, 3),
    // Answered through the connection's login session (the router hands them to it). v0 is
    // advertised because librdkafka requires it to enable SASL at all, but a v0 handshake
    // (raw SASL tokens without Kafka framing afterwards) is refused.
    entry(ApiKey::SaslHandshake, 0, 1),
    entry(ApiKey::SaslAuthenticate, 0, 2),
];

/// The transaction APIs, authorized at the front and passed through to a backend that keeps
/// transactions (gateway mode); the local log has none, so broker mode does not serve them.
///
/// Versions are the ones clients send under Kafka's first transaction protocol (what every
/// client uses when the cluster does not finalize `transaction.version` 2 to it): the later
/// ones belong elsewhere.
/// - AddPartitionsToTxn v4+ is the batched broker-to-broker form (it needs ClusterAction, and
///   clients never send it).
/// - EndTxn v5 and TxnOffsetCommit v5 are transaction version 2 (KIP-890 part 2), where a
///   Produce v12 adds partitions to the transaction implicitly; Produce stops at v9 here.
///   TxnOffsetCommit v6 names topics by id, which `kafka-protocol` 0.18 cannot encode.
/// - Apache Kafka 4.4 still accepts v0 of all six (KIP-896 removed none of them).
pub const TRANSACTION_APIS: &[ApiEntry] = &[
    entry(ApiKey::AddPartitionsToTxn, 0, 3),
    entry(ApiKey::AddOffsetsToTxn, 0, 4),
    entry(ApiKey::EndTxn, 0, 4),
    entry(ApiKey::TxnOffsetCommit, 0, 4),
    // Admin APIs (`kafka-transactions`), filtered per transactional id as Kafka does.
    entry(ApiKey::DescribeTransactions, 0, 0),
    entry(ApiKey::ListTransactions, 0, 2),
];

/// The table entry for a raw API key, if served.
pub fn lookup(api_key: i16) -> Option<&'static ApiEntry> {
    lookup_in(APIS, api_key)
}

/// The entry for a raw API key in `table` (a composed table, such as a gateway's).
pub fn lookup_in(table: &[ApiEntry], api_key: i16) -> Option<&ApiEntry> {
    table.iter().find(|e| e.key as i16 == api_key)
}

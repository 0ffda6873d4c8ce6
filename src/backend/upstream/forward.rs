//! What a request looks like on its way upstream.
//!
//! Fetch sessions (KIP-227) are not forwarded: every Fetch goes upstream as a full fetch
//! (session id 0, epoch -1), and the client is answered with session id 0, which tells it the
//! broker keeps no session, so its next Fetch is full again. An incremental fetch names only
//! the partitions that changed; the upstream would serve the rest of the session from its own
//! memory, past the gateway's authorization of that request. Full fetches are decided, partition
//! by partition, every time: a policy change or a removed user takes effect on the next Fetch
//! of a consumer in the middle of a session. The cost is a larger Fetch request.

use kafka_protocol::messages::RequestKind;

/// Whether any broker of the cluster answers `request` as well as the one the client chose:
/// cluster-wide questions and changes (the controller's work is forwarded by the broker that
/// receives it), as opposed to what one node serves (a partition it leads, a group it
/// coordinates, its own groups or configs).
pub(super) fn any_node_answers(request: &RequestKind) -> bool {
    match request {
        RequestKind::Metadata(_)
        | RequestKind::FindCoordinator(_)
        | RequestKind::DescribeCluster(_)
        | RequestKind::CreateTopics(_)
        | RequestKind::DeleteTopics(_)
        | RequestKind::CreatePartitions(_) => true,
        RequestKind::InitProducerId(r) => r.transactional_id.is_none(),
        _ => false,
    }
}

/// `request` as the upstream receives it.
pub(super) fn prepare(request: RequestKind) -> RequestKind {
    match request {
        RequestKind::Fetch(fetch) => RequestKind::Fetch(
            fetch
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_forgotten_topics_data(Vec::new()),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::FetchRequest;

    #[test]
    fn fetches_go_upstream_without_a_session() {
        let incremental = FetchRequest::default()
            .with_session_id(42)
            .with_session_epoch(7);
        let RequestKind::Fetch(sent) = prepare(RequestKind::Fetch(incremental)) else {
            panic!("not a fetch");
        };
        assert_eq!(sent.session_id, 0);
        assert_eq!(sent.session_epoch, -1);
    }
}

//! Pipelining, correlation and framing of [`Connection`] against a scripted upstream over an
//! in-memory pipe.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, MetadataRequest, MetadataResponse, ProduceRequest, RequestKind,
    ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::Encodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::upstream::frame::FrameError;

fn versions() -> ApiVersionRanges {
    ApiVersionRanges::from_response(&ApiVersionsResponse::default().with_api_keys(vec![
        ApiVersion::default()
            .with_api_key(ApiKey::Metadata as i16)
            .with_min_version(0)
            .with_max_version(12),
        ApiVersion::default()
            .with_api_key(ApiKey::Produce as i16)
            .with_min_version(3)
            .with_max_version(9),
    ]))
}

/// A connection over a pipe; the other end is the scripted upstream.
fn pipe(options: &ConnectOptions) -> (Connection, DuplexStream) {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let conn = Connection::start(
        "fake:9092".into(),
        Box::new(ours),
        versions(),
        options,
        1,
        None,
    );
    (conn, theirs)
}

/// (api key, correlation id) of the next request the upstream receives.
async fn next_request(upstream: &mut DuplexStream) -> (i16, i32) {
    let size = upstream.read_i32().await.unwrap();
    let mut body = vec![0; size as usize];
    upstream.read_exact(&mut body).await.unwrap();
    let mut b = Bytes::from(body);
    let api = b.get_i16();
    let _version = b.get_i16();
    (api, b.get_i32())
}

/// A Metadata v1 response naming `cluster` as its controller id (to tell responses apart).
async fn answer_metadata(upstream: &mut DuplexStream, correlation: i32, controller: i32) {
    let mut buf = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation)
        .encode(&mut buf, ApiKey::Metadata.response_header_version(1))
        .unwrap();
    MetadataResponse::default()
        .with_controller_id(controller.into())
        .encode(&mut buf, 1)
        .unwrap();
    upstream.write_i32(buf.len() as i32).await.unwrap();
    upstream.write_all(&buf).await.unwrap();
}

fn metadata() -> RequestKind {
    RequestKind::Metadata(MetadataRequest::default())
}

fn controller(response: ResponseKind) -> i32 {
    match response {
        ResponseKind::Metadata(m) => m.controller_id.0,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn pipelined_requests_are_matched_to_their_responses() {
    let (conn, mut upstream) = pipe(&ConnectOptions::plaintext());
    let conn = Arc::new(conn);
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let conn = Arc::clone(&conn);
            tokio::spawn(async move { conn.call(1, Some("c"), &metadata()).await })
        })
        .collect();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(next_request(&mut upstream).await.1);
    }
    // All three are on the wire before any answer: pipelined, each with its own id.
    ids.dedup();
    assert_eq!(ids.len(), 3);
    for id in &ids {
        answer_metadata(&mut upstream, *id, *id * 10).await;
    }
    let mut got = Vec::new();
    for call in calls {
        got.push(controller(call.await.unwrap().unwrap()));
    }
    got.sort();
    let mut expected: Vec<i32> = ids.iter().map(|id| id * 10).collect();
    expected.sort();
    assert_eq!(got, expected);
    assert!(conn.is_usable());
}

#[tokio::test]
async fn a_response_out_of_order_fails_the_requests_and_retires_the_connection() {
    let (conn, mut upstream) = pipe(&ConnectOptions::plaintext());
    let conn = Arc::new(conn);
    let first = {
        let conn = Arc::clone(&conn);
        tokio::spawn(async move { conn.call(1, None, &metadata()).await })
    };
    let (_, id1) = next_request(&mut upstream).await;
    let second = {
        let conn = Arc::clone(&conn);
        tokio::spawn(async move { conn.call(1, None, &metadata()).await })
    };
    let (_, id2) = next_request(&mut upstream).await;
    answer_metadata(&mut upstream, id2, 2).await;
    match first.await.unwrap() {
        Err(UpstreamError::Correlation { expected, got, .. }) => {
            assert_eq!((expected, got), (id1, id2));
        }
        other => panic!("{other:?}"),
    }
    let err = second.await.unwrap().unwrap_err().to_string();
    assert!(
        err.contains("connection closed") && err.contains("correlation"),
        "{err}"
    );
    assert!(!conn.is_usable());
    let err = conn.call(1, None, &metadata()).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Closed { .. }), "{err}");
}

#[tokio::test]
async fn a_truncated_response_is_an_error() {
    let (conn, mut upstream) = pipe(&ConnectOptions::plaintext());
    let call = tokio::spawn(async move { conn.call(1, None, &metadata()).await });
    let (_, id) = next_request(&mut upstream).await;
    upstream.write_i32(100).await.unwrap();
    upstream.write_i32(id).await.unwrap();
    drop(upstream);
    let err = call.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            UpstreamError::Frame {
                source: FrameError::Truncated,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_response_over_the_limit_is_refused() {
    let mut options = ConnectOptions::plaintext();
    options.max_response_bytes = 1000;
    let (conn, mut upstream) = pipe(&options);
    let call = tokio::spawn(async move { conn.call(1, None, &metadata()).await });
    next_request(&mut upstream).await;
    upstream.write_i32(i32::MAX).await.unwrap();
    let err = call.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            UpstreamError::Frame {
                source: FrameError::TooLarge {
                    size: i32::MAX,
                    limit: 1000
                },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("fake:9092"), "{err}");
}

#[tokio::test]
async fn acks_zero_produce_waits_for_nothing_and_later_responses_still_match() {
    let (conn, mut upstream) = pipe(&ConnectOptions::plaintext());
    let produce = RequestKind::Produce(ProduceRequest::default().with_acks(0));
    assert!(conn.send(9, None, &produce).await.unwrap().is_none());
    assert!(matches!(
        conn.call(9, None, &produce).await,
        Err(UpstreamError::NoResponseExpected { .. })
    ));
    let conn = Arc::new(conn);
    let call = {
        let conn = Arc::clone(&conn);
        tokio::spawn(async move { conn.call(1, None, &metadata()).await })
    };
    assert_eq!(next_request(&mut upstream).await.0, ApiKey::Produce as i16);
    assert_eq!(next_request(&mut upstream).await.0, ApiKey::Produce as i16);
    let (api, id) = next_request(&mut upstream).await;
    assert_eq!(api, ApiKey::Metadata as i16);
    answer_metadata(&mut upstream, id, 5).await;
    assert_eq!(controller(call.await.unwrap().unwrap()), 5);
}

#[tokio::test(start_paused = true)]
async fn a_request_without_an_answer_times_out_and_retires_the_connection() {
    let mut options = ConnectOptions::plaintext();
    options.request_timeout = Duration::from_millis(500);
    let (conn, _upstream) = pipe(&options);
    let err = conn.call(1, None, &metadata()).await.unwrap_err();
    assert!(
        matches!(
            err,
            UpstreamError::Timeout {
                api: ApiKey::Metadata,
                timeout_ms: 500,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_retriable());
    assert!(!conn.is_usable());
}

#[tokio::test]
async fn versions_the_upstream_does_not_accept_are_never_sent() {
    let (conn, mut upstream) = pipe(&ConnectOptions::plaintext());
    let err = conn
        .call(2, None, &RequestKind::Produce(ProduceRequest::default()))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Produce v2 is not supported by the upstream (it accepts v3-v9)"),
        "{err}"
    );
    let err = conn
        .send_raw(ApiKey::Fetch, 4, None, &[], true)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("accepts none"), "{err}");
    // Nothing reached the upstream: the next thing it reads is the next real request.
    let conn = Arc::new(conn);
    let call = {
        let conn = Arc::clone(&conn);
        tokio::spawn(async move { conn.call(1, None, &metadata()).await })
    };
    let (api, id) = next_request(&mut upstream).await;
    assert_eq!(api, ApiKey::Metadata as i16);
    answer_metadata(&mut upstream, id, 1).await;
    call.await.unwrap().unwrap();
}

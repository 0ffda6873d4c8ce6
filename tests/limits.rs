//! Connection limits: a flood from one address is cut off while a client from another address
//! keeps working.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::net::SocketAddr;

use common::Raw;
use kafka_protocol::messages::*;
use tokio::net::{TcpSocket, TcpStream};

async fn connect_from(local: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

async fn api_versions_from(local: &str, to: SocketAddr) -> bool {
    let mut raw = Raw::over(connect_from(local, to).await);
    raw.try_request::<_, ApiVersionsResponse>(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    )
    .await
    .is_some_and(|r| r.error_code == 0)
}

#[tokio::test]
async fn per_ip_limit_cuts_a_flood_but_not_other_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start_with(
        dir.path(),
        &[
            (
                "max_connections_per_ip = 1000",
                "max_connections_per_ip = 5",
            ),
            (
                "new_connections_per_second_per_ip = 200",
                "new_connections_per_second_per_ip = 0",
            ),
        ],
    )
    .await;
    let addr = broker.addresses[0];
    let mut flood = Vec::new();
    for _ in 0..40 {
        flood.push(Raw::over(connect_from("127.0.0.1", addr).await));
    }
    let mut open = 0;
    for raw in &mut flood {
        if raw
            .try_request::<_, ApiVersionsResponse>(
                ApiKey::ApiVersions,
                3,
                &ApiVersionsRequest::default(),
            )
            .await
            .is_some()
        {
            open += 1;
        }
    }
    assert_eq!(open, 5, "per-ip limit not applied");
    assert!(
        api_versions_from("127.0.0.2", addr).await,
        "another address was refused"
    );
    // Closing the flood frees the slots again (once the broker has seen the closes).
    drop(flood);
    assert!(
        common::eventually(std::time::Duration::from_secs(10), || api_versions_from(
            "127.0.0.1",
            addr
        ))
        .await,
        "the flood's slots were never freed"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn connection_rate_per_ip_is_limited() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start_with(
        dir.path(),
        &[(
            "new_connections_per_second_per_ip = 200",
            "new_connections_per_second_per_ip = 10",
        )],
    )
    .await;
    let addr = broker.addresses[0];
    let mut served = 0;
    for _ in 0..30 {
        if api_versions_from("127.0.0.3", addr).await {
            served += 1;
        }
    }
    assert!(
        (10..=13).contains(&served),
        "{served} of 30 rapid connections served"
    );
    assert!(
        api_versions_from("127.0.0.4", addr).await,
        "another address was refused"
    );
    broker.shutdown().await;
}

//! tansu, a third-party Kafka-compatible broker (the upstream of later gateway tests), driven by
//! librdkafka: a topic created, records produced with acks=all and consumed back in a group.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::time::{Duration, Instant};

use common::kafka_cluster::metadata_brokers;
use common::tansu::Tansu;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// The whole exchange may take this long; past it (or as soon as tansu exits) the test fails
/// with what tansu wrote, instead of waiting on a client that waits on a dead broker.
const WATCHDOG: Duration = Duration::from_secs(240);

#[test]
fn produces_and_consumes_in_a_group_through_tansu() {
    let mut tansu = Tansu::start();
    let bootstrap = tansu.bootstrap();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(|| exchange(&bootstrap));
        let _ = done.send(outcome);
    });
    let deadline = Instant::now() + WATCHDOG;
    loop {
        match finished.recv_timeout(Duration::from_millis(500)) {
            Ok(Ok(())) => break,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => {
                if let Some(exit) = tansu.exited() {
                    panic!("tansu exited during the test: {exit}");
                }
                assert!(
                    Instant::now() < deadline,
                    "no answer from the clients within {WATCHDOG:?}"
                );
            }
        }
    }

    // Dropping the helper stops the broker: nothing answers on its port afterwards.
    let addr = tansu.bootstrap().parse().unwrap();
    drop(tansu);
    assert_eq!(metadata_brokers(addr), None);
}

/// A topic created, 100 records produced with acks=all, read back in a group.
fn exchange(bootstrap: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let topic = NewTopic::new("through-tansu", 1, TopicReplication::Fixed(1));
    for r in rt
        .block_on(admin.create_topics([&topic], &AdminOptions::new()))
        .unwrap()
    {
        r.unwrap();
    }

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();
    let sent: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
    let deliveries: Vec<_> = sent
        .iter()
        .map(|v| {
            producer
                .send_result(FutureRecord::<(), _>::to("through-tansu").payload(v))
                .map_err(|(e, _)| e)
                .unwrap()
        })
        .collect();
    rt.block_on(async {
        for d in deliveries {
            d.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    });

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "tansu-readers")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&["through-tansu"]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while got.len() < sent.len() && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            got.push(String::from_utf8(m.unwrap().payload().unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(got, sent);
}

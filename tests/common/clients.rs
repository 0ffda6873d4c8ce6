//! librdkafka clients of a test broker: the bootstrap address set in one place, the settings a
//! test cares about on top.

use rdkafka::config::ClientConfig;

/// A client configuration for the broker at `bootstrap` with `settings` applied in order (a
/// later setting of the same key wins).
pub fn client_config<V: AsRef<str>>(bootstrap: &str, settings: &[(&str, V)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    for (key, value) in settings {
        c.set(*key, value.as_ref());
    }
    c
}

/// Creates `topic` on the cluster at `bootstrap` with rdkafka's admin client (`partitions`,
/// `replicas` each); a topic that already exists is left as it is.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32, replicas: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::types::RDKafkaErrorCode;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replicas));
    let options = AdminOptions::new().operation_timeout(Some(std::time::Duration::from_secs(30)));
    for result in runtime()
        .block_on(admin.create_topics([&new], &options))
        .unwrap()
    {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err(e) => panic!("create {topic}: {e:?}"),
        }
    }
}

/// A current-thread runtime to await an rdkafka future from a synchronous test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

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

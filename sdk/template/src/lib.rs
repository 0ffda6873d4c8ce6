//! `{{name}}`: a Palisade broker plugin.
//!
//! This example rejects produced records whose value is missing, empty or longer than
//! `max_bytes` (config: `{"max_bytes": 1024}`, default 1 MiB). Replace it with your own logic:
//! `on_produce` may accept, reject records (with a reason each) or replace them; `on_fetch` may
//! pass, replace or fail. See the SDK's README.md for the host functions (logging, crypto by key
//! id, authorization) and the native test stub.
//!
//! Build: `cargo build --release --target wasm32-wasip2`
//! Test:  `cargo test`

use palisade_sdk::{
    export_plugin, host, CallContext, LogLevel, Plugin, ProduceVerdict, RecordList, Rejection,
};

const DEFAULT_MAX_BYTES: u64 = 1 << 20;

pub struct SizeLimit {
    max_bytes: u64,
}

impl Plugin for SizeLimit {
    fn init(config: &str) -> Result<Self, String> {
        let config: serde_json::Value =
            serde_json::from_str(config).map_err(|e| format!("invalid config: {e}"))?;
        let max_bytes = match config.get("max_bytes") {
            None => DEFAULT_MAX_BYTES,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| "invalid config: `max_bytes` must be a whole number".to_string())?,
        };
        host::log(LogLevel::Info, &format!("{{name}}: max_bytes = {max_bytes}"));
        Ok(SizeLimit { max_bytes })
    }

    fn on_produce(&self, _ctx: &CallContext, records: &RecordList<'_>) -> ProduceVerdict {
        let rejections = records
            .iter()
            .enumerate()
            .filter_map(|(i, record)| match record.value {
                None => Some(Rejection::new(i, "value is missing")),
                Some([]) => Some(Rejection::new(i, "value is empty")),
                Some(v) if v.len() as u64 > self.max_bytes => Some(Rejection::new(
                    i,
                    format!("value is {} bytes, more than {}", v.len(), self.max_bytes),
                )),
                Some(_) => None,
            })
            .collect();
        ProduceVerdict::reject_or_accept(rejections)
    }
}

export_plugin!(SizeLimit);

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_sdk::stub;

    #[test]
    fn rejects_empty_and_oversized_values() {
        stub::reset();
        let plugin = SizeLimit::init(r#"{"max_bytes": 4}"#).unwrap();
        assert_eq!(stub::take_logs().len(), 1);
        let bytes = stub::values(&["ok", "", "too long"]).unwrap();
        let list = RecordList::parse(&bytes).unwrap();
        let verdict = plugin.on_produce(&CallContext::new("orders", "alice"), &list);
        assert_eq!(
            verdict,
            ProduceVerdict::Reject(vec![
                Rejection::new(1, "value is empty"),
                Rejection::new(2, "value is 8 bytes, more than 4"),
            ])
        );
    }

    #[test]
    fn accepts_values_within_the_limit() {
        let plugin = SizeLimit::init("{}").unwrap();
        let bytes = stub::values(&["a", "bc"]).unwrap();
        let list = RecordList::parse(&bytes).unwrap();
        let verdict = plugin.on_produce(&CallContext::new("orders", "alice"), &list);
        assert_eq!(verdict, ProduceVerdict::Accept);
    }

    #[test]
    fn bad_config_is_refused() {
        assert!(SizeLimit::init(r#"{"max_bytes": "big"}"#).is_err());
        assert!(SizeLimit::init("not json").is_err());
    }
}

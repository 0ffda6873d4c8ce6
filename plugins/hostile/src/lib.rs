//! `hostile`: a plugin that misbehaves on purpose, so the broker's tests can prove each kind of
//! misbehaviour rejects only its own topic's traffic, within the deadline, while the broker keeps
//! serving.
//!
//! Config (every key optional; missing means well-behaved):
//!
//! ```json
//! {"init": "ok", "produce": "accept", "fetch": "accept"}
//! ```
//!
//! `init` modes: `ok`, `fail` (init returns an error), `trap`, `loop`, `grow`.
//! `produce` / `fetch` modes:
//! - `accept`: accept (produce) or pass (fetch) unchanged;
//! - `loop`: never return (the epoch deadline must stop it);
//! - `grow`: allocate and touch memory until growing fails (the memory limit must stop it);
//! - `trap`: panic, which is a trap in Wasm;
//! - `unreachable`: execute the `unreachable` instruction directly;
//! - `wasi`: read the clock and print to stdout (WASI, which the broker links as traps);
//! - `malformed-count`: replace with a valid record list holding one record too many;
//! - `malformed-bytes`: replace with bytes that are not a record list;
//! - `reject`: produce rejects every record with reason `hostile says no`; fetch fails the
//!   partition with that reason;
//! - `copy`: replace the batch with an identical copy (well-behaved: what any rewriting
//!   plugin costs before doing its own work; the benches measure it).

use palisade_sdk::{
    export_plugin, CallContext, FetchVerdict, Plugin, ProduceVerdict, RecordList, RecordListBuilder,
};
use serde::Deserialize;

/// What a hook does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    Accept,
    Loop,
    Grow,
    Trap,
    Unreachable,
    Wasi,
    MalformedCount,
    MalformedBytes,
    Reject,
    Copy,
}

/// What `init` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitMode {
    #[default]
    Ok,
    Fail,
    Trap,
    Loop,
    Grow,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    init: InitMode,
    #[serde(default)]
    produce: Mode,
    #[serde(default)]
    fetch: Mode,
}

/// The reason `reject` gives.
pub const REASON: &str = "hostile says no";

pub struct Hostile {
    produce: Mode,
    fetch: Mode,
}

impl Plugin for Hostile {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config =
            serde_json::from_str(config).map_err(|e| format!("invalid hostile config: {e}"))?;
        match config.init {
            InitMode::Ok => {}
            InitMode::Fail => return Err("hostile init fails on purpose".to_string()),
            InitMode::Trap => trap(),
            InitMode::Loop => spin(),
            InitMode::Grow => grow(),
        }
        Ok(Hostile {
            produce: config.produce,
            fetch: config.fetch,
        })
    }

    fn on_produce(&self, _ctx: &CallContext, records: &RecordList<'_>) -> ProduceVerdict {
        match misbehave(self.produce, records) {
            Outcome::Unchanged => ProduceVerdict::Accept,
            Outcome::Replace(list) => ProduceVerdict::Replace(list),
            Outcome::Reject => ProduceVerdict::reject_all(records.len(), REASON),
        }
    }

    fn on_fetch(&self, _ctx: &CallContext, records: &RecordList<'_>) -> FetchVerdict {
        match misbehave(self.fetch, records) {
            Outcome::Unchanged => FetchVerdict::Pass,
            Outcome::Replace(list) => FetchVerdict::Replace(list),
            Outcome::Reject => FetchVerdict::Fail(REASON.to_string()),
        }
    }
}

export_plugin!(Hostile);

enum Outcome {
    Unchanged,
    Replace(Vec<u8>),
    Reject,
}

fn misbehave(mode: Mode, records: &RecordList<'_>) -> Outcome {
    match mode {
        Mode::Accept => Outcome::Unchanged,
        Mode::Loop => spin(),
        Mode::Grow => grow(),
        Mode::Trap => trap(),
        Mode::Unreachable => unreachable_instruction(),
        Mode::Wasi => touch_wasi(),
        Mode::MalformedCount => Outcome::Replace(one_too_many(records)),
        // A count of 2 followed by three stray bytes: truncated in the first record.
        Mode::MalformedBytes => Outcome::Replace(vec![2, 0, 0, 0, 0xde, 0xad, 0xbe]),
        Mode::Reject => Outcome::Reject,
        Mode::Copy => Outcome::Replace(copy(records)),
    }
}

/// The same records, rebuilt.
fn copy(records: &RecordList<'_>) -> Vec<u8> {
    let mut out = RecordListBuilder::new();
    let mut pushed = Ok(());
    for record in records {
        pushed = pushed.and(out.push_record(&record));
    }
    match pushed {
        Ok(()) => out.finish(),
        Err(_) => Vec::new(),
    }
}

/// The same records plus a copy of the first (or one empty record for an empty batch).
fn one_too_many(records: &RecordList<'_>) -> Vec<u8> {
    let mut out = RecordListBuilder::new();
    let mut pushed = Ok(());
    for record in records {
        pushed = pushed.and(out.push_record(&record));
    }
    pushed = pushed.and(match records.iter().next() {
        Some(first) => out.push_record(&first),
        None => out.push(0, 0, None, None, &[]),
    });
    match pushed {
        Ok(()) => out.finish(),
        // Still malformed output, which is what this mode is for.
        Err(_) => Vec::new(),
    }
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Keeps 1 MiB blocks, each written to so the pages are really used, until allocation fails
/// (which aborts: a trap) or the host's memory limit traps the grow.
fn grow() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![0xa5; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

#[allow(clippy::panic)] // the point of this mode: a panic is a trap in Wasm
fn trap() -> ! {
    panic!("hostile plugin traps on purpose")
}

#[cfg(target_arch = "wasm32")]
fn unreachable_instruction() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn unreachable_instruction() -> ! {
    trap()
}

/// Reads the wall clock and writes to stdout: both are WASI imports the broker links as traps.
#[allow(clippy::print_stdout)]
fn touch_wasi() -> Outcome {
    let now = std::time::SystemTime::now();
    println!("hostile plugin read the clock: {now:?}");
    Outcome::Unchanged
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_sdk::{stub, Rejection};

    fn batch() -> Vec<u8> {
        stub::values(&["a", "b", "c"]).unwrap()
    }

    fn ctx() -> CallContext {
        CallContext::new("hostile-topic", "alice")
    }

    #[test]
    fn accept_is_the_default() {
        let plugin = Hostile::init("{}").unwrap();
        let bytes = batch();
        let list = RecordList::parse(&bytes).unwrap();
        assert_eq!(plugin.on_produce(&ctx(), &list), ProduceVerdict::Accept);
        assert_eq!(plugin.on_fetch(&ctx(), &list), FetchVerdict::Pass);
    }

    #[test]
    fn reject_names_every_record() {
        let plugin = Hostile::init(r#"{"produce":"reject","fetch":"reject"}"#).unwrap();
        let bytes = batch();
        let list = RecordList::parse(&bytes).unwrap();
        let expected: Vec<Rejection> = (0..3).map(|i| Rejection::new(i, REASON)).collect();
        assert_eq!(
            plugin.on_produce(&ctx(), &list),
            ProduceVerdict::Reject(expected)
        );
        assert_eq!(
            plugin.on_fetch(&ctx(), &list),
            FetchVerdict::Fail(REASON.to_string())
        );
    }

    #[test]
    fn malformed_count_is_a_valid_list_with_one_record_too_many() {
        let plugin = Hostile::init(r#"{"produce":"malformed-count"}"#).unwrap();
        let bytes = batch();
        let list = RecordList::parse(&bytes).unwrap();
        let ProduceVerdict::Replace(out) = plugin.on_produce(&ctx(), &list) else {
            panic!("expected a replacement");
        };
        assert_eq!(RecordList::parse(&out).unwrap().len(), 4);
    }

    #[test]
    fn copy_replaces_with_the_same_bytes() {
        let plugin = Hostile::init(r#"{"produce":"copy","fetch":"copy"}"#).unwrap();
        let bytes = batch();
        let list = RecordList::parse(&bytes).unwrap();
        assert_eq!(
            plugin.on_produce(&ctx(), &list),
            ProduceVerdict::Replace(bytes.clone())
        );
        assert_eq!(plugin.on_fetch(&ctx(), &list), FetchVerdict::Replace(bytes));
    }

    #[test]
    fn malformed_bytes_do_not_parse() {
        let plugin = Hostile::init(r#"{"fetch":"malformed-bytes"}"#).unwrap();
        let bytes = batch();
        let list = RecordList::parse(&bytes).unwrap();
        let FetchVerdict::Replace(out) = plugin.on_fetch(&ctx(), &list) else {
            panic!("expected a replacement");
        };
        assert!(RecordList::parse(&out).is_err());
    }

    #[test]
    fn bad_config_and_init_fail_are_errors() {
        assert!(Hostile::init(r#"{"produce":"explode"}"#).is_err());
        assert!(Hostile::init(r#"{"bogus":1}"#).is_err());
        assert!(Hostile::init("not json").is_err());
        assert!(Hostile::init(r#"{"init":"fail"}"#).is_err());
    }

    /// `plugins/examples/hostile.toml` stays a valid manifest whose `[config]` this plugin accepts.
    #[test]
    fn example_manifest_config_initialises() {
        let text = include_str!("../../examples/hostile.toml");
        let manifest: toml::Table = toml::from_str(text).unwrap();
        for key in ["topics", "hooks", "order", "keys", "config"] {
            assert!(manifest.contains_key(key), "missing `{key}`");
        }
        let config = serde_json::to_string(&manifest["config"]).unwrap();
        if let Err(e) = Hostile::init(&config) {
            panic!("{config}: {e}");
        }
    }
}

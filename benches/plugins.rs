//! Plugin costs, measured with the real example plugins (built from `plugins/` first).
//!
//! `cargo bench --bench plugins -- [--messages N] [--size BYTES] [--throughput-only | --per-record-only]
//! [--only PLUGIN] [--quick]`
//!
//! 1. criterion: one produce-chain call through the host (decode the v2 batch into a record
//!    list, call the component, re-encode on replace) for a batch of 100 JSON records, per
//!    plugin; criterion reports time per batch and records/s (per-record cost = time / 100).
//!    Plus the field-encrypt fetch path (decrypt for a permitted principal). `--quick`: the
//!    plugins compiled by the quick tier (Winch: what serves right after a hot reload).
//! 2. Produce throughput with librdkafka, in one run against one broker: a topic without
//!    plugins, one with the hostile plugin copying every batch (the floor of a rewriting
//!    plugin), one with `json-schema`, one with `field-encrypt`; each row's ratio is against
//!    the no-plugin row, and `cores` is the process's CPU time (broker and client) over the
//!    row's wall time. `--throughput-only` skips part 1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput};
use palisade::plugin::chain::{run_fetch, run_produce};
use palisade::plugin::engine::Tier;
use palisade::plugin::envelope::EnvelopeStore;
use palisade::plugin::loader::load_one;
use palisade::plugin::state::HostServices;
use palisade::plugin::{CallInput, Keyring, LoadedPlugin, PluginSettings, SharedKeyring};
use rdkafka::producer::ThreadedProducer;

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use support::{args, client_config, create, print_rows, send_all, Latencies, Row};

const BATCH: usize = 100;

fn build_plugins() -> PathBuf {
    common::plugins::plugins_built().to_path_buf()
}

/// The component of bench plugin `name`; `hostile-copy` is the hostile plugin configured (in
/// [`manifest`]) to replace every batch with a copy.
fn wasm_of(built: &Path, name: &str) -> PathBuf {
    let crate_name = name.strip_suffix("-copy").unwrap_or(name);
    built.join(format!("{}.wasm", crate_name.replace('-', "_")))
}

fn value(i: usize, size: usize) -> String {
    let base = format!(
        r#"{{"id":"order-{i}","amount":{},"card":"4111-1111-1111-{:04}","address":{{"street":"{} Main Street","city":"Oslo"}},"note":""#,
        i % 1000,
        i % 10_000,
        i % 500
    );
    let pad = size.saturating_sub(base.len() + 2);
    format!("{base}{}\"}}", "n".repeat(pad))
}

const SCHEMA_CONFIG: &str = r#"
[config.schema]
type = "object"
required = ["id", "amount", "card"]
properties = { id = { type = "string" }, amount = { type = "number", minimum = 0 }, card = { type = "string" } }
"#;

fn manifest(name: &str, topic: &str, hooks: &str) -> String {
    let config = match name {
        "json-schema" => SCHEMA_CONFIG.to_string(),
        "field-encrypt" => {
            "keys = [\"pii\"]\n[config]\nkey = \"pii\"\nfields = [\"card\", \"address.street\"]\n"
                .into()
        }
        "signature-verify" => format!(
            "[config]\nkeys = {{ bench = \"{}\" }}\n",
            hex::encode(signing_key().verifying_key().to_bytes())
        ),
        "hostile-copy" => "[config]\nproduce = \"copy\"\n".into(),
        _ => "[config]\n".into(),
    };
    // `keys` must come before the [config] table.
    let (keys, config) = match config.strip_prefix("keys = [\"pii\"]\n") {
        Some(rest) => ("keys = [\"pii\"]\n", rest.to_string()),
        None => ("", config),
    };
    format!("topics = [\"{topic}\"]\nhooks = {hooks}\n{keys}{config}")
}

fn signing_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[3u8; 32])
}

/// (key, value, headers) of one record.
type Spec = (Option<Vec<u8>>, Vec<u8>, Vec<(String, Vec<u8>)>);

fn batch_of(records: &[Spec]) -> Bytes {
    use kafka_protocol::records::*;
    let now = 1_700_000_000_000i64;
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v, h))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: now + i as i64,
            key: k.clone().map(Bytes::from),
            value: Some(Bytes::from(v.clone())),
            headers: h
                .iter()
                .map(|(n, v)| {
                    (
                        kafka_protocol::protocol::StrBytes::from_string(n.clone()),
                        Some(Bytes::from(v.clone())),
                    )
                })
                .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

fn input(principal: &str, topic: &str) -> CallInput {
    CallInput {
        topic: topic.into(),
        partition: 0,
        caller: palisade::request::Caller {
            principal: palisade::principal::Principal {
                name: principal.into(),
                method: palisade::principal::AuthMethod::Sasl("PLAIN"),
            },
            peer: "127.0.0.1:1".parse().unwrap(),
            listener: "PLAINTEXT".into(),
            tls: false,
            client_id: Some("bench".into()),
            audit_session: Default::default(),
        },
    }
}

struct AllowDecrypt;
impl palisade::plugin::PolicyOracle for AllowDecrypt {
    fn allowed(
        &self,
        q: &palisade::plugin::oracle::Question<'_>,
        _: &palisade::request::Caller,
    ) -> bool {
        q.action == "Decrypt"
    }
}

fn per_record(c: &mut Criterion, built: &Path, size: usize) {
    let scratch = tempfile::tempdir().unwrap();
    let mut ring = Keyring::default();
    ring.generate("pii").unwrap();
    let services = Arc::new(HostServices::new(
        SharedKeyring::fixed(ring),
        EnvelopeStore::new(&scratch.path().join("keys")),
    ));
    services.set_oracle(Box::new(AllowDecrypt));
    let settings = PluginSettings {
        deadline_ms: 1000,
        ..PluginSettings::default()
    };
    let load = |name: &str, hooks: &str| -> Arc<LoadedPlugin> {
        let wasm = wasm_of(built, name);
        let toml = scratch.path().join(format!("{name}.toml"));
        std::fs::write(&toml, manifest(name, "bench", hooks)).unwrap();
        let started = Instant::now();
        let plugin = load_one(
            name,
            &wasm,
            &toml,
            None,
            &services,
            settings.limits(),
            tier(),
        )
        .unwrap();
        // What a hot reload costs before the plugin serves (the watcher adds its debounce).
        println!(
            "load {name} ({} KB): compile + validate + instantiate + init in {:?}",
            std::fs::metadata(&wasm).unwrap().len() / 1024,
            started.elapsed()
        );
        plugin
    };
    let plain: Vec<_> = (0..BATCH)
        .map(|i| {
            (
                Some(format!("k{i}").into_bytes()),
                value(i, size).into_bytes(),
                vec![],
            )
        })
        .collect();
    let signed: Vec<_> = plain
        .iter()
        .map(|(k, v, _)| {
            use ed25519_dalek::Signer;
            let m = palisade_sdk::signature::message(k.as_deref(), Some(v), [], "signature");
            let sig = signing_key().sign(&m).to_bytes().to_vec();
            (k.clone(), v.clone(), vec![("signature".to_string(), sig)])
        })
        .collect();
    let plain_batch = batch_of(&plain);
    let signed_batch = batch_of(&signed);
    let limit = 64 << 20;
    let mut g = c.benchmark_group(format!("plugin produce, batch of {BATCH} x {size} B"));
    g.throughput(Throughput::Elements(BATCH as u64));
    let who = input("bench", "bench");
    for (name, batch) in [
        ("hostile", &plain_batch),
        ("hostile-copy", &plain_batch),
        ("json-schema", &plain_batch),
        ("field-encrypt", &plain_batch),
        ("signature-verify", &signed_batch),
    ] {
        if only().is_some_and(|o| o != name) {
            continue;
        }
        let chain = vec![load(name, "[\"produce\"]")];
        // Sanity: the plugin accepts (or replaces) these records.
        assert!(
            run_produce(&chain, &who, batch, limit).is_ok(),
            "{name} refused the bench batch"
        );
        let label = match name {
            "hostile" => "hostile (accept: call overhead only)",
            "hostile-copy" => "hostile (copy: the floor of a rewriting plugin)",
            _ => name,
        };
        g.bench_function(label, |bench| {
            bench.iter(|| run_produce(&chain, &who, batch, limit).unwrap())
        });
    }
    g.finish();
    // The fetch path of field-encrypt: decrypt every record for a permitted consumer.
    let chain = vec![load("field-encrypt", "[\"produce\", \"fetch\"]")];
    let encrypted = run_produce(&chain, &who, &plain_batch, limit)
        .unwrap()
        .unwrap();
    let mut g = c.benchmark_group(format!("plugin fetch, batch of {BATCH} x {size} B"));
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("field-encrypt (decrypt, permitted)", |bench| {
        bench.iter(|| run_fetch(&chain, &who, encrypted.clone(), limit).unwrap())
    });
    g.finish();
}

/// `--quick`: per-record costs of the quick tier's code instead of the optimised tier's.
fn tier() -> Tier {
    if std::env::args().any(|a| a == "--quick") {
        Tier::Quick
    } else {
        Tier::Optimized
    }
}

/// `--only NAME`: measure one plugin's per-record cost (for profiling).
fn only() -> Option<String> {
    let argv: Vec<String> = std::env::args().collect();
    let at = argv.iter().position(|a| a == "--only")?;
    argv.get(at + 1).cloned()
}

fn produce_json(name: &str, bootstrap: &str, topic: &str, n: usize, size: usize) -> Row {
    let ctx = Latencies::default();
    let p: ThreadedProducer<Latencies> = client_config(bootstrap, &[])
        .set("acks", "all")
        .set("linger.ms", "5")
        // Half of max.message.bytes: field-encrypt grows a batch (base64 ciphertext), and the
        // stored batch must still fit the topic's limit.
        .set("batch.size", "500000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("compression.type", "none")
        .create_with_context(ctx.clone())
        .unwrap();
    let payloads: Vec<String> = (0..1000).map(|i| value(i, size)).collect();
    send_all(
        name,
        &p,
        &ctx,
        topic,
        n,
        size,
        |i| payloads[i % payloads.len()].as_bytes(),
        Duration::from_secs(300),
    )
}

fn throughput(built: &Path, messages: usize, size: usize) {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("plugins");
    std::fs::create_dir_all(&folder).unwrap();
    for (name, topic, hooks) in [
        ("hostile-copy", "with-hostile-copy", "[\"produce\"]"),
        ("json-schema", "with-json-schema", "[\"produce\"]"),
        (
            "field-encrypt",
            "with-field-encrypt",
            "[\"produce\", \"fetch\"]",
        ),
    ] {
        std::fs::copy(wasm_of(built, name), folder.join(format!("{name}.wasm"))).unwrap();
        std::fs::write(
            folder.join(format!("{name}.toml")),
            manifest(name, topic, hooks),
        )
        .unwrap();
    }
    let keyring = dir.path().join("keyring.json");
    let mut ring = Keyring::default();
    ring.generate("pii").unwrap();
    ring.save(&keyring).unwrap();
    let folder_line = format!("dir = {:?}", folder.display().to_string());
    let keyring_line = format!("keyring = {:?}", keyring.display().to_string());
    let text = common::plaintext_config_text(
        &dir.path().join("data"),
        &[
            ("dir = \"plugins\"", &folder_line),
            ("keyring = \"keyring.json\"", &keyring_line),
        ],
    );
    let rt = support::runtime();
    let running = support::start_broker_from(&rt, &text, "<bench>");
    let bootstrap = running.addresses[0].to_string();
    // `with-hostile-copy`: a plugin that only rewrites each batch into a copy, the floor of
    // every rewriting plugin (field-encrypt's ratio cannot exceed it).
    let topics = [
        "no-plugin",
        "with-hostile-copy",
        "with-json-schema",
        "with-field-encrypt",
    ];
    for t in topics {
        create(&rt, &bootstrap, t);
    }
    println!("\nproduce throughput: {messages} JSON messages of {size} bytes, acks=all, 3 partitions, loopback");
    // Two interleaved rounds; the better of each is kept (the machine is shared).
    let mut best: Vec<Option<(Row, f64)>> = topics.iter().map(|_| None).collect();
    for round in 0..2 {
        for (i, t) in topics.iter().enumerate() {
            // `--only NAME` (profiling): the baseline and that plugin's row.
            if i > 0 && only().is_some_and(|o| !t.ends_with(o.as_str())) {
                continue;
            }
            // `--no-baseline` (profiling one row alone): no ratio is printed then.
            if i == 0 && std::env::args().any(|a| a == "--no-baseline") {
                continue;
            }
            // Client and broker share this process: its CPU time says how much of the two
            // cores a row used, and what one message cost in all.
            let (cpu, wall) = (cpu_time::ProcessTime::now(), Instant::now());
            let row = produce_json(&format!("produce to `{t}`"), &bootstrap, t, messages, size);
            let (cpu, wall) = (cpu.elapsed(), wall.elapsed());
            let cores = cpu.as_secs_f64() / wall.as_secs_f64();
            eprintln!(
                "round {round}: {} {:.0} msgs/s, {cores:.2} cores, {:.2} µs CPU per message",
                row.name,
                row.msgs_per_s,
                cpu.as_secs_f64() * 1e6 / messages as f64
            );
            if best[i]
                .as_ref()
                .is_none_or(|(b, _)| b.msgs_per_s < row.msgs_per_s)
            {
                best[i] = Some((row, cores));
            }
        }
    }
    let no_baseline = best[0].is_none();
    let (rows, cores): (Vec<Row>, Vec<f64>) = best.into_iter().flatten().unzip();
    if no_baseline {
        // Only the round lines above: without the baseline there is no ratio.
        rt.block_on(running.shutdown());
        return;
    }
    print_rows(&rows, 0);
    for (row, cores) in rows.iter().zip(cores) {
        println!("{:<40} {cores:.2} cores", row.name);
    }
    rt.block_on(running.shutdown());
}

fn main() {
    if support::smoke_mode() {
        return;
    }
    let a = args();
    let size = if a.size == 1024 { 512 } else { a.size };
    // A million messages: shorter rows (100k is a quarter of a second) are dominated by the
    // ramp-up and vary by a third from round to round.
    let messages = if a.messages == 300_000 {
        1_000_000
    } else {
        a.messages
    };
    let built = build_plugins();
    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    if !std::env::args().any(|x| x == "--throughput-only") {
        per_record(&mut c, &built, size);
        c.final_summary();
    }
    if !std::env::args().any(|x| x == "--per-record-only") {
        throughput(&built, messages, size);
    }
}

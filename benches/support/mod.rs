//! Client-side helpers shared by the load tools: argument parsing, a librdkafka producer that
//! records ack latency, a consumer that counts bytes, and the result table.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

pub struct Args {
    pub messages: usize,
    pub size: usize,
    pub seconds: u64,
}

pub fn args() -> Args {
    let mut a = Args {
        messages: 300_000,
        size: 1024,
        seconds: 5,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let value = argv.get(i + 1).and_then(|v| v.parse().ok());
        match (argv[i].as_str(), value) {
            ("--messages", Some(v)) => a.messages = v,
            ("--size", Some(v)) => a.size = v,
            ("--seconds", Some(v)) => a.seconds = v as u64,
            _ => {}
        }
        i += 1;
    }
    a
}

#[derive(Clone, Default)]
pub struct Latencies {
    pub acked: Arc<AtomicUsize>,
    pub errors: Arc<AtomicUsize>,
    /// The first delivery error, for the failure message.
    pub first_error: Arc<Mutex<Option<String>>>,
    pub micros: Arc<Mutex<Vec<u64>>>,
}

impl ClientContext for Latencies {}
impl ProducerContext for Latencies {
    type DeliveryOpaque = Box<Instant>;
    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Instant>) {
        if result.is_ok() {
            self.micros
                .lock()
                .unwrap()
                .push(sent.elapsed().as_micros() as u64);
            self.acked.fetch_add(1, Ordering::Relaxed);
        } else {
            self.errors.fetch_add(1, Ordering::Relaxed);
            if let Err((e, _)) = result {
                self.first_error
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| e.to_string());
            }
        }
    }
}

pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

pub struct Row {
    pub name: String,
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// `client`: extra librdkafka settings (security protocol, SASL, TLS) for every client.
pub fn client_config(bootstrap: &str, client: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    for (k, v) in client {
        c.set(*k, *v);
    }
    c
}

/// The librdkafka settings of every throughput producer (besides `acks`), for the tools to print.
pub const PRODUCER_SETTINGS: &[(&str, &str)] = &[
    ("linger.ms", "5"),
    ("batch.size", "1000000"),
    ("queue.buffering.max.messages", "1000000"),
    ("queue.buffering.max.kbytes", "1048576"),
    ("compression.type", "none"),
];

/// The librdkafka settings of the throughput consumer (besides `group.id` and auto-commit off).
pub const CONSUMER_SETTINGS: &[(&str, &str)] = &[
    ("fetch.max.bytes", "52428800"),
    ("max.partition.fetch.bytes", "10485760"),
    ("queued.max.messages.kbytes", "1048576"),
];

fn producer(
    bootstrap: &str,
    client: &[(&str, &str)],
    acks: &str,
    ctx: Latencies,
) -> ThreadedProducer<Latencies> {
    let mut c = client_config(bootstrap, client);
    c.set("acks", acks);
    for (k, v) in PRODUCER_SETTINGS {
        c.set(*k, *v);
    }
    c.create_with_context(ctx).unwrap()
}

pub struct Target<'a> {
    pub bootstrap: &'a str,
    pub client: &'a [(&'a str, &'a str)],
    pub topic: &'a str,
}

/// A plaintext target: no client security settings.
pub fn t<'a>(bootstrap: &'a str, topic: &'a str) -> Target<'a> {
    Target {
        bootstrap,
        client: &[],
        topic,
    }
}

pub fn produce(name: &str, t: &Target<'_>, acks: &str, n: usize, size: usize) -> Row {
    let payload = vec![b'x'; size];
    produce_with(name, t, acks, n, size, |_| &payload[..])
}

/// [`produce`] with record `i`'s value `payload(i)` (about `size` bytes).
pub fn produce_with<'a>(
    name: &str,
    t: &Target<'_>,
    acks: &str,
    n: usize,
    size: usize,
    payload: impl Fn(usize) -> &'a [u8],
) -> Row {
    let ctx = Latencies::default();
    let p = producer(t.bootstrap, t.client, acks, ctx.clone());
    send_all(
        name,
        &p,
        &ctx,
        t.topic,
        n,
        size,
        payload,
        Duration::from_secs(120),
    )
}

/// Sends records of `size` bytes over 3 partitions at `rate` per second for `seconds` (each
/// record is sent when its time comes; a late sender catches up at once), waits for every
/// delivery, and reports the delivery latencies: the latency a client sees at that load, not
/// under a backlog of its own making. Record `i`'s value is `payload(i)`.
pub fn produce_paced<'a>(
    name: &str,
    t: &Target<'_>,
    acks: &str,
    rate: u32,
    seconds: u64,
    size: usize,
    payload: impl Fn(usize) -> &'a [u8],
) -> Row {
    let ctx = Latencies::default();
    let p = producer(t.bootstrap, t.client, acks, ctx.clone());
    let n = rate as usize * seconds as usize;
    let start = Instant::now();
    for i in 0..n {
        let due = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let record = BaseRecord::<(), _, _>::with_opaque_to(t.topic, Box::new(Instant::now()))
            .partition((i % 3) as i32)
            .payload(payload(i));
        if let Err((e, _)) = p.send(record) {
            panic!("{name}: send failed at a paced rate: {e}");
        }
    }
    delivered(name, &p, &ctx, n, size, start, Duration::from_secs(60))
}

/// Sends `n` records of `payload(i)` (about `size` bytes) over 3 partitions with `p`, waits
/// for every delivery, and reports throughput and the delivery latencies `ctx` recorded.
#[allow(clippy::too_many_arguments)]
pub fn send_all<'a>(
    name: &str,
    p: &ThreadedProducer<Latencies>,
    ctx: &Latencies,
    topic: &str,
    n: usize,
    size: usize,
    payload: impl Fn(usize) -> &'a [u8],
    flush: Duration,
) -> Row {
    let start = Instant::now();
    for i in 0..n {
        let mut record = BaseRecord::<(), _, _>::with_opaque_to(topic, Box::new(Instant::now()))
            .partition((i % 3) as i32)
            .payload(payload(i));
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
    delivered(name, p, ctx, n, size, start, flush)
}

/// Waits up to `flush` for every one of the `n` records `p` sent since `start` (about `size`
/// bytes each) to be delivered, fails on any delivery error, and reports throughput and the
/// delivery latencies `ctx` recorded.
fn delivered(
    name: &str,
    p: &ThreadedProducer<Latencies>,
    ctx: &Latencies,
    n: usize,
    size: usize,
    start: Instant,
    flush: Duration,
) -> Row {
    if let Err(e) = p.flush(flush) {
        panic!(
            "{name}: {} of {n} records not delivered within {flush:?}: {e}",
            p.in_flight_count()
        );
    }
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(
        ctx.errors.load(Ordering::Relaxed),
        0,
        "{name}: delivery errors, the first: {:?}",
        ctx.first_error.lock().unwrap()
    );
    let mut lat = ctx.micros.lock().unwrap().clone();
    lat.sort_unstable();
    Row {
        name: name.to_string(),
        msgs_per_s: n as f64 / elapsed,
        mb_per_s: (n * size) as f64 / elapsed / 1e6,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
    }
}

pub fn consume(name: &str, t: &Target<'_>, n: usize) -> Row {
    let topic = t.topic;
    let mut config = client_config(t.bootstrap, t.client);
    config
        .set("group.id", "load-consume")
        .set("enable.auto.commit", "false");
    for (k, v) in CONSUMER_SETTINGS {
        config.set(*k, *v);
    }
    let c: BaseConsumer = config.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let start = Instant::now();
    let (mut count, mut bytes) = (0usize, 0usize);
    while count < n {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            bytes += m.payload().map_or(0, |p| p.len());
            count += 1;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "consume stalled at {count}"
        );
    }
    let elapsed = start.elapsed().as_secs_f64();
    Row {
        name: name.to_string(),
        msgs_per_s: count as f64 / elapsed,
        mb_per_s: bytes as f64 / elapsed / 1e6,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
    }
}

pub fn create(rt: &tokio::runtime::Runtime, bootstrap: &str, topic: &str) {
    create_with(rt, bootstrap, topic, &[]);
}

/// [`create`] with topic `configs`.
pub fn create_with(
    rt: &tokio::runtime::Runtime,
    bootstrap: &str,
    topic: &str,
    configs: &[(&str, &str)],
) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<_> = client_config(bootstrap, &[]).create().unwrap();
    let mut t = NewTopic::new(topic, 3, TopicReplication::Fixed(1));
    for (key, value) in configs {
        t = t.set(key, value);
    }
    for r in rt
        .block_on(admin.create_topics([&t], &AdminOptions::new()))
        .unwrap()
    {
        r.unwrap();
    }
}

/// Prints the rows with each one's MB/s ratio against `rows[baseline]`.
pub fn print_rows(rows: &[Row], baseline: usize) {
    let base = rows.get(baseline).map_or(f64::NAN, |r| r.mb_per_s);
    println!(
        "{:<58} {:>12} {:>10} {:>9} {:>9} {:>8}",
        "scenario", "msgs/s", "MB/s", "p50 ms", "p99 ms", "ratio"
    );
    for r in rows {
        println!(
            "{:<58} {:>12.0} {:>10.1} {:>9.2} {:>9.2} {:>8.2}",
            r.name,
            r.msgs_per_s,
            r.mb_per_s,
            r.p50_ms,
            r.p99_ms,
            r.mb_per_s / base
        );
    }
}

/// One request per message: a producer that waits for each acknowledgement (acks=1) before
/// sending the next 100-byte message, over 3 partitions: the per-request cost of the broker.
pub fn produce_one_by_one(name: &str, bootstrap: &str, topic: &str, n: usize) -> Row {
    let p: rdkafka::producer::FutureProducer = client_config(bootstrap, &[])
        .set("acks", "1")
        .set("linger.ms", "0")
        .create()
        .unwrap();
    let payload = vec![b'x'; 100];
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let sent = Instant::now();
        futures::executor::block_on(
            p.send(
                rdkafka::producer::FutureRecord::<(), _>::to(topic)
                    .partition((i % 3) as i32)
                    .payload(&payload),
                Duration::from_secs(10),
            ),
        )
        .unwrap();
        lat.push(sent.elapsed().as_micros() as u64);
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    Row {
        name: name.to_string(),
        msgs_per_s: n as f64 / elapsed,
        mb_per_s: (n * 100) as f64 / elapsed / 1e6,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
    }
}

/// The median row of `rows` by throughput.
pub fn median(mut rows: Vec<Row>) -> Row {
    rows.sort_by(|a, b| a.msgs_per_s.total_cmp(&b.msgs_per_s));
    rows.swap_remove(rows.len() / 2)
}

/// `cargo test --benches` runs each bench with `--test`: there is nothing to measure then.
pub fn smoke_mode() -> bool {
    std::env::args().any(|x| x == "--test")
}

/// A load tool's arguments and runtime, or `None` in smoke mode.
pub fn setup() -> Option<(Args, tokio::runtime::Runtime)> {
    if smoke_mode() {
        return None;
    }
    Some((args(), runtime()))
}

/// The runtime the in-process brokers of a load tool run on (two workers, as the machine).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A broker started on `rt` from config `text` (`name` names it in config errors).
pub fn start_broker_from(
    rt: &tokio::runtime::Runtime,
    text: &str,
    name: &str,
) -> palisade::broker::Running {
    let config = palisade::config::Config::parse(text, std::path::Path::new(name)).unwrap();
    rt.block_on(palisade::broker::Running::start(config))
        .unwrap()
}

//! Palisade against Apache Kafka: the same client (librdkafka via the `rdkafka` crate), the same
//! workload, the same run.
//!
//! `cargo bench --bench compare -- [--messages N] [--size BYTES] [--rounds R] [--gateway
//! [--seconds S] [--plugin none|json-schema|field-encrypt|all]]`
//!
//! Starts, as separate processes on loopback, one Apache Kafka 4.4 broker (one KRaft node,
//! Kafka's defaults; jars from `.ci/kafka/fetch.sh`) and the release `palisade` binary in broker
//! mode (dev default config, PLAINTEXT listener) twice: with its default flush policy
//! (`group-commit`: acks=all waits for an fsync) and with `page-cache` (Kafka's behaviour: no
//! fsync before the ack). Every server gets an untimed warm-up, produce and consume (the JVM
//! compiles its hot paths), then each step runs on every server in turn, so that load from
//! elsewhere on the machine falls on all of them alike:
//!
//! - produce acks=1 and acks=all: N records of SIZE bytes (1 KiB by default) over 3
//!   partitions, as fast as the producer goes; msgs/s, MB/s, and p50/p99 latency from send to
//!   delivery report;
//! - consume: the acks=all topic read back from the beginning; msgs/s and MB/s.
//!
//! With `--rounds R` the steps run R times over (round after round) and each step's figures
//! are those of its round with the median MB/s: other load on a shared machine moves single
//! runs a lot.
//!
//! For each step it reads the server's CPU time (`/proc/PID/stat`, every thread) before and
//! after: CPU ms per MB moved (the same number as millicores per MB/s). At the end, each server's
//! resident memory (`/proc/PID/status`): the peak (VmHWM), now (VmRSS), and after start-up. Each
//! figure is printed for every server with its ratio against Kafka.
//!
//! With `--gateway` the servers are the same Kafka broker reached directly and through Palisade
//! in gateway mode (`[gateway] bootstrap_servers` naming it; pass-through topics, no plugins):
//! the same steps, each server its own topics on that one broker, plus produce acks=all at
//! fixed rates of 1,000 and 20,000 msgs/s for S seconds (5 by default): delivery latency
//! p50/p99 at that load. A summary then gives, per step, the throughput ratio gateway/direct,
//! the latency the gateway adds, and the gateway's CPU in millicores per MB/s moved (the same
//! number as CPU ms per MB). The gateway's CPU and RSS are its own process's; Kafka's work
//! behind it is not counted there. In gateway mode every record is a JSON object of SIZE
//! bytes (`support/gateway_plugins.rs`). `--plugin` (`none` by default) runs every step once
//! per case: `json-schema` validates each record at the gateway, `field-encrypt` encrypts two
//! fields of each on produce and decrypts them for the consumer (whom the policy permits);
//! `all` is the three cases in turn. The direct side's topics of each case get the same
//! records, unread.
//!
//! A [`servers::Server`] is a bootstrap address, a pid and a name; the workload runs against
//! any of them, so another kind of server (a gateway in front of Kafka) is one more constructor.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/gateway_plugins.rs"]
mod gateway_plugins;
#[path = "support/servers/mod.rs"]
mod servers;
mod support;

use gateway_plugins::Plugin;
use servers::{process::Memory, Server};
use support::{consume, create_with, produce_paced, produce_with, t, Args, Row};

/// Topics every server gets per case: 3 partitions, replication factor 1. Server `i`'s are
/// named `NAME-i` (`NAME-PLUGIN-i` for a plugin's case): in gateway mode all servers are one
/// Kafka broker underneath.
const TOPICS: [&str; 4] = ["warmup", "acks1", "acksall", "paced"];

fn topic(base: &str, plugin: Plugin, server: usize) -> String {
    format!("{base}{}-{server}", plugin.topic_part())
}

/// The values the producers send: record `i` gets `values[i % len]`.
struct Payloads(Vec<Vec<u8>>);

impl Payloads {
    /// Broker mode: SIZE bytes of `x`.
    fn filler(size: usize) -> Payloads {
        Payloads(vec![vec![b'x'; size]])
    }

    /// Gateway mode: 1,000 distinct JSON objects of SIZE bytes that every plugin case accepts.
    fn json(size: usize) -> Payloads {
        Payloads(
            (0..1000)
                .map(|i| gateway_plugins::value(i, size).into_bytes())
                .collect(),
        )
    }

    fn get(&self, i: usize) -> &[u8] {
        &self.0[i % self.0.len()]
    }
}

/// One step with what the gateway runs on its topics.
#[derive(Clone, Copy)]
struct Case {
    plugin: Plugin,
    step: Step,
}

/// One step of the workload.
#[derive(Clone, Copy)]
enum Step {
    ProduceAcks1,
    ProduceAcksAll,
    Consume,
    /// Produce acks=all at a fixed rate (msgs/s) for `--seconds`.
    Paced(u32),
}

impl Step {
    const ALL: [Step; 3] = [Step::ProduceAcks1, Step::ProduceAcksAll, Step::Consume];
    const GATEWAY: [Step; 5] = [
        Step::ProduceAcks1,
        Step::ProduceAcksAll,
        Step::Consume,
        Step::Paced(1_000),
        Step::Paced(20_000),
    ];

    fn label(self) -> String {
        match self {
            Step::ProduceAcks1 => "produce acks=1".into(),
            Step::ProduceAcksAll => "produce acks=all".into(),
            Step::Consume => "consume".into(),
            Step::Paced(rate) => format!("acks=all at {rate} msgs/s"),
        }
    }
}

impl Case {
    fn label(self) -> String {
        match self.plugin {
            Plugin::None => self.step.label(),
            p => format!("{}: {}", p.name(), self.step.label()),
        }
    }

    /// Runs on server number `index`; returns the figures and the records moved.
    fn run(self, server: &Server, index: usize, a: &Args, values: &Payloads) -> (Row, usize) {
        let name = format!("{} {}", server.name, self.label());
        let on = |base: &str| topic(base, self.plugin, index);
        let (bootstrap, size, n) = (server.bootstrap.as_str(), a.size, a.messages);
        let value = |i| values.get(i);
        match self.step {
            Step::ProduceAcks1 => (
                produce_with(&name, &t(bootstrap, &on("acks1")), "1", n, size, value),
                n,
            ),
            Step::ProduceAcksAll => (
                produce_with(&name, &t(bootstrap, &on("acksall")), "all", n, size, value),
                n,
            ),
            Step::Consume => (consume(&name, &t(bootstrap, &on("acksall")), n), n),
            Step::Paced(rate) => (
                produce_paced(
                    &name,
                    &t(bootstrap, &on("paced")),
                    "all",
                    rate,
                    a.seconds,
                    size,
                    value,
                ),
                rate as usize * a.seconds as usize,
            ),
        }
    }
}

/// A step's result on one server, with the server's CPU time per MB moved.
struct Measured {
    row: Row,
    cpu_ms_per_mb: f64,
}

fn measure(case: Case, server: &Server, index: usize, a: &Args, values: &Payloads) -> Measured {
    let before = server.cpu_seconds();
    let (row, records) = case.run(server, index, a, values);
    let cpu = server.cpu_seconds() - before;
    let mb = (records * a.size) as f64 / 1e6;
    Measured {
        row,
        cpu_ms_per_mb: cpu * 1000.0 / mb,
    }
}

/// The round with the median throughput (its other figures with it).
fn median(mut rounds: Vec<Measured>) -> Measured {
    rounds.sort_by(|a, b| a.row.mb_per_s.total_cmp(&b.row.mb_per_s));
    rounds.swap_remove(rounds.len() / 2)
}

/// `--rounds R` (default 1): how many times every step runs on every server.
fn rounds() -> usize {
    let argv: Vec<String> = std::env::args().collect();
    argv.windows(2)
        .find(|w| w[0] == "--rounds")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// Everything measured on one server.
struct Results {
    steps: Vec<Measured>,
    idle: Memory,
    end: Memory,
}

/// One line of the table: a figure's value on every server.
struct Figure {
    name: String,
    values: Vec<f64>,
}

fn figures(cases: &[Case], results: &[Results]) -> Vec<Figure> {
    let mut out = Vec::new();
    let mut push = |name: String, value: &dyn Fn(&Results) -> f64| {
        out.push(Figure {
            name,
            values: results.iter().map(value).collect(),
        });
    };
    for (i, case) in cases.iter().enumerate() {
        let (label, step) = (case.label(), case.step);
        if !matches!(step, Step::Paced(_)) {
            push(format!("{label}: MB/s"), &|r| r.steps[i].row.mb_per_s);
            push(format!("{label}: msgs/s"), &|r| r.steps[i].row.msgs_per_s);
        }
        if !matches!(step, Step::Consume) {
            push(format!("{label}: p50 ms"), &|r| r.steps[i].row.p50_ms);
            push(format!("{label}: p99 ms"), &|r| r.steps[i].row.p99_ms);
        }
        push(format!("{label}: server CPU ms/MB"), &|r| {
            r.steps[i].cpu_ms_per_mb
        });
    }
    push("RSS peak, VmHWM (MB)".into(), &|r| r.end.peak_mb);
    push("RSS at end, VmRSS (MB)".into(), &|r| r.end.now_mb);
    push("RSS after start-up (MB)".into(), &|r| r.idle.now_mb);
    out
}

/// Prints every figure for every server, then each server's ratio against the first.
fn print_table(servers: &[Server], figures: &[Figure]) {
    let Some(base) = servers.first() else {
        return;
    };
    let mut header = format!("{:<40}", "figure");
    for s in servers {
        header.push_str(&format!(" {:>20}", s.name));
    }
    for s in &servers[1..] {
        header.push_str(&format!(" {:>28}", format!("{}/{}", s.name, base.name)));
    }
    println!("{header}");
    for f in figures {
        let mut line = format!("{:<40}", f.name);
        for v in &f.values {
            let digits = if v.abs() >= 100.0 { 0 } else { 2 };
            line.push_str(&format!(" {v:>20.digits$}"));
        }
        for v in &f.values[1..] {
            line.push_str(&format!(" {:>28.2}", v / f.values[0]));
        }
        println!("{line}");
    }
}

/// Gateway mode: per step, what the gateway (`results[1]`) costs against direct (`results[0]`),
/// with the goals of the gateway's design.
fn print_gateway_summary(cases: &[Case], results: &[Results]) {
    let [direct, gateway] = results else {
        return;
    };
    println!();
    println!(
        "{:<46} {:>22} {:>16} {:>16} {:>26}",
        "gateway vs direct",
        "throughput gw/direct",
        "added p50 ms",
        "added p99 ms",
        "gateway millicores/(MB/s)"
    );
    for (i, case) in cases.iter().enumerate() {
        let (d, g) = (&direct.steps[i], &gateway.steps[i]);
        let ratio = if matches!(case.step, Step::Paced(_)) {
            "(fixed rate)".to_string()
        } else {
            format!("{:.2}", g.row.mb_per_s / d.row.mb_per_s)
        };
        let added = |f: fn(&Row) -> f64| {
            let v = f(&g.row) - f(&d.row);
            if v.is_nan() {
                "-".to_string()
            } else {
                format!("{v:+.2}")
            }
        };
        println!(
            "{:<46} {:>22} {:>16} {:>16} {:>26.2}",
            case.label(),
            ratio,
            added(|r| r.p50_ms),
            added(|r| r.p99_ms),
            g.cpu_ms_per_mb
        );
    }
    println!(
        "goals: throughput gw/direct >= 0.85, gateway CPU <= 5 millicores per MB/s \
         (Kroxylicious publishes about 25)"
    );
}

fn settings(list: &[(&str, &str)]) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let Some((a, rt)) = support::setup() else {
        return;
    };
    let rounds = rounds();
    let gateway = std::env::args().any(|x| x == "--gateway");
    let plugins = if gateway {
        Plugin::from_args()
    } else {
        vec![Plugin::None]
    };
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let kafka = servers::kafka::start("kafka", dirs[0].path());
    let (servers, steps): (Vec<Server>, &[Step]) = if gateway {
        let extra = gateway_plugins::install(dirs[1].path(), &plugins);
        let extra: Vec<(&str, &str)> = extra
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let names: Vec<&str> = plugins.iter().map(|p| p.name()).collect();
        let through = servers::palisade_gateway::start_with(
            "gateway",
            dirs[1].path(),
            &kafka.bootstrap,
            &extra,
            &format!("plugins per case: {}", names.join(", ")),
        );
        (vec![kafka, through], &Step::GATEWAY)
    } else {
        let servers = vec![
            kafka,
            servers::palisade::start("palisade", dirs[1].path(), &[]),
            servers::palisade::start(
                "palisade page-cache",
                dirs[2].path(),
                &[("flush = \"group-commit\"", "flush = \"page-cache\"")],
            ),
        ];
        (servers, &Step::ALL)
    };
    let cases: Vec<Case> = plugins
        .iter()
        .flat_map(|&plugin| steps.iter().map(move |&step| Case { plugin, step }))
        .collect();
    let values = if gateway {
        Payloads::json(a.size)
    } else {
        Payloads::filler(a.size)
    };
    let idle: Vec<Memory> = servers.iter().map(Server::memory).collect();
    for (i, s) in servers.iter().enumerate() {
        // Through a gateway the topics are made on the cluster itself.
        let admin = if gateway { &servers[0] } else { s };
        for plugin in &plugins {
            for base in TOPICS {
                let name = topic(base, *plugin, i);
                create_with(&rt, &admin.bootstrap, &name, plugin.topic_configs());
            }
        }
    }

    println!(
        "compare: {} messages of {} bytes per step, median of {rounds} round(s), 3 partitions, \
         replication factor 1, loopback, {} cores shared by client and servers",
        a.messages,
        a.size,
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "producer: {}; consumer: {}",
        settings(support::PRODUCER_SETTINGS),
        settings(support::CONSUMER_SETTINGS)
    );
    if gateway {
        println!(
            "records: JSON objects (support/gateway_plugins.rs); json-schema: {}",
            gateway_plugins::SCHEMA.replace('\n', " ")
        );
    }
    for s in &servers {
        println!("{}: {} (pid {})", s.name, s.settings, s.pid);
    }

    let warm_up = (a.messages / 10).clamp(1, 50_000);
    for (i, s) in servers.iter().enumerate() {
        for plugin in &plugins {
            let warmup = topic("warmup", *plugin, i);
            let value = |n| values.get(n);
            produce_with(
                "warm-up",
                &t(&s.bootstrap, &warmup),
                "1",
                warm_up,
                a.size,
                value,
            );
            consume("warm-up", &t(&s.bootstrap, &warmup), warm_up);
        }
    }
    // results[server][case]: one measurement per round.
    let mut results: Vec<Vec<Vec<Measured>>> = servers
        .iter()
        .map(|_| cases.iter().map(|_| Vec::new()).collect())
        .collect();
    for _ in 0..rounds {
        for (i, case) in cases.iter().enumerate() {
            for (index, (s, out)) in servers.iter().zip(results.iter_mut()).enumerate() {
                let measured = measure(*case, s, index, &a, &values);
                // Progress, so that a run that fails later still shows what it measured.
                eprintln!(
                    "{}: {:.1} MB/s, server CPU {:.1} ms/MB",
                    measured.row.name, measured.row.mb_per_s, measured.cpu_ms_per_mb
                );
                out[i].push(measured);
            }
        }
    }
    let results: Vec<Results> = results
        .into_iter()
        .zip(servers.iter().zip(idle))
        .map(|(steps, (s, idle))| Results {
            steps: steps.into_iter().map(median).collect(),
            idle,
            end: s.memory(),
        })
        .collect();
    println!();
    print_table(&servers, &figures(&cases, &results));
    if gateway {
        print_gateway_summary(&cases, &results);
    }
    // Stop the servers before their folders go.
    drop(servers);
    drop(dirs);
}

//! Labelled metric families: counters, gauges and histograms keyed by label values.
//!
//! A lookup hashes the label values and compares them with the stored ones, so recording on
//! an existing series allocates nothing. Each family holds at most [`MAX_SERIES`] label sets;
//! beyond that new label sets fold into one series labelled `_overflow` (bounded memory when
//! a client invents topic names).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

/// Most label sets one family keeps.
pub const MAX_SERIES: usize = 10_000;

const OVERFLOW: &str = "_overflow";

/// Series sharing one hash of their label values.
type Bucket<S> = Vec<(Box<[String]>, Arc<S>)>;

/// One family of series sharing a name, help text and label names.
pub struct Family<S> {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: RwLock<HashMap<u64, Bucket<S>>>,
    count: AtomicU64,
    hasher: foldhash::fast::FixedState,
}

impl<S: Default> Family<S> {
    pub fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Family {
            name,
            help,
            labels,
            series: RwLock::new(HashMap::new()),
            count: AtomicU64::new(0),
            hasher: foldhash::fast::FixedState::with_seed(0x9e37_79b9),
        }
    }

    fn key(&self, values: &[&str]) -> u64 {
        let mut h = self.hasher.build_hasher();
        for v in values {
            v.hash(&mut h);
        }
        h.finish()
    }

    /// The series for `values` (created on first use).
    pub fn with(&self, values: &[&str]) -> Arc<S> {
        let key = self.key(values);
        if let Some(found) = self.find(key, values) {
            return found;
        }
        let overflow: Vec<&str>;
        let (key, values) = if self.count.load(Ordering::Relaxed) >= MAX_SERIES as u64 {
            overflow = values.iter().map(|_| OVERFLOW).collect();
            (self.key(&overflow), overflow.as_slice())
        } else {
            (key, values)
        };
        let mut series = self.series.write();
        let bucket = series.entry(key).or_default();
        if let Some((_, s)) = bucket
            .iter()
            .find(|(stored, _)| stored.iter().map(String::as_str).eq(values.iter().copied()))
        {
            return s.clone();
        }
        let s = Arc::new(S::default());
        bucket.push((values.iter().map(|v| v.to_string()).collect(), s.clone()));
        self.count.fetch_add(1, Ordering::Relaxed);
        s
    }

    fn find(&self, key: u64, values: &[&str]) -> Option<Arc<S>> {
        let series = self.series.read();
        series.get(&key).and_then(|bucket| {
            bucket
                .iter()
                .find(|(stored, _)| stored.iter().map(String::as_str).eq(values.iter().copied()))
                .map(|(_, s)| s.clone())
        })
    }

    /// Every series, sorted by label values (stable output).
    fn sorted(&self) -> Vec<(Box<[String]>, Arc<S>)> {
        let mut all: Vec<_> = self
            .series
            .read()
            .values()
            .flat_map(|b| b.iter().cloned())
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    fn header(&self, out: &mut String, kind: &str) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
    }
}

/// `{a="x",b="y"}` with Prometheus escaping; empty when there are no labels.
fn label_text(names: &[&str], values: &[String], extra: Option<(&str, &str)>) -> String {
    let mut pairs: Vec<String> = names
        .iter()
        .zip(values.iter())
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect();
    if let Some((n, v)) = extra {
        pairs.push(format!("{n}=\"{v}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency buckets, in seconds (50 µs .. 10 s).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
    10.0,
];

/// A latency histogram with [`LATENCY_BUCKETS`].
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            if let Some(b) = self.buckets.get(i) {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Renders a family in the Prometheus text format.
pub trait Render {
    fn render(&self, out: &mut String);
}

impl Render for Family<Counter> {
    fn render(&self, out: &mut String) {
        self.header(out, "counter");
        for (values, c) in self.sorted() {
            let labels = label_text(self.labels, &values, None);
            let _ = writeln!(out, "{}{labels} {}", self.name, c.get());
        }
    }
}

impl Render for Family<Gauge> {
    fn render(&self, out: &mut String) {
        self.header(out, "gauge");
        for (values, g) in self.sorted() {
            let labels = label_text(self.labels, &values, None);
            let _ = writeln!(out, "{}{labels} {}", self.name, g.get());
        }
    }
}

impl Render for Family<Histogram> {
    fn render(&self, out: &mut String) {
        self.header(out, "histogram");
        for (values, h) in self.sorted() {
            let mut cumulative = 0u64;
            for (bound, bucket) in LATENCY_BUCKETS.iter().zip(h.buckets.iter()) {
                cumulative += bucket.load(Ordering::Relaxed);
                let le = bound.to_string();
                let labels = label_text(self.labels, &values, Some(("le", &le)));
                let _ = writeln!(out, "{}_bucket{labels} {cumulative}", self.name);
            }
            let count = h.count();
            let labels = label_text(self.labels, &values, Some(("le", "+Inf")));
            let _ = writeln!(out, "{}_bucket{labels} {count}", self.name);
            let plain = label_text(self.labels, &values, None);
            let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "{}_sum{plain} {sum}", self.name);
            let _ = writeln!(out, "{}_count{plain} {count}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_sorted_and_escaped() {
        let f: Family<Counter> = Family::new("t_total", "test", &["topic"]);
        f.with(&["b"]).add(2);
        f.with(&["a\"x"]).inc();
        f.with(&["b"]).inc();
        let mut out = String::new();
        f.render(&mut out);
        assert!(out.contains("t_total{topic=\"a\\\"x\"} 1\n"), "{out}");
        assert!(out.contains("t_total{topic=\"b\"} 3\n"), "{out}");
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let f: Family<Histogram> = Family::new("lat_seconds", "test", &["api"]);
        f.with(&["Produce"])
            .observe(std::time::Duration::from_micros(40));
        f.with(&["Produce"])
            .observe(std::time::Duration::from_millis(3));
        let mut out = String::new();
        f.render(&mut out);
        assert!(
            out.contains("lat_seconds_bucket{api=\"Produce\",le=\"0.00005\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("lat_seconds_bucket{api=\"Produce\",le=\"0.005\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("lat_seconds_count{api=\"Produce\"} 2"),
            "{out}"
        );
    }
}

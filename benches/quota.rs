//! What a client quota costs one request: the connection's cached bucket (the steady state),
//! a broker without quotas, and a fresh resolution (a connection's first request, or the
//! first after quotas changed: eight candidate entities walked).
#![allow(clippy::unwrap_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use palisade::quota::{QuotaCache, QuotaKind, QuotaSettings, Quotas};

fn quotas(text: &str) -> Quotas {
    let settings: QuotaSettings = toml::from_str(text).unwrap();
    Quotas::open(&settings, None).unwrap()
}

fn bench(c: &mut Criterion) {
    let none = quotas("");
    let metered = quotas(
        "producer_byte_rate = 10000000000\n[[overrides]]\nuser = \"etl\"\nproducer_byte_rate = 1000\n[[overrides]]\nclient_id = \"batch\"\nproducer_byte_rate = 1000",
    );
    let mut g = c.benchmark_group("quota per request");
    let mut cache = QuotaCache::default();
    g.bench_function("no quotas", |b| {
        b.iter(|| {
            none.record_with(
                &mut cache,
                QuotaKind::Produce,
                "alice",
                "app",
                black_box(1_000_000),
            )
        })
    });
    let mut cache = QuotaCache::default();
    g.bench_function("metered, cached bucket", |b| {
        b.iter(|| {
            metered.record_with(
                &mut cache,
                QuotaKind::Produce,
                "alice",
                "app",
                black_box(1_000_000),
            )
        })
    });
    g.bench_function("metered, resolved afresh", |b| {
        b.iter(|| metered.record(QuotaKind::Produce, "alice", "app", black_box(1_000_000)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Authorization cost per decision at 10, 100 and 1,000 generated policies: cached (the
//! decision cache answers) and cold (Cedar evaluates the (action, resource type) partition).
//!
//! Policies are realistic: per-team permits on tagged topics and consumer groups, a few
//! forbids on classified topics and by address range.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fmt::Write as _;
use std::net::IpAddr;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use palisade::authz::decide::decide;
use palisade::authz::{Action, Authorizer, Request, RequestContextFacts, Resource};

const SCHEMA: &str = include_str!("../policies/schema.cedarschema");

/// A policy directory with `n` policies for `n / 5` teams.
fn policy_dir(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.cedarschema"), SCHEMA).unwrap();
    let teams = (n / 5).max(1);
    let mut entities = String::from("[");
    let mut policies = String::new();
    let mut count = 0;
    for t in 0..teams {
        if t > 0 {
            entities.push(',');
        }
        write!(
            entities,
            r#"{{"uid":{{"type":"Palisade::Group","id":"team-{t}"}},"attrs":{{}},"parents":[]}},
               {{"uid":{{"type":"Palisade::User","id":"user-{t}"}},"attrs":{{"team":"t{t}"}},
                 "parents":[{{"type":"Palisade::Group","id":"team-{t}"}}]}}"#
        )
        .unwrap();
        let kinds = [
            format!(
                r#"permit(principal in Palisade::Group::"team-{t}", action in [Palisade::Action::"Write", Palisade::Action::"Describe"], resource is Palisade::Topic) when {{ resource.tags.contains("team-{t}") }};"#
            ),
            format!(
                r#"permit(principal in Palisade::Group::"team-{t}", action == Palisade::Action::"Read", resource is Palisade::Topic) when {{ resource.tags.contains("team-{t}") && context.tls }};"#
            ),
            format!(
                r#"permit(principal in Palisade::Group::"team-{t}", action == Palisade::Action::"Read", resource is Palisade::ConsumerGroup) when {{ resource.name like "team-{t}-*" }};"#
            ),
            format!(
                r#"forbid(principal in Palisade::Group::"team-{t}", action, resource is Palisade::Topic) when {{ resource.tags.contains("classified") && context.authentication != "SCRAM-SHA-512" }};"#
            ),
            format!(
                r#"forbid(principal in Palisade::Group::"team-{t}", action == Palisade::Action::"Write", resource) when {{ context.ip.isInRange(ip("10.{}.0.0/16")) }};"#,
                t % 250
            ),
        ];
        for p in kinds {
            if count < n {
                policies.push_str(&p);
                policies.push('\n');
                count += 1;
            }
        }
    }
    entities.push(']');
    std::fs::write(dir.path().join("entities.json"), entities).unwrap();
    std::fs::write(dir.path().join("teams.cedar"), policies).unwrap();
    dir
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("authorize");
    let tags = vec!["team-0".to_string()];
    let ip: IpAddr = "192.168.1.10".parse().unwrap();
    for n in [10usize, 100, 1000] {
        let dir = policy_dir(n);
        let authorizer = Authorizer::load(dir.path(), Vec::<String>::new()).unwrap();
        let request = Request {
            principal: "user-0",
            action: Action::Write,
            resource: Resource::Topic {
                name: "orders",
                tags: &tags,
            },
            context: RequestContextFacts {
                ip,
                listener: "SASL_SSL",
                tls: true,
                authentication: "SCRAM-SHA-512",
                client_id: "bench",
                time: 1_700_000_000,
            },
        };
        assert!(authorizer.authorize(&request).allowed);
        group.bench_with_input(BenchmarkId::new("cached", n), &n, |b, _| {
            b.iter(|| black_box(authorizer.authorize(black_box(&request))))
        });
        let generation = authorizer.current();
        let cedar = cedar_policy::Authorizer::new();
        group.bench_with_input(BenchmarkId::new("cold", n), &n, |b, _| {
            b.iter(|| black_box(decide(&cedar, &generation, black_box(&request))))
        });
        cold_percentiles(&authorizer, n, &request);
    }
    group.finish();
}

/// p50/p99 of cold decisions over many principals and topics (criterion reports means).
fn cold_percentiles(authorizer: &Authorizer, n: usize, template: &Request<'_>) {
    let generation = authorizer.current();
    let cedar = cedar_policy::Authorizer::new();
    let teams = (n / 5).max(1);
    let principals: Vec<String> = (0..teams).map(|t| format!("user-{t}")).collect();
    let tags: Vec<Vec<String>> = (0..teams).map(|t| vec![format!("team-{t}")]).collect();
    let actions = [Action::Write, Action::Read, Action::Describe];
    let mut samples = Vec::with_capacity(20_000);
    for i in 0..20_000usize {
        let request = Request {
            principal: &principals[i % teams],
            action: actions[i % actions.len()],
            resource: Resource::Topic {
                name: "orders",
                tags: &tags[(i / 3) % teams],
            },
            ..*template
        };
        let started = std::time::Instant::now();
        black_box(decide(&cedar, &generation, &request));
        samples.push(started.elapsed().as_nanos() as f64 / 1000.0);
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    println!(
        "cold decisions, {n} policies, {} principals: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        teams,
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The gateway part of `palisade config check`: connect to the upstream as `serve` would, log
//! in, and say what is there (nodes, API versions, transactions) or exactly why not.

use kafka_protocol::protocol::VersionRange;

use crate::protocol::apis::{APIS, TRANSACTION_APIS};
use crate::upstream::probe::{probe, ProbeReport};
use crate::upstream::{ApiVersionRanges, GatewaySection};

/// Probes the upstream and prints the report; false when it cannot be reached or logged in to.
pub fn check(section: &GatewaySection) -> bool {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: gateway: cannot start the async runtime: {e}");
            return false;
        }
    };
    match runtime.block_on(probe(section)) {
        Ok(report) => print_report(section, &report),
        Err(e) => {
            eprintln!("error: gateway: {e}");
            false
        }
    }
}

fn print_report(section: &GatewaySection, report: &ProbeReport) -> bool {
    let login = match (&section.sasl.mechanism, section.sasl.username.as_str()) {
        (Some(m), user) => format!("logged in as `{user}` with {m}"),
        (None, _) => "no SASL".to_string(),
    };
    println!(
        "upstream: cluster id {}, controller {}, {} node(s), {}, {}",
        report.cluster_id.as_deref().unwrap_or("(none)"),
        report
            .controller_id
            .map_or_else(|| "(none)".to_string(), |c| c.to_string()),
        report.nodes.len(),
        if section.tls.enabled {
            "TLS"
        } else {
            "PLAINTEXT"
        },
        login,
    );
    let mut reachable: Vec<&ApiVersionRanges> = Vec::new();
    for node in &report.nodes {
        let rack = node.node.rack.as_deref().unwrap_or("-");
        match &node.versions {
            Ok(versions) => {
                println!(
                    "  node {} {} rack {rack}: ok",
                    node.node.id,
                    node.node.address()
                );
                reachable.push(versions);
            }
            Err(e) => {
                println!(
                    "  node {} {} rack {rack}: unreachable",
                    node.node.id,
                    node.node.address()
                );
                eprintln!("error: gateway: node {}: {e}", node.node.id);
            }
        }
    }
    if report.mapped_principals > 0 {
        println!(
            "  identity map: {} principal(s) with their own upstream credential",
            report.mapped_principals
        );
    }
    if let Some(first) = reachable.first() {
        println!("upstream API versions (every reachable node; Palisade's own range after it):");
        // The broker's table, then what the gateway serves in front of transactions.
        for api in APIS.iter().chain(TRANSACTION_APIS) {
            let theirs = reachable
                .iter()
                .try_fold(None::<VersionRange>, |acc, v| {
                    let r = v.get(api.key)?;
                    Some(Some(match acc {
                        None => r,
                        Some(a) => VersionRange {
                            min: a.min.max(r.min),
                            max: a.max.min(r.max),
                        },
                    }))
                })
                .flatten();
            let shown = match theirs {
                Some(r) if r.min <= r.max => format!("v{}-v{}", r.min, r.max),
                _ => "not offered".to_string(),
            };
            println!(
                "  {:?}: {shown} (palisade v{}-v{})",
                api.key, api.min, api.max
            );
        }
        let missing = first.missing_for_transactions();
        if missing.is_empty() {
            println!("transactions: supported by the upstream");
        } else {
            let names: Vec<String> = missing.iter().map(|k| format!("{k:?}")).collect();
            println!(
                "transactions: not supported by the upstream (missing {})",
                names.join(", ")
            );
        }
    }
    let ok = report.all_reachable();
    if !ok && report.nodes.is_empty() {
        eprintln!("error: gateway: the upstream's Metadata lists no brokers");
    }
    ok
}

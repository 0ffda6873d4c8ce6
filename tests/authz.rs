//! The Cedar policy engine end to end: real policies on disk, the shipped schema, the watcher,
//! and the `palisade policy` commands of the real binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use palisade::authz::{
    Action, Authorizer, PolicyStore, PolicyWatcher, Request, RequestContextFacts, Resource,
};

const SCHEMA: &str = include_str!("../policies/schema.cedarschema");

const ENTITIES: &str = r#"[
  { "uid": { "type": "Palisade::Group", "id": "team-orders" }, "attrs": {}, "parents": [] },
  { "uid": { "type": "Palisade::User", "id": "alice" }, "attrs": { "team": "orders" },
    "parents": [{ "type": "Palisade::Group", "id": "team-orders" }] }
]"#;

/// A policy directory with the shipped schema, the entities above and `files`.
fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.cedarschema"), SCHEMA).unwrap();
    std::fs::write(dir.path().join("entities.json"), ENTITIES).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn authorizer(files: &[(&str, &str)]) -> (tempfile::TempDir, Authorizer) {
    let dir = dir_with(files);
    let a = Authorizer::load(dir.path(), ["root"]).unwrap_or_else(|d| panic!("{d:?}"));
    (dir, a)
}

struct Ask {
    principal: &'static str,
    action: Action,
    topic: &'static str,
    tags: Vec<String>,
    ip: IpAddr,
    listener: &'static str,
    tls: bool,
    authentication: &'static str,
    client_id: &'static str,
    time: i64,
}

fn ask(principal: &'static str, action: Action, topic: &'static str, tags: &[&str]) -> Ask {
    Ask {
        principal,
        action,
        topic,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ip: "10.0.0.1".parse().unwrap(),
        listener: "SASL_SSL",
        tls: true,
        authentication: "SCRAM-SHA-512",
        client_id: "app",
        time: 1_700_000_000,
    }
}

impl Ask {
    fn request(&self) -> Request<'_> {
        Request {
            principal: self.principal,
            action: self.action,
            resource: Resource::Topic {
                name: self.topic,
                tags: &self.tags,
            },
            context: RequestContextFacts {
                ip: self.ip,
                listener: self.listener,
                tls: self.tls,
                authentication: self.authentication,
                client_id: self.client_id,
                time: self.time,
            },
        }
    }
    fn allowed(&self, a: &Authorizer) -> bool {
        a.authorize(&self.request()).allowed
    }
}

const PERMIT_ALL: &str = "permit(principal, action, resource);";

#[test]
fn default_deny_permit_and_forbid_beats_permit() {
    let (_d, a) = authorizer(&[]);
    assert!(!ask("bob", Action::Read, "t", &[]).allowed(&a));

    let (_d, a) = authorizer(&[("a.cedar", PERMIT_ALL)]);
    let d = a.authorize(&ask("bob", Action::Read, "t", &[]).request());
    assert!(d.allowed);
    assert_eq!(&*d.determining[0].id, "a.cedar:1");
    assert_eq!(d.determining[0].line, 1);

    let (_d, a) = authorizer(&[
        ("a.cedar", PERMIT_ALL),
        (
            "b.cedar",
            "// no reading of secrets\n@id(\"no-secrets\")\nforbid(principal, action, resource is Palisade::Topic) when { resource.name == \"secret\" };",
        ),
    ]);
    assert!(ask("bob", Action::Read, "t", &[]).allowed(&a));
    let d = a.authorize(&ask("bob", Action::Read, "secret", &[]).request());
    assert!(!d.allowed);
    assert_eq!(&*d.determining[0].id, "no-secrets");
    assert_eq!(&*d.determining[0].file, "b.cedar");
    assert_eq!(d.determining[0].line, 2);
}

#[test]
fn a_forbid_whose_condition_errors_denies() {
    // Validates strictly (Long + Long) but overflows at run time for any realistic time.
    // Plain Cedar would skip this erroring forbid and allow.
    let (_d, a) = authorizer(&[
        ("a.cedar", PERMIT_ALL),
        (
            "b.cedar",
            "@id(\"overflowing-forbid\")\nforbid(principal, action, resource) when { context.time + 9223372036854775000 < 0 };",
        ),
    ]);
    let mut q = ask("bob", Action::Read, "t", &[]);
    q.time = 0; // no overflow: the forbid does not apply, the permit allows
    assert!(q.allowed(&a));
    q.time = 1_700_000_000;
    let d = a.authorize(&q.request());
    assert!(!d.allowed, "{d:?}");
    assert_eq!(d.errors.len(), 1, "{d:?}");
    assert!(d.errors[0].contains("overflow"), "{d:?}");
    assert_eq!(&*d.determining[0].id, "overflowing-forbid");
}

#[test]
fn an_error_in_a_permit_denies_even_when_another_permit_allows() {
    let (_d, a) = authorizer(&[(
        "a.cedar",
        "permit(principal, action, resource);\npermit(principal, action, resource) when { context.time * 10000000000 > 0 };",
    )]);
    let mut q = ask("bob", Action::Write, "t", &[]);
    q.time = 1;
    assert!(q.allowed(&a));
    q.time = 1_700_000_000;
    let d = a.authorize(&q.request());
    assert!(!d.allowed);
    assert_eq!(&*d.determining[0].id, "a.cedar:2");
}

#[test]
fn duplicate_ids_across_files_are_refused() {
    let dir = dir_with(&[
        ("a.cedar", "@id(\"x\") permit(principal, action, resource);"),
        (
            "b.cedar",
            "\n@id(\"x\") forbid(principal, action, resource);",
        ),
    ]);
    let errors = PolicyStore::load(dir.path()).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].file, "b.cedar");
    assert_eq!(errors[0].line, 2);
    assert!(errors[0].message.contains("duplicate policy id `x`"));
}

#[test]
fn a_misspelled_attribute_is_located_with_cedar_help() {
    let dir = dir_with(&[(
        "teams.cedar",
        "permit(principal, action, resource is Palisade::Topic)\n  when { resource.tag.contains(\"orders\") };\n",
    )]);
    let errors = PolicyStore::load(dir.path()).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert_eq!(e.file, "teams.cedar");
    assert_eq!((e.line, e.column), (2, 10), "{e}");
    assert!(e.message.contains("tag"), "{e}");
    assert!(e.help.as_deref().unwrap_or("").contains("tags"), "{e}");
    assert!(e.to_string().starts_with("teams.cedar:2:10: error:"), "{e}");
}

#[test]
fn groups_come_from_entities_and_tags_from_the_resource() {
    let (_d, a) = authorizer(&[(
        "teams.cedar",
        "permit(principal in Palisade::Group::\"team-orders\", action == Palisade::Action::\"Write\", resource is Palisade::Topic) when { resource.tags.contains(\"orders\") && principal has team && principal.team == \"orders\" };",
    )]);
    assert!(ask("alice", Action::Write, "o", &["orders"]).allowed(&a));
    assert!(!ask("alice", Action::Write, "o", &["payments"]).allowed(&a));
    assert!(!ask("bob", Action::Write, "o", &["orders"]).allowed(&a));
    assert!(!ask("alice", Action::Read, "o", &["orders"]).allowed(&a));
}

#[test]
fn context_rules_ip_range_tls_and_authentication() {
    let (_d, a) = authorizer(&[(
        "ctx.cedar",
        "permit(principal, action, resource) when { context.ip.isInRange(ip(\"127.0.0.0/8\")) };\n\
         permit(principal, action, resource) when { context.tls && context.authentication == \"mtls\" };",
    )]);
    let mut q = ask("bob", Action::Read, "t", &[]);
    q.ip = "127.3.4.5".parse().unwrap();
    q.tls = false;
    assert!(q.allowed(&a));
    q.ip = "10.0.0.1".parse().unwrap();
    assert!(!q.allowed(&a));
    q.tls = true;
    assert!(!q.allowed(&a), "SCRAM-SHA-512 is not mtls");
    q.authentication = "mtls";
    assert!(q.allowed(&a));
    q.tls = false;
    assert!(!q.allowed(&a));
}

#[test]
fn super_users_bypass_policy() {
    let (_d, a) = authorizer(&[("f.cedar", "forbid(principal, action, resource);")]);
    let d = a.authorize(&ask("root", Action::Delete, "t", &[]).request());
    assert!(d.allowed && d.super_user);
    assert!(!ask("bob", Action::Delete, "t", &[]).allowed(&a));
}

#[test]
fn actions_apply_only_to_their_resource_types() {
    let (_d, a) = authorizer(&[("a.cedar", PERMIT_ALL)]);
    let base = ask("bob", Action::Read, "t", &[]);
    let req = Request {
        principal: "bob",
        action: Action::IdempotentWrite,
        resource: Resource::Group("g"),
        context: base.request().context,
    };
    let d = a.authorize(&req);
    assert!(!d.allowed);
    assert!(d.errors[0].contains("does not apply"), "{d:?}");
}

#[test]
fn cached_decisions_match_and_time_dependent_ones_are_not_cached() {
    let (_d, a) = authorizer(&[(
        "a.cedar",
        "permit(principal, action == Palisade::Action::\"Read\", resource);\n\
         permit(principal, action == Palisade::Action::\"Write\", resource) when { context.time > 0 };",
    )]);
    let q = ask("bob", Action::Read, "t", &[]);
    let first = a.authorize(&q.request());
    let second = a.authorize(&q.request());
    assert!(!first.cached && second.cached);
    assert_eq!(
        (first.allowed, &first.determining, first.generation),
        (second.allowed, &second.determining, second.generation)
    );
    // Another listener is another key.
    let mut other = ask("bob", Action::Read, "t", &[]);
    other.listener = "SSL";
    assert!(!a.authorize(&other.request()).cached);
    // context.time: never cached.
    let w = ask("bob", Action::Write, "t", &[]);
    a.authorize(&w.request());
    assert!(!a.authorize(&w.request()).cached);
}

#[test]
fn the_watcher_flips_a_cached_decision_and_a_broken_file_keeps_the_old_generation() {
    let dir = dir_with(&[("a.cedar", PERMIT_ALL)]);
    let a = Arc::new(Authorizer::load(dir.path(), Vec::<String>::new()).unwrap());
    let _watcher = PolicyWatcher::start(Arc::clone(&a)).unwrap();
    let q = ask("bob", Action::Read, "t", &[]);
    assert!(q.allowed(&a));
    assert!(a.authorize(&q.request()).cached);
    let in_flight = a.current();
    let g1 = a.generation();

    // Truncate + write in place.
    std::fs::write(
        dir.path().join("a.cedar"),
        "forbid(principal, action, resource);",
    )
    .unwrap();
    assert!(
        common::wait_until(Duration::from_secs(10), || !q.allowed(&a)).is_some(),
        "the edit was never served"
    );
    let g2 = a.generation();
    assert!(g2 > g1);
    assert_eq!(
        in_flight.number(),
        g1,
        "in-flight requests keep their generation"
    );

    // A broken file: the last good generation stays, the error is located.
    std::fs::write(
        dir.path().join("b.cedar"),
        "permit(principal, action, resource)\n  when { resource.nope };",
    )
    .unwrap();
    assert!(common::wait_until(Duration::from_secs(10), || a.last_error().is_some()).is_some());
    assert_eq!(a.generation(), g2);
    let errors = a.last_error().unwrap();
    assert_eq!(errors[0].file, "b.cedar");
    assert_eq!(errors[0].line, 2);
    assert!(!q.allowed(&a));

    // Rename into place fixes it.
    let tmp = dir.path().join(".b.cedar.tmp");
    std::fs::write(&tmp, "permit(principal, action, resource);").unwrap();
    std::fs::rename(&tmp, dir.path().join("b.cedar")).unwrap();
    assert!(common::wait_until(Duration::from_secs(10), || a.last_error().is_none()).is_some());
    assert!(a.generation() > g2);
    assert!(!q.allowed(&a), "the forbid in a.cedar still wins");
}

fn palisade(args: &[&str], cwd: &Path) -> (bool, String) {
    let (code, text) = palisade_code(args, cwd);
    (code == Some(0), text)
}

fn palisade_code(args: &[&str], cwd: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn cli_check_test_and_explain() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (ok, out) = palisade(&["policy", "check"], root);
    assert!(ok, "{out}");
    assert!(out.contains("policies,") && out.contains("files"), "{out}");

    let (ok, out) = palisade(&["policy", "test", "policies/tests/shipped.toml"], root);
    assert!(ok, "{out}");
    assert!(out.contains("0 failed"), "{out}");

    let (code, out) = palisade_code(
        &[
            "policy",
            "explain",
            "--principal",
            "alice",
            "--action",
            "Read",
            "--topic",
            "orders.pii",
            "--tags",
            "orders,classified",
            "--ip",
            "10.0.0.1",
            "--listener",
            "SASL_SSL",
            "--tls",
            "--mechanism",
            "SCRAM-SHA-256",
        ],
        root,
    );
    assert_eq!(code, Some(3), "a denial exits 3: {out}");
    assert!(out.starts_with("DENY"), "{out}");
    assert!(out.contains("40-classified.cedar:4"), "{out}");
    assert!(
        !out.contains("(default)"),
        "every context value was given: {out}"
    );

    // A broken directory: exit 1 with file:line:col.
    let bad = dir_with(&[(
        "x.cedar",
        "permit(principal, action, resource)\n when { resource.nope };",
    )]);
    let (ok, out) = palisade(&["policy", "check", bad.path().to_str().unwrap()], root);
    assert!(!ok);
    assert!(out.contains("x.cedar:2:"), "{out}");

    // A failing scenario: exit non-zero.
    let scen = bad.path().join("s.toml");
    std::fs::write(
        &scen,
        "[[scenario]]\nname = \"wrong\"\nprincipal = \"alice\"\naction = \"Write\"\ntopic = \"t\"\nip = \"10.0.0.1\"\nexpect = \"allow\"\n",
    )
    .unwrap();
    let (ok, out) = palisade(&["policy", "test", scen.to_str().unwrap()], root);
    assert!(!ok);
    assert!(out.contains("FAIL"), "{out}");
}

/// `policy explain` says which connection it assumed (the defaults are the dev loopback
/// client, which the shipped policies allow everything) and answers in its exit code.
#[test]
fn explain_prints_the_assumed_context_and_exits_by_decision() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ask = [
        "policy",
        "explain",
        "--principal",
        "bob",
        "--action",
        "Write",
        "--topic",
        "t",
    ];
    // Defaults: allowed by the dev loopback rule, and the output says why that context.
    let (code, out) = palisade_code(&ask, root);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with("ALLOW") && out.contains("dev-loopback"),
        "{out}"
    );
    for line in [
        "listener   PLAINTEXT  (default)",
        "ip         127.0.0.1  (default)",
        "tls        false  (default)",
        "mechanism  anonymous  (default)",
    ] {
        assert!(out.contains(line), "missing `{line}` in {out}");
    }
    assert!(out.contains("note: values marked (default)"), "{out}");
    // The same question from a real client's connection: denied, exit 3, no note.
    let mut real = ask.to_vec();
    real.extend([
        "--listener",
        "SASL_SSL",
        "--ip",
        "10.0.0.7",
        "--tls",
        "--mechanism",
        "SCRAM-SHA-512",
    ]);
    let (code, out) = palisade_code(&real, root);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.starts_with("DENY"), "{out}");
    assert!(out.contains("listener   SASL_SSL\n"), "{out}");
    assert!(out.contains("ip         10.0.0.7\n"), "{out}");
    assert!(
        !out.contains("(default)") && !out.contains("note:"),
        "{out}"
    );
    // An error is neither: exit 1.
    let (code, out) = palisade_code(
        &[
            "policy",
            "explain",
            "--principal",
            "bob",
            "--action",
            "Fly",
            "--topic",
            "t",
        ],
        root,
    );
    assert_eq!(code, Some(1), "{out}");
}

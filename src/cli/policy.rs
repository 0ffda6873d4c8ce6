//! `palisade policy`: check a policy directory, run scenario tests, explain one decision.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::Deserialize;

use crate::authz::request::unix_now;
use crate::authz::{
    Action, Authorizer, Decision, PolicyStore, Request, RequestContextFacts, Resource,
};
use crate::storage::parse_tags;

use super::CliError;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Load and strictly validate a policy directory; print every diagnostic.
    Check {
        /// The policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Run scenario files (TOML `[[scenario]]` tables) against a policy directory.
    Test {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The policy directory.
        #[arg(long, default_value = "policies")]
        dir: PathBuf,
    },
    /// Decide one request and show the policies that determined it.
    Explain(Box<ExplainArgs>),
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[arg(long)]
    pub principal: String,
    /// Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs,
    /// AlterConfigs, IdempotentWrite or Decrypt.
    #[arg(long)]
    pub action: String,
    #[arg(long, group = "resource", required = true)]
    pub topic: Option<String>,
    /// The topic's tags, comma separated (its `palisade.tags` config).
    #[arg(long, default_value = "")]
    pub tags: String,
    #[arg(long, group = "resource")]
    pub group: Option<String>,
    #[arg(long, group = "resource")]
    pub transactional_id: Option<String>,
    #[arg(long, group = "resource")]
    pub cluster: bool,
    /// The client's address [default: 127.0.0.1].
    #[arg(long)]
    pub ip: Option<IpAddr>,
    /// The listener the request arrives on [default: PLAINTEXT].
    #[arg(long)]
    pub listener: Option<String>,
    #[arg(long)]
    pub tls: bool,
    /// PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, mtls or anonymous [default: anonymous].
    #[arg(long)]
    pub mechanism: Option<String>,
    #[arg(long, default_value = "")]
    pub client_id: String,
    #[arg(long, default_value = "policies")]
    pub dir: PathBuf,
}

/// One `[[scenario]]` of a test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub principal: String,
    pub action: String,
    pub topic: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub group: Option<String>,
    pub transactional_id: Option<String>,
    #[serde(default)]
    pub cluster: bool,
    #[serde(default = "default_ip")]
    pub ip: IpAddr,
    #[serde(default = "default_listener")]
    pub listener: String,
    #[serde(default)]
    pub tls: bool,
    #[serde(default = "default_authentication")]
    pub authentication: String,
    #[serde(default)]
    pub client_id: String,
    pub time: Option<i64>,
    pub expect: Expect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Allow,
    Deny,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    #[serde(default)]
    scenario: Vec<Scenario>,
}

fn default_ip() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}
fn default_listener() -> String {
    "PLAINTEXT".into()
}
fn default_authentication() -> String {
    "anonymous".into()
}

pub fn run(command: PolicyCommand) -> Result<ExitCode, CliError> {
    match command {
        PolicyCommand::Check { dir } => Ok(check(&dir)),
        PolicyCommand::Test { files, dir } => test(&files, &dir),
        PolicyCommand::Explain(args) => explain(&args),
    }
}

fn load(dir: &Path) -> Option<Authorizer> {
    match Authorizer::load(dir, Vec::<String>::new()) {
        Ok(a) => Some(a),
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{}/{d}", dir.display());
            }
            eprintln!("{} error(s) in `{}`", diagnostics.len(), dir.display());
            None
        }
    }
}

fn check(dir: &Path) -> ExitCode {
    match PolicyStore::load(dir) {
        Ok(generation) => {
            println!(
                "ok: {} policies, {} files in `{}`",
                generation.policy_count(),
                generation.file_count(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(_) => {
            load(dir);
            ExitCode::FAILURE
        }
    }
}

fn resource<'a>(
    topic: Option<&'a str>,
    tags: &'a [String],
    group: Option<&'a str>,
    transactional_id: Option<&'a str>,
    cluster: bool,
) -> Result<Resource<'a>, String> {
    match (topic, group, transactional_id, cluster) {
        (Some(name), None, None, false) => Ok(Resource::Topic { name, tags }),
        (None, Some(name), None, false) => Ok(Resource::Group(name)),
        (None, None, Some(name), false) => Ok(Resource::TransactionalId(name)),
        (None, None, None, true) => Ok(Resource::Cluster),
        _ => Err(
            "exactly one of `topic`, `group`, `transactional_id` or `cluster` is required".into(),
        ),
    }
}

fn run_scenario(authorizer: &Authorizer, s: &Scenario) -> Result<Decision, String> {
    let action: Action = s.action.parse().map_err(|e| format!("{e}"))?;
    let resource = resource(
        s.topic.as_deref(),
        &s.tags,
        s.group.as_deref(),
        s.transactional_id.as_deref(),
        s.cluster,
    )?;
    Ok(authorizer.authorize(&Request {
        principal: &s.principal,
        action,
        resource,
        context: RequestContextFacts {
            ip: s.ip,
            listener: &s.listener,
            tls: s.tls,
            authentication: &s.authentication,
            client_id: &s.client_id,
            time: s.time.unwrap_or_else(unix_now),
        },
    }))
}

fn test(files: &[PathBuf], dir: &Path) -> Result<ExitCode, CliError> {
    let Some(authorizer) = load(dir) else {
        return Ok(ExitCode::FAILURE);
    };
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in files {
        let text = std::fs::read_to_string(file)?;
        let parsed: ScenarioFile = toml::from_str(&text)
            .map_err(|e| CliError::Policy(format!("`{}`: {e}", file.display())))?;
        for s in &parsed.scenario {
            match run_scenario(&authorizer, s) {
                Ok(decision) => {
                    let got = if decision.allowed {
                        Expect::Allow
                    } else {
                        Expect::Deny
                    };
                    if got == s.expect {
                        passed += 1;
                        println!("pass {}: {}", file.display(), s.name);
                    } else {
                        failed += 1;
                        println!(
                            "FAIL {}: {}: expected {:?}, got {:?}{}",
                            file.display(),
                            s.name,
                            s.expect,
                            got,
                            reasons(&decision)
                        );
                    }
                }
                Err(e) => {
                    failed += 1;
                    println!("FAIL {}: {}: {e}", file.display(), s.name);
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn reasons(d: &Decision) -> String {
    let mut out = String::new();
    for p in &d.determining {
        out.push_str(&format!(" [{p}]"));
    }
    for e in &d.errors {
        out.push_str(&format!(" [error: {e}]"));
    }
    out
}

/// `policy explain`'s exit code for a denied request (0 is allowed; 1 is an error such as a
/// policy folder that does not validate; 2 is clap's usage error).
pub const EXPLAIN_DENY_EXIT: u8 = 3;

fn explain(args: &ExplainArgs) -> Result<ExitCode, CliError> {
    let Some(authorizer) = load(&args.dir) else {
        return Ok(ExitCode::FAILURE);
    };
    let action: Action = args
        .action
        .parse()
        .map_err(|e| CliError::Policy(format!("{e}")))?;
    let tags = parse_tags(&args.tags);
    let resource = resource(
        args.topic.as_deref(),
        &tags,
        args.group.as_deref(),
        args.transactional_id.as_deref(),
        args.cluster,
    )
    .map_err(CliError::Policy)?;
    let ip = args.ip.unwrap_or_else(default_ip);
    let listener = args.listener.clone().unwrap_or_else(default_listener);
    let mechanism = args
        .mechanism
        .clone()
        .unwrap_or_else(default_authentication);
    let decision = authorizer.authorize(&Request {
        principal: &args.principal,
        action,
        resource,
        context: RequestContextFacts {
            ip,
            listener: &listener,
            tls: args.tls,
            authentication: &mechanism,
            client_id: &args.client_id,
            time: unix_now(),
        },
    });
    println!("{}", if decision.allowed { "ALLOW" } else { "DENY" });
    if decision.determining.is_empty() && decision.errors.is_empty() {
        println!("  no policy applies (default deny)");
    }
    for p in &decision.determining {
        println!("  {}:{}  {}", p.file, p.line, p.id);
    }
    for e in &decision.errors {
        println!("  error: {e}");
    }
    // Policies decide on the connection as much as on the principal: say which one was
    // assumed, and which values were not given.
    let given = |yes: bool| if yes { "" } else { "  (default)" };
    println!("context assumed:");
    println!("  listener   {listener}{}", given(args.listener.is_some()));
    println!("  ip         {ip}{}", given(args.ip.is_some()));
    println!("  tls        {}{}", args.tls, given(args.tls));
    println!(
        "  mechanism  {mechanism}{}",
        given(args.mechanism.is_some())
    );
    println!("  client_id  {:?}", args.client_id);
    let defaulted = args.listener.is_none() || args.ip.is_none() || args.mechanism.is_none();
    if defaulted {
        println!(
            "note: values marked (default) were not given; together the defaults describe an \
             anonymous local client on the development PLAINTEXT listener, which the shipped \
             `dev-loopback` policy allows entirely. Pass --listener, --ip, --tls and --mechanism \
             to ask about the connection a real client uses."
        );
    }
    Ok(if decision.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXPLAIN_DENY_EXIT)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_tags_are_comma_separated_and_trimmed() {
        assert_eq!(
            parse_tags(" orders, classified ,,"),
            vec!["orders", "classified"]
        );
        assert!(parse_tags("").is_empty());
    }
}

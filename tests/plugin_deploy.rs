//! From an empty folder to a plugin serving in a running broker with the documented commands,
//! run verbatim: the main README's plugin quick start, then the commands of the README that
//! `palisade plugin new` writes, with the real binary on PATH; then a real broker on the plugin
//! folder they filled refuses what the plugin refuses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::Raw;
use kafka_protocol::messages::{ApiKey, ProduceResponse};
use kafka_protocol::records::Compression;

/// The lines of every ```sh block of `markdown` (comments removed) whose block contains
/// `marker`.
fn sh_blocks(markdown: &str, marker: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), text) => {
                let command = text.split(" #").next().unwrap().trim();
                if !command.is_empty() && !command.starts_with('#') {
                    block.push(command.to_string());
                }
            }
            (None, _) => {}
        }
    }
    blocks
        .into_iter()
        .filter(|b| b.iter().any(|l| l.contains(marker)))
        .collect()
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `sh -c line` in `dir` with the test's `palisade` first on PATH and this test run's cargo
/// settings removed (the commands build their own crate).
fn sh(dir: &Path, line: &str) -> Output {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_palisade")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("sh")
        .args(["-c", line])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap()
}

/// Runs `lines` as a user would type them from `dir` (`cd` moves the next commands); the
/// folder they end in.
fn run_verbatim(dir: &Path, lines: &[String]) -> PathBuf {
    let mut cwd = dir.to_path_buf();
    for line in lines {
        if let Some(to) = line.strip_prefix("cd ") {
            cwd = cwd.join(to.trim());
            assert!(cwd.is_dir(), "`{line}`: no folder {}", cwd.display());
            continue;
        }
        let out = sh(&cwd, line);
        assert!(
            out.status.success(),
            "`{line}` failed in {}:\n{}",
            cwd.display(),
            output_text(&out)
        );
    }
    cwd
}

/// The broker process; killed when dropped.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `palisade serve` with its plugin folder at `plugins`; its PLAINTEXT address.
fn serve(dir: &Path, plugins: &Path) -> (Broker, std::net::SocketAddr, PathBuf) {
    let plugins_line = format!("dir = {:?}", plugins.display().to_string());
    let config = common::plaintext_config_text(
        &dir.join("data"),
        &[
            ("dir = \"plugins\"", &plugins_line),
            ("level = \"warn\"", "level = \"info\""),
        ],
    );
    let config_path = dir.join("palisade.toml");
    std::fs::write(&config_path, config).unwrap();
    let log = dir.join("broker.log");
    let child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["serve", "--config"])
        .arg(&config_path)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let broker = Broker(child);
    let read_log = || String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    let addr = common::wait_for(Duration::from_secs(60), || {
        let text = read_log();
        let line = text
            .lines()
            .find(|l| l.contains("listening") && l.contains("PLAINTEXT"))?;
        let start = line.find("127.0.0.1:")?;
        let rest = &line[start..];
        let end = rest
            .find(|c: char| c != '.' && c != ':' && !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    })
    .unwrap_or_else(|| panic!("the broker did not start:\n{}", read_log()));
    (broker, addr, log)
}

/// Produces one record of `value` to `topic`; the partition's error code and message.
async fn produce(raw: &mut Raw, topic: &str, value: &[u8]) -> (i16, Option<String>) {
    let request = common::produce_request(
        topic,
        0,
        1,
        common::batch(&[value], Compression::None, None),
    );
    let resp: ProduceResponse = raw.request(ApiKey::Produce, 9, &request).await;
    let p = &resp.responses[0].partition_responses[0];
    (
        p.error_code,
        p.error_message.as_ref().map(|m| m.to_string()),
    )
}

#[test]
fn the_documented_commands_take_a_new_plugin_to_a_running_broker_and_check_explains_itself() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();

    // The main README's quick start, from an empty folder: at most five commands.
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let quick = sh_blocks(&readme, "palisade plugin new my-filter");
    assert_eq!(quick.len(), 1, "one quick start in README.md: {quick:?}");
    let quick = &quick[0];
    assert!(quick.len() <= 5, "{} commands: {quick:?}", quick.len());
    let crate_dir = run_verbatim(root, quick);
    assert_eq!(crate_dir, root.join("my-filter"));
    let plugins = root.join("plugins");
    assert!(plugins.join("my-filter.wasm").is_file() && plugins.join("my-filter.toml").is_file());

    // The scaffold's own README, verbatim, in the crate it describes.
    let scaffold = std::fs::read_to_string(crate_dir.join("README.md")).unwrap();
    let commands = sh_blocks(&scaffold, "palisade plugin deploy");
    assert_eq!(commands.len(), 1, "{scaffold}");
    run_verbatim(&crate_dir, &commands[0]);
    let mut names: Vec<String> = std::fs::read_dir(&plugins)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["my-filter.toml", "my-filter.wasm"],
        "no temp files left"
    );
    assert_eq!(
        std::fs::read(plugins.join("my-filter.toml")).unwrap(),
        std::fs::read(crate_dir.join("my-filter.toml")).unwrap()
    );

    check_without_a_manifest_checks_the_contract_and_deploy_installs_only_what_passes(
        &crate_dir.join("target/wasm32-wasip2/release/my_filter.wasm"),
    );

    // A broker on that folder runs the plugin: it refuses an empty value with the plugin's
    // reason and accepts a non-empty one.
    let (_broker, addr, log) = serve(root, &plugins);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut raw = Raw::connect(addr).await;
            common::create_topic(&mut raw, "my-filter-orders", 1, &[]).await;
            // Polled with a deadline: the broker may still be loading the plugin.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            let (code, message) = loop {
                let (code, message) = produce(&mut raw, "my-filter-orders", b"").await;
                if code != 0 || std::time::Instant::now() >= deadline {
                    break (code, message);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let log = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
            assert_eq!(code, 87, "INVALID_RECORD expected: {message:?}\n{log}");
            assert!(
                message.as_deref().unwrap_or("").contains("value is empty"),
                "{message:?}"
            );
            assert_eq!(produce(&mut raw, "my-filter-orders", b"ok").await.0, 0);
            // Topics outside the manifest's are not filtered.
            common::create_topic(&mut raw, "other", 1, &[]).await;
            assert_eq!(produce(&mut raw, "other", b"").await.0, 0);
        });
}

/// Without a manifest, `plugin check` checks the component's contract and says that `init` was
/// not run and why; `plugin deploy` refuses, and a pair that fails its check is not installed.
/// (Called with the scaffold's component, so that one build serves both tests.)
fn check_without_a_manifest_checks_the_contract_and_deploy_installs_only_what_passes(wasm: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let lone = root.join("lone");
    std::fs::create_dir_all(&lone).unwrap();
    std::fs::copy(wasm, lone.join("my_plugin.wasm")).unwrap();

    let out = sh(root, "palisade plugin check lone/my_plugin.wasm");
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("contract ok") && text.contains("contract 0.2."),
        "{text}"
    );
    assert!(
        text.contains("init not run")
            && text.contains("no manifest")
            && text.contains("lone/my_plugin.toml"),
        "{text}"
    );
    // The contract is still checked: a file that is not a component fails.
    std::fs::write(lone.join("junk.wasm"), b"\0asm junk").unwrap();
    let out = sh(root, "palisade plugin check lone/junk.wasm");
    assert!(!out.status.success(), "{}", output_text(&out));

    let out = sh(
        root,
        "palisade plugin deploy lone/my_plugin.wasm --dir plugins",
    );
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("no manifest"),
        "{}",
        output_text(&out)
    );
    assert!(!root.join("plugins").exists());

    // A manifest whose config `init` refuses: nothing is installed.
    std::fs::write(
        root.join("bad.toml"),
        "topics = [\"t\"]\nhooks = [\"produce\"]\n[config]\nmax_bytes = \"big\"\n",
    )
    .unwrap();
    let out = sh(
        root,
        "palisade plugin deploy lone/my_plugin.wasm --manifest bad.toml --dir plugins",
    );
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("not deployed"),
        "{}",
        output_text(&out)
    );
    assert!(!root.join("plugins/bad.wasm").exists() && !root.join("plugins/bad.toml").exists());

    // With a good manifest it is installed under the manifest's name.
    std::fs::write(
        root.join("limit.toml"),
        "topics = [\"t\"]\nhooks = [\"produce\"]\n[config]\nmax_bytes = 10\n",
    )
    .unwrap();
    let out = sh(
        root,
        "palisade plugin deploy lone/my_plugin.wasm --manifest limit.toml --dir plugins",
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(
        std::fs::read(root.join("plugins/limit.wasm")).unwrap(),
        std::fs::read(wasm).unwrap()
    );
    assert!(root.join("plugins/limit.toml").is_file());
}

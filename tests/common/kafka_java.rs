//! Kafka's own Java programs, run from the jars `.ci/kafka/fetch.sh` cached: the command-line
//! tools (the main classes behind `kafka-topics.sh`, `kafka-acls.sh`, ...) and
//! `tests/java/PalisadeClient.java`, a producer and consumer on `kafka-clients`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::kafka_cluster::{kafka_classpath, require_kafka_libs};

/// `kafka-topics.sh`
pub const TOPICS: &str = "org.apache.kafka.tools.TopicCommand";
/// `kafka-acls.sh`
pub const ACLS: &str = "org.apache.kafka.tools.AclCommand";
/// `kafka-configs.sh`
pub const CONFIGS: &str = "org.apache.kafka.tools.ConfigCommand";
/// `kafka-consumer-groups.sh`
pub const CONSUMER_GROUPS: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
/// `kafka-reassign-partitions.sh`
pub const REASSIGN_PARTITIONS: &str = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand";
/// `tests/java/PalisadeClient.java`
pub const PALISADE_CLIENT: &str = "PalisadeClient";

/// What a Java program printed and how it exited.
#[derive(Debug)]
pub struct JavaRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl JavaRun {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Both streams: the tools print errors on either.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `main` with `args` on Kafka's classpath (plus the compiled test client). Short-lived
/// JVMs: a small heap, the C1 compiler only and the serial collector start fastest on two cores.
pub fn run_java(main: &str, args: &[&str]) -> JavaRun {
    let classpath = format!("{}:{}", kafka_classpath(), client_classes().display());
    let logging = format!(
        "-Dlog4j2.configurationFile={}",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/java/log4j2.properties")
            .display()
    );
    let out = Command::new("java")
        .args([
            "-Xmx256m",
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            &logging,
            "-cp",
            &classpath,
            main,
        ])
        .args(args)
        .output()
        .expect("run java (Java 17 is needed; .ci/run checks for it)");
    JavaRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `tests/java/PalisadeClient.java` compiled once per test binary into
/// `target/tmp/java-classes/<binary>`.
pub fn client_classes() -> &'static Path {
    static CLASSES: OnceLock<PathBuf> = OnceLock::new();
    CLASSES.get_or_init(|| {
        let libs = require_kafka_libs();
        let binary = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "tests".into());
        let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("java-classes")
            .join(binary);
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/PalisadeClient.java");
        let compiled = Command::new("javac")
            .arg("-cp")
            .arg(format!("{}/*", libs.display()))
            .arg("-d")
            .arg(&out)
            .arg(&source)
            .output()
            .expect("run javac (a JDK 17 is needed)");
        assert!(
            compiled.status.success(),
            "javac {}: {}",
            source.display(),
            String::from_utf8_lossy(&compiled.stderr)
        );
        out
    })
}

/// Writes a Java client properties file (`--command-config` of the tools, the first argument
/// of PalisadeClient).
pub fn write_properties(path: &Path, entries: &[(&str, String)]) -> PathBuf {
    let text: String = entries
        .iter()
        .map(|(k, v)| format!("{k}={}\n", v.replace('\\', "\\\\")))
        .collect();
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// Client settings for SASL_SSL with SCRAM-SHA-512 as `user`, trusting the PEM CA `ca`.
pub fn scram_properties(
    bootstrap: &str,
    user: &str,
    password: &str,
    ca: &Path,
) -> Vec<(&'static str, String)> {
    vec![
        ("bootstrap.servers", bootstrap.to_string()),
        ("security.protocol", "SASL_SSL".into()),
        ("sasl.mechanism", "SCRAM-SHA-512".into()),
        (
            "sasl.jaas.config",
            format!(
                "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{user}\" password=\"{password}\";"
            ),
        ),
        ("ssl.truststore.type", "PEM".into()),
        ("ssl.truststore.location", ca.display().to_string()),
    ]
}

/// Client settings for SSL with a client certificate: `keystore` holds the PKCS#8 key followed
/// by the certificate (see [`write_pem_keystore`]).
pub fn mtls_properties(bootstrap: &str, keystore: &Path, ca: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("bootstrap.servers", bootstrap.to_string()),
        ("security.protocol", "SSL".into()),
        ("ssl.truststore.type", "PEM".into()),
        ("ssl.truststore.location", ca.display().to_string()),
        ("ssl.keystore.type", "PEM".into()),
        ("ssl.keystore.location", keystore.display().to_string()),
    ]
}

/// A PEM key store for the Java client: the key, then the certificate chain.
pub fn write_pem_keystore(path: &Path, key: &Path, cert: &Path) -> PathBuf {
    let text = format!(
        "{}{}",
        std::fs::read_to_string(key).unwrap(),
        std::fs::read_to_string(cert).unwrap()
    );
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

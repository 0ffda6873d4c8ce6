#!/usr/bin/env python3
"""Interop run: the real `palisade` binary driven by stock Kafka clients.

kcat (Debian's librdkafka 2.0), confluent-kafka (bundled librdkafka 2.16) and kafka-python
(a pure-Python client). Each check asserts on what the client received. Prints
"N passed, M failed" and exits non-zero on any failure.
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import uuid

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PASSWORDS = {"admin": "admin-secret", "alice": "alice-secret", "dave": "dave-secret-1",
             "audrey": "audrey-secret"}

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# The shipped policies plus: alice (the SASL/mTLS test user) may use every topic and consumer
# group; dave gets nothing but what Kafka ACLs grant him.
INTEROP_POLICY = """
@id("interop-alice-topics")
permit(principal == Palisade::User::"alice", action, resource is Palisade::Topic);
@id("interop-alice-groups")
permit(principal == Palisade::User::"alice", action, resource is Palisade::ConsumerGroup);
@id("interop-alice-idempotent")
permit(principal == Palisade::User::"alice", action == Palisade::Action::"IdempotentWrite",
       resource == Palisade::Cluster::"kafka-cluster");
"""


# The json-schema example plugin (built by .ci/run before this script) guards `validated-*`.
SCHEMA_MANIFEST = """
topics = ["validated-*"]
hooks = ["produce"]
[config.schema]
type = "object"
required = ["id"]
properties = { id = { type = "integer" } }
"""


# 200 KB/s of produce for the client id of the quota check only.
QUOTA_CLIENT = "interop-throttled"
QUOTA_OVERRIDE = f"""[[quotas.overrides]]
client_id = "{QUOTA_CLIENT}"
producer_byte_rate = 200000
"""


class Broker:
    """The dev default config with every listener on a free port, state under `workdir`."""

    def __init__(self, binary, workdir):
        self.workdir = workdir
        self.port, self.sasl_port, self.ssl_port = free_port(), free_port(), free_port()
        self.metrics_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.sasl_bootstrap = f"127.0.0.1:{self.sasl_port}"
        self.ssl_bootstrap = f"127.0.0.1:{self.ssl_port}"
        self.certs = os.path.join(workdir, "certs")
        subprocess.run([binary, "certs", "dev", "--dir", self.certs, "--client", "alice"],
                       check=True, capture_output=True)
        self.credentials = os.path.join(workdir, "credentials.json")
        for user, password in PASSWORDS.items():
            subprocess.run([binary, "user", "add", user, "--password-stdin", "--store", self.credentials],
                           input=password + "\n", text=True, check=True, capture_output=True)
        self.policies = os.path.join(workdir, "policies")
        shutil.copytree(os.path.join(REPO, "policies"), self.policies)
        with open(os.path.join(self.policies, "90-interop.cedar"), "w") as f:
            f.write(INTEROP_POLICY)
        self.plugins = os.path.join(workdir, "plugins")
        os.makedirs(self.plugins)
        shutil.copy(os.path.join(REPO, "plugins/target/wasm32-wasip2/release/json_schema.wasm"),
                    os.path.join(self.plugins, "json-schema.wasm"))
        with open(os.path.join(self.plugins, "json-schema.toml"), "w") as f:
            f.write(SCHEMA_MANIFEST)
        default = subprocess.run([binary, "config", "print-default"], check=True,
                                 capture_output=True, text=True).stdout
        config = default
        for old, new in [("9092", self.port), ("9093", self.sasl_port), ("9094", self.ssl_port),
                         ("9644", self.metrics_port)]:
            config = config.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
        config = (config.replace('data_dir = "./data"', f'data_dir = "{workdir}/data"')
                  .replace('"./certs/', f'"{self.certs}/')
                  .replace('credentials = "./credentials.json"', f'credentials = "{self.credentials}"')
                  .replace('policy_dir = "./policies"', f'policy_dir = "{self.policies}"')
                  .replace('dir = "plugins"', f'dir = "{self.plugins}"')
                  # Refused logins are delayed (doubling per failure from one address); keep the
                  # refusal checks quick without switching the delay off.
                  .replace("failed_login_delay_ms = 500", "failed_login_delay_ms = 50")
                  # One client id under a produce quota (the quota check below); nobody else.
                  .replace("max_throttle_ms = 10000\n", "max_throttle_ms = 10000\n"
                           + QUOTA_OVERRIDE))
        path = os.path.join(workdir, "palisade.toml")
        with open(path, "w") as f:
            f.write(config)
        self.log = open(os.path.join(workdir, "broker.log"), "w")
        self.proc = subprocess.Popen([binary, "serve", "--config", path],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                for port in (self.port, self.sasl_port, self.ssl_port):
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("broker exited at start")
                time.sleep(0.1)
        raise RuntimeError("broker did not start listening")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.log.close()
        return code


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def kafka_python_admin(broker):
    from kafka.admin import KafkaAdminClient
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)


def create_topic_kafka_python(broker, name, partitions):
    from kafka.admin import NewTopic
    admin = kafka_python_admin(broker)
    admin.create_topics([NewTopic(name=name, num_partitions=partitions, replication_factor=1)])
    admin.close()


# ---------------------------------------------------------------- kcat (librdkafka 2.0)

def kcat(*args, input=None, timeout=60):
    r = subprocess.run(["kcat", *args], input=input, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"kcat {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


@check
def kcat_metadata(broker):
    topic = unique("kcat-meta")
    create_topic_kafka_python(broker, topic, 3)
    out = kcat("-b", broker.bootstrap, "-L", "-t", topic)
    assert "1 brokers" in out and f"127.0.0.1:{broker.port}" in out, out
    assert f'topic "{topic}" with 3 partitions' in out, out


@check
def kcat_produce_and_consume(broker):
    topic = unique("kcat-pc")
    create_topic_kafka_python(broker, topic, 1)
    lines = [f"message-{i}" for i in range(200)]
    kcat("-b", broker.bootstrap, "-P", "-t", topic, "-p", "0", "-X", "acks=all", input="\n".join(lines) + "\n")
    out = kcat("-b", broker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q")
    assert out.splitlines() == lines, out[:500]


@check
def kcat_auditor_reads_the_audit_trail_others_do_not(broker):
    # audrey is in the shipped `auditors` group (policies/entities.json, 50-audit.cedar).
    out = kcat(*kcat_sasl(broker, "SCRAM-SHA-512", "audrey", "audrey-secret"),
               "-C", "-t", "__palisade_audit", "-o", "beginning", "-c", "5", "-e", "-q")
    events = [l for l in out.splitlines() if l.strip()]
    assert len(events) == 5, out[:500]
    assert all('"prev":"' in e and '"event_type":"' in e for e in events), out[:500]
    assert "audrey-secret" not in out and "alice-secret" not in out
    # alice may use every topic in this run's policies, but the audit forbid wins.
    r = subprocess.run(["kcat", *kcat_sasl(broker, "SCRAM-SHA-256", "alice", "alice-secret"),
                        "-C", "-t", "__palisade_audit", "-o", "beginning", "-c", "1", "-e", "-q"],
                       capture_output=True, text=True, timeout=30)
    assert '"event_type"' not in r.stdout, r.stdout[:500]


@check
def metrics_endpoint_serves_prometheus_text(broker):
    import urllib.request
    body = urllib.request.urlopen(f"http://127.0.0.1:{broker.metrics_port}/metrics", timeout=10).read().decode()
    assert "# TYPE palisade_requests_total counter" in body, body[:500]
    assert 'palisade_requests_total{api="Metadata"}' in body, body[:2000]
    assert 'palisade_logins_total{mechanism="SCRAM-SHA-512",result="success"}' in body, body[:2000]


def kcat_sasl(broker, mechanism, user, password):
    return ["-b", broker.sasl_bootstrap, "-X", "security.protocol=sasl_ssl", "-X", f"sasl.mechanisms={mechanism}",
            "-X", f"sasl.username={user}", "-X", f"sasl.password={password}",
            "-X", f"ssl.ca.location={broker.certs}/ca.pem"]


@check
def kcat_scram_and_plain_over_sasl_ssl(broker):
    topic = unique("kcat-sasl")
    create_topic_kafka_python(broker, topic, 1)
    for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"):
        args = kcat_sasl(broker, mechanism, "alice", PASSWORDS["alice"])
        kcat(*args, "-P", "-t", topic, "-p", "0", input=f"via {mechanism}\n")
    out = kcat(*kcat_sasl(broker, "SCRAM-SHA-512", "alice", PASSWORDS["alice"]),
               "-C", "-t", topic, "-o", "beginning", "-e", "-q")
    assert out.splitlines() == ["via SCRAM-SHA-512", "via SCRAM-SHA-256", "via PLAIN"], out


@check
def kcat_wrong_password_and_unknown_user_are_refused(broker):
    for user, password in (("alice", "not-her-password"), ("mallory", "whatever")):
        r = subprocess.run(["kcat", *kcat_sasl(broker, "SCRAM-SHA-256", user, password), "-L", "-m", "3"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0, f"{user} logged in with a wrong password"
        assert "authentication failed" in r.stderr, r.stderr[-400:]


@check
def kcat_mtls_on_the_ssl_listener(broker):
    base = ["-b", broker.ssl_bootstrap, "-X", "security.protocol=ssl", "-X", f"ssl.ca.location={broker.certs}/ca.pem"]
    out = kcat(*base, "-X", f"ssl.certificate.location={broker.certs}/alice.pem",
               "-X", f"ssl.key.location={broker.certs}/alice-key.pem", "-L")
    assert f"127.0.0.1:{broker.ssl_port}" in out, out
    r = subprocess.run(["kcat", *base, "-L", "-m", "3"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, "a client without a certificate was accepted"


@check
def plaintext_client_on_the_tls_port_is_refused(broker):
    r = subprocess.run(["kcat", "-b", broker.ssl_bootstrap, "-L", "-m", "3"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, "plaintext client accepted on the TLS port"


# ---------------------------------------------------------------- confluent-kafka (librdkafka 2.16)

def confluent_sasl(broker, user, mechanism="SCRAM-SHA-256"):
    return {"bootstrap.servers": broker.sasl_bootstrap, "security.protocol": "SASL_SSL",
            "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": PASSWORDS.get(user, ""),
            "ssl.ca.location": f"{broker.certs}/ca.pem"}


@check
def confluent_scram_producer_consumer(broker):
    from confluent_kafka import Consumer, Producer
    topic = unique("ck-sasl")
    create_topic_kafka_python(broker, topic, 2)
    p = Producer({**confluent_sasl(broker, "alice", "SCRAM-SHA-512"), "acks": "all"})
    for i in range(200):
        p.produce(topic, value=f"s{i}")
    assert p.flush(30) == 0
    c = Consumer({**confluent_sasl(broker, "alice"), "group.id": topic + "-g", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    seen, deadline = set(), time.time() + 60
    while len(seen) < 200 and time.time() < deadline:
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            seen.add(m.value().decode())
    c.close()
    assert len(seen) == 200, f"{len(seen)} of 200 over SASL_SSL"


@check
def confluent_admin_manages_scram_credentials(broker):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialUpsertion)
    admin = AdminClient(confluent_sasl(broker, "admin"))
    upsert = UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192),
                                          b"carol-secret")
    for f in admin.alter_user_scram_credentials([upsert]).values():
        f.result(timeout=15)
    described = admin.describe_user_scram_credentials(["carol"])["carol"].result(timeout=15)
    info = described.scram_credential_infos[0]
    assert info.mechanism == ScramMechanism.SCRAM_SHA_256 and info.iterations == 8192, info
    # The new user logs in with the password the admin set.
    PASSWORDS["carol"] = "carol-secret"
    out = kcat(*kcat_sasl(broker, "SCRAM-SHA-256", "carol", "carol-secret"), "-L")
    assert "1 brokers" in out
    # A user who is not a super user may not even describe credentials.
    other = AdminClient(confluent_sasl(broker, "alice"))
    try:
        result = other.describe_user_scram_credentials(["carol"])["carol"].result(timeout=15)
        raise AssertionError(f"non-super user described credentials: {result}")
    except KafkaException as e:
        assert "CLUSTER_AUTHORIZATION_FAILED" in str(e) or "authoriz" in str(e).lower(), e


@check
def confluent_producer_and_consumer_group(broker):
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    topic = unique("ck")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)]).values():
        f.result(timeout=15)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": True})
    errors = []
    for i in range(2000):
        p.produce(topic, key=str(i), value=f"v{i}", on_delivery=lambda e, m: e and errors.append(e))
        p.poll(0)
    assert p.flush(30) == 0 and not errors, errors[:3]
    members = [Consumer({"bootstrap.servers": broker.bootstrap, "group.id": topic + "-g",
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                         "heartbeat.interval.ms": 500}) for _ in range(2)]
    for c in members:
        c.subscribe([topic])
    seen, per_member = set(), [0, 0]
    deadline = time.time() + 90
    while len(seen) < 2000 and time.time() < deadline:
        for n, c in enumerate(members):
            m = c.poll(0.1)
            if m is None:
                continue
            assert m.error() is None, m.error()
            seen.add(m.value().decode())
            per_member[n] += 1
    for c in members:
        c.close()
    assert len(seen) == 2000, f"consumed {len(seen)} of 2000"
    assert all(per_member), f"one member got nothing: {per_member}"


@check
def confluent_admin_configs(broker):
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                       NewTopic, ResourceType)
    topic = unique("ck-cfg")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1,
                                           config={"retention.ms": "3600000"})]).values():
        f.result(timeout=15)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.bytes", "1048576", incremental_operation=AlterConfigOpType.SET)])
    for f in admin.incremental_alter_configs([resource]).values():
        f.result(timeout=15)
    described = list(admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]).values())[0].result(timeout=15)
    assert described["retention.ms"].value == "3600000", described["retention.ms"]
    assert described["retention.bytes"].value == "1048576", described["retention.bytes"]


# ---------------------------------------------------------------- kafka-python

@check
def kafka_python_admin_create_delete(broker):
    topic = unique("kp-admin")
    create_topic_kafka_python(broker, topic, 2)
    admin = kafka_python_admin(broker)
    assert topic in admin.list_topics()
    admin.delete_topics([topic])
    deadline = time.time() + 10
    while topic in admin.list_topics():
        assert time.time() < deadline, "topic still listed after delete"
        time.sleep(0.2)
    admin.close()


@check
def kafka_python_producer_and_consumer_group(broker):
    from kafka import KafkaConsumer, KafkaProducer
    topic = unique("kp")
    create_topic_kafka_python(broker, topic, 2)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    futures = [p.send(topic, key=str(i).encode(), value=f"v{i}".encode()) for i in range(500)]
    for f in futures:
        f.get(timeout=30)
    p.close()
    c = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=topic + "-g",
                      auto_offset_reset="earliest", consumer_timeout_ms=30000)
    values = set()
    for m in c:
        values.add(m.value.decode())
        if len(values) == 500:
            break
    c.close()
    assert values == {f"v{i}" for i in range(500)}, f"got {len(values)} of 500"


@check
def confluent_producer_sees_a_plugin_refusal(broker):
    """librdkafka 2.16: a record the json-schema plugin refuses fails with INVALID_RECORD and
    is not stored; a valid one is delivered and read back."""
    from confluent_kafka import Consumer, KafkaError, Producer
    topic = unique("validated-confluent")
    create_topic_kafka_python(broker, topic, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 10000,
                  "retries": 0})
    reports = {}
    for value in (b"{not json", b'{"id": "seven"}', b'{"id": 7}'):
        p.produce(topic, value=value,
                  on_delivery=lambda err, msg, v=value: reports.__setitem__(v, err))
        p.flush(15)
    assert reports[b'{"id": 7}'] is None, reports
    for bad in (b"{not json", b'{"id": "seven"}'):
        assert reports[bad] is not None and reports[bad].code() == KafkaError.INVALID_RECORD, \
            (bad, reports[bad])
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": topic + "-g",
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    deadline = time.time() + 20
    while time.time() < deadline and not got:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
    # Nothing more arrives: the refused records were never stored.
    extra = c.poll(2.0)
    c.close()
    assert got == [b'{"id": 7}'], got
    assert extra is None or extra.error() is not None, extra.value()


@check
def kafka_python_producer_sees_a_plugin_refusal(broker):
    """kafka-python: the refused record raises InvalidRecordError (87); the valid one is
    acknowledged."""
    from kafka import KafkaProducer
    from kafka.errors import InvalidRecordError
    topic = unique("validated-kp")
    create_topic_kafka_python(broker, topic, 1)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", retries=0)
    try:
        p.send(topic, value=b"[1, 2]").get(timeout=30)
        raise AssertionError("a value the schema refuses was acknowledged")
    except InvalidRecordError:
        pass
    meta = p.send(topic, value=b'{"id": 1}').get(timeout=30)
    p.close()
    assert meta.offset == 0, meta


@check
def confluent_producer_is_held_to_its_quota_and_told_so(broker):
    # librdkafka 2.16 reports each throttle_time_ms it is given through throttle_cb (KIP-219);
    # 1 MB at 200 KB/s, the first second's worth free, takes about 4 s.
    from confluent_kafka import Producer
    throttles = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "client.id": QUOTA_CLIENT,
                         "linger.ms": 5, "throttle_cb": lambda e: throttles.append(e.throttle_time)})
    topic = unique("quota")
    value = b"q" * 1000
    started = time.time()
    for _ in range(1000):
        producer.produce(topic, value)
        producer.poll(0)
    assert producer.flush(60) == 0, "undelivered messages"
    took = time.time() - started
    assert took >= 3.0, f"1 MB at 200 KB/s took {took:.2f} s"
    assert throttles and max(throttles) > 0, f"throttle_cb never reported a throttle: {throttles}"
    # Throttled, not refused: every message is stored.
    from confluent_kafka import Consumer
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("quota-reader"),
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    count, deadline = 0, time.time() + 30
    while count < 1000 and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            count += 1
    consumer.close()
    assert count == 1000, count


def confluent_produce_one(conf, topic):
    """Produces one record; returns None on delivery or the error's name."""
    from confluent_kafka import Producer
    p = Producer({**conf, "message.timeout.ms": 10000})
    errors = []
    p.produce(topic, value=b"x", on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert errors, "no delivery report"
    return None if errors[0] is None else errors[0].name()


@check
def confluent_admin_acls_grant_list_and_revoke(broker):
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                       AdminClient, NewTopic, ResourcePatternType, ResourceType)
    topic = unique("acl")
    admin = AdminClient(confluent_sasl(broker, "admin", "SCRAM-SHA-512"))
    for f in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        f.result(timeout=15)
    dave = confluent_sasl(broker, "dave", "SCRAM-SHA-512")
    assert confluent_produce_one(dave, topic) == "TOPIC_AUTHORIZATION_FAILED"
    write = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:dave", "*",
                       AclOperation.WRITE, AclPermissionType.ALLOW)
    prefixed = AclBinding(ResourceType.GROUP, "dave-", ResourcePatternType.PREFIXED, "User:dave", "*",
                          AclOperation.READ, AclPermissionType.ALLOW)
    for f in admin.create_acls([write, prefixed]).values():
        f.result(timeout=15)
    assert confluent_produce_one(dave, topic) is None, "the ACL did not take effect"
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    listed = admin.describe_acls(everything).result(timeout=15)
    assert write in listed and prefixed in listed, listed
    # A user without Alter on the cluster may not create ACLs.
    dave_admin = AdminClient(dave)
    try:
        for f in dave_admin.create_acls([write]).values():
            f.result(timeout=15)
        raise AssertionError("dave created an ACL")
    except Exception as e:
        assert "AUTHORIZATION" in str(e).upper(), e
    only_dave_topic = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:dave",
                                       None, AclOperation.ANY, AclPermissionType.ANY)
    deleted = list(admin.delete_acls([only_dave_topic]).values())[0].result(timeout=15)
    assert deleted == [write], deleted
    assert confluent_produce_one(dave, topic) == "TOPIC_AUTHORIZATION_FAILED"
    left = admin.describe_acls(everything).result(timeout=15)
    assert write not in left and prefixed in left, left


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/debug/palisade")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    workdir = tempfile.mkdtemp(prefix="palisade-interop-")
    broker = Broker(binary, workdir)
    passed = failed = 0
    try:
        for fn in CHECKS:
            start = time.time()
            try:
                fn(broker)
                passed += 1
                print(f"PASS {fn.__name__} ({time.time() - start:.1f}s)", flush=True)
            except Exception:
                failed += 1
                print(f"FAIL {fn.__name__}", flush=True)
                traceback.print_exc()
    finally:
        code = broker.stop()
        if code != 0:
            failed += 1
            print(f"FAIL graceful shutdown: exit code {code}")
        if failed:
            with open(os.path.join(workdir, "broker.log")) as f:
                print("---- broker log (tail) ----")
                print("".join(f.readlines()[-60:]))
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"interop: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

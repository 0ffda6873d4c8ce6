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


class Broker:
    def __init__(self, binary, workdir):
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        default = subprocess.run([binary, "config", "print-default"], check=True,
                                 capture_output=True, text=True).stdout
        config = (default.replace('bind = "127.0.0.1:9092"', f'bind = "{self.bootstrap}"')
                  .replace('advertised = "127.0.0.1:9092"', f'advertised = "{self.bootstrap}"')
                  .replace('data_dir = "./data"', f'data_dir = "{workdir}/data"'))
        path = os.path.join(workdir, "palisade.toml")
        with open(path, "w") as f:
            f.write(config)
        self.log = open(os.path.join(workdir, "broker.log"), "w")
        self.proc = subprocess.Popen([binary, "serve", "--config", path],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
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


# ---------------------------------------------------------------- confluent-kafka (librdkafka 2.16)

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

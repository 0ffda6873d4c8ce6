#!/usr/bin/env python3
"""Client scenarios that tests/gateway/clients.rs runs through a Palisade gateway.

Each scenario drives one Python client (`confluent` = confluent-kafka with its bundled
librdkafka, `kafka-python` = the pure-Python client) and prints one JSON object on its last line
of standard output: what the client saw (values read, errors it got, broker addresses it was
given). The Rust test decides what is right; this script only reports.

  scenarios.py group   --client C --bootstrap B --topic T --count N --group G
  scenarios.py produce --client C --bootstrap B --topic T --count N [--idempotent] [auth]
  scenarios.py consume --client C --bootstrap B --topic T --count N --group G [auth]
  scenarios.py login   --client C --bootstrap B [--bootstrap-timeout-ms MS] [auth]

auth: --username U --password P --mechanism M --ca FILE (SASL over TLS).
"""
import argparse
import json
import sys
import threading
import time

# Every wait in here ends: the Rust side asserts on what was reported, never on timing.
LIMIT_S = 90.0


def security(args, client):
    """Client settings for SASL over TLS, or none."""
    if not args.username:
        return {}
    if client == "confluent":
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": args.mechanism,
            "sasl.username": args.username,
            "sasl.password": args.password,
            "ssl.ca.location": args.ca,
        }
    return {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": args.mechanism,
        "sasl_plain_username": args.username,
        "sasl_plain_password": args.password,
        "ssl_cafile": args.ca,
        "ssl_check_hostname": True,
    }


# ---------------------------------------------------------------- one client, two APIs

class Confluent:
    name = "confluent"

    def __init__(self, args):
        self.args = args
        self.errors = []

    def _error(self, err):
        self.errors.append(err.name())

    def producer(self, idempotent=False):
        from confluent_kafka import Producer
        conf = {"bootstrap.servers": self.args.bootstrap, "acks": "all", "linger.ms": 5,
                "message.timeout.ms": 60000, "error_cb": self._error}
        if idempotent:
            conf["enable.idempotence"] = True
        conf.update(security(self.args, "confluent"))
        return Producer(conf)

    def produce(self, topic, values, partitions=None, idempotent=False):
        """Sends every value (partition i % partitions when given); the error names of
        the failed deliveries, in order."""
        p = self.producer(idempotent)
        failed = []

        def report(err, _msg):
            if err is not None:
                failed.append(err.name())

        for i, v in enumerate(values):
            kw = {"partition": i % partitions} if partitions else {}
            p.produce(topic, value=v.encode(), key=f"k{i}".encode(), on_delivery=report, **kw)
            p.poll(0)
        left = p.flush(LIMIT_S)
        failed.extend(["NOT_DELIVERED"] * left)
        return failed

    def consumer(self, group):
        from confluent_kafka import Consumer
        conf = {"bootstrap.servers": self.args.bootstrap, "group.id": group,
                "auto.offset.reset": "earliest", "enable.auto.commit": False,
                "session.timeout.ms": 30000, "error_cb": self._error}
        conf.update(security(self.args, "confluent"))
        return Consumer(conf)

    @staticmethod
    def subscribe(c, topic):
        c.subscribe([topic])

    @staticmethod
    def poll(c):
        """The values of one poll; committed (synchronously) before they are returned."""
        msgs = c.consume(num_messages=100, timeout=0.2)
        values = [m.value().decode() for m in msgs if m.error() is None]
        if values:
            c.commit(asynchronous=False)
        return values

    @staticmethod
    def assignment(c):
        return sorted(tp.partition for tp in c.assignment())

    @staticmethod
    def brokers(c):
        md = c.list_topics(timeout=30)
        return sorted(f"{b.host}:{b.port}" for b in md.brokers.values())

    @staticmethod
    def close(c):
        c.close()


class KafkaPython:
    name = "kafka-python"

    def __init__(self, args):
        self.args = args
        self.errors = []

    def produce(self, topic, values, partitions=None, idempotent=False):
        from kafka import KafkaProducer
        p = KafkaProducer(bootstrap_servers=self.args.bootstrap, acks="all", linger_ms=5,
                          retries=3, **security(self.args, "kafka-python"))
        futures = []
        for i, v in enumerate(values):
            kw = {"partition": i % partitions} if partitions else {}
            futures.append(p.send(topic, value=v.encode(), key=f"k{i}".encode(), **kw))
        failed = []
        for f in futures:
            try:
                f.get(timeout=LIMIT_S)
            except Exception as e:  # the error's Kafka name, e.g. TOPIC_AUTHORIZATION_FAILED
                failed.append(getattr(e, "message", type(e).__name__))
        p.close()
        return failed

    def consumer(self, group):
        from kafka import KafkaConsumer
        return KafkaConsumer(bootstrap_servers=self.args.bootstrap, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             session_timeout_ms=30000, heartbeat_interval_ms=1000,
                             **security(self.args, "kafka-python"))

    @staticmethod
    def subscribe(c, topic):
        c.subscribe([topic])

    @staticmethod
    def poll(c):
        batches = c.poll(timeout_ms=200, max_records=100)
        values = [r.value.decode() for records in batches.values() for r in records]
        if values:
            c.commit()
        return values

    @staticmethod
    def assignment(c):
        return sorted(tp.partition for tp in c.assignment())

    @staticmethod
    def brokers(c):
        return sorted(f"{b.host}:{b.port}" for b in c._client.cluster.brokers())

    @staticmethod
    def close(c):
        c.close()


CLIENTS = {"confluent": Confluent, "kafka-python": KafkaPython}


# ---------------------------------------------------------------- scenarios

class Member(threading.Thread):
    """One consumer of the group, polling in its own thread (a join waits for every member
    to poll), publishing what it read and what it is assigned."""

    def __init__(self, client, group, topic):
        super().__init__(daemon=True)
        self.client, self.group, self.topic = client, group, topic
        self.values, self.partitions, self.brokers = [], [], []
        self.failure = None
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def run(self):
        try:
            c = self.client.consumer(self.group)
            self.client.subscribe(c, self.topic)
            while not self.stop.is_set():
                got = self.client.poll(c)
                assigned = self.client.assignment(c)
                with self.lock:
                    self.values.extend(got)
                    self.partitions = assigned
            self.brokers = self.client.brokers(c)
            self.client.close(c)
        except Exception as e:
            self.failure = f"{type(e).__name__}: {e}"

    def seen(self):
        with self.lock:
            return list(self.values), list(self.partitions)


def wait(what, cond):
    deadline = time.time() + LIMIT_S
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    print(f"gave up waiting for {what}", file=sys.stderr)
    return False


def group(args):
    """First half produced and read by member a alone; member b joins; once the partitions
    are split between them, the second half is produced and read by both."""
    client = CLIENTS[args.client](args)
    half = args.count // 2
    first = [f"{args.client}-{i}" for i in range(half)]
    second = [f"{args.client}-{i}" for i in range(half, args.count)]
    out = {"produce_errors": client.produce(args.topic, first, partitions=args.partitions)}
    a = Member(client, args.group, args.topic)
    a.start()
    out["a_alone_read_first_half"] = wait("a to read the first half",
                                          lambda: len(a.seen()[0]) >= half)
    out["a_alone_partitions"] = a.seen()[1]
    b = Member(client, args.group, args.topic)
    b.start()

    def split():
        pa, pb = a.seen()[1], b.seen()[1]
        return pa and pb and not set(pa) & set(pb) and len(pa) + len(pb) == args.partitions

    out["split"] = wait("the partitions to be split", split)
    out["a_partitions"], out["b_partitions"] = a.seen()[1], b.seen()[1]
    out["produce_errors"] += client.produce(args.topic, second, partitions=args.partitions)
    wait("every record to be read", lambda: len(a.seen()[0]) + len(b.seen()[0]) >= args.count)
    for m in (a, b):
        m.stop.set()
    for m in (a, b):
        m.join(LIMIT_S)
    out["a"], out["b"] = a.values, b.values
    out["brokers"] = sorted(set(a.brokers) | set(b.brokers))
    out["failures"] = [m.failure for m in (a, b) if m.failure]
    out["client_errors"] = client.errors
    return out


def produce(args):
    client = CLIENTS[args.client](args)
    values = [f"{args.client}-{i}" for i in range(args.count)]
    errors = client.produce(args.topic, values, idempotent=args.idempotent)
    return {"errors": errors, "client_errors": client.errors}


def consume(args):
    client = CLIENTS[args.client](args)
    m = Member(client, args.group, args.topic)
    m.start()
    wait("the records", lambda: len(m.seen()[0]) >= args.count or m.failure)
    m.stop.set()
    m.join(LIMIT_S)
    return {"values": m.values, "brokers": m.brokers, "failure": m.failure,
            "client_errors": client.errors}


def login(args):
    """Asks for metadata; what the client got: the brokers, or the errors."""
    client = CLIENTS[args.client](args)
    if args.client == "confluent":
        from confluent_kafka.admin import AdminClient
        conf = {"bootstrap.servers": args.bootstrap, "error_cb": client._error}
        conf.update(security(args, "confluent"))
        admin = AdminClient(conf)
        # Short metadata requests until one is answered or the client reports an error (the
        # error callback runs only from poll).
        deadline = time.time() + LIMIT_S
        while time.time() < deadline:
            try:
                md = admin.list_topics(timeout=1)
                return {"brokers": sorted(f"{b.host}:{b.port}" for b in md.brokers.values()),
                        "client_errors": client.errors}
            except Exception as e:
                admin.poll(0.1)
                if client.errors:
                    return {"error": str(e), "client_errors": client.errors}
        return {"error": "no answer and no error", "client_errors": client.errors}
    import logging
    from kafka import KafkaAdminClient

    # kafka-python retries a refused login until its bootstrap gives up, reporting the
    # refusal only in its log: keep those lines.
    class Refusals(logging.Handler):
        def emit(self, record):
            if "Authentication" in record.getMessage():
                client.errors.append(record.getMessage())

    logging.getLogger("kafka").addHandler(Refusals(logging.ERROR))
    try:
        admin = KafkaAdminClient(bootstrap_servers=args.bootstrap,
                                 bootstrap_timeout_ms=args.bootstrap_timeout_ms,
                                 **security(args, "kafka-python"))
        admin.list_topics()
        brokers = sorted(f"{b['host']}:{b['port']}" for b in admin.describe_cluster()["brokers"])
        admin.close()
        return {"brokers": brokers, "client_errors": client.errors}
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}", "client_errors": client.errors}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["group", "produce", "consume", "login"])
    ap.add_argument("--client", choices=sorted(CLIENTS), required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--group")
    ap.add_argument("--idempotent", action="store_true")
    # kafka-python: how long `login` tries (a refused login is retried until then).
    ap.add_argument("--bootstrap-timeout-ms", type=int, default=30000)
    ap.add_argument("--username")
    ap.add_argument("--password")
    ap.add_argument("--mechanism", default="SCRAM-SHA-512")
    ap.add_argument("--ca")
    args = ap.parse_args()
    out = {"group": group, "produce": produce, "consume": consume, "login": login}[args.scenario](args)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Shared helpers for the compat tests (confluent-kafka based)."""

from __future__ import annotations

import itertools
import os
import random
import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

_counter = itertools.count()


def unique_topic(prefix: str = "t") -> str:
    return f"{prefix}-{os.getpid()}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple = field(default=())  # tuple of (name:str, value:bytes|None)
    timestamp: int | None = None


def admin_client(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def wait_for_topic(bootstrap: str, topic: str, partitions: int | None = None,
                   timeout: float = 30.0, admin: AdminClient | None = None) -> None:
    """Wait until metadata shows the topic (with `partitions` partitions, each with a leader)."""
    admin = admin or admin_client(bootstrap)
    deadline = time.monotonic() + timeout
    last = None
    while True:
        md = admin.list_topics(topic=topic, timeout=10)
        t = md.topics.get(topic)
        last = t
        if t is not None and t.error is None:
            parts = t.partitions
            if (partitions is None or len(parts) == partitions) and parts and \
                    all(p.leader >= 0 for p in parts.values()):
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"topic {topic!r} not ready in metadata after {timeout}s: "
                                 f"{None if last is None else (last.error, sorted(last.partitions))}")
        time.sleep(0.1)


def create_topic(bootstrap: str, name: str, partitions: int = 1,
                 config: dict | None = None, timeout: float = 30.0) -> str:
    admin = admin_client(bootstrap)
    fs = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                       config=config or {})], operation_timeout=15)
    fs[name].result(timeout=timeout)
    wait_for_topic(bootstrap, name, partitions, timeout=timeout, admin=admin)
    return name


def make_consumer(bootstrap: str, **extra) -> Consumer:
    # librdkafka's Consumer insists on a group.id; the suite only uses
    # assign() with explicit offsets and never commits.
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": "compat-" + uuid.uuid4().hex[:8],
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
        "fetch.wait.max.ms": 100,
    }
    conf.update(extra)
    return Consumer(conf)


def consume_partitions(bootstrap: str, topic: str, start: dict[int, int],
                       expected: dict[int, int] | None = None,
                       timeout: float = 30.0, **extra) -> dict[int, list[Rec]]:
    """Read `topic` from start offsets {partition: offset} until EOF on every
    partition (and, if given, until `expected` {partition: count} records were seen)."""
    c = make_consumer(bootstrap, **extra)
    out: dict[int, list[Rec]] = {p: [] for p in start}
    eof: set[int] = set()
    try:
        c.assign([TopicPartition(topic, p, o) for p, o in start.items()])
        deadline = time.monotonic() + timeout
        while True:
            done = len(eof) == len(start) and (
                expected is None or all(len(out[p]) >= n for p, n in expected.items()))
            if done:
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out consuming {topic}: got { {p: len(v) for p, v in out.items()} } "
                    f"records, eof on {sorted(eof)}, expected {expected}")
            msg = c.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    eof.add(msg.partition())
                    continue
                raise KafkaException(err)
            eof.discard(msg.partition())
            ts_type, ts = msg.timestamp()
            out[msg.partition()].append(Rec(msg.partition(), msg.offset(), msg.key(), msg.value(),
                                            tuple(msg.headers() or ()), ts))
    finally:
        c.close()
    return out


def consume_all(bootstrap: str, topic: str, partitions: int, expected_total: int | None = None,
                timeout: float = 30.0, **extra) -> dict[int, list[Rec]]:
    from confluent_kafka import OFFSET_BEGINNING
    start = {p: OFFSET_BEGINNING for p in range(partitions)}
    out = consume_partitions(bootstrap, topic, start, None, timeout, **extra)
    if expected_total is not None:
        got = sum(len(v) for v in out.values())
        assert got == expected_total, f"expected {expected_total} records in {topic}, got {got}"
    return out


def assert_contiguous(recs: list[Rec], first: int = 0) -> None:
    offs = [r.offset for r in recs]
    assert offs == list(range(first, first + len(recs))), \
        f"offsets not contiguous from {first}: {offs[:20]}..."


def make_records(n: int, partitions: int, seed: int):
    """Deterministic mix of keys/values/headers, including binary, empty and null fields."""
    rnd = random.Random(seed)
    recs = []
    for i in range(n):
        p = i % partitions
        key = None if i % 17 == 5 else f"key-{i}".encode()
        if i % 23 == 7:
            value = None  # tombstone
        elif i % 11 == 3:
            value = b""
        elif i % 3 == 0:
            value = rnd.randbytes(rnd.randint(1, 300))  # incompressible, any byte
        else:
            value = (f"value {i} " * rnd.randint(1, 40)).encode()  # compressible
        if i % 5 == 0:
            headers = []
        else:
            headers = [("h-index", str(i).encode()), ("bin", bytes([i % 256, 0, 255])),
                       ("dup", b"first"), ("dup", b"second")]
            if i % 7 == 0:
                headers.append(("empty", b""))
        recs.append((p, key, value, headers))
    return recs


def produce(bootstrap: str, topic: str, recs, conf: dict | None = None, timestamps=None):
    """Produce (partition, key, value, headers) tuples; returns delivery reports in
    produce order as (partition, offset, timestamp) and asserts none failed."""
    c = {"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all"}
    c.update(conf or {})
    p = Producer(c)
    reports: list = [None] * len(recs)
    errors = []

    def cb_for(i):
        def cb(err, msg):
            if err is not None:
                errors.append((i, err))
            else:
                reports[i] = (msg.partition(), msg.offset(), msg.timestamp())
        return cb

    for i, (part, key, value, headers) in enumerate(recs):
        kw = {}
        if headers:
            kw["headers"] = headers
        if timestamps is not None:
            kw["timestamp"] = timestamps[i]
        while True:
            try:
                p.produce(topic, value=value, key=key, partition=part, on_delivery=cb_for(i), **kw)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(30)
    assert remaining == 0, f"{remaining} messages not delivered after 30s"
    assert not errors, f"delivery errors: {errors[:5]}"
    assert all(r is not None for r in reports)
    return reports


def norm_headers(h):
    return tuple((k, v) for k, v in (h or ()))


def check_roundtrip(bootstrap, topic, partitions, recs, reports):
    got = consume_all(bootstrap, topic, partitions, expected_total=len(recs))
    # delivery-report offsets are contiguous per partition, in produce order
    by_part: dict[int, list[int]] = {}
    for (part, _, _, _), (rp, off, _) in zip(recs, reports):
        assert rp == part
        by_part.setdefault(part, []).append(off)
    for part, offs in by_part.items():
        assert offs == list(range(len(offs))), f"partition {part} delivery offsets {offs[:20]}"
    for part in range(partitions):
        assert_contiguous(got[part])
    for (part, key, value, headers), (rp, off, _) in zip(recs, reports):
        r = got[part][off]
        assert r.offset == off
        assert r.key == key, f"p{part}@{off} key {r.key!r} != {key!r}"
        assert r.value == value, f"p{part}@{off} value differs ({r.value!r:.60} != {value!r:.60})"
        assert norm_headers(r.headers) == norm_headers(headers), \
            f"p{part}@{off} headers {r.headers} != {headers}"

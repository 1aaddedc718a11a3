"""Shared helpers for the compat tests (confluent-kafka based)."""

from __future__ import annotations

import itertools
import os
import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
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

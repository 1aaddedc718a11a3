"""Retention (retention.ms, retention.bytes) with real clients: confluent-kafka's AdminClient
and the Java AdminClient alter the config on a live topic, old records go, the earliest
offset moves, and a consumer positioned below the new start resets (auto.offset.reset)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from compat_util import admin_client, consume_all, create_topic, produce, unique_topic
from conftest import _make_broker, _start_or_fail
from test_java import java_cp, run_java  # noqa: F401  (fixture)

HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def broker(fluxo_bin, tmp_path_factory):
    """This module's broker: retention is checked every 200 ms."""
    b = _make_broker(tmp_path_factory, "broker", extra_args=["--log-retention-check-interval-ms", "200"])
    _start_or_fail(b)
    yield b
    b.close()


def incremental_set(bootstrap: str, topic: str, key: str, value: str) -> None:
    admin = admin_client(bootstrap)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic,
                         incremental_configs=[ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)])
    for f in admin.incremental_alter_configs([res]).values():
        f.result(timeout=30)


def low_watermark(bootstrap: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[0]
    finally:
        c.close()


def wait_low_watermark(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        low = low_watermark(bootstrap, topic)
        if low == expected:
            return
        assert low < expected, f"{topic}: low watermark {low} passed {expected}"
        assert time.monotonic() < deadline, f"{topic}: low watermark still {low}, expected {expected}"
        time.sleep(0.1)


def produce_old_and_new(bootstrap: str, topic: str, old: int, new: int):
    """`old` records an hour old, then `new` current ones, one batch each."""
    now = int(time.time() * 1000)
    recs = [(0, f"k{i}".encode(), f"old-{i}".encode(), None) for i in range(old)]
    recs += [(0, f"k{old + i}".encode(), f"new-{i}".encode(), None) for i in range(new)]
    stamps = [now - HOUR_MS + i for i in range(old)] + [now + i for i in range(new)]
    reports = []
    for r, ts in zip(recs, stamps):  # one produce (one batch) per record
        reports += produce(bootstrap, topic, [r], timestamps=[ts])
    assert [o for _, o, _ in reports] == list(range(old + new))
    return recs


def consume_from(bootstrap: str, topic: str, offset: int, count: int):
    """Assigns `topic`-0 at `offset` with auto.offset.reset=earliest and reads `count` records."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("g"), "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    got = []
    try:
        c.assign([TopicPartition(topic, 0, offset)])
        deadline = time.monotonic() + 30
        while len(got) < count:
            assert time.monotonic() < deadline, f"consumed only {got}"
            msg = c.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None or msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
            if msg.error() is None:
                got.append((msg.offset(), msg.key(), msg.value()))
    finally:
        c.close()
    return got


def test_retention_ms_altered_with_confluent_admin(broker):
    topic = create_topic(broker.bootstrap, unique_topic("rms"), 1, config={"segment.bytes": "1"})
    recs = produce_old_and_new(broker.bootstrap, topic, old=6, new=3)
    # Default retention (7 days) keeps everything.
    time.sleep(0.6)
    assert low_watermark(broker.bootstrap, topic) == 0
    incremental_set(broker.bootstrap, topic, "retention.ms", "600000")
    wait_low_watermark(broker.bootstrap, topic, 6)
    out = consume_all(broker.bootstrap, topic, 1, expected_total=3)
    assert [(r.offset, r.key, r.value) for r in out[0]] == [(6 + i, k, v) for i, (_, k, v, _) in enumerate(recs[6:])]
    # A consumer positioned below the new start resets to it.
    got = consume_from(broker.bootstrap, topic, 2, 3)
    assert [o for o, _, _ in got] == [6, 7, 8]
    assert [v for _, _, v in got] == [b"new-0", b"new-1", b"new-2"]


def test_retention_bytes_altered_with_confluent_admin(broker):
    topic = create_topic(broker.bootstrap, unique_topic("rbytes"), 1, config={"segment.bytes": "1"})
    produce_old_and_new(broker.bootstrap, topic, old=0, new=8)
    time.sleep(0.6)
    assert low_watermark(broker.bootstrap, topic) == 0
    # One byte: only the newest segment (one batch) is kept.
    incremental_set(broker.bootstrap, topic, "retention.bytes", "1")
    wait_low_watermark(broker.bootstrap, topic, 7)
    out = consume_all(broker.bootstrap, topic, 1, expected_total=1)
    assert [(r.offset, r.value) for r in out[0]] == [(7, b"new-7")]
    got = consume_from(broker.bootstrap, topic, 0, 1)
    assert got == [(7, b"k7", b"new-7")]


def test_java_admin_incremental_alter_retention_ms(broker, java_cp):  # noqa: F811
    topic = create_topic(broker.bootstrap, unique_topic("rjava"), 1, config={"segment.bytes": "1"})
    recs = produce_old_and_new(broker.bootstrap, topic, old=4, new=2)
    lines = run_java(java_cp, "RetentionProbe", broker.bootstrap, topic, "600000")
    kinds = {f[0]: f[1:] for f in lines}
    assert kinds["BEFORE"] == ["0"]
    assert kinds["CONFIG"] == ["600000"]
    assert kinds["EARLIEST"] == ["4"], lines
    assert kinds["LATEST"] == ["6"]
    out = consume_all(broker.bootstrap, topic, 1, expected_total=2)
    assert [(r.offset, r.value) for r in out[0]] == [(4, recs[4][2]), (5, recs[5][2])]

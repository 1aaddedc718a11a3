"""kafka-python (pure-Python client) against the broker."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from compat_util import consume_all, unique_topic, wait_for_topic


def read(bootstrap, tps_offsets: dict, expected: int, timeout: float = 30.0):
    """assign + seek, then poll until `expected` records arrived; returns them per partition."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      consumer_timeout_ms=1000, request_timeout_ms=20000)
    try:
        c.assign(list(tps_offsets))
        for tp, off in tps_offsets.items():
            if off == "beginning":
                c.seek_to_beginning(tp)
            else:
                c.seek(tp, off)
        out = {tp.partition: [] for tp in tps_offsets}
        deadline = time.monotonic() + timeout
        n = 0
        while n < expected:
            assert time.monotonic() < deadline, f"timed out: {n}/{expected} records"
            batch = c.poll(timeout_ms=500)
            for tp, msgs in batch.items():
                out[tp.partition].extend(msgs)
                n += len(msgs)
        # nothing more than expected
        extra = c.poll(timeout_ms=500)
        assert not any(extra.values()), f"unexpected extra records: {extra}"
        return out
    finally:
        c.close()


def test_admin_create_topics(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=20000)
    try:
        a, b = unique_topic("kp-a"), unique_topic("kp-b")
        admin.create_topics([NewTopic(a, num_partitions=2, replication_factor=1),
                             NewTopic(b, num_partitions=4, replication_factor=1)])
        wait_for_topic(broker.bootstrap, a, 2)
        wait_for_topic(broker.bootstrap, b, 4)
        topics = admin.list_topics()
        assert a in topics and b in topics
        desc = {t["name"]: t for t in admin.describe_topics([a, b])}
        assert sorted(p["partition_index"] for p in desc[a]["partitions"]) == [0, 1]
        assert sorted(p["partition_index"] for p in desc[b]["partitions"]) == [0, 1, 2, 3]
        for t in desc.values():
            assert t["error_code"] == 0
            for p in t["partitions"]:
                assert p["error_code"] == 0
                assert p["leader_id"] == 1 and list(p["replica_nodes"]) == [1]
                assert list(p["isr_nodes"]) == [1]
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(a, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()


@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
def test_producer_consumer_assign_seek(broker, new_topic, codec):
    # snappy/lz4/zstd need python-snappy, lz4, zstandard (compat/requirements.txt)
    topic = new_topic(2, f"kp-{codec}")
    prod = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=10,
                         compression_type=codec, request_timeout_ms=20000)
    sent = []
    try:
        futs = []
        for i in range(100):
            p = i % 2
            key = f"kp-key-{i}".encode()
            val = (f"kp-value-{i}-" * (i % 7 + 1)).encode()
            hdrs = [("i", str(i).encode()), ("x", b"\x00\xff")]
            futs.append((p, key, val, hdrs, prod.send(topic, key=key, value=val, headers=hdrs,
                                                       partition=p)))
        prod.flush(timeout=30)
        for p, key, val, hdrs, f in futs:
            md = f.get(timeout=30)
            assert md.topic == topic and md.partition == p
            sent.append((p, md.offset, key, val, hdrs))
    finally:
        prod.close(timeout=10)
    for p in range(2):
        offs = [o for pp, o, *_ in sent if pp == p]
        assert offs == list(range(50)), f"partition {p} offsets {offs}"

    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    got = read(broker.bootstrap, {tp0: "beginning", tp1: "beginning"}, 100)
    for p, off, key, val, hdrs in sent:
        m = got[p][off]
        assert (m.partition, m.offset, m.key, m.value) == (p, off, key, val)
        assert list(m.headers) == hdrs

    # seek into the middle of partition 1
    got = read(broker.bootstrap, {tp1: 30}, 20)
    assert [m.offset for m in got[1]] == list(range(30, 50))
    assert [m.key for m in got[1]] == [k for p, o, k, *_ in sent if p == 1 and o >= 30]


def test_offsets_api(broker, new_topic):
    topic = new_topic(1, "kp-lo")
    prod = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=1)
    base = (int(time.time()) - 600) * 1000
    for i in range(10):
        prod.send(topic, value=f"v{i}".encode(), partition=0, timestamp_ms=base + i * 1000)
    prod.flush(timeout=30)
    prod.close(timeout=10)
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                      request_timeout_ms=20000)
    try:
        tp = TopicPartition(topic, 0)
        assert c.beginning_offsets([tp], timeout_ms=10000) == {tp: 0}
        assert c.end_offsets([tp], timeout_ms=10000) == {tp: 10}
        res = c.offsets_for_times({tp: base + 4000})
        assert res[tp].offset == 4 and res[tp].timestamp == base + 4000
        res = c.offsets_for_times({tp: base + 4500})
        assert res[tp].offset == 5
        assert c.offsets_for_times({tp: base + 100_000})[tp] is None
    finally:
        c.close()
    # cross-check with librdkafka
    assert [r.value for r in consume_all(broker.bootstrap, topic, 1, expected_total=10)[0]] == \
        [f"v{i}".encode() for i in range(10)]

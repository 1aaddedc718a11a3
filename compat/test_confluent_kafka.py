"""confluent-kafka (librdkafka, bundled in the wheel) against the broker."""

from __future__ import annotations

import os
import time

import pytest
from confluent_kafka import OFFSET_END, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource, NewPartitions, NewTopic, ResourceType

from compat_util import (admin_client, check_roundtrip, consume_partitions, make_consumer,
                         make_records, produce, unique_topic, wait_for_topic, consume_all)


# --------------------------------------------------------------------------- admin

def test_admin_create_and_list_topics(broker):
    admin = admin_client(broker.bootstrap)
    name = unique_topic("adm")
    fs = admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)],
                             operation_timeout=15)
    assert fs[name].result(timeout=30) is None
    wait_for_topic(broker.bootstrap, name, 3)
    md = admin.list_topics(timeout=10)
    assert name in md.topics
    t = md.topics[name]
    assert t.error is None
    assert sorted(t.partitions) == [0, 1, 2]
    for pid, pm in t.partitions.items():
        assert pm.leader == 1, f"partition {pid} leader {pm.leader}"
        assert list(pm.replicas) == [1]
        assert list(pm.isrs) == [1]
    assert list(md.brokers) == [1]
    b = md.brokers[1]
    assert (b.host, b.port) == ("127.0.0.1", broker.port)


def test_admin_create_existing_topic_fails(broker, new_topic):
    name = new_topic(1, "exists")
    admin = admin_client(broker.bootstrap)
    fs = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)],
                             operation_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[name].result(timeout=30)
    assert ei.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS


def test_admin_describe_configs(broker, new_topic):
    name = new_topic(1, "cfg")
    admin = admin_client(broker.bootstrap)
    res = ConfigResource(ResourceType.TOPIC, name)
    fs = admin.describe_configs([res], request_timeout=15)
    configs = list(fs.values())[0].result(timeout=30)
    assert configs, "DescribeConfigs returned no entries for the topic"
    assert "cleanup.policy" in configs, f"no cleanup.policy in {sorted(configs)}"
    assert configs["cleanup.policy"].value == "delete"


def test_admin_topic_config_at_create_is_described(broker):
    admin = admin_client(broker.bootstrap)
    name = unique_topic("cfgset")
    fs = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1,
                                       config={"retention.ms": "3600000"})],
                             operation_timeout=15)
    fs[name].result(timeout=30)
    wait_for_topic(broker.bootstrap, name, 1)
    res = ConfigResource(ResourceType.TOPIC, name)
    configs = list(admin.describe_configs([res], request_timeout=15).values())[0].result(timeout=30)
    assert "retention.ms" in configs, f"no retention.ms in {sorted(configs)}"
    assert configs["retention.ms"].value == "3600000"


def test_admin_describe_cluster(broker):
    admin = admin_client(broker.bootstrap)
    desc = admin.describe_cluster(request_timeout=15).result(timeout=30)
    assert [n.id for n in desc.nodes] == [1]
    assert (desc.nodes[0].host, desc.nodes[0].port) == ("127.0.0.1", broker.port)
    assert desc.controller is not None and desc.controller.id == 1
    assert desc.cluster_id


def test_admin_create_partitions(broker, new_topic):
    name = new_topic(2, "grow")
    admin = admin_client(broker.bootstrap)
    fs = admin.create_partitions([NewPartitions(name, 5)], operation_timeout=15)
    assert fs[name].result(timeout=30) is None
    wait_for_topic(broker.bootstrap, name, 5)
    recs = [(p, f"k{p}".encode(), f"v{p}".encode(), []) for p in range(5)]
    reports = produce(broker.bootstrap, name, recs)
    assert [(r[0], r[1]) for r in reports] == [(p, 0) for p in range(5)]
    check_roundtrip(broker.bootstrap, name, 5, recs, reports)


def test_admin_delete_topic(broker, new_topic):
    name = new_topic(2, "del")
    keep = new_topic(1, "keep")
    admin = admin_client(broker.bootstrap)
    fs = admin.delete_topics([name], operation_timeout=15)
    assert fs[name].result(timeout=30) is None
    deadline = time.monotonic() + 30
    while True:
        md = admin.list_topics(timeout=10)
        if name not in md.topics:
            break
        assert time.monotonic() < deadline, f"{name} still listed 30s after DeleteTopics"
        time.sleep(0.2)
    assert keep in md.topics
    # deleting it again must report UNKNOWN_TOPIC_OR_PART
    fs = admin.delete_topics([name], operation_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[name].result(timeout=30)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


# --------------------------------------------------------------------------- produce / consume

@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_consume_codec(broker, new_topic, codec):
    topic = new_topic(2, f"codec-{codec}")
    recs = make_records(300, 2, seed=["none", "gzip", "snappy", "lz4", "zstd"].index(codec))
    reports = produce(broker.bootstrap, topic, recs,
                      {"compression.type": codec, "linger.ms": 50, "batch.num.messages": 100})
    check_roundtrip(broker.bootstrap, topic, 2, recs, reports)


def test_idempotent_producer(broker, new_topic):
    topic = new_topic(3, "idem")
    recs = make_records(900, 3, seed=42)
    reports = produce(broker.bootstrap, topic, recs,
                      {"enable.idempotence": True, "acks": "all", "linger.ms": 5})
    check_roundtrip(broker.bootstrap, topic, 3, recs, reports)


def test_large_values(broker, new_topic):
    topic = new_topic(1, "large")
    vals = [os.urandom(200_000), b"x" * 700_000, os.urandom(10)]
    recs = [(0, f"big{i}".encode(), v, [("n", str(i).encode())]) for i, v in enumerate(vals)]
    reports = produce(broker.bootstrap, topic, recs, {"compression.type": "none"})
    check_roundtrip(broker.bootstrap, topic, 1, recs, reports)


def test_consume_from_middle_offset(broker, new_topic):
    topic = new_topic(1, "mid")
    recs = [(0, f"k{i}".encode(), f"v{i}".encode(), []) for i in range(50)]
    produce(broker.bootstrap, topic, recs)
    got = consume_partitions(broker.bootstrap, topic, {0: 20}, {0: 30})[0]
    assert [r.offset for r in got] == list(range(20, 50))
    assert [(r.key, r.value) for r in got] == [(f"k{i}".encode(), f"v{i}".encode())
                                               for i in range(20, 50)]
    # starting exactly at the end: nothing, just EOF
    assert consume_partitions(broker.bootstrap, topic, {0: 50})[0] == []
    # OFFSET_END: nothing either
    assert consume_partitions(broker.bootstrap, topic, {0: OFFSET_END})[0] == []


def test_consume_many_small_batches_resume(broker, new_topic):
    """Several produce batches; consuming from each batch boundary returns the rest."""
    topic = new_topic(1, "batches")
    all_recs = []
    for b in range(5):
        recs = [(0, f"b{b}-{i}".encode(), f"payload-{b}-{i}".encode(), []) for i in range(20)]
        produce(broker.bootstrap, topic, recs, {"linger.ms": 0})
        all_recs += recs
    for start in (0, 19, 20, 21, 57, 99):
        got = consume_partitions(broker.bootstrap, topic, {0: start}, {0: 100 - start})[0]
        assert [r.offset for r in got] == list(range(start, 100))
        assert [r.key for r in got] == [k for _, k, _, _ in all_recs[start:]]


def test_watermarks_and_offsets_for_times(broker, new_topic):
    topic = new_topic(2, "lo")
    base = (int(time.time()) - 3600) * 1000  # an hour ago, on a second boundary
    n = 10
    recs = [(p, f"k{p}-{i}".encode(), f"v{p}-{i}".encode(), []) for p in range(2) for i in range(n)]
    ts = [base + (i % n) * 1000 for i in range(2 * n)]
    reports = produce(broker.bootstrap, topic, recs, timestamps=ts)
    assert [r[2][1] for r in reports] == ts, "delivery report timestamps differ from CreateTime"

    c = make_consumer(broker.bootstrap)
    try:
        for p in range(2):
            assert c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False) == (0, n)
        # exact hits, in-between timestamps and a timestamp past the end
        queries = [(0, base, 0), (0, base + 3000, 3), (1, base + 2500, 3), (1, base + 9000, 9),
                   (0, base - 100_000, 0), (1, base + 50_000, -1)]
        # one partition per request: a ListOffsets request must not name a partition twice
        got = []
        for p, t, _ in queries:
            [r] = c.offsets_for_times([TopicPartition(topic, p, t)], timeout=10)
            assert r.error is None, r.error
            got.append((r.partition, r.offset))
        assert got == [(p, want) for p, _, want in queries]
        # both partitions in one request
        res = c.offsets_for_times([TopicPartition(topic, 0, base + 4000),
                                   TopicPartition(topic, 1, base + 6500)], timeout=10)
        assert sorted((r.partition, r.offset) for r in res) == [(0, 4), (1, 7)]
    finally:
        c.close()

    # consumer sees the CreateTime timestamps
    out = consume_all(broker.bootstrap, topic, 2, expected_total=2 * n)
    for p in range(2):
        assert [r.timestamp for r in out[p]] == [base + i * 1000 for i in range(n)]


def test_empty_topic_watermarks(broker, new_topic):
    topic = new_topic(3, "empty")
    c = make_consumer(broker.bootstrap)
    try:
        for p in range(3):
            assert c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False) == (0, 0)
    finally:
        c.close()
    out = consume_all(broker.bootstrap, topic, 3, expected_total=0)
    assert out == {0: [], 1: [], 2: []}


def test_produce_to_unknown_partition_fails(broker, new_topic):
    topic = new_topic(1, "nopart")
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 5000})
    errs = []
    try:
        p.produce(topic, value=b"x", partition=7, on_delivery=lambda e, m: errs.append(e))
    except KafkaException as e:  # librdkafka may reject it locally once metadata is known
        errs.append(e.args[0])
    p.flush(15)
    assert len(errs) == 1 and errs[0] is not None
    assert errs[0].code() in (KafkaError._UNKNOWN_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART), errs[0]

"""Log compaction (issue 13) read back by real clients: a cleanup.policy=compact topic with many
updates per key and tombstones, after the cleaner has run, is read from the beginning by
kafka-python and by the Java consumer; each sees exactly the latest value of every live key, at
its original offset, and no deleted key."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from conftest import _make_broker, _report_on_failure, _start_or_fail
from compat_util import unique_topic
from test_java import java_cp, run_java  # noqa: F401  (java_cp is a fixture)


@pytest.fixture(scope="module")
def cleaner_broker(fluxo_bin, tmp_path_factory):
    b = _make_broker(tmp_path_factory, "cleaner", extra_args=["--log-cleaner-backoff-ms", "100"])
    _start_or_fail(b)
    yield b
    b.close()


@pytest.fixture(autouse=True)
def _cleaner_log(request):
    yield
    if "cleaner_broker" in request.fixturenames:
        b = request.getfixturevalue("cleaner_broker")
        _report_on_failure(request, b)
        b.fail_on_new_panics()


def read_from_start(bootstrap: str, topic: str) -> list[tuple[int, bytes, bytes | None]]:
    """(offset, key, value) of every record from the beginning to the end offset (kafka-python)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        out = []
        deadline = time.time() + 20
        while consumer.position(tp) < end:
            assert time.time() < deadline, f"kafka-python stuck at {consumer.position(tp)} of {end}"
            for records in consumer.poll(timeout_ms=500).values():
                out.extend((r.offset, r.key, r.value) for r in records)
        return out
    finally:
        consumer.close()


def test_compacted_topic_is_read_back_by_kafka_python_and_java(cleaner_broker, java_cp):  # noqa: F811
    bootstrap = cleaner_broker.bootstrap
    topic = unique_topic("compacted")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"cleanup.policy": "compact", "delete.retention.ms": "300", "min.cleanable.dirty.ratio": "0.01"})])
    admin.close()

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    expected: dict[bytes, tuple[int, bytes]] = {}
    for n in range(600):
        key = f"k{n % 30}".encode()
        value = f"v{n}".encode()
        expected[key] = (producer.send(topic, key=key, value=value).get(timeout=10).offset, value)
    for k in range(5):
        producer.send(topic, key=f"k{k}".encode(), value=None).get(timeout=10)
        del expected[f"k{k}".encode()]
    producer.flush()
    # The newest batch is never cleaned: make it one of its own.
    expected[b"tail"] = (producer.send(topic, key=b"tail", value=b"t").get(timeout=10).offset, b"t")
    producer.close()

    deadline = time.time() + 30
    seen = read_from_start(bootstrap, topic)
    while len(seen) != len(expected):
        assert time.time() < deadline, f"not compacted within 30 s: {len(seen)} records: {seen}"
        time.sleep(0.2)
        seen = read_from_start(bootstrap, topic)
    got = {k: (o, v) for o, k, v in seen}
    assert len(got) == len(seen), "one record per key"
    assert got == expected, "kafka-python: the latest value per live key, at its offset"

    lines = run_java(java_cp, "ConsumeProbe", bootstrap, topic, str(len(expected)), "0:beginning")
    recs = [(int(f[2]), bytes.fromhex(f[4]), None if f[5] == "-" else bytes.fromhex(f[5])) for f in lines if f[0] == "REC"]
    assert {k: (o, v) for o, k, v in recs} == expected, "Java consumer: the latest value per live key"
    assert len(recs) == len(expected)
    assert [o for o, _, _ in recs] == sorted({o for o, _, _ in recs})

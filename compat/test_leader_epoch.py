"""Position validation with OffsetForLeaderEpoch (KIP-320): the Java consumer 4.3 and
confluent-kafka (librdkafka) seek with a leader epoch, validate their position with
the broker, and consume through metadata refreshes without errors; the broker's
request counter shows OffsetForLeaderEpoch was used."""
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from conftest import Broker, free_port
from compat_util import create_topic, make_consumer, produce, unique_topic
from test_java import java_cp, run_java, unhx  # noqa: F401 (java_cp is a fixture)
from test_metrics import counter, scrape

N = 60


@pytest.fixture(scope="module")
def epoch_broker(fluxo_bin, tmp_path_factory):
    base = tmp_path_factory.mktemp("epochs")
    port = free_port()
    b = Broker(data_dir=base / "data", log_dir=base / "logs",
               extra_args=["--metrics-listener", f"127.0.0.1:{port}"])
    b.start()
    b.metrics_port = port
    yield b
    b.close()


def epoch_requests(b) -> float:
    return counter(scrape(b.metrics_port), "fluxo_requests_total", api="OffsetForLeaderEpoch")


def setup_topic(b, prefix):
    topic = unique_topic(prefix)
    create_topic(b.bootstrap, topic, 2)
    recs = [(i % 2, f"k{i}".encode(), f"value {i}".encode() * (1 + i % 5), []) for i in range(N)]
    reports = produce(b.bootstrap, topic, recs)
    by_partition = {0: {}, 1: {}}
    for (p, k, v, _), (rp, off, _) in zip(recs, reports):
        assert rp == p
        by_partition[p][off] = (k, v)
    return topic, by_partition


def test_java_consumer_validates_its_position_with_offset_for_leader_epoch(epoch_broker, java_cp):
    b = epoch_broker
    topic, produced = setup_topic(b, "jepoch")
    before = epoch_requests(b)
    lines = run_java(java_cp, "EpochSeekProbe", b.bootstrap, topic, "0", "7", "0", str(N // 2 - 7), "1500")
    assert not [f for f in lines if f[0] == "TIMEOUT"], f"consumer timed out: {lines[-5:]}"
    got = [(int(f[2]), unhx(f[3]), unhx(f[4])) for f in lines if f[0] == "REC"]
    assert got == [(o, *produced[0][o]) for o in range(7, N // 2)], "records from the validated position"
    assert ["POSITION", "0", str(N // 2)] in lines
    assert epoch_requests(b) > before, "the Java consumer validated its position with OffsetForLeaderEpoch"


def test_librdkafka_consumer_validates_its_position_with_offset_for_leader_epoch(epoch_broker):
    b = epoch_broker
    topic, produced = setup_topic(b, "rkepoch")
    before = epoch_requests(b)
    c = make_consumer(b.bootstrap, **{"topic.metadata.refresh.interval.ms": 200})
    got = []
    try:
        c.assign([TopicPartition(topic, 1, 4, leader_epoch=0)])
        start = time.monotonic()
        eof = False
        while not eof or time.monotonic() - start < 1.5:
            assert time.monotonic() - start < 30, f"timed out: {len(got)} records"
            msg = c.poll(0.1)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    eof = True
                    continue
                raise KafkaException(msg.error())
            got.append((msg.offset(), msg.key(), msg.value(), msg.leader_epoch()))
    finally:
        c.close()
    assert got == [(o, *produced[1][o], 0) for o in range(4, N // 2)], "records (and their leader epoch) from the position"
    assert epoch_requests(b) > before, "librdkafka validated its position with OffsetForLeaderEpoch"

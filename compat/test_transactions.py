"""Transactions with confluent-kafka (librdkafka): init, begin, produce, send offsets,
commit and abort; read_committed consumers see exactly the committed records in
order, read_uncommitted ones see everything; a second producer with the same
transactional.id fences the first."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from compat_util import consume_all, create_topic, unique_topic
from test_java import java_cp, run_java  # noqa: F401  (java_cp is a fixture)


def txn_producer(bootstrap: str, txn_id: str, **extra) -> Producer:
    conf = {
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "transaction.timeout.ms": 60000,
        "linger.ms": 5,
    }
    conf.update(extra)
    return Producer(conf)


def produce_all(p: Producer, topic: str, keys: list[str], partitions: int) -> None:
    for i, k in enumerate(keys):
        p.produce(topic, key=k.encode(), value=f"value-of-{k}".encode(), partition=i % partitions)


def keys_by_partition(recs) -> dict[int, list[str]]:
    return {p: [r.key.decode() for r in v] for p, v in recs.items()}


def expected_by_partition(keys: list[str], partitions: int) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {p: [] for p in range(partitions)}
    for i, k in enumerate(keys):
        out[i % partitions].append(k)
    return out


def test_commit_abort_and_offsets_with_read_committed_and_uncommitted(broker):
    topic = create_topic(broker.bootstrap, unique_topic("txn"), 2)
    group = "txn-group-" + uuid.uuid4().hex[:8]
    p = txn_producer(broker.bootstrap, "tx-" + uuid.uuid4().hex[:8])
    p.init_transactions(30)

    committed_1 = [f"c1-{i}" for i in range(10)]
    p.begin_transaction()
    produce_all(p, topic, committed_1, 2)
    p.commit_transaction(30)

    aborted = [f"a-{i}" for i in range(10)]
    p.begin_transaction()
    produce_all(p, topic, aborted, 2)
    p.flush(30)
    p.abort_transaction(30)

    committed_2 = [f"c2-{i}" for i in range(6)]
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        p.begin_transaction()
        produce_all(p, topic, committed_2, 2)
        p.send_offsets_to_transaction([TopicPartition(topic, 0, 7), TopicPartition(topic, 1, 3)],
                                      c.consumer_group_metadata(), 30)
        p.commit_transaction(30)
        committed = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=30)
        assert [(tp.partition, tp.offset) for tp in committed] == [(0, 7), (1, 3)]

        # An aborted transaction's offsets never become visible.
        p.begin_transaction()
        produce_all(p, topic, ["a2-0"], 2)
        p.send_offsets_to_transaction([TopicPartition(topic, 0, 99)], c.consumer_group_metadata(), 30)
        p.flush(30)
        p.abort_transaction(30)
        committed = c.committed([TopicPartition(topic, 0)], timeout=30)
        assert committed[0].offset == 7
    finally:
        c.close()

    read_committed = consume_all(broker.bootstrap, topic, 2, **{"isolation.level": "read_committed"})
    want = {part: expected_by_partition(committed_1, 2)[part] + expected_by_partition(committed_2, 2)[part]
            for part in range(2)}
    assert keys_by_partition(read_committed) == want
    for recs in read_committed.values():
        for r in recs:
            assert r.value == f"value-of-{r.key.decode()}".encode()

    read_uncommitted = consume_all(broker.bootstrap, topic, 2, **{"isolation.level": "read_uncommitted"})
    everything = committed_1 + aborted + committed_2 + ["a2-0"]
    got = sorted(k for keys in keys_by_partition(read_uncommitted).values() for k in keys)
    assert got == sorted(everything)
    # Offsets: data and markers interleave; each committed record sits at a distinct offset.
    offsets = [r.offset for r in read_committed[0]]
    assert offsets == sorted(set(offsets))
    p.flush(10)


def test_a_second_producer_fences_the_first(broker):
    topic = create_topic(broker.bootstrap, unique_topic("txnfence"), 1)
    txn_id = "fence-" + uuid.uuid4().hex[:8]
    first = txn_producer(broker.bootstrap, txn_id)
    first.init_transactions(30)
    first.begin_transaction()
    produce_all(first, topic, ["zombie-0", "zombie-1"], 1)
    first.flush(30)

    second = txn_producer(broker.bootstrap, txn_id)
    second.init_transactions(30)
    with pytest.raises(KafkaException) as raised:
        first.commit_transaction(30)
    err = raised.value.args[0]
    assert err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                         KafkaError.INVALID_PRODUCER_EPOCH), err

    second.begin_transaction()
    produce_all(second, topic, ["live-0", "live-1", "live-2"], 1)
    second.commit_transaction(30)

    read_committed = consume_all(broker.bootstrap, topic, 1, **{"isolation.level": "read_committed"})
    assert keys_by_partition(read_committed) == {0: ["live-0", "live-1", "live-2"]}
    read_uncommitted = consume_all(broker.bootstrap, topic, 1, **{"isolation.level": "read_uncommitted"})
    assert keys_by_partition(read_uncommitted) == {0: ["zombie-0", "zombie-1", "live-0", "live-1", "live-2"]}


# --------------------------------------------------------------------------- Java client

def test_java_consume_transform_produce_exactly_once(broker, java_cp):
    """Java 4.3: consume-transform-produce with every third transaction aborted; the
    output's read_committed view holds each input record exactly once, the group's
    committed offsets are the input's ends, and a second producer with the same
    transactional.id fences the first."""
    partitions, total = 3, 1500
    src = create_topic(broker.bootstrap, unique_topic("jtxnin"), partitions)
    dst = create_topic(broker.bootstrap, unique_topic("jtxnout"), partitions)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(total):
        p.produce(src, key=f"k-{i}".encode(), value=f"value-{i}".encode(), partition=i % partitions)
    assert p.flush(30) == 0
    group = "jtxn-" + uuid.uuid4().hex[:8]
    lines = run_java(java_cp, "TxnProbe", broker.bootstrap, src, dst, group,
                     "jtxn-" + uuid.uuid4().hex[:8], str(total), timeout=180)
    kinds = [f[0] for f in lines]
    assert "TIMEOUT" not in kinds, lines[-5:]
    txns = [f for f in lines if f[0] == "TXN"]
    assert sum(int(f[2]) for f in txns if f[1] == "commit") == total
    aborted = sum(int(f[2]) for f in txns if f[1] == "abort")
    assert aborted > 0, "some transactions were aborted"
    assert "FENCED" in kinds, lines[-5:]

    out = consume_all(broker.bootstrap, dst, partitions, **{"isolation.level": "read_committed"})
    want = expected_by_partition([f"k-{i}" for i in range(total)], partitions)
    assert keys_by_partition(out) == want, "each input record exactly once, in order, per partition"
    for recs in out.values():
        for r in recs:
            assert r.value == ("VALUE-" + r.key.decode()[2:]).encode()
    everything = consume_all(broker.bootstrap, dst, partitions, **{"isolation.level": "read_uncommitted"})
    assert sum(len(v) for v in everything.values()) == total + aborted + 1, "aborted and zombie records are in the log"

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        committed = c.committed([TopicPartition(src, i) for i in range(partitions)], timeout=30)
        assert [tp.offset for tp in committed] == [len(want[i]) for i in range(partitions)]
    finally:
        c.close()

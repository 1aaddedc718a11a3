"""aiokafka (asyncio client) against the broker."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from compat_util import consume_all


async def produce(bootstrap, topic, items, **conf):
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=20000, **conf)
    await prod.start()
    try:
        futs = [await prod.send(topic, key=k, value=v, headers=h, partition=p)
                for p, k, v, h in items]
        mds = await asyncio.gather(*futs)
    finally:
        await prod.stop()
    return [(md.partition, md.offset) for md in mds]


async def consume(bootstrap, topic, start: dict, expected: int, timeout: float = 30.0):
    """assign(); start values are offsets or "beginning"; returns records per partition."""
    cons = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                            request_timeout_ms=20000)
    await cons.start()
    try:
        tps = [TopicPartition(topic, p) for p in start]
        cons.assign(tps)
        begin = [tp for tp in tps if start[tp.partition] == "beginning"]
        if begin:
            await cons.seek_to_beginning(*begin)
        for tp in tps:
            if start[tp.partition] != "beginning":
                cons.seek(tp, start[tp.partition])
        out = {p: [] for p in start}
        n = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while n < expected:
            assert loop.time() < deadline, f"timed out: {n}/{expected} records"
            batch = await cons.getmany(timeout_ms=500)
            for tp, msgs in batch.items():
                out[tp.partition].extend(msgs)
                n += len(msgs)
        extra = await cons.getmany(timeout_ms=500)
        assert not any(extra.values()), f"unexpected extra records: {extra}"
        for tp in tps:
            assert await cons.position(tp) == len(out[tp.partition]) + (
                0 if start[tp.partition] == "beginning" else start[tp.partition])
        return out
    finally:
        await cons.stop()


@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
def test_aiokafka_roundtrip(broker, new_topic, codec):
    topic = new_topic(3, f"aio-{codec}")
    items = []
    for i in range(150):
        p = i % 3
        key = None if i % 10 == 9 else f"aio-{i}".encode()
        val = bytes(range(i % 256)) + f"|{i}".encode() * (i % 5)
        hdrs = [("seq", str(i).encode()), ("codec", str(codec).encode())] if i % 4 else []
        items.append((p, key, val, hdrs))

    acks = asyncio.run(produce(broker.bootstrap, topic, items, compression_type=codec,
                               linger_ms=10, acks="all"))
    for p in range(3):
        assert [o for pp, o in acks if pp == p] == list(range(50)), f"partition {p} offsets"

    got = asyncio.run(consume(broker.bootstrap, topic, {0: "beginning", 1: "beginning",
                                                        2: "beginning"}, 150))
    for (p, key, val, hdrs), (ap, off) in zip(items, acks):
        m = got[p][off]
        assert (m.partition, m.offset, m.key, m.value) == (ap, off, key, val)
        assert list(m.headers) == hdrs

    # seek into the middle of partition 2
    got = asyncio.run(consume(broker.bootstrap, topic, {2: 45}, 5))
    assert [(m.offset, m.value) for m in got[2]] == \
        [(o, v) for (p, _, v, _), (_, o) in zip(items, acks) if p == 2 and o >= 45]

    # the same bytes through librdkafka
    rk = consume_all(broker.bootstrap, topic, 3, expected_total=150)
    for (p, key, val, hdrs), (_, off) in zip(items, acks):
        assert (rk[p][off].key, rk[p][off].value) == (key, val)


def test_aiokafka_idempotent_and_offsets(broker, new_topic):
    topic = new_topic(1, "aio-idem")
    items = [(0, f"k{i}".encode(), f"v{i}".encode(), []) for i in range(200)]
    acks = asyncio.run(produce(broker.bootstrap, topic, items, enable_idempotence=True,
                               acks="all", linger_ms=5))
    assert [o for _, o in acks] == list(range(200))

    async def offsets():
        cons = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                                enable_auto_commit=False, request_timeout_ms=20000)
        await cons.start()
        try:
            tp = TopicPartition(topic, 0)
            return (await cons.beginning_offsets([tp]))[tp], (await cons.end_offsets([tp]))[tp]
        finally:
            await cons.stop()

    assert asyncio.run(offsets()) == (0, 200)
    got = asyncio.run(consume(broker.bootstrap, topic, {0: 150}, 50))
    assert [(m.offset, m.key, m.value) for m in got[0]] == \
        [(i, f"k{i}".encode(), f"v{i}".encode()) for i in range(150, 200)]

"""Durability: clean restart (SIGTERM) and crash (kill -9) with acknowledged writes."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, Producer

from compat_util import (assert_contiguous, check_roundtrip, consume_all, create_topic,
                         make_records, produce, unique_topic, wait_for_topic)

from conftest import TARGET


def test_sigterm_restart_keeps_everything(fresh_broker):
    b = fresh_broker
    topic = unique_topic("dur")
    create_topic(b.bootstrap, topic, 3)
    recs = make_records(600, 3, seed=7)
    reports = produce(b.bootstrap, topic, recs, {"compression.type": "zstd", "linger.ms": 10})
    check_roundtrip(b.bootstrap, topic, 3, recs, reports)

    rc = b.stop()
    if TARGET == "fluxo":
        assert rc == 0, f"broker exited {rc} on SIGTERM\n{b.log_tail()}"
    b.start()

    wait_for_topic(b.bootstrap, topic, 3)
    check_roundtrip(b.bootstrap, topic, 3, recs, reports)

    # the log continues where it ended
    more = [(p, f"after-{p}".encode(), f"after-restart-{p}".encode(), [("r", b"1")]) for p in range(3)]
    rep2 = produce(b.bootstrap, topic, more)
    assert [(p, off) for p, off, _ in rep2] == [(p, 200) for p in range(3)]
    got = consume_all(b.bootstrap, topic, 3, expected_total=603)
    for p in range(3):
        assert_contiguous(got[p])
        assert (got[p][200].key, got[p][200].value) == (f"after-{p}".encode(), f"after-restart-{p}".encode())

    # a second clean restart with no writes in between changes nothing
    b.restart()
    got2 = consume_all(b.bootstrap, topic, 3, expected_total=603)
    assert got2 == got


def test_topics_survive_restart(fresh_broker):
    b = fresh_broker
    names = {unique_topic("keep"): 1, unique_topic("keep"): 4}
    for n, parts in names.items():
        create_topic(b.bootstrap, n, parts)
    b.restart()
    for n, parts in names.items():
        wait_for_topic(b.bootstrap, n, parts, timeout=15)


def test_kill9_keeps_acknowledged_records(fresh_broker):
    """acks=all producer under load; kill -9 mid-load; every acknowledged record must be
    present after restart at the offset it was acknowledged with."""
    b = fresh_broker
    topic = unique_topic("crash")
    partitions = 3
    create_topic(b.bootstrap, topic, partitions)

    acked: dict[int, tuple[int, int]] = {}      # index -> (partition, offset)
    failed: dict[int, KafkaError] = {}
    payload = {}

    def cb_for(i):
        def cb(err, msg):
            if err is None:
                acked[i] = (msg.partition(), msg.offset())
            else:
                failed[i] = err
        return cb

    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 2, "batch.num.messages": 200, "message.timeout.ms": 10000,
                  "reconnect.backoff.max.ms": 500})
    max_records, kill_after, deadline = 60_000, 5_000, time.monotonic() + 60
    killed_at_acked = None
    killed_at = 0.0
    sent_after_kill = 0
    i = 0
    while i < max_records and time.monotonic() < deadline:
        if len(p) >= 4_000:  # bound what is outstanding; serve delivery reports
            p.poll(0.02)
        else:
            key = f"crash-{i}".encode()
            value = (f"v{i}:" * (1 + i % 9)).encode()
            payload[i] = (i % partitions, key, value)
            try:
                p.produce(topic, key=key, value=value, partition=i % partitions,
                          on_delivery=cb_for(i))
                i += 1
                if killed_at_acked is not None:
                    sent_after_kill += 1
            except BufferError:
                p.poll(0.02)
            if i % 50 == 0:
                p.poll(0)
        if killed_at_acked is None and len(acked) >= kill_after:
            b.kill9()  # mid-load: records are queued and in flight right now
            killed_at_acked, killed_at = len(acked), time.monotonic()
        elif killed_at_acked is not None and (sent_after_kill >= 2_000
                                              or time.monotonic() - killed_at > 3):
            break
    assert killed_at_acked is not None, \
        f"load ended before {kill_after} acks (acked {len(acked)}, failed {len(failed)})"
    # give up on whatever was not acknowledged; those outcomes are unknown
    p.purge(in_queue=True, in_flight=True)
    p.flush(15)
    del p
    n_acked = len(acked)
    assert n_acked >= kill_after
    print(f"kill -9 after {killed_at_acked} acks; produced {i}, acknowledged {n_acked}, "
          f"failed/purged {len(failed)}, sent after kill {sent_after_kill}")

    b.start()
    wait_for_topic(b.bootstrap, topic, partitions, timeout=30)
    got = consume_all(b.bootstrap, topic, partitions)

    missing, wrong = [], []
    for idx, (part, off) in acked.items():
        recs = got[part]
        if off >= len(recs) or recs[off].offset != off:
            found = [r for r in recs if r.offset == off]
            if not found:
                missing.append((idx, part, off))
                continue
            r = found[0]
        else:
            r = recs[off]
        _, key, value = payload[idx]
        if (r.key, r.value) != (key, value):
            wrong.append((idx, part, off, r.key))
    assert not missing, f"{len(missing)} of {n_acked} acknowledged records missing, e.g. {missing[:5]}"
    assert not wrong, f"{len(wrong)} acknowledged offsets hold other data, e.g. {wrong[:5]}"

    # the surviving log is gap-free and holds each produced record at most once
    seen = set()
    for part in range(partitions):
        assert_contiguous(got[part])
        for r in got[part]:
            assert r.key not in seen, f"duplicate record {r.key!r} (idempotent producer)"
            seen.add(r.key)
            idx = int(r.key.split(b"-")[1])
            assert payload[idx][0] == part and payload[idx][2] == r.value

    # and it accepts new writes after the crash, at the end of the log
    ends = {part: len(got[part]) for part in range(partitions)}
    rep = produce(b.bootstrap, topic, [(part, b"post", b"crash", []) for part in range(partitions)])
    assert [(part, off) for part, off, _ in rep] == [(part, ends[part]) for part in range(partitions)]

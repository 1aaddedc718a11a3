"""The Prometheus endpoint: scraped during and after a produce load, its counters
match what the client produced and consumed; consumer groups' committed offsets and
lag match what a consumer committed; /health answers; a debug-level log line names
each request's API, version, client id and duration."""
import re
import threading
import time
import urllib.request

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from conftest import Broker, free_port
from compat_util import consume_all, create_topic, make_records, produce, unique_topic

PARTITIONS = 3
N = 3000


def scrape(port: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples = {}
    for line in body.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples


def counter(samples: dict[str, float], name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return samples.get(f"{name}{{{want}}}" if want else name, 0.0)


@pytest.fixture
def metrics_broker(fluxo_bin, tmp_path_factory):
    base = tmp_path_factory.mktemp("metrics")
    port = free_port()
    # debug: the request log lines are checked; a short initial rebalance delay
    # keeps the group test fast.
    b = Broker(data_dir=base / "data", log_dir=base / "logs",
               extra_args=["--metrics-listener", f"127.0.0.1:{port}", "--log-level", "debug",
                           "--group-initial-rebalance-delay-ms", "100"])
    b.start()
    b.metrics_port = port
    yield b
    b.close()


def test_counters_match_what_was_produced_and_consumed(metrics_broker):
    b, port = metrics_broker, metrics_broker.metrics_port
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10).status == 200
    topic = unique_topic("metrics")
    create_topic(b.bootstrap, topic, PARTITIONS)
    recs = make_records(N, PARTITIONS, seed=11)

    # Scrape repeatedly while the load runs: counters only ever grow.
    stop = threading.Event()
    seen: list[float] = []

    def scraper():
        while not stop.is_set():
            seen.append(counter(scrape(port), "fluxo_topic_records_in_total", topic=topic))
            stop.wait(0.05)

    t = threading.Thread(target=scraper)
    t.start()
    try:
        reports = produce(b.bootstrap, topic, recs, conf={"linger.ms": 5, "batch.num.messages": 200})
    finally:
        stop.set()
        t.join()
    assert seen and seen == sorted(seen), f"records_in went backwards: {seen}"
    assert max(seen) <= N

    s = scrape(port)
    assert counter(s, "fluxo_topic_records_in_total", topic=topic) == N
    assert counter(s, "fluxo_topic_bytes_in_total", topic=topic) > 0
    assert counter(s, "fluxo_requests_total", api="Produce") >= 1
    per_partition = [sum(1 for r in reports if r[0] == p) for p in range(PARTITIONS)]
    for p in range(PARTITIONS):
        assert counter(s, "fluxo_partition_log_end_offset", topic=topic, partition=p) == per_partition[p]
        assert counter(s, "fluxo_partition_high_watermark", topic=topic, partition=p) == per_partition[p]
        assert counter(s, "fluxo_partition_log_start_offset", topic=topic, partition=p) == 0
    assert counter(s, "fluxo_connections") >= 0
    # Memory: the records just written sit in memtables (no flush yet at this size);
    # the allocator's resident pages cover what it has allocated.
    assert counter(s, "fluxo_storage_memtable_bytes") > 0
    assert counter(s, "fluxo_storage_block_cache_bytes") > 0
    assert 0 < counter(s, "fluxo_allocator_allocated_bytes") <= counter(s, "fluxo_allocator_resident_bytes")

    got = consume_all(b.bootstrap, topic, PARTITIONS, expected_total=N)
    assert sum(len(v) for v in got.values()) == N
    s = scrape(port)
    assert counter(s, "fluxo_topic_records_out_total", topic=topic) >= N
    assert counter(s, "fluxo_topic_bytes_out_total", topic=topic) >= counter(s, "fluxo_topic_bytes_in_total", topic=topic)
    assert re.search(r'fluxo_request_duration_seconds_count\{api="Fetch"\} [1-9]', urllib.request.urlopen(
        f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode())


def _values(topic_recs: list[tuple[int, int]]):
    """(partition, count) pairs as produce() tuples with distinct values."""
    return [(p, None, f"p{p}-{i}".encode(), []) for p, n in topic_recs for i in range(n)]


def test_group_committed_offsets_and_lag(metrics_broker):
    b, port = metrics_broker, metrics_broker.metrics_port
    topic = unique_topic("lag")
    group = "lag-" + topic
    create_topic(b.bootstrap, topic, PARTITIONS)
    produce(b.bootstrap, topic, _values([(0, 40), (1, 25), (2, 5)]))

    # A subscribed consumer reads everything, then commits 30 on partition 0 and
    # 25 (the end) on partition 1; nothing on partition 2.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "client.id": "lag-probe",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "enable.partition.eof": True, "fetch.wait.max.ms": 100})
    try:
        c.subscribe([topic])
        eof: set[int] = set()
        seen = 0
        deadline = time.monotonic() + 60
        while len(eof) < PARTITIONS or seen < 70:
            assert time.monotonic() < deadline, f"consumed {seen}/70 records, eof on {sorted(eof)}"
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(msg.partition())
                    continue
                raise KafkaException(msg.error())
            seen += 1
        committed = c.commit(offsets=[TopicPartition(topic, 0, 30), TopicPartition(topic, 1, 25)],
                             asynchronous=False)
        assert all(tp.error is None for tp in committed), committed
    finally:
        c.close()

    def group_sample(name, p):
        return counter(scrape(port), name, group=group, topic=topic, partition=p)

    s = scrape(port)
    assert counter(s, "fluxo_group_committed_offset", group=group, topic=topic, partition=0) == 30
    assert counter(s, "fluxo_group_lag", group=group, topic=topic, partition=0) == 10
    assert counter(s, "fluxo_group_committed_offset", group=group, topic=topic, partition=1) == 25
    assert counter(s, "fluxo_group_lag", group=group, topic=topic, partition=1) == 0
    label = f'{{group="{group}",topic="{topic}",partition="2"}}'
    assert f"fluxo_group_committed_offset{label}" not in s and f"fluxo_group_lag{label}" not in s

    # Lag follows the high watermark at scrape time: 7 more records on partition 1.
    produce(b.bootstrap, topic, _values([(1, 7)]))
    assert group_sample("fluxo_group_lag", 1) == 7
    assert group_sample("fluxo_group_committed_offset", 1) == 25
    assert group_sample("fluxo_group_lag", 0) == 10

    # A commit from outside the group (assign, no subscription) moves them too.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 40), TopicPartition(topic, 1, 29)], asynchronous=False)
    finally:
        c.close()
    assert [group_sample("fluxo_group_committed_offset", p) for p in (0, 1)] == [40, 29]
    assert [group_sample("fluxo_group_lag", p) for p in (0, 1)] == [0, 3]

    # The request log (debug level) names API, version, client id and duration.
    log = b.log_path.read_text(errors="replace")
    assert "\x1b[" not in log, "colour codes in a log that is not a terminal"
    lines = [ln for ln in log.splitlines() if "request done" in ln and 'client_id="lag-probe"' in ln]
    assert any("api=OffsetCommit version=" in ln for ln in lines), log[-3000:]
    for ln in lines:
        assert re.search(r'DEBUG .*request\{api=\w+ version=\d+ .*client_id="lag-probe".*request done '
                         r'elapsed_us=\d+$', ln), ln


def test_metrics_token_is_required_when_set(fluxo_bin, tmp_path_factory):
    """With metrics_token, /metrics answers 401 without `Authorization: Bearer <token>`
    (or with a wrong one) and the metrics with it; /health stays open."""
    import urllib.error
    base = tmp_path_factory.mktemp("metrics-token")
    port = free_port()
    b = Broker(data_dir=base / "data", log_dir=base / "logs",
               extra_args=["--metrics-listener", f"127.0.0.1:{port}", "--metrics-token", "s3cret-token"])
    b.start()
    try:
        def get(path: str, token: str | None):
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
            if token is not None:
                req.add_header("Authorization", f"Bearer {token}")
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()
        assert get("/metrics", None)[0] == 401
        assert get("/metrics", "wrong")[0] == 401
        status, body = get("/metrics", "s3cret-token")
        assert status == 200 and "fluxo_connections_accepted_total" in body, body[:500]
        assert get("/health", None) == (200, "ok\n")
    finally:
        b.close()

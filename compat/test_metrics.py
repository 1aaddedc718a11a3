"""The Prometheus endpoint: scraped during and after a produce load, its counters
match what the client produced and consumed; /health answers."""
import re
import threading
import urllib.request

import pytest

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
    b = Broker(data_dir=base / "data", log_dir=base / "logs",
               extra_args=["--metrics-listener", f"127.0.0.1:{port}"])
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

    got = consume_all(b.bootstrap, topic, PARTITIONS, expected_total=N)
    assert sum(len(v) for v in got.values()) == N
    s = scrape(port)
    assert counter(s, "fluxo_topic_records_out_total", topic=topic) >= N
    assert counter(s, "fluxo_topic_bytes_out_total", topic=topic) >= counter(s, "fluxo_topic_bytes_in_total", topic=topic)
    assert re.search(r'fluxo_request_duration_seconds_count\{api="Fetch"\} [1-9]', urllib.request.urlopen(
        f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode())

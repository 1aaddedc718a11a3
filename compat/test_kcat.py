"""kcat (Debian's build, librdkafka 2.0.x) against the broker."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from compat_util import consume_all

KCAT = shutil.which("kcat") or shutil.which("kafkacat")


# -f format: fields separated by the ASCII unit separator, records end with the
# record separator, so keys/values may contain tabs, spaces and newlines.
US, RS = "\x1f", "\x1e"
FMT = f"%t{US}%p{US}%o{US}%k{US}%s{US}%h{US}%K{US}%S{RS}"


def kcat(*args, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    assert KCAT, "kcat is not installed (run compat/setup.sh)"
    cmd = [KCAT, *args]
    r = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    assert r.returncode == 0, (f"{' '.join(cmd)} exited {r.returncode}\n"
                               f"stderr: {r.stderr.decode(errors='replace')[-3000:]}")
    return r


def kcat_consume(bootstrap: str, topic: str, *extra: str) -> list[dict]:
    r = kcat("-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
             "-f", FMT, *extra)
    out = []
    for chunk in r.stdout.decode().split(RS):
        if not chunk:
            continue
        t, p, o, k, s, h, klen, slen = chunk.split(US)
        out.append({"topic": t, "partition": int(p), "offset": int(o), "key": k, "value": s,
                    "headers": h, "key_len": int(klen), "value_len": int(slen)})
    return out


def test_kcat_metadata(broker, new_topic):
    topic = new_topic(3, "kcatmd")
    r = kcat("-b", broker.bootstrap, "-L", "-J", "-t", topic)
    md = json.loads(r.stdout)
    assert [b["id"] for b in md["brokers"]] == [1]
    assert md["brokers"][0]["name"] == f"127.0.0.1:{broker.port}"
    [t] = md["topics"]
    assert t["topic"] == topic
    assert "error" not in t, t
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2]
    for p in t["partitions"]:
        assert p["leader"] == 1
        assert [r["id"] for r in p["replicas"]] == [1]
        assert [r["id"] for r in p["isrs"]] == [1]

    # plain-text listing of all topics names the topic and the broker
    text = kcat("-b", broker.bootstrap, "-L").stdout.decode()
    assert f'topic "{topic}" with 3 partitions' in text
    assert f"broker 1 at 127.0.0.1:{broker.port}" in text


def test_kcat_produce_keys_consume_format(broker, new_topic):
    topic = new_topic(1, "kcat")
    lines = [f"key{i}:value number {i}" for i in range(40)]
    lines.append("k-empty-value:")
    data = ("\n".join(lines) + "\n").encode()
    kcat("-b", broker.bootstrap, "-P", "-t", topic, "-p", "0", "-K", ":", input=data)

    recs = kcat_consume(broker.bootstrap, topic)
    assert len(recs) == 41
    assert [r["offset"] for r in recs] == list(range(41))
    assert all(r["partition"] == 0 and r["topic"] == topic for r in recs)
    for i, r in enumerate(recs[:40]):
        assert (r["key"], r["value"]) == (f"key{i}", f"value number {i}")
        assert r["key_len"] == len(f"key{i}") and r["value_len"] == len(f"value number {i}")
    assert (recs[40]["key"], recs[40]["value"], recs[40]["value_len"]) == ("k-empty-value", "", 0)

    # the same data seen through another client, byte for byte
    got = consume_all(broker.bootstrap, topic, 1, expected_total=41)[0]
    assert [(g.offset, g.key, g.value) for g in got][:40] == \
        [(i, f"key{i}".encode(), f"value number {i}".encode()) for i in range(40)]
    assert (got[40].key, got[40].value) == (b"k-empty-value", b"")


def test_kcat_headers_and_partitions(broker, new_topic):
    topic = new_topic(3, "kcath")
    for p in range(3):
        data = "".join(f"p{p}k{i}|p{p}-v{i}\n" for i in range(5)).encode()
        kcat("-b", broker.bootstrap, "-P", "-t", topic, "-p", str(p), "-K", "|",
             "-H", f"src=kcat-{p}", "-H", "kind=test", input=data)
    recs = kcat_consume(broker.bootstrap, topic)
    assert len(recs) == 15
    by_p: dict[int, list[dict]] = {}
    for r in recs:
        by_p.setdefault(r["partition"], []).append(r)
    assert sorted(by_p) == [0, 1, 2]
    for p, rs in by_p.items():
        assert [r["offset"] for r in rs] == list(range(5)), "per-partition order/offsets"
        assert [(r["key"], r["value"]) for r in rs] == [(f"p{p}k{i}", f"p{p}-v{i}") for i in range(5)]
        for r in rs:
            assert r["headers"] == f"src=kcat-{p},kind=test", r["headers"]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_kcat_compressed_produce(broker, new_topic, codec):
    topic = new_topic(1, f"kcatz-{codec}")
    lines = [f"k{i}\t" + ("compressible payload %d " % i) * 20 for i in range(200)]
    kcat("-b", broker.bootstrap, "-P", "-t", topic, "-p", "0", "-K", "\t", "-z", codec,
         "-X", "linger.ms=50", input=("\n".join(lines) + "\n").encode())
    recs = kcat_consume(broker.bootstrap, topic)
    assert [r["offset"] for r in recs] == list(range(200))
    assert [(r["key"], r["value"]) for r in recs] == [tuple(l.split("\t", 1)) for l in lines]


def test_kcat_consume_from_offset_and_count(broker, new_topic):
    topic = new_topic(1, "kcatoff")
    kcat("-b", broker.bootstrap, "-P", "-t", topic, "-p", "0",
         input="".join(f"m{i}\n" for i in range(30)).encode())
    r = kcat("-b", broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "12", "-c", "5", "-q",
             "-f", "%o=%s\n")
    assert r.stdout.decode().splitlines() == [f"{i}=m{i}" for i in range(12, 17)]
    # negative offset: relative to the end
    r = kcat("-b", broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "-3", "-e", "-q",
             "-f", "%o=%s\n")
    assert r.stdout.decode().splitlines() == [f"{i}=m{i}" for i in range(27, 30)]

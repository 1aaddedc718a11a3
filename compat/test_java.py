"""The Apache Kafka Java client (kafka-clients 4.3.0) against the broker.

The probes in compat/java/*.java are compiled at test time against the jars
that compat/setup.sh puts in compat/java/lib/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from compat_util import consume_all, unique_topic
from compat_util import produce as rk_produce

JAVA_DIR = Path(__file__).resolve().parent / "java"
LIB = JAVA_DIR / "lib"


@pytest.fixture(scope="session")
def java_cp(tmp_path_factory) -> str:
    javac, java = shutil.which("javac"), shutil.which("java")
    assert javac and java, "javac/java not found: run compat/setup.sh"
    jars = sorted(LIB.glob("*.jar"))
    names = " ".join(j.name for j in jars)
    for want in ("kafka-clients-", "lz4-java-", "zstd-jni-", "snappy-java-", "slf4j-api-"):
        assert want in names, f"{want}*.jar missing from {LIB}: run compat/setup.sh"
    out = tmp_path_factory.mktemp("javabuild")
    cp = f"{LIB}/*"
    r = subprocess.run([javac, "-d", str(out), "-cp", cp, *map(str, sorted(JAVA_DIR.glob("*.java")))],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, f"javac failed:\n{r.stdout}\n{r.stderr}"
    return f"{out}{os.pathsep}{cp}"


def run_java(cp: str, main: str, *args: str, input: str | None = None, timeout: float = 90):
    cmd = ["java", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", cp, main, *args]
    r = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    stderr = "\n".join(l for l in r.stderr.splitlines() if not l.startswith("SLF4J"))
    assert r.returncode == 0, f"{main} exited {r.returncode}\nstdout:\n{r.stdout[-3000:]}\nstderr:\n{stderr[-5000:]}"
    lines = [l.split("\t") for l in r.stdout.splitlines()]
    assert lines and lines[-1] == ["DONE"], f"{main} did not finish:\n{r.stdout[-3000:]}\n{stderr[-3000:]}"
    return lines


def hx(b: bytes | None) -> str:
    return "-" if b is None else b.hex()


def unhx(s: str) -> bytes | None:
    return None if s == "-" else bytes.fromhex(s)


def parse_recs(lines):
    recs = {}
    for f in lines:
        if f[0] == "REC":
            p, off, ts = int(f[1]), int(f[2]), int(f[3])
            hdrs = [(h.split("=", 1)[0], unhx(h.split("=", 1)[1])) for h in f[6:]]
            recs.setdefault(p, []).append((off, unhx(f[4]), unhx(f[5]), hdrs, ts))
    return recs


def java_consume(cp, bootstrap, topic, expected, starts: dict):
    lines = run_java(cp, "ConsumeProbe", bootstrap, topic, str(expected),
                     *[f"{p}:{o}" for p, o in starts.items()])
    assert not [f for f in lines if f[0] == "TIMEOUT"], f"consumer timed out: {lines[-5:]}"
    info = {(f[0], int(f[1])): int(f[2]) for f in lines if f[0] in ("BEGIN", "END", "POSITION")}
    return parse_recs(lines), info


def test_java_admin(broker, java_cp):
    topic, temp = unique_topic("jadm"), unique_topic("jtmp")
    lines = run_java(java_cp, "AdminProbe", broker.bootstrap, topic, "3", temp)
    kinds = {}
    for f in lines:
        kinds.setdefault(f[0], []).append(f[1:])
    assert kinds["CREATED"] == [[topic, temp]]
    listed = {f[0] for f in kinds["LISTED"]}
    assert {topic, temp} <= listed
    assert kinds["TOPIC"] == [[topic, "3", "false"]]
    assert sorted(kinds["PARTITION"]) == [[str(p), "1", "1", "1"] for p in range(3)]
    [[cluster_id, controller]] = kinds["CLUSTER"]
    assert cluster_id and cluster_id != "null"
    assert controller == "1"
    assert kinds["NODE"] == [["1", "127.0.0.1", str(broker.port)]]
    configs = {f[0]: f[1] for f in kinds.get("CONFIG", [])}
    assert configs.get("cleanup.policy") == "delete", f"topic configs: {configs}"
    assert kinds["DELETED"] == [[temp]]


def _records(n: int, partitions: int):
    recs = []
    for i in range(n):
        key = None if i % 13 == 4 else f"jkey-{i}".encode()
        value = b"" if i % 19 == 2 else bytes((i * 7 + j) % 256 for j in range(i % 97)) + b"|" + str(i).encode()
        headers = [] if i % 6 == 0 else [("seq", str(i).encode()), ("bin", b"\x00\x01\xfe\xff"),
                                          ("dup", b"a"), ("dup", b"b")]
        recs.append((i % partitions, key, value, headers))
    return recs


def _produce_java(cp, bootstrap, topic, recs, *conf):
    stdin = "".join("\t".join([str(p), hx(k), hx(v), *[f"{hn}={hx(hv)}" for hn, hv in h]]) + "\n"
                    for p, k, v, h in recs)
    lines = run_java(cp, "ProduceProbe", bootstrap, topic, *conf, input=stdin)
    acks = [(int(f[1]), int(f[2]), int(f[3])) for f in lines if f[0] == "ACK"]
    assert [a[0] for a in acks] == list(range(len(recs)))
    return [(p, off) for _, p, off in acks]


@pytest.mark.parametrize("compression", ["none", "zstd", "lz4", "snappy", "gzip"])
def test_java_producer_default_idempotent(broker, new_topic, java_cp, compression):
    """Default KafkaProducer (enable.idempotence=true, acks=all), read back by librdkafka."""
    topic = new_topic(2, f"jprod-{compression}")
    recs = _records(120, 2)
    acks = _produce_java(java_cp, broker.bootstrap, topic, recs, f"compression.type={compression}",
                         "linger.ms=20")
    for p in range(2):
        assert [o for pp, o in acks if pp == p] == list(range(60)), f"partition {p} offsets"
    got = consume_all(broker.bootstrap, topic, 2, expected_total=120)
    for (p, k, v, h), (ap, off) in zip(recs, acks):
        assert ap == p
        r = got[p][off]
        assert (r.offset, r.key, r.value) == (off, k, v)
        assert list(r.headers or []) == h


def test_java_consumer_assign_seek(broker, new_topic, java_cp):
    """librdkafka-produced records read by the Java consumer, from the start and mid-way."""
    topic = new_topic(3, "jcons")
    recs = _records(90, 3)
    reports = rk_produce(broker.bootstrap, topic, recs, {"compression.type": "lz4"})
    got, info = java_consume(java_cp, broker.bootstrap, topic, 90,
                             {0: "beginning", 1: "beginning", 2: "beginning"})
    for p in range(3):
        assert (info[("BEGIN", p)], info[("END", p)], info[("POSITION", p)]) == (0, 30, 30)
        assert [r[0] for r in got[p]] == list(range(30)), f"partition {p} offsets"
    for (p, k, v, h), (rp, off, _) in zip(recs, reports):
        assert got[p][off][:4] == (off, k, v, h)

    got, info = java_consume(java_cp, broker.bootstrap, topic, 8, {1: 22})
    assert [r[0] for r in got[1]] == list(range(22, 30))
    assert [r[1] for r in got[1]] == [k for (p, k, _, _), (_, o, _) in zip(recs, reports) if p == 1 and o >= 22]
    assert info[("POSITION", 1)] == 30


def test_java_roundtrip(broker, new_topic, java_cp):
    """Java producer -> Java consumer, timestamps included."""
    topic = new_topic(1, "jrt")
    recs = _records(50, 1)
    lines_in = _produce_java(java_cp, broker.bootstrap, topic, recs)
    assert lines_in == [(0, i) for i in range(50)]
    got, info = java_consume(java_cp, broker.bootstrap, topic, 50, {0: "0"})
    assert [(o, k, v, h) for o, k, v, h, _ in got[0]] == [(i, k, v, h) for i, (_, k, v, h) in enumerate(recs)]
    assert all(ts > 0 for *_, ts in got[0])

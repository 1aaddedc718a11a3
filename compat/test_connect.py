"""Kafka Connect 4.3 (distributed mode) runs unchanged on the broker.

A real `ConnectDistributed` worker (jars from compat/java/connect-lib/ and
compat/java/lib/, put there by compat/setup.sh) keeps its configs, source offsets and
statuses in compacted topics it creates on the broker, runs its herder as a member of a
classic group (protocol type "connect") and its sink task in a consumer group. A
FileStreamSource -> topic -> FileStreamSink pipeline must copy a file byte for byte, and
after the worker is stopped (SIGTERM), the file grows and the worker starts again, the
source resumes from the position committed in the offsets topic and the sink from its
group's committed offsets: no line lost, none duplicated.

jetty-security 12 is not in the wheel; Connect's REST server only names its
`SecurityHandler` type, so java/connect/SecurityHandler.java (an empty stand-in) is
compiled onto the worker's classpath.

FileStreamSourceTask records its position in chars but skips bytes when it resumes, so
a file whose already-read part holds multi-byte UTF-8 would resume at the wrong place (a
connector limitation, not the broker's). The part read before the restart is therefore
ASCII (varied, with long lines); the part appended for the restart is UTF-8 of every
width, read once by the resumed task.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka.admin import ConfigResource

from compat_util import admin_client, consume_all, unique_topic
from conftest import COMPAT_DIR, _die_with_parent, _make_broker, _start_or_fail, free_port

JAVA_DIR = COMPAT_DIR / "java"
LIB = JAVA_DIR / "lib"
CONNECT_LIB = JAVA_DIR / "connect-lib"
STANDIN = JAVA_DIR / "connect" / "SecurityHandler.java"

PHASE1_LINES = 3000
PHASE2_LINES = 1000
OFFSET_PARTITIONS = 3
STATUS_PARTITIONS = 2
DEADLINE = 60.0  # seconds for each wait below

pytestmark = pytest.mark.timeout(180)


# ---------------------------------------------------------------------------
# jars and classpath
# ---------------------------------------------------------------------------

def _jars_present() -> bool:
    names = " ".join(p.name for p in list(CONNECT_LIB.glob("*.jar")) + list(LIB.glob("*.jar")))
    want = ("connect-runtime-", "connect-api-", "connect-json-", "connect-file-",
            "connect-transforms-", "jetty-server-12", "jersey-server-", "kafka-clients-")
    return all(w in names for w in want) and bool(shutil.which("java")) and bool(shutil.which("javac"))


@pytest.fixture(scope="module")
def connect_cp(tmp_path_factory) -> str:
    """The worker's classpath; runs compat/setup.sh once if the jars are missing.
    Skips only when setup could not provide them and this is not CI."""
    if not _jars_present():
        r = subprocess.run(["bash", str(COMPAT_DIR / "setup.sh")], capture_output=True, text=True,
                           timeout=600)
        if not _jars_present():
            msg = (f"Kafka Connect jars or a JDK missing and compat/setup.sh could not install them "
                   f"(exit {r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
            if os.environ.get("CI"):
                pytest.fail(msg, pytrace=False)
            pytest.skip(msg)
    out = tmp_path_factory.mktemp("connect-classes")
    r = subprocess.run(["javac", "-d", str(out), "-cp", f"{CONNECT_LIB}/*{os.pathsep}{LIB}/*",
                        str(STANDIN)], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, f"javac failed:\n{r.stdout}\n{r.stderr}"
    return os.pathsep.join([str(out), f"{CONNECT_LIB}/*", f"{LIB}/*"])


@pytest.fixture(scope="module")
def broker(fluxo_bin, tmp_path_factory):
    """This module's broker: no initial rebalance delay, so the herder's group forms at once."""
    b = _make_broker(tmp_path_factory, "broker", extra_args=["--group-initial-rebalance-delay-ms", "0"])
    _start_or_fail(b)
    yield b
    b.close()


# ---------------------------------------------------------------------------
# the worker
# ---------------------------------------------------------------------------

LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.jetty.name = org.eclipse.jetty
logger.jetty.level = WARN
"""


class Worker:
    """One ConnectDistributed process; its output goes to a log file per start."""

    def __init__(self, cp: str, bootstrap: str, work: Path, group: str):
        self.cp = cp
        self.work = work
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.starts = 0
        self.props = work / "worker.properties"
        self.props.write_text("\n".join(f"{k}={v}" for k, v in {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "config.storage.topic": f"{group}-configs",
            "offset.storage.topic": f"{group}-offsets",
            "status.storage.topic": f"{group}-status",
            "config.storage.replication.factor": 1,
            "offset.storage.replication.factor": 1,
            "status.storage.replication.factor": 1,
            "offset.storage.partitions": OFFSET_PARTITIONS,
            "status.storage.partitions": STATUS_PARTITIONS,
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
            "listeners": f"http://127.0.0.1:{self.port}",
            "rest.advertised.host.name": "127.0.0.1",
            "rest.advertised.port": self.port,
            "offset.flush.interval.ms": 300,
            "scheduled.rebalance.max.delay.ms": 1000,
        }.items()) + "\n")
        self.log4j = work / "log4j2.properties"
        self.log4j.write_text(LOG4J2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Worker":
        assert self.proc is None or self.proc.poll() is not None, "worker already running"
        self.starts += 1
        self.log_path = self.work / f"worker-start{self.starts}.log"
        cmd = ["java", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-Xmx512m",
               f"-Dlog4j2.configurationFile={self.log4j}", "-cp", self.cp,
               "org.apache.kafka.connect.cli.ConnectDistributed", str(self.props)]
        with open(self.log_path, "wb") as fh:
            fh.write(("$ " + " ".join(cmd) + "\n").encode())
            fh.flush()
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=_die_with_parent, cwd=self.work)
        # Up once the herder has joined its group and read the config topic: until then
        # /connectors answers 409 (rebalance in progress) or is not served yet.
        wait_for(lambda: self._connectors_ready(), "the worker's REST API to serve /connectors")
        return self

    def _connectors_ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited with {self.proc.returncode}\n{self.log_tail()}")
        try:
            status, _ = self.request("GET", "/connectors")
        except OSError:
            return False
        return status == 200

    def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM (a graceful shutdown: tasks stop, offsets are committed) and wait."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"worker did not exit within {timeout:.0f}s of SIGTERM\n"
                                 + self.log_tail())

    def kill(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def request(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")

    def log_tail(self, n: int = 80) -> str:
        if not self.log_path or not self.log_path.exists():
            return "(no worker log)"
        lines = self.log_path.read_text(errors="replace").splitlines()
        return f"--- last {min(n, len(lines))} lines of {self.log_path} ---\n" + "\n".join(lines[-n:])


@pytest.fixture
def worker_factory(connect_cp, broker, tmp_path, request):
    """Builds workers; each is killed at teardown even when the test failed, and the
    tail of its log is printed if the test failed."""
    made: list[Worker] = []

    def make(group: str) -> Worker:
        w = Worker(connect_cp, broker.bootstrap, tmp_path, group)
        made.append(w)
        return w

    yield make
    failed = any(getattr(request.node, "rep_" + s, None) is not None
                 and getattr(request.node, "rep_" + s).failed for s in ("setup", "call"))
    for w in made:
        if failed:
            sys.stderr.write("\n" + w.log_tail() + "\n")
        w.kill()


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def wait_for(cond, what: str, timeout: float = DEADLINE):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def ascii_lines(n: int, seed: int) -> list[str]:
    """Varied printable ASCII (no CR: FileStreamSource splits on it), empty lines, long lines."""
    rnd = random.Random(seed)
    alphabet = "".join(chr(c) for c in range(0x20, 0x7f)) + "\t"
    out = []
    for i in range(n):
        if i % 97 == 13:
            body = ""
        elif i % 501 == 250:
            body = "".join(rnd.choice(alphabet) for _ in range(40_000))
        elif i % 7 == 0:
            body = json.dumps({"i": i, "k": f"key-{i}", "q": 'a "quoted" \\ value'})
        else:
            body = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 300)))
        out.append(f"{i}:{body}" if body else "")
    return out


def utf8_lines(n: int, start: int, seed: int) -> list[str]:
    """UTF-8 of 1 to 4 bytes a char (accents, CJK, emoji as surrogate pairs, RTL,
    combining marks, NUL, DEL), plus a few long lines."""
    rnd = random.Random(seed)
    pieces = ["é", "ß", "ø", "Ω", "Ж", "漢字", "日本語", "한국어", "🙂", "🚀", "𝄞", "שלום",
              "مرحبا", "e\u0301", "\u00a0", "\x00", "\x7f", "\t", "plain ascii", "€", "\u2028"]
    out = []
    for i in range(start, start + n):
        if i % 333 == 100:
            body = "".join(rnd.choice(pieces) for _ in range(8_000))
        else:
            body = "".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 60)))
        out.append(f"{i}:{body}")
    return out


def write_lines(path: Path, lines: list[str], mode: str) -> None:
    with open(path, mode, encoding="utf-8", newline="") as f:
        for line in lines:
            assert "\r" not in line and "\n" not in line
            f.write(line + "\n")


def output_complete(path: Path, want: bytes) -> bytes | None:
    """The output once it is at least as long as `want` (else None)."""
    got = path.read_bytes() if path.exists() else b""
    return got if len(got) >= len(want) else None


def diff_hint(got: bytes, want: bytes) -> str:
    g, w = got.split(b"\n"), want.split(b"\n")
    for i, (a, b) in enumerate(zip(g, w)):
        if a != b:
            return f"first difference at line {i + 1}: got {a[:120]!r}, want {b[:120]!r}"
    return f"got {len(g)} lines, want {len(w)}"


def connector_offsets(w: Worker, name: str) -> list[dict]:
    """GET /connectors/{name}/offsets (KIP-875): what the worker reads back from the
    offsets topic (source) or the consumer group's committed offsets (sink)."""
    status, body = w.request("GET", f"/connectors/{name}/offsets")
    assert status == 200, f"offsets of {name}: {status} {body}"
    return body["offsets"]


def wait_offsets(w: Worker, src: str, sink: str, input_path: Path, position: int, records: int):
    """Both connectors' committed offsets reach the end of the input: the source's
    position (chars == bytes for the ASCII part) and the sink's next offset."""
    want_src = [{"partition": {"filename": str(input_path)}, "offset": {"position": position}}]

    def src_done():
        got = connector_offsets(w, src)
        return got == want_src or None

    def sink_done():
        got = connector_offsets(w, sink)
        return [o["offset"]["kafka_offset"] for o in got] == [records] or None

    try:
        wait_for(src_done, f"the source's committed position {position}")
    except AssertionError as e:
        raise AssertionError(f"{e}; last: {connector_offsets(w, src)}") from None
    try:
        wait_for(sink_done, f"the sink's committed offset {records}")
    except AssertionError as e:
        raise AssertionError(f"{e}; last: {connector_offsets(w, sink)}") from None


def wait_running(w: Worker, name: str):
    def running():
        status, body = w.request("GET", f"/connectors/{name}/status")
        if status != 200:
            return None
        tasks = body.get("tasks", [])
        failed = [t for t in tasks if t["state"] == "FAILED"] + (
            [body["connector"]] if body["connector"]["state"] == "FAILED" else [])
        assert not failed, f"{name} failed: {json.dumps(body)[:3000]}"
        return (body["connector"]["state"] == "RUNNING" and tasks
                and all(t["state"] == "RUNNING" for t in tasks)) or None
    wait_for(running, f"{name} and its task to run")


# ---------------------------------------------------------------------------
# the test
# ---------------------------------------------------------------------------

def test_file_pipeline_survives_worker_restart(broker, worker_factory, tmp_path):
    group = unique_topic("connect")
    topic = unique_topic("lines")
    src, sink = "file-source", "file-sink"
    input_path, output_path = tmp_path / "input.txt", tmp_path / "output.txt"

    phase1 = ascii_lines(PHASE1_LINES, seed=13)
    write_lines(input_path, phase1, "w")
    want = input_path.read_bytes()

    w = worker_factory(group).start()
    status, body = w.request("POST", "/connectors", {"name": src, "config": {
        "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "tasks.max": "1", "file": str(input_path), "topic": topic}})
    assert status == 201, f"create {src}: {status} {body}"
    status, body = w.request("POST", "/connectors", {"name": sink, "config": {
        "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
        "tasks.max": "1", "file": str(output_path), "topics": topic}})
    assert status == 201, f"create {sink}: {status} {body}"
    wait_running(w, src)
    wait_running(w, sink)
    # A connector deleted before the restart: its config becomes tombstones (null values)
    # in the config topic, which the restarted worker must read back as "deleted".
    status, body = w.request("POST", "/connectors", {"name": "doomed", "config": {
        "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
        "tasks.max": "1", "file": str(tmp_path / "doomed.txt"), "topics": unique_topic("doomed")}})
    assert status == 201, f"create doomed: {status} {body}"
    wait_running(w, "doomed")

    got = wait_for(lambda: output_complete(output_path, want), "the sink to write every line")
    assert got == want, "output differs from input: " + diff_hint(got, want)

    # The worker's internal topics: created by the worker through CreateTopics with
    # cleanup.policy=compact and the partition counts it was given.
    admin = admin_client(broker.bootstrap)
    internal = {f"{group}-configs": 1, f"{group}-offsets": OFFSET_PARTITIONS,
                f"{group}-status": STATUS_PARTITIONS}
    md = admin.list_topics(timeout=10)
    for name, partitions in internal.items():
        assert name in md.topics, f"{name} missing: {sorted(md.topics)}"
        assert len(md.topics[name].partitions) == partitions, name
    futs = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, n) for n in internal])
    for res, fut in futs.items():
        assert fut.result(timeout=20)["cleanup.policy"].value == "compact", res.name

    # Committed offsets read back through the worker: the source's position in the
    # offsets topic, the sink's in its consumer group.
    wait_offsets(w, src, sink, input_path, len(want), PHASE1_LINES)

    status, body = w.request("DELETE", "/connectors/doomed")
    assert status == 204, f"delete doomed: {status} {body}"
    wait_for(lambda: sorted(w.request("GET", "/connectors")[1]) == sorted([src, sink]),
             "the deleted connector to go")

    # Restart: stop the worker, grow the input, start it again.
    w.stop()
    phase2 = utf8_lines(PHASE2_LINES, PHASE1_LINES, seed=29)
    write_lines(input_path, phase2, "a")
    want = input_path.read_bytes()
    w.start()
    status, names = w.request("GET", "/connectors")
    assert (status, sorted(names)) == (200, sorted([src, sink])), "connectors after the restart"
    wait_running(w, src)
    wait_running(w, sink)

    got = wait_for(lambda: output_complete(output_path, want), "the sink to write the appended lines")
    assert got == want, "output differs from input after the restart: " + diff_hint(got, want)
    # Positions are in chars: the whole file is len(text) chars (UTF-16 units in Java).
    text = want.decode("utf-8")
    java_chars = len(text.encode("utf-16-le")) // 2
    wait_offsets(w, src, sink, input_path, java_chars, PHASE1_LINES + PHASE2_LINES)

    # The topic holds every line exactly once, in order (the source re-sent nothing).
    recs = consume_all(broker.bootstrap, topic, 1, expected_total=PHASE1_LINES + PHASE2_LINES)[0]
    assert [r.offset for r in recs] == list(range(PHASE1_LINES + PHASE2_LINES))
    assert [r.value for r in recs] == [line.encode() for line in phase1 + phase2]
    # And the output still has nothing more (no late duplicates from the sink).
    assert output_path.read_bytes() == want
    w.stop()

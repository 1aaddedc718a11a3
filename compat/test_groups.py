"""Consumer groups with real clients: partitions split between members, committed
offsets survive a restart of the members, a killed member's partitions move to the
survivors within the session timeout, a static member restarts without a rebalance.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from compat_util import admin_client, create_topic, produce, unique_topic
from conftest import _make_broker, _start_or_fail

PARTITIONS = 4
SESSION_MS = 6000  # the broker's minimum
# KIP-848 members' session timeout, set on the broker (Kafka's default is 45 s).
CONSUMER_SESSION_MS = 10000


@pytest.fixture(scope="module")
def broker(fluxo_bin, tmp_path_factory):
    """This module's broker: KIP-848 sessions shortened so that a killed member is fenced fast."""
    b = _make_broker(tmp_path_factory, "broker", extra_args=[
        "--group-consumer-session-timeout-ms", str(CONSUMER_SESSION_MS),
        "--group-consumer-heartbeat-interval-ms", "1000"])
    _start_or_fail(b)
    yield b
    b.close()


def produce_values(bootstrap: str, topic: str, start: int, count: int, partitions: int = PARTITIONS):
    """Records "v<i>" for i in [start, start+count), round-robin over the partitions."""
    produce(bootstrap, topic, [(i % partitions, None, f"v{i}".encode(), None) for i in range(start, start + count)])


def committed(bootstrap: str, group: str, topic: str, partitions: int = PARTITIONS) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=20)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


class Member:
    """What one member saw: records (partition, offset, value) and the partitions it held."""

    def __init__(self, name: str):
        self.name = name
        self.records: list[tuple[int, int, str]] = []
        self.assigned: set[int] = set()
        self.ever_assigned: set[int] = set()
        self.lock = threading.Lock()

    def add(self, partition: int, offset: int, value: bytes):
        with self.lock:
            self.records.append((partition, offset, value.decode()))

    def assign(self, partitions):
        partitions = set(partitions)
        with self.lock:
            self.assigned |= partitions
            self.ever_assigned |= partitions

    def revoke(self, partitions):
        with self.lock:
            self.assigned -= set(partitions)


def seen_values(members) -> set[str]:
    return {v for m in members for (_, _, v) in m.records}


def wait_until(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.1)


def check_split_and_resume(run_round, bootstrap: str, topic: str, group: str):
    """Round 1 reads records 0..99 with two members, round 2 (new members, same group)
    must resume at the committed offsets and read exactly records 100..199."""
    produce_values(bootstrap, topic, 0, 100)
    members = run_round(lambda ms: len(seen_values(ms)) >= 100)
    assert seen_values(members) == {f"v{i}" for i in range(100)}, "round 1: every record consumed"
    for m in members:
        assert m.ever_assigned, f"round 1: {m.name} never got a partition"
    assert members[0].ever_assigned | members[1].ever_assigned == set(range(PARTITIONS))
    assert committed(bootstrap, group, topic) == {p: 25 for p in range(PARTITIONS)}, "round 1 commits"

    produce_values(bootstrap, topic, 100, 100)
    members = run_round(lambda ms: len(seen_values(ms)) >= 100)
    recs = [r for m in members for r in m.records]
    assert {v for (_, _, v) in recs} == {f"v{i}" for i in range(100, 200)}, "round 2: exactly the new records"
    assert all(off >= 25 for (_, off, _) in recs), "round 2 resumed from the committed offsets"
    assert len(recs) == 100, "round 2: no record twice"
    for m in members:
        assert m.ever_assigned, f"round 2: {m.name} never got a partition"
    assert committed(bootstrap, group, topic) == {p: 50 for p in range(PARTITIONS)}, "round 2 commits"


def run_in_threads(members, run, done, stop: threading.Event, errors: list):
    """Runs `run(member)` in a thread per member until `done()`, then stops them;
    fails with the members' errors, if any."""
    threads = [threading.Thread(target=run, args=(m,)) for m in members]
    for t in threads:
        t.start()
    try:
        wait_until(done, 40, "both members to consume the records")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    return members


# --------------------------------------------------------------------------- confluent-kafka

@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_confluent_kafka_group_splits_commits_and_resumes(broker, new_topic, strategy):
    topic = new_topic(PARTITIONS, "grp-ck")
    group = unique_topic("ck-group")

    def run_round(done):
        members = [Member("a"), Member("b")]
        stop = threading.Event()
        errors = []

        def run(m: Member):
            c = Consumer({
                "bootstrap.servers": broker.bootstrap, "group.id": group,
                "auto.offset.reset": "earliest", "enable.auto.commit": False,
                "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 1000,
                "partition.assignment.strategy": strategy,
            })
            try:
                c.subscribe([topic], on_assign=lambda _, ps: m.assign(p.partition for p in ps),
                            on_revoke=lambda _, ps: m.revoke(p.partition for p in ps),
                            on_lost=lambda _, ps: m.revoke(p.partition for p in ps))
                while not stop.is_set():
                    msg = c.poll(0.2)
                    if msg is None:
                        continue
                    if msg.error():
                        errors.append(msg.error())
                        continue
                    m.add(msg.partition(), msg.offset(), msg.value())
                    try:
                        c.commit(message=msg, asynchronous=False)
                    except KafkaException as e:
                        # A rebalance moved on: the next owner resumes from the last commit.
                        if not e.args[0].retriable() and e.args[0].code() not in (
                                KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION,
                                KafkaError.UNKNOWN_MEMBER_ID):
                            raise
            except Exception as e:  # surfaced by the assertions below
                errors.append(e)
            finally:
                c.close()

        return run_in_threads(members, run, lambda: done(members), stop, errors)

    check_split_and_resume(run_round, broker.bootstrap, topic, group)


def test_confluent_kafka_static_member_restart_causes_no_rebalance(broker, new_topic):
    """Member "a" restarts with the same group.instance.id within the session timeout:
    member "b" sees no revocation or new assignment, "a" gets its partitions back."""
    topic = new_topic(PARTITIONS, "grp-static")
    group = unique_topic("static-group")
    produce_values(broker.bootstrap, topic, 0, 40)
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000}
    events = {"a": [], "b": []}

    def consumer(name):
        c = Consumer({**conf, "group.instance.id": f"instance-{name}"})
        c.subscribe([topic], on_assign=lambda _, ps: events[name].append(("assign", sorted(p.partition for p in ps))),
                    on_revoke=lambda _, ps: events[name].append(("revoke", sorted(p.partition for p in ps))))
        return c

    a, b = consumer("a"), consumer("b")
    seen = set()

    def pump(consumers, until, timeout, what):
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, f"timed out: {what}; events {events}"
            for c in consumers:
                msg = c.poll(0.1)
                if msg is not None and not msg.error():
                    seen.add(msg.value())
                    c.commit(message=msg, asynchronous=False)

    pump([a, b], lambda: len(seen) == 40 and events["a"] and events["b"], 40, "initial consumption")
    a_parts, b_parts = events["a"][-1][1], events["b"][-1][1]
    assert sorted(a_parts + b_parts) == list(range(PARTITIONS)) and a_parts and b_parts, events
    b_events = list(events["b"])
    a.close()  # a static member does not leave the group on close
    events["a"].clear()
    a = consumer("a")
    produce_values(broker.bootstrap, topic, 40, 40)
    pump([a, b], lambda: len(seen) == 80 and events["a"], 30, "the restarted member's records")
    # Both keep polling a little longer: a rebalance would show up as callbacks.
    settled = time.monotonic() + 3
    pump([a, b], lambda: time.monotonic() >= settled, 10, "settling")
    assert events["a"] == [("assign", a_parts)], f"the restarted member gets its partitions back: {events['a']}"
    assert events["b"] == b_events, f"no rebalance for the other member: {events['b']}"
    a.close()
    b.close()


# --------------------------------------------------------------------------- kafka-python

def test_kafka_python_group_splits_commits_and_resumes(broker, new_topic):
    from kafka import ConsumerRebalanceListener, KafkaConsumer
    from kafka.errors import CommitFailedError

    topic = new_topic(PARTITIONS, "grp-kp")
    group = unique_topic("kp-group")

    def run_round(done):
        members = [Member("a"), Member("b")]
        stop = threading.Event()
        errors = []

        class Listener(ConsumerRebalanceListener):
            def __init__(self, m):
                self.m = m

            def on_partitions_revoked(self, revoked):
                self.m.revoke(tp.partition for tp in revoked)

            def on_partitions_assigned(self, assigned):
                self.m.assign(tp.partition for tp in assigned)

        def run(m: Member):
            c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, auto_offset_reset="earliest",
                              enable_auto_commit=False, session_timeout_ms=SESSION_MS,
                              heartbeat_interval_ms=1000, request_timeout_ms=20000)
            try:
                c.subscribe([topic], listener=Listener(m))
                while not stop.is_set():
                    for tp, msgs in c.poll(timeout_ms=200).items():
                        for msg in msgs:
                            m.add(tp.partition, msg.offset, msg.value)
                        try:
                            c.commit()
                        except CommitFailedError:
                            pass  # a rebalance moved on: the next owner resumes from the last commit
            except Exception as e:
                errors.append(e)
            finally:
                c.close()

        return run_in_threads(members, run, lambda: done(members), stop, errors)

    check_split_and_resume(run_round, broker.bootstrap, topic, group)


# --------------------------------------------------------------------------- aiokafka

def test_aiokafka_group_splits_commits_and_resumes(broker, new_topic):
    from aiokafka import AIOKafkaConsumer
    from aiokafka.abc import ConsumerRebalanceListener
    from aiokafka.errors import CommitFailedError

    topic = new_topic(PARTITIONS, "grp-aio")
    group = unique_topic("aio-group")

    class Listener(ConsumerRebalanceListener):
        def __init__(self, m):
            self.m = m

        async def on_partitions_revoked(self, revoked):
            self.m.revoke(tp.partition for tp in revoked)

        async def on_partitions_assigned(self, assigned):
            self.m.assign(tp.partition for tp in assigned)

    async def member(m: Member, stop: asyncio.Event):
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, session_timeout_ms=SESSION_MS,
                             heartbeat_interval_ms=1000, request_timeout_ms=20000)
        await c.start()
        try:
            c.subscribe([topic], listener=Listener(m))
            while not stop.is_set():
                batch = await c.getmany(timeout_ms=200)
                for tp, msgs in batch.items():
                    for msg in msgs:
                        m.add(tp.partition, msg.offset, msg.value)
                if batch:
                    try:
                        await c.commit()
                    except CommitFailedError:
                        pass  # a rebalance moved on: the next owner resumes from the last commit
        finally:
            await c.stop()

    def run_round(done):
        async def main():
            members = [Member("a"), Member("b")]
            stop = asyncio.Event()
            tasks = [asyncio.create_task(member(m, stop)) for m in members]
            deadline = time.monotonic() + 40
            while not done(members):
                assert time.monotonic() < deadline, "timed out waiting for both members"
                for t in tasks:
                    if t.done():
                        t.result()  # raises the member's error
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
            return members
        return asyncio.run(main())

    check_split_and_resume(run_round, broker.bootstrap, topic, group)


# --------------------------------------------------------------------------- Java

JAVA_DIR = Path(__file__).resolve().parent / "java"


@pytest.fixture(scope="module")
def java_cp(tmp_path_factory) -> str:
    javac, java = shutil.which("javac"), shutil.which("java")
    assert javac and java, "javac/java not found: run compat/setup.sh"
    lib = JAVA_DIR / "lib"
    assert list(lib.glob("kafka-clients-*.jar")), f"kafka-clients missing from {lib}: run compat/setup.sh"
    out = tmp_path_factory.mktemp("javagroups")
    cp = f"{lib}/*"
    r = subprocess.run([javac, "-d", str(out), "-cp", cp, str(JAVA_DIR / "GroupConsumer.java")],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, f"javac failed:\n{r.stdout}\n{r.stderr}"
    return f"{out}{os.pathsep}{cp}"


class JavaMember(Member):
    """A GroupConsumer JVM; its output lines are parsed as they arrive."""

    def __init__(self, name, cp, bootstrap, topic, group, protocol, props):
        super().__init__(name)
        self.lines: list[str] = []
        self.record_times: list[tuple[float, int]] = []  # (when, partition) of each record
        self.proc = subprocess.Popen(
            ["java", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", cp, "GroupConsumer",
             bootstrap, topic, group, protocol, "-", *[f"{k}={v}" for k, v in props.items()]],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.stderr: list[str] = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            f = line.rstrip("\n").split("\t")
            self.lines.append(line)
            if f[0] == "REC":
                p, off = int(f[1]), int(f[2])
                self.record_times.append((time.monotonic(), p))
                self.add(p, off, f[3].encode())
            elif f[0] == "ASSIGNED":
                self.assign(int(x) for x in f[1].split(",") if x)
            elif f[0] in ("REVOKED", "LOST"):
                self.revoke(int(x) for x in f[1].split(",") if x)

    def records_after(self, t: float) -> dict[int, float]:
        """When this member first consumed each partition at or after `t`."""
        first: dict[int, float] = {}
        for at, p in list(self.record_times):
            if at >= t:
                first.setdefault(p, at)
        return first

    def describe(self) -> str:
        return f"{self.name}: {''.join(l for l in self.lines[-8:] if not l.startswith('REC'))}" \
               f"{len(self.records)} records; stderr: {''.join(self.stderr[-10:])}"

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(30)
        self.reader.join(5)
        assert "DONE\n" in self.lines, f"{self.name} did not close cleanly:\n{''.join(self.lines[-10:])}\n{''.join(self.stderr[-30:])}"


class Feeder:
    """Produces "v<i>" to every partition in turn until stopped."""

    def __init__(self, bootstrap, topic, partitions):
        self.count = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(bootstrap, topic, partitions), daemon=True)
        self.thread.start()

    def _run(self, bootstrap, topic, partitions):
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
        while not self.stop_event.is_set():
            for _ in range(partitions):
                p.produce(topic, value=f"v{self.count}".encode(), partition=self.count % partitions)
                self.count += 1
            p.poll(0)
            time.sleep(0.2)  # 30 records/s: members commit each record synchronously
        assert p.flush(30) == 0

    def stop(self) -> int:
        self.stop_event.set()
        self.thread.join(40)
        return self.count


def java_kill_one_member(broker, java_cp, protocol: str, props: dict, takeover_s: float):
    """Three members on a 6-partition topic, records produced throughout; one member is
    killed; its partitions are consumed by the others within `takeover_s`; every record
    is consumed and committed at least once."""
    topic = unique_topic(f"grp-java-{protocol}")
    create_topic(broker.bootstrap, topic, 6)
    group = unique_topic(f"java-{protocol}")
    feeder = Feeder(broker.bootstrap, topic, 6)
    members = [JavaMember(f"m{i}", java_cp, broker.bootstrap, topic, group, protocol, props) for i in range(3)]
    try:
        wait_until(lambda: all(m.assigned and len(m.records) >= 5 for m in members), 60,
                   "all three members to own partitions and consume")
        victim = max(members, key=lambda m: len(m.assigned))
        orphaned = set(victim.assigned)
        victim.kill()
        killed_at = time.monotonic()
        survivors = [m for m in members if m is not victim]
        try:
            wait_until(lambda: all(any(p in s.records_after(killed_at) for s in survivors) for p in orphaned),
                       takeover_s + 15, f"survivors to consume the killed member's partitions {orphaned}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n" + "\n".join(s.describe() for s in survivors)) from None
        took = max(min(s.records_after(killed_at)[p] for s in survivors if p in s.records_after(killed_at))
                   for p in orphaned) - killed_at
        assert took <= takeover_s, f"partitions {orphaned} resumed {took:.1f}s after the kill (limit {takeover_s}s)"
        assert sorted(p for s in survivors for p in s.assigned) == list(range(6)), \
            f"survivors own every partition: {[sorted(s.assigned) for s in survivors]}"
        total = feeder.stop()
        try:
            wait_until(lambda: len(seen_values(members)) >= total, 60, f"all {total} records to be consumed")
        except AssertionError as e:
            missing = sorted(int(v[1:]) for v in {f"v{i}" for i in range(total)} - seen_values(members))
            by_partition = {p: sum(1 for i in missing if i % 6 == p) for p in range(6)}
            raise AssertionError(f"{e}: missing per partition {by_partition}\n"
                                 + "\n".join(f"[alive={m.proc.poll() is None} owns={sorted(m.assigned)}] {m.describe()}"
                                             for m in survivors)) from None
        assert seen_values(members) == {f"v{i}" for i in range(total)}, "every record consumed"
        for s in survivors:
            s.stop()
        ends = committed(broker.bootstrap, group, topic, 6)
        assert sum(ends.values()) == total, f"committed offsets {ends} cover all {total} records"
    finally:
        feeder.stop_event.set()
        for m in members:
            if m.proc.poll() is None:
                m.proc.kill()


def test_java_classic_group_survives_a_killed_member(broker, java_cp):
    java_kill_one_member(broker, java_cp, "classic", {
        "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 1000, "max.poll.interval.ms": 20000,
        "partition.assignment.strategy": "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
    }, takeover_s=SESSION_MS / 1000 + 10)


def test_java_consumer_protocol_group_survives_a_killed_member(broker, java_cp):
    """group.protocol=consumer (KIP-848): the broker assigns; the killed member is
    fenced after the broker's session timeout and its partitions move."""
    java_kill_one_member(broker, java_cp, "consumer", {"max.poll.interval.ms": 20000},
                         takeover_s=CONSUMER_SESSION_MS / 1000 + 10)

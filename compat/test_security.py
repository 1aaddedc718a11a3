"""Listeners with security protocols: TLS (SSL) with kcat, confluent-kafka and the
Java client; certificates are made with the openssl CLI in a temp dir per module."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from compat_util import unique_topic
from compat_util import produce as rk_produce
from security_util import Certs, make_cert, secure_broker
from test_java import hx, parse_recs, run_java, java_cp  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_broker(fluxo_bin, tmp_path_factory, certs):
    b, ports = secure_broker(tmp_path_factory.mktemp("tls"), {"SSL": "SSL"},
                             ["--ssl-certificate-pem", str(certs.server), "--ssl-key-pem", str(certs.server_key)])
    b.start()
    b.ports = ports
    yield b
    b.close()


def ssl_conf(certs: Certs) -> dict:
    return {"security.protocol": "ssl", "ssl.ca.location": str(certs.ca)}


def rk_consume(bootstrap: str, topic: str, n: int, conf: dict) -> list[tuple[int, bytes | None, bytes | None]]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("g"),
                  "enable.auto.commit": False, **conf})
    c.assign([TopicPartition(topic, 0, 0)])
    out, deadline = [], time.monotonic() + 30
    try:
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            out.append((m.offset(), m.key(), m.value()))
    finally:
        c.close()
    assert len(out) == n, f"read {len(out)} of {n} records"
    return out


def kcat(*args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["kcat", *args], input=input, capture_output=True, timeout=timeout)


def test_kcat_produce_confluent_and_java_consume_over_ssl(tls_broker, certs, java_cp):
    bootstrap = f"127.0.0.1:{tls_broker.ports['SSL']}"
    topic = unique_topic("ssl")
    values = [f"tls-record-{i}-{'x' * i}".encode() for i in range(20)]
    r = kcat("-b", bootstrap, "-X", "security.protocol=ssl", "-X", f"ssl.ca.location={certs.ca}",
             "-t", topic, "-P", "-p", "0", "-K", ":", input=b"".join(b"k%d:" % i + v + b"\n" for i, v in enumerate(values)))
    assert r.returncode == 0, r.stderr.decode()
    got = rk_consume(bootstrap, topic, 20, ssl_conf(certs))
    assert got == [(i, b"k%d" % i, v) for i, v in enumerate(values)]
    lines = run_java(java_cp, "ConsumeProbe", bootstrap, topic, "20", "0:0",
                     "security.protocol=SSL", "ssl.truststore.type=PEM", f"ssl.truststore.location={certs.ca}")
    recs = parse_recs(lines)[0]
    assert [(o, k, v) for o, k, v, _, _ in recs] == [(i, b"k%d" % i, v) for i, v in enumerate(values)]


def test_confluent_and_java_produce_kcat_reads_over_ssl(tls_broker, certs, java_cp):
    bootstrap = f"127.0.0.1:{tls_broker.ports['SSL']}"
    topic = unique_topic("ssl2")
    payloads = [os.urandom(100 + 37 * i) for i in range(10)]
    rk_produce(bootstrap, topic, [(0, b"rk%d" % i, p, None) for i, p in enumerate(payloads)], conf=ssl_conf(certs))
    jvals = [f"java-{i}".encode() for i in range(5)]
    stdin = "".join(f"0\t{hx(b'j%d' % i)}\t{hx(v)}\n" for i, v in enumerate(jvals))
    acks = run_java(java_cp, "ProduceProbe", bootstrap, topic, "security.protocol=SSL",
                    "ssl.truststore.type=PEM", f"ssl.truststore.location={certs.ca}", input=stdin)
    assert [int(f[3]) for f in acks if f[0] == "ACK"] == list(range(10, 15))
    got = rk_consume(bootstrap, topic, 15, ssl_conf(certs))
    assert got == [(i, b"rk%d" % i, p) for i, p in enumerate(payloads)] + \
        [(10 + i, b"j%d" % i, v) for i, v in enumerate(jvals)]
    r = kcat("-b", bootstrap, "-X", "security.protocol=ssl", "-X", f"ssl.ca.location={certs.ca}",
             "-C", "-t", topic, "-p", "0", "-o", "10", "-e", "-f", "%o %k %s\\n")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().splitlines() == [f"{10 + i} j{i} java-{i}" for i in range(5)]


def test_plaintext_client_on_ssl_port_is_dropped_and_broker_serves_on(tls_broker, certs):
    port = tls_broker.ports["SSL"]
    # An ApiVersions v0 request in plain Kafka framing.
    req = b"\x00\x12\x00\x00\x00\x00\x00\x01\x00\x04test"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(len(req).to_bytes(4, "big") + req)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    # Whatever came back (a TLS alert at most) is no Kafka response.
    assert not data.startswith(b"\x00\x00\x00") or data[4:8] != b"\x00\x00\x00\x01"
    r = kcat("-b", f"127.0.0.1:{port}", "-X", "security.protocol=plaintext", "-L", "-m", "5", timeout=30)
    assert r.returncode != 0
    r = kcat("-b", f"127.0.0.1:{port}", "-X", "security.protocol=ssl", "-X", f"ssl.ca.location={certs.ca}", "-L")
    assert r.returncode == 0 and f"127.0.0.1:{port}" in r.stdout.decode(), r.stderr.decode()
    assert tls_broker.running
    assert "TLS handshake failed" in tls_broker.log_path.read_text()


def served_cert(port: int) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw) as s:
            return ssl.DER_cert_to_PEM_cert(s.getpeercert(binary_form=True))


def pem_body(pem: str) -> str:
    return "".join(l for l in pem.splitlines() if "-----" not in l)


def test_sighup_reloads_the_certificate(fluxo_bin, tmp_path_factory, certs):
    d = tmp_path_factory.mktemp("reload")
    cert, key = make_cert(d, (certs.ca, certs.ca_key), "live", "127.0.0.1", True)
    b, ports = secure_broker(d, {"SSL": "SSL"}, ["--ssl-certificate-pem", str(cert), "--ssl-key-pem", str(key)])
    b.start()
    try:
        first = served_cert(ports["SSL"])
        assert pem_body(first) == pem_body(cert.read_text())
        new_cert, new_key = make_cert(d, (certs.ca, certs.ca_key), "next", "127.0.0.1", True)
        os.replace(new_key, key)
        os.replace(new_cert, cert)
        os.kill(b.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 15
        while pem_body(served_cert(ports["SSL"])) != pem_body(cert.read_text()):
            assert time.monotonic() < deadline, "the broker still serves the old certificate"
            time.sleep(0.1)
        assert pem_body(first) != pem_body(cert.read_text())
        # A broken file on the next SIGHUP keeps the current certificate.
        cert.write_text("garbage")
        os.kill(b.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 15
        while "TLS reload failed" not in b.log_path.read_text():
            assert time.monotonic() < deadline, "no reload failure logged"
            time.sleep(0.1)
        assert b.running and pem_body(served_cert(ports["SSL"])) != ""
    finally:
        b.close()


def test_required_client_certificate(fluxo_bin, tmp_path_factory, certs):
    d = tmp_path_factory.mktemp("mtls")
    b, ports = secure_broker(d, {"SSL": "SSL"}, [
        "--ssl-certificate-pem", str(certs.server), "--ssl-key-pem", str(certs.server_key),
        "--ssl-client-auth", "required", "--ssl-truststore-pem", str(certs.ca)])
    b.start()
    try:
        bootstrap = f"127.0.0.1:{ports['SSL']}"
        topic = unique_topic("mtls")
        mtls = {**ssl_conf(certs), "ssl.certificate.location": str(certs.client), "ssl.key.location": str(certs.client_key)}
        rk_produce(bootstrap, topic, [(0, b"k", b"with-cert", None)], conf=mtls)
        assert rk_consume(bootstrap, topic, 1, mtls) == [(0, b"k", b"with-cert")]
        r = kcat("-b", bootstrap, "-X", "security.protocol=ssl", "-X", f"ssl.ca.location={certs.ca}", "-L", "-m", "5",
                 timeout=30)
        assert r.returncode != 0, "a client without a certificate got metadata"
        assert b.running
    finally:
        b.close()


# --- SASL -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def sasl_broker(fluxo_bin, tmp_path_factory, certs):
    b, ports = secure_broker(tmp_path_factory.mktemp("sasl"), {"SASL_PLAINTEXT": "SASL_PLAINTEXT", "SASL_SSL": "SASL_SSL"}, [
        "--ssl-certificate-pem", str(certs.server), "--ssl-key-pem", str(certs.server_key),
        "--sasl-user", "alice:alice-secret", "--connection-failed-authentication-delay-ms", "50"])
    b.start()
    b.ports = ports
    yield b
    b.close()


def sasl_conf(mechanism: str, password: str = "alice-secret") -> dict:
    return {"security.protocol": "sasl_plaintext", "sasl.mechanism": mechanism,
            "sasl.username": "alice", "sasl.password": password}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_confluent_and_java_over_sasl_plaintext(sasl_broker, java_cp, mechanism):
    bootstrap = f"127.0.0.1:{sasl_broker.ports['SASL_PLAINTEXT']}"
    topic = unique_topic("sasl")
    payloads = [os.urandom(50 + i) for i in range(8)]
    rk_produce(bootstrap, topic, [(0, b"k%d" % i, p, None) for i, p in enumerate(payloads)], conf=sasl_conf(mechanism))
    module = "plain.PlainLoginModule" if mechanism == "PLAIN" else "scram.ScramLoginModule"
    jaas = f'org.apache.kafka.common.security.{module} required username="alice" password="alice-secret";'
    java_sasl = ["security.protocol=SASL_PLAINTEXT", f"sasl.mechanism={mechanism}", f"sasl.jaas.config={jaas}"]
    jvals = [f"java-{mechanism}-{i}".encode() for i in range(4)]
    stdin = "".join(f"0\t{hx(b'j%d' % i)}\t{hx(v)}\n" for i, v in enumerate(jvals))
    acks = run_java(java_cp, "ProduceProbe", bootstrap, topic, *java_sasl, input=stdin)
    assert [int(f[3]) for f in acks if f[0] == "ACK"] == list(range(8, 12))
    lines = run_java(java_cp, "ConsumeProbe", bootstrap, topic, "12", "0:0", *java_sasl)
    recs = parse_recs(lines)[0]
    want = [(i, b"k%d" % i, p) for i, p in enumerate(payloads)] + [(8 + i, b"j%d" % i, v) for i, v in enumerate(jvals)]
    assert [(o, k, v) for o, k, v, _, _ in recs] == want
    assert rk_consume(bootstrap, topic, 12, sasl_conf(mechanism)) == want


def test_kcat_over_sasl_ssl_scram_sha_256(sasl_broker, certs):
    bootstrap = f"127.0.0.1:{sasl_broker.ports['SASL_SSL']}"
    topic = unique_topic("saslssl")
    common = ["-b", bootstrap, "-X", "security.protocol=sasl_ssl", "-X", f"ssl.ca.location={certs.ca}",
              "-X", "sasl.mechanism=SCRAM-SHA-256", "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret"]
    r = kcat(*common, "-t", topic, "-P", "-p", "0", input=b"".join(b"secure-%d\n" % i for i in range(10)))
    assert r.returncode == 0, r.stderr.decode()
    r = kcat(*common, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-f", "%o %s\\n")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().splitlines() == [f"{i} secure-{i}" for i in range(10)]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_wrong_password_is_reported_by_the_clients(sasl_broker, java_cp, mechanism):
    from confluent_kafka.admin import AdminClient
    bootstrap = f"127.0.0.1:{sasl_broker.ports['SASL_PLAINTEXT']}"
    errors = []
    admin = AdminClient({"bootstrap.servers": bootstrap, **sasl_conf(mechanism, "wrong"),
                         "error_cb": lambda e: errors.append(e)})
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:
        admin.poll(0.2)
    assert errors, "no error reported"
    assert any("Authentication failed" in e.str() or e.code() == -169 for e in errors), [e.str() for e in errors]
    module = "plain.PlainLoginModule" if mechanism == "PLAIN" else "scram.ScramLoginModule"
    jaas = f'org.apache.kafka.common.security.{module} required username="alice" password="wrong";'
    cmd = ["java", "-cp", java_cp, "ProduceProbe", bootstrap, unique_topic("bad"), "security.protocol=SASL_PLAINTEXT",
           f"sasl.mechanism={mechanism}", f"sasl.jaas.config={jaas}", "max.block.ms=10000"]
    r = subprocess.run(cmd, input="0\t-\t00\n", capture_output=True, text=True, timeout=90)
    assert r.returncode != 0
    assert "SaslAuthenticationException" in r.stderr + r.stdout, (r.stdout[-2000:], r.stderr[-3000:])
    assert sasl_broker.running


# --- kafka-python over SSL and SASL_SSL -------------------------------------------

def kp_roundtrip(bootstrap: str, conf: dict, tag: str) -> None:
    """kafka-python produces 6 records to a new topic and reads them back, both with `conf`."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTP
    topic = unique_topic(f"kp-{tag}")
    values = [os.urandom(20 + i) for i in range(6)]
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=20000, **conf)
    try:
        offsets = [p.send(topic, key=b"k%d" % i, value=v, partition=0).get(timeout=30).offset
                   for i, v in enumerate(values)]
    finally:
        p.close()
    assert offsets == list(range(6))
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      request_timeout_ms=20000, **conf)
    try:
        tp = KTP(topic, 0)
        c.assign([tp])
        c.seek(tp, 0)
        got, deadline = [], time.monotonic() + 30
        while len(got) < 6:
            assert time.monotonic() < deadline, f"read {len(got)} of 6"
            for msgs in c.poll(timeout_ms=500).values():
                got.extend((m.offset, m.key, m.value) for m in msgs)
    finally:
        c.close()
    assert got == [(i, b"k%d" % i, v) for i, v in enumerate(values)]


def test_kafka_python_over_ssl(tls_broker, certs):
    kp_roundtrip(f"127.0.0.1:{tls_broker.ports['SSL']}",
                 {"security_protocol": "SSL", "ssl_cafile": str(certs.ca)}, "ssl")


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_kafka_python_over_sasl_ssl(sasl_broker, certs, mechanism):
    conf = {"security_protocol": "SASL_SSL", "ssl_cafile": str(certs.ca), "sasl_mechanism": mechanism,
            "sasl_plain_username": "alice", "sasl_plain_password": "alice-secret"}
    kp_roundtrip(f"127.0.0.1:{sasl_broker.ports['SASL_SSL']}", conf, mechanism.lower())


def test_kafka_python_wrong_password_over_sasl_ssl(sasl_broker, certs, caplog):
    from kafka import KafkaProducer
    from kafka.errors import KafkaError as KPError
    conf = {"security_protocol": "SASL_SSL", "ssl_cafile": str(certs.ca), "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "alice", "sasl_plain_password": "wrong"}
    # kafka-python retries the bootstrap, logging the broker's SASL error each time, then gives up.
    with pytest.raises(KPError):
        KafkaProducer(bootstrap_servers=f"127.0.0.1:{sasl_broker.ports['SASL_SSL']}", request_timeout_ms=10000,
                      max_block_ms=10000, **conf)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "SaslAuthenticationFailedError" in logged and "Authentication failed" in logged, logged[-2000:]
    assert sasl_broker.running


# --- the client certificate names the principal -----------------------------------

def rfc2253_subject(cert) -> str:
    """The certificate's subject as openssl writes it in RFC 2253 form (the oracle)."""
    r = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-subject", "-nameopt", "RFC2253"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().removeprefix("subject=").strip()


def test_client_certificate_subject_is_the_principal_acls_name(fluxo_bin, tmp_path_factory, certs):
    from confluent_kafka import KafkaError, Producer
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                       ResourcePatternType, ResourceType)
    d = tmp_path_factory.mktemp("certprincipal")
    alice = make_cert(certs.dir, (certs.ca, certs.ca_key), "dn-alice", "alice", False, subject="/O=Acme/OU=eng/CN=alice")
    bob = make_cert(certs.dir, (certs.ca, certs.ca_key), "dn-bob", "bob", False, subject="/O=Acme/OU=eng/CN=bob")
    principal = "User:" + rfc2253_subject(alice[0])
    assert principal == "User:CN=alice,OU=eng,O=Acme"
    b, ports = secure_broker(d, {"SSL": "SSL", "SASL_PLAINTEXT": "SASL_PLAINTEXT"}, [
        "--ssl-certificate-pem", str(certs.server), "--ssl-key-pem", str(certs.server_key),
        "--ssl-client-auth", "required", "--ssl-truststore-pem", str(certs.ca),
        "--sasl-user", "admin:admin-secret", "--authorizer-enabled", "true", "--super-users", "User:admin"])
    b.start()
    try:
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{ports['SASL_PLAINTEXT']}",
                             "security.protocol": "sasl_plaintext", "sasl.mechanism": "PLAIN",
                             "sasl.username": "admin", "sasl.password": "admin-secret"})
        topic = unique_topic("dn")
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        acl = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, principal, "*",
                         AclOperation.ALL, AclPermissionType.ALLOW)
        group = AclBinding(ResourceType.GROUP, "*", ResourcePatternType.LITERAL, principal, "*",
                           AclOperation.READ, AclPermissionType.ALLOW)
        for f in admin.create_acls([acl, group]).values():
            f.result(30)
        bootstrap = f"127.0.0.1:{ports['SSL']}"
        as_alice = {**ssl_conf(certs), "ssl.certificate.location": str(alice[0]), "ssl.key.location": str(alice[1])}
        rk_produce(bootstrap, topic, [(0, b"k%d" % i, b"from-alice-%d" % i, None) for i in range(3)], conf=as_alice)
        assert rk_consume(bootstrap, topic, 3, as_alice) == [(i, b"k%d" % i, b"from-alice-%d" % i) for i in range(3)]
        # bob's certificate is just as valid, but no ACL names his DN.
        errors = []
        p = Producer({"bootstrap.servers": bootstrap, **ssl_conf(certs), "ssl.certificate.location": str(bob[0]),
                      "ssl.key.location": str(bob[1]), "message.timeout.ms": 15000})
        p.produce(topic, b"from-bob", partition=0, on_delivery=lambda err, msg: errors.append(err))
        p.flush(30)
        assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], errors
        assert rk_consume(bootstrap, topic, 3, as_alice) == [(i, b"k%d" % i, b"from-alice-%d" % i) for i in range(3)]
        assert b.running
    finally:
        b.close()


# --- KIP-368 re-authentication -----------------------------------------------------

@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_clients_reauthenticate_before_the_session_expires(fluxo_bin, tmp_path_factory, java_cp, mechanism):
    """With connections_max_reauth_ms the broker tells clients the session lifetime;
    librdkafka and the Java client re-authenticate on their open connections, so
    producing past the lifetime keeps working."""
    from confluent_kafka import Producer
    b, ports = secure_broker(tmp_path_factory.mktemp("reauth"), {"SASL_PLAINTEXT": "SASL_PLAINTEXT"}, [
        "--sasl-user", "alice:alice-secret", "--connections-max-reauth-ms", "1500"])
    b.start()
    try:
        bootstrap = f"127.0.0.1:{ports['SASL_PLAINTEXT']}"
        topic = unique_topic("reauth")
        delivered = []
        p = Producer({"bootstrap.servers": bootstrap, **sasl_conf(mechanism), "linger.ms": 0})
        start = time.monotonic()
        i = 0
        # Keep producing for 4 lifetimes on the same connection.
        while time.monotonic() - start < 6:
            p.produce(topic, b"v%d" % i, partition=0, on_delivery=lambda err, msg: delivered.append((err, msg.offset())))
            p.flush(10)
            i += 1
            time.sleep(0.25)  # pacing: a record every 250 ms
        assert [e for e, _ in delivered] == [None] * i
        assert [o for _, o in delivered] == list(range(i))
        log = b.log_path.read_text()
        assert log.count("SASL authentication succeeded") >= 4, "librdkafka did not re-authenticate"
        assert "SASL session expired" not in log
        module = "plain.PlainLoginModule" if mechanism == "PLAIN" else "scram.ScramLoginModule"
        jaas = f'org.apache.kafka.common.security.{module} required username="alice" password="alice-secret";'
        java_sasl = ["security.protocol=SASL_PLAINTEXT", f"sasl.mechanism={mechanism}", f"sasl.jaas.config={jaas}"]
        lines = run_java(java_cp, "ConsumeProbe", bootstrap, topic, str(i), "0:0", *java_sasl)
        assert [o for o, _, _, _, _ in parse_recs(lines)[0]] == list(range(i))
    finally:
        b.close()

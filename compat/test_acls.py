"""ACLs with the Java client (kafka-clients 4.3.0): the AdminClient creates and
describes ACLs as a super user, and a producer authenticated as alice writes the
topic she may write and is refused on one she may not (TopicAuthorizationException)."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, TopicPartition

from compat_util import unique_topic
from security_util import secure_broker
from test_java import run_java, java_cp  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def acl_broker(fluxo_bin, tmp_path_factory):
    b, ports = secure_broker(tmp_path_factory.mktemp("acls"), {"SASL_PLAINTEXT": "SASL_PLAINTEXT"}, [
        "--sasl-user", "admin:admin-secret", "--sasl-user", "alice:alice-secret",
        "--authorizer-enabled", "true", "--super-users", "User:admin"])
    b.start()
    b.ports = ports
    yield b
    b.close()


def java_sasl(user: str) -> list[str]:
    jaas = (f'org.apache.kafka.common.security.plain.PlainLoginModule required '
            f'username="{user}" password="{user}-secret";')
    return ["security.protocol=SASL_PLAINTEXT", "sasl.mechanism=PLAIN", f"sasl.jaas.config={jaas}"]


def test_java_admin_manages_acls_and_producer_is_refused_on_forbidden_topic(acl_broker, java_cp):
    bootstrap = f"127.0.0.1:{acl_broker.ports['SASL_PLAINTEXT']}"
    allowed, forbidden = unique_topic("acl-ok"), unique_topic("acl-no")
    lines = run_java(java_cp, "AclProbe", bootstrap, "admin", allowed, forbidden, "User:alice", *java_sasl("admin"))
    acls = [l[1:] for l in lines if l[0] == "ACL"]
    assert acls == sorted([
        ["TOPIC", allowed, "LITERAL", "User:alice", "*", "WRITE", "ALLOW"],
        ["TOPIC", allowed, "PREFIXED", "User:alice", "*", "DESCRIBE", "ALLOW"],
    ])

    value = "written by alice"
    lines = run_java(java_cp, "AclProbe", bootstrap, "produce", allowed, value, *java_sasl("alice"))
    assert ["ACK", "0", "0"] in lines, lines
    lines = run_java(java_cp, "AclProbe", bootstrap, "produce", forbidden, "nope", *java_sasl("alice"))
    assert ["REFUSED", "TopicAuthorizationException"] in lines, lines

    # The admin reads back exactly what alice wrote, and nothing reached the forbidden topic.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("g"), "enable.auto.commit": False,
                  "security.protocol": "sasl_plaintext", "sasl.mechanism": "PLAIN",
                  "sasl.username": "admin", "sasl.password": "admin-secret"})
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition(forbidden, 0), timeout=10)
        assert (lo, hi) == (0, 0)
        c.assign([TopicPartition(allowed, 0, 0)])
        msg = None
        for _ in range(60):
            msg = c.poll(0.5)
            if msg is not None:
                break
        assert msg is not None and msg.error() is None, msg and msg.error()
        assert (msg.offset(), msg.value()) == (0, value.encode())
    finally:
        c.close()

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


def rk_scram_login(bootstrap: str, user: str, password: str) -> list:
    """Authenticates with confluent-kafka (SCRAM-SHA-512) and lists topics; returns the
    errors librdkafka reported (none when the login worked)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient
    errors = []
    admin = AdminClient({"bootstrap.servers": bootstrap, "security.protocol": "sasl_plaintext",
                         "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": password,
                         "error_cb": lambda e: errors.append(e)})
    try:
        admin.list_topics(timeout=10)
    except KafkaException as e:
        errors.append(e.args[0])
    return errors


def test_java_admin_creates_a_scram_user_confluent_logs_in_until_it_is_deleted(acl_broker, java_cp):
    bootstrap = f"127.0.0.1:{acl_broker.ports['SASL_PLAINTEXT']}"
    user = unique_topic("bob")
    assert rk_scram_login(bootstrap, user, "bob-secret"), "an unknown user logged in"
    # alice has no ALTER on the cluster.
    lines = run_java(java_cp, "ScramProbe", bootstrap, "upsert", user, "bob-secret", "8192", *java_sasl("alice"))
    assert ["ERROR", "ClusterAuthorizationException"] in lines, lines
    lines = run_java(java_cp, "ScramProbe", bootstrap, "upsert", user, "bob-secret", "8192", *java_sasl("admin"))
    assert ["OK"] in lines, lines
    users = [l[1:] for l in run_java(java_cp, "ScramProbe", bootstrap, "describe", *java_sasl("admin")) if l[0] == "USER"]
    assert [user, "SCRAM_SHA_512", "8192"] in users, users
    assert ["admin", "SCRAM_SHA_512", "4096"] in users and ["admin", "SCRAM_SHA_256", "4096"] in users, users
    assert rk_scram_login(bootstrap, user, "bob-secret") == []
    assert rk_scram_login(bootstrap, user, "wrong"), "a wrong password logged in"
    lines = run_java(java_cp, "ScramProbe", bootstrap, "upsert", user, "x", "1024", *java_sasl("admin"))
    assert ["ERROR", "UnacceptableCredentialException"] in lines, lines
    lines = run_java(java_cp, "ScramProbe", bootstrap, "delete", user, *java_sasl("admin"))
    assert ["OK"] in lines, lines
    assert rk_scram_login(bootstrap, user, "bob-secret"), "a deleted user logged in"
    lines = run_java(java_cp, "ScramProbe", bootstrap, "delete", user, *java_sasl("admin"))
    assert ["ERROR", "ResourceNotFoundException"] in lines, lines
    assert acl_broker.running

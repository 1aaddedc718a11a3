"""The Docker image (docker/Dockerfile) and compose file (docker/compose.yaml).

Builds the image, runs it with a named volume and two listeners, as compose does:
an external one on a loopback-published port (advertised as 127.0.0.1:PORT) and an
internal one on a Docker network (advertised under the container's network alias),
waits until `docker inspect` reports it healthy (the image's HEALTHCHECK, `fluxo
healthcheck`), produces and consumes with real clients (confluent-kafka, kcat, and
the Java client when compat/setup.sh installed it) from the host and with kcat from
a container on that network, checks each side is told its own listener's address,
stops and starts the container, replaces it with a new one on the same volume, and
reads everything back byte for byte. Then the same through docker/compose.yaml.
Containers, networks, volumes and the test image are removed at the end, also when
a test fails; the kcat client image (fluxo-test/kcat:bookworm, the runtime base plus
Debian's kcat, built once in about ten seconds) is kept like the base images.

Skipped when `docker info` fails (no engine, or no permission); with
FLUXO_DOCKER_REQUIRED=1 (CI on a machine that has Docker) that is an error instead.

Which image is tested (FLUXO_DOCKER_BUILD):
  prebuilt (default)  `--target runtime-prebuilt` around the broker binary this
                      suite tests (FLUXO_BIN / target/release/fluxo), on the runtime
                      base from `docker/base-images.sh --runtime-only`. About a minute
                      on a machine without the base image, seconds with it; no second
                      rocksdb compile in CI.
  source              the default target: compiles Fluxo inside Docker (BuildKit),
                      on both base images from `docker/base-images.sh`. 10+ minutes on
                      two cores for the first build.
Other knobs: FLUXO_RUNTIME_BASE / FLUXO_BUILDER_BASE (base image tags, also read
by base-images.sh), FLUXO_DOCKER_KEEP_IMAGE=1 keeps the built test image,
FLUXO_KCAT_IMAGE the client image's tag.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from compat_util import (admin_client, check_roundtrip, consume_all, create_topic, make_records, produce,
                         unique_topic, wait_for_topic)
from conftest import TARGET, fluxo_bin_path, free_port

REPO = Path(__file__).resolve().parent.parent
DOCKER_DIR = REPO / "docker"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
BUILD_MODE = os.environ.get("FLUXO_DOCKER_BUILD", "prebuilt").strip().lower() or "prebuilt"
RUNTIME_BASE = os.environ.get("FLUXO_RUNTIME_BASE", "fluxo-base/debian:bookworm-slim")
BUILDER_BASE = os.environ.get("FLUXO_BUILDER_BASE", "fluxo-base/rust:bookworm")
RUN_ID = uuid.uuid4().hex[:10]
LABEL = f"fluxo-compat-test={RUN_ID}"
KCAT = shutil.which("kcat") or shutil.which("kafkacat")
KCAT_IMAGE = os.environ.get("FLUXO_KCAT_IMAGE", "fluxo-test/kcat:bookworm")
INTERNAL_PORT = 29092

pytestmark = [pytest.mark.timeout(3600 if BUILD_MODE == "source" else 900)]


def _docker_problem() -> str | None:
    if TARGET != "fluxo":
        return f"the Docker image is Fluxo's own (FLUXO_COMPAT_TARGET={TARGET})"
    if shutil.which("docker") is None:
        return "docker CLI not found"
    try:
        r = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                           capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 60 s"
    if r.returncode != 0:
        return f"`docker info` failed: {(r.stderr or r.stdout).strip()[-300:]}"
    return None


_problem = _docker_problem()
if _problem and os.environ.get("FLUXO_DOCKER_REQUIRED") == "1" and TARGET == "fluxo":
    raise RuntimeError(f"FLUXO_DOCKER_REQUIRED=1 but {_problem}")
if _problem:
    pytest.skip(f"Docker tests skipped: {_problem}", allow_module_level=True)


# --------------------------------------------------------------------- helpers

def sh(*cmd, timeout: float = 120, check: bool = True, env: dict | None = None,
       input: bytes | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, timeout=timeout, input=input,
                       env=None if env is None else {**os.environ, **env})
    if check and r.returncode != 0:
        raise AssertionError(f"$ {' '.join(map(str, cmd))}\nexit {r.returncode}\n"
                             f"stdout: {r.stdout.decode(errors='replace')[-3000:]}\n"
                             f"stderr: {r.stderr.decode(errors='replace')[-3000:]}")
    return r


def run_logged(cmd, log: Path, timeout: float, env: dict | None = None) -> None:
    """Run a long command with its output in `log`; on failure show the tail."""
    t0 = time.monotonic()
    with open(log, "ab") as fh:
        fh.write(("$ " + " ".join(map(str, cmd)) + "\n").encode())
        fh.flush()
        r = subprocess.run([str(c) for c in cmd], stdout=fh, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=timeout,
                           env=None if env is None else {**os.environ, **env})
    if r.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:])
        pytest.fail(f"{' '.join(map(str, cmd))} exited {r.returncode} after "
                    f"{time.monotonic() - t0:.0f}s; last lines of {log}:\n{tail}", pytrace=False)


def buildkit_docker() -> tuple[str, dict]:
    """A docker CLI that builds with BuildKit (needed for the cache mounts of the
    source build): one with the buildx plugin, else a pre-23 client, which has
    BuildKit built in (Debian 12's docker.io ships one as /usr/bin/docker)."""
    if sh("docker", "buildx", "version", check=False).returncode == 0:
        return "docker", {"DOCKER_BUILDKIT": "1"}
    for cand in dict.fromkeys([shutil.which("docker"), "/usr/bin/docker"]):
        if not cand or not os.access(cand, os.X_OK):
            continue
        r = sh(cand, "version", "--format", "{{.Client.Version}}", check=False)
        ver = r.stdout.decode().strip()
        if ver and ver.split(".")[0].isdigit() and int(ver.split(".")[0]) < 23:
            return cand, {"DOCKER_BUILDKIT": "1"}
    pytest.skip("FLUXO_DOCKER_BUILD=source needs BuildKit: install the buildx plugin")


def kcat(*args, input: bytes | None = None, timeout: float = 60) -> bytes:
    assert KCAT, "kcat is not installed (run compat/setup.sh)"
    return sh(KCAT, *args, input=input, timeout=timeout).stdout


class Container:
    """One `docker run -d` of the image; remembers its name for teardown.

    With a `network`, it joins that network under the alias `alias` and gets an
    internal listener on INTERNAL_PORT advertised as alias:INTERNAL_PORT, besides
    the external one published on 127.0.0.1:port (and /metrics on metrics_port)."""

    def __init__(self, image: str, volume: str, port: int, name: str | None = None,
                 env: dict | None = None, network: str | None = None, alias: str = "fluxo",
                 metrics_port: int | None = None):
        self.image, self.volume, self.port = image, volume, port
        self.network, self.alias, self.metrics_port = network, alias, metrics_port
        self.name = name or f"fluxo-test-{RUN_ID}-{uuid.uuid4().hex[:6]}"
        self.env = {"FLUXO_ADVERTISED_LISTENER": f"127.0.0.1:{port}", **(env or {})}
        if network:
            self.env["FLUXO_EXTRA_LISTENERS"] = f"0.0.0.0:{INTERNAL_PORT}={alias}:{INTERNAL_PORT}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def internal_bootstrap(self) -> str:
        return f"{self.alias}:{INTERNAL_PORT}"

    def run(self) -> "Container":
        env_args = [a for k, v in self.env.items() for a in ("-e", f"{k}={v}")]
        net_args = ["--network", self.network, "--network-alias", self.alias] if self.network else []
        if self.metrics_port:
            net_args += ["-p", f"127.0.0.1:{self.metrics_port}:9644"]
        # --health-interval 1s: the image's HEALTHCHECK command, polled faster.
        sh("docker", "run", "-d", "--name", self.name, "--label", LABEL,
           "-v", f"{self.volume}:/var/lib/fluxo", "-p", f"127.0.0.1:{self.port}:9092", *net_args,
           "--health-interval", "1s", "--health-start-period", "30s", *env_args, self.image)
        return self

    def state(self) -> dict:
        return json.loads(sh("docker", "inspect", "-f", "{{json .State}}", self.name).stdout)

    def wait_healthy(self, timeout: float = 60) -> "Container":
        deadline = time.monotonic() + timeout
        while True:
            st = self.state()
            health = (st.get("Health") or {}).get("Status")
            if health == "healthy":
                return self
            if st.get("Status") in ("exited", "dead"):
                raise AssertionError(f"container {self.name} exited with {st.get('ExitCode')}\n"
                                     + self.logs())
            if time.monotonic() > deadline:
                raise AssertionError(f"container {self.name} not healthy after {timeout:.0f}s "
                                     f"(health {health}: {st.get('Health')})\n" + self.logs())
            time.sleep(0.2)

    def stop(self, timeout: int = 30) -> int:
        sh("docker", "stop", "-t", timeout, self.name, timeout=timeout + 30)
        return int(self.state()["ExitCode"])

    def start(self) -> "Container":
        sh("docker", "start", self.name)
        return self

    def exec(self, *cmd) -> str:
        return sh("docker", "exec", self.name, *cmd).stdout.decode()

    def logs(self, n: int = 80) -> str:
        r = sh("docker", "logs", "--tail", n, self.name, check=False)
        return (f"--- last {n} log lines of container {self.name} ---\n"
                + r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace"))

    def remove(self) -> None:
        sh("docker", "rm", "-f", "-v", self.name, check=False, timeout=60)


def cleanup_label() -> None:
    """Remove every container, network and volume this run made (by label)."""
    ids = sh("docker", "ps", "-aq", "--filter", f"label={LABEL}", check=False).stdout.split()
    if ids:
        sh("docker", "rm", "-f", "-v", *ids, check=False, timeout=120)
    nets = sh("docker", "network", "ls", "-q", "--filter", f"label={LABEL}",
              check=False).stdout.split()
    if nets:
        sh("docker", "network", "rm", *nets, check=False, timeout=60)
    vols = sh("docker", "volume", "ls", "-q", "--filter", f"label={LABEL}",
              check=False).stdout.split()
    if vols:
        sh("docker", "volume", "rm", "-f", *vols, check=False, timeout=60)


# -------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def image(tmp_path_factory) -> str:
    """Builds the image under test; removes it (and this run's leftovers) at the end."""
    work = tmp_path_factory.mktemp("docker")
    log = work / "build.log"
    tag = f"fluxo-test:{RUN_ID}"
    t0 = time.monotonic()
    base_env = {"FLUXO_RUNTIME_BASE": RUNTIME_BASE, "FLUXO_BUILDER_BASE": BUILDER_BASE}
    if BUILD_MODE == "prebuilt":
        binary = fluxo_bin_path()
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            pytest.fail(f"Fluxo binary not found at {binary}: build it (cargo build --release) "
                        "or set FLUXO_BIN", pytrace=False)
        run_logged(["bash", DOCKER_DIR / "base-images.sh", "--runtime-only"], log, 900, base_env)
        # A context of just the binary, at the path the Dockerfile expects.
        ctx = work / "context"
        (ctx / "target/release").mkdir(parents=True)
        # Without its debug info (mostly RocksDB's C++): 16 MB instead of 460 MB.
        dest = ctx / "target/release/fluxo"
        objcopy = shutil.which("objcopy")
        if not objcopy or sh(objcopy, "--strip-debug", binary, dest, check=False).returncode:
            shutil.copy2(binary, dest)
        run_logged(["docker", "build", "-f", DOCKERFILE, "--target", "runtime-prebuilt",
                    "--build-arg", f"RUNTIME_IMAGE={RUNTIME_BASE}", "--label", LABEL,
                    "-t", tag, ctx], log, 600)
        shutil.rmtree(ctx, ignore_errors=True)
    elif BUILD_MODE == "source":
        run_logged(["bash", DOCKER_DIR / "base-images.sh"], log, 1800, base_env)
        docker, env = buildkit_docker()
        run_logged([docker, "build", "--progress=plain", "-f", DOCKERFILE,
                    "--build-arg", f"RUNTIME_IMAGE={RUNTIME_BASE}",
                    "--build-arg", f"RUST_IMAGE={BUILDER_BASE}", "--label", LABEL,
                    "-t", tag, REPO], log, 3300, env)
    else:
        pytest.fail(f"FLUXO_DOCKER_BUILD={BUILD_MODE!r}: use prebuilt or source", pytrace=False)
    print(f"\n[test_docker] {BUILD_MODE} image {tag} ready in {time.monotonic() - t0:.0f}s "
          f"(log {log})")
    try:
        yield tag
    finally:
        cleanup_label()
        if os.environ.get("FLUXO_DOCKER_KEEP_IMAGE") != "1":
            sh("docker", "rmi", "-f", tag, check=False, timeout=120)


@pytest.fixture(scope="module")
def kcat_image(image, tmp_path_factory) -> str:
    """A kcat client image (the runtime base plus Debian's kcat) for clients inside
    a Docker network; built once and kept, like the base images."""
    if sh("docker", "image", "inspect", KCAT_IMAGE, check=False).returncode != 0:
        work = tmp_path_factory.mktemp("kcatimage")
        (work / "Dockerfile").write_text(
            f"FROM {RUNTIME_BASE}\n"
            "RUN apt-get update \\\n"
            " && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends kcat \\\n"
            " && rm -rf /var/lib/apt/lists/*\n")
        run_logged(["docker", "build", "-t", KCAT_IMAGE, work], work / "build.log", 600)
    return KCAT_IMAGE


def net_kcat(kcat_image: str, network: str, *args, input: bytes | None = None,
             timeout: float = 60) -> bytes:
    """kcat in a throwaway container on `network` (stdin passed through)."""
    return sh("docker", "run", "--rm", "-i", "--label", LABEL, "--network", network, kcat_image,
              "kcat", *args, input=input or b"", timeout=timeout).stdout


def net_metadata(kcat_image: str, network: str, bootstrap: str) -> dict[int, str]:
    """Brokers of the metadata a client inside `network` gets: {id: "host:port"}."""
    md = json.loads(net_kcat(kcat_image, network, "-b", bootstrap, "-L", "-J"))
    return {b["id"]: b["name"] for b in md["brokers"]}


@pytest.fixture
def network() -> str:
    name = f"fluxo-test-{RUN_ID}-{uuid.uuid4().hex[:6]}"
    sh("docker", "network", "create", "--label", LABEL, name)
    yield name
    sh("docker", "network", "rm", name, check=False, timeout=60)


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(body: str, name: str, **labels) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{want}}} " if want else f"{name} "
    for line in body.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):])
    return None


@pytest.fixture
def volume() -> str:
    name = f"fluxo-test-{RUN_ID}-{uuid.uuid4().hex[:6]}"
    sh("docker", "volume", "create", "--label", LABEL, name)
    yield name
    sh("docker", "volume", "rm", "-f", name, check=False, timeout=60)


@pytest.fixture
def containers(request):
    """Collects Containers; removes them at teardown, printing their logs on failure."""
    made: list[Container] = []
    yield made
    failed = any(getattr(request.node, "rep_" + w, None) is not None
                 and getattr(request.node, "rep_" + w).failed for w in ("setup", "call"))
    for c in made:
        if failed:
            print("\n" + c.logs(120))
        c.remove()


# ----------------------------------------------------------------------- tests

def test_image_settings(image):
    cfg = json.loads(sh("docker", "image", "inspect", "-f", "{{json .Config}}", image).stdout)
    assert cfg["User"] == "fluxo:fluxo"
    assert {"9092/tcp", "9644/tcp"} <= set(cfg["ExposedPorts"])
    assert "/var/lib/fluxo" in cfg["Volumes"]
    assert cfg["Entrypoint"] == ["/usr/local/bin/fluxo"]
    env = dict(e.split("=", 1) for e in cfg["Env"])
    assert env["FLUXO_DATA_DIR"] == "/var/lib/fluxo"
    assert env["FLUXO_LISTENER"] == "0.0.0.0:9092"
    assert env["FLUXO_METRICS_LISTENER"] == "0.0.0.0:9644"
    assert cfg["Healthcheck"]["Test"] == ["CMD", "/usr/local/bin/fluxo", "healthcheck"]

    out = sh("docker", "run", "--rm", "--label", LABEL, image, "--version").stdout.decode()
    assert out.startswith("fluxo "), out
    ids = sh("docker", "run", "--rm", "--label", LABEL, "--entrypoint", "id", image).stdout.decode()
    assert ids.startswith("uid=10001(fluxo) gid=10001(fluxo)"), ids
    # a bad setting stops start-up with exit code 2 and names the key
    r = sh("docker", "run", "--rm", "--label", LABEL, "-e", "FLUXO_NUM_PARTITIONS=zero", image,
           check=False)
    assert r.returncode == 2, (r.returncode, r.stderr)
    # the health probe without a broker: unhealthy (1; Docker reserves 2)
    r = sh("docker", "run", "--rm", "--label", LABEL, image, "healthcheck", check=False)
    assert r.returncode == 1 and r.stdout.startswith(b"unhealthy: GET http://127.0.0.1:9644/health"), r


def _kcat_produce_binary(bootstrap: str, topic: str, work: Path) -> list[bytes]:
    """kcat -P with files: each file is one message, sent byte for byte."""
    blobs = [bytes(range(256)) * 4, b"\x00\n\r\t\xff" * 100, "ünïcode ✓ line\n".encode() * 50]
    files = []
    for i, blob in enumerate(blobs):
        f = work / f"blob{i}.bin"
        f.write_bytes(blob)
        files.append(f)
    for f in files:   # one kcat per file, so the order of the offsets is the order here
        kcat("-b", bootstrap, "-P", "-t", topic, "-p", "0", str(f))
    return blobs


def _kcat_consume(bootstrap: str, topic: str, start: int = 0) -> list[tuple[int, str, str]]:
    """Text records from `start` on partition 0 (an absolute offset rather than
    "beginning": this is about the container, not ListOffsets)."""
    us, rs = "\x1f", "\x1e"
    out = kcat("-b", bootstrap, "-C", "-t", topic, "-p", "0", "-o", str(start), "-e", "-q",
               "-f", f"%o{us}%k{us}%s{rs}").decode()
    recs = []
    for chunk in out.split(rs):
        if chunk:
            o, k, s = chunk.split(us)
            recs.append((int(o), k, s))
    return recs


def _java_consume(bootstrap: str, topic: str, partitions: int, expected: int, work: Path):
    """Records read by the Java client, or None when it is not installed."""
    java_dir = Path(__file__).resolve().parent / "java"
    lib = java_dir / "lib"
    javac, java = shutil.which("javac"), shutil.which("java")
    if not (javac and java and list(lib.glob("kafka-clients-*.jar"))):
        return None
    classes = work / "javaclasses"
    cp = f"{lib}/*"
    if not classes.exists():
        sh(javac, "-d", classes, "-cp", cp, java_dir / "ConsumeProbe.java", java_dir / "Hex.java",
           timeout=180)
    r = sh(java, "-XX:TieredStopAtLevel=1", "-cp", f"{classes}{os.pathsep}{cp}", "ConsumeProbe",
           bootstrap, topic, expected, *[f"{p}:beginning" for p in range(partitions)], timeout=120)
    recs: dict[int, list] = {}
    for line in r.stdout.decode().splitlines():
        f = line.split("\t")
        if f[0] == "TIMEOUT":
            raise AssertionError(f"Java consumer timed out: {r.stdout.decode()[-2000:]}")
        if f[0] == "REC":
            unhex = (lambda s: None if s == "-" else bytes.fromhex(s))
            hdrs = tuple((h.split("=", 1)[0], unhex(h.split("=", 1)[1])) for h in f[6:])
            recs.setdefault(int(f[1]), []).append(
                (int(f[2]), unhex(f[4]), unhex(f[5]), hdrs, int(f[3])))
    return recs


def _snapshot(bootstrap: str, topic: str, partitions: int, n: int):
    """Everything a consumer sees: offset, key, value, headers, timestamp per record."""
    got = consume_all(bootstrap, topic, partitions, expected_total=n)
    return {p: [(r.offset, r.key, r.value, tuple(r.headers), r.timestamp) for r in recs]
            for p, recs in got.items()}


def test_run_restart_and_replace_keep_data(image, kcat_image, volume, network, containers, tmp_path):
    port, mport = free_port(), free_port()
    alias = f"fluxo-{RUN_ID}"
    c = Container(image, volume, port, network=network, alias=alias, metrics_port=mport)
    containers.append(c)
    c.run().wait_healthy()   # docker inspect: State.Health.Status == "healthy"
    bs = c.bootstrap

    # the health probe is `fluxo healthcheck` on /health; it fails where nothing answers
    st = c.state()["Health"]
    assert st["Log"] and st["Log"][-1]["ExitCode"] == 0, st
    assert st["Log"][-1]["Output"].startswith("healthy: GET http://127.0.0.1:9644/health: 200"), st
    assert http_get(f"http://127.0.0.1:{mport}/health") == (200, "ok\n")
    r = sh("docker", "exec", "-e", "FLUXO_METRICS_LISTENER=127.0.0.1:1", c.name,
           "/usr/local/bin/fluxo", "healthcheck", check=False)
    assert r.returncode == 1 and r.stdout.startswith(b"unhealthy: "), r

    # metadata advertises the listener the client came in on: the published
    # address from the host, the network alias inside the Docker network
    md = admin_client(bs).list_topics(timeout=15)
    assert {b.id: (b.host, b.port) for b in md.brokers.values()} == {1: ("127.0.0.1", port)}
    assert net_metadata(kcat_image, network, c.internal_bootstrap) == {1: c.internal_bootstrap}

    # a client on the network produces through the internal listener; the host reads it
    tin = unique_topic("dockint")
    net_kcat(kcat_image, network, "-b", c.internal_bootstrap, "-P", "-t", tin, "-K", ":",
             input=b"".join(f"i{i}:internal {i}\n".encode() for i in range(5)))
    assert _kcat_consume(bs, tin) == [(i, f"i{i}", f"internal {i}") for i in range(5)]
    us = "\x1f"
    out = net_kcat(kcat_image, network, "-b", c.internal_bootstrap, "-C", "-t", tin, "-p", "0",
                   "-o", "0", "-e", "-q", "-f", f"%o{us}%k{us}%s\n").decode()
    assert out.splitlines() == [f"{i}{us}i{i}{us}internal {i}" for i in range(5)]

    # confluent-kafka: 3 partitions, keys/values/headers incl. binary, null and empty
    t1 = unique_topic("dock")
    create_topic(bs, t1, 3)
    recs = make_records(450, 3, seed=2024)
    reports = produce(bs, t1, recs, {"compression.type": "lz4"})
    check_roundtrip(bs, t1, 3, recs, reports)
    snap1 = _snapshot(bs, t1, 3, len(recs))

    # kcat: whole files as messages (exact bytes), then keyed text lines
    t2 = unique_topic("dockkcat")
    create_topic(bs, t2, 1)
    blobs = _kcat_produce_binary(bs, t2, tmp_path)
    kcat("-b", bs, "-P", "-t", t2, "-p", "0", "-K", ":",
         input=b"".join(f"k{i}:line {i} of the docker smoke test\n".encode() for i in range(20)))
    snap2 = _snapshot(bs, t2, 1, len(blobs) + 20)
    assert [v for _, _, v, _, _ in snap2[0][:3]] == blobs
    assert [(k, v) for _, k, v, _, _ in snap2[0][3:]] == \
        [(f"k{i}".encode(), f"line {i} of the docker smoke test".encode()) for i in range(20)]
    for off, blob in enumerate(blobs):  # kcat prints one message's value, byte for byte
        assert kcat("-b", bs, "-C", "-t", t2, "-p", "0", "-o", str(off), "-c", "1", "-q",
                    "-f", "%s") == blob
    assert _kcat_consume(bs, t2, start=len(blobs)) == \
        [(3 + i, f"k{i}", f"line {i} of the docker smoke test") for i in range(20)]

    # the broker runs as the fluxo user and its files are in the volume
    assert c.exec("id", "-u").strip() == "10001"
    owners = set(c.exec("find", "/var/lib/fluxo", "-mindepth", "1", "-printf", "%u\\n").split())
    assert owners == {"fluxo"}, owners

    # stop (SIGTERM: flush, exit 0) and start the same container
    assert c.stop() == 0, c.logs()
    c.start().wait_healthy()
    wait_for_topic(bs, t1, 3)
    assert _snapshot(bs, t1, 3, len(recs)) == snap1
    assert _snapshot(bs, t2, 1, len(blobs) + 20) == snap2

    # the log goes on where it ended
    more = [(p, b"after", f"after-restart-{p}".encode(), [("r", b"1")]) for p in range(3)]
    rep2 = produce(bs, t1, more)
    assert [(p, off) for p, off, _ in rep2] == [(p, 150) for p in range(3)]
    snap1 = _snapshot(bs, t1, 3, len(recs) + 3)
    assert c.stop() == 0, c.logs()

    # a new container on the same volume sees the same bytes
    c2 = Container(image, volume, port, network=network, alias=alias)
    containers.append(c2)
    c.remove()
    c2.run().wait_healthy()
    wait_for_topic(bs, t1, 3)
    assert _snapshot(bs, t1, 3, len(recs) + 3) == snap1
    assert _snapshot(bs, t2, 1, len(blobs) + 20) == snap2

    java = _java_consume(bs, t1, 3, len(recs) + 3, tmp_path)
    if java is not None:
        assert java == snap1
        print(f"\n[test_docker] the Java client read the same {len(recs) + 3} records")

    assert c2.stop() == 0, c2.logs()
    logs = c2.logs(1000)
    assert "panicked" not in logs, logs


def _compose_cmd() -> list[str] | None:
    if sh("docker", "compose", "version", check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_up_produce_restart_down(image, kcat_image, tmp_path):
    compose = _compose_cmd()
    if compose is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed")
    port, mport = free_port(), free_port()
    project = f"fluxotest{RUN_ID}"
    network = f"{project}_default"   # compose's default network of the project
    vol = f"fluxo-test-{RUN_ID}-compose"
    env = {"FLUXO_IMAGE": image, "FLUXO_PORT": str(port), "FLUXO_VOLUME": vol,
           "FLUXO_ADVERTISED_HOST": "127.0.0.1", "FLUXO_METRICS_PORT": str(mport)}
    base = [*compose, "-f", DOCKER_DIR / "compose.yaml", "-p", project]
    try:
        sh(*base, "up", "-d", "--no-build", env=env, timeout=180)
        cid = sh(*base, "ps", "-q", "fluxo", env=env).stdout.decode().strip()
        assert cid, "compose started no fluxo container"
        c = Container(image, vol, port, name=cid)
        c.wait_healthy(timeout=90)  # the image's own 5 s health interval here
        bs = f"127.0.0.1:{port}"
        topic = unique_topic("compose")
        lines = [f"c{i}:compose record {i}" for i in range(10)]
        kcat("-b", bs, "-P", "-t", topic, "-K", ":", input="\n".join(lines).encode() + b"\n")
        want = [(i, f"c{i}", f"compose record {i}") for i in range(10)]
        assert _kcat_consume(bs, topic) == want
        # the internal listener: the service name on the compose network
        assert net_metadata(kcat_image, network, "fluxo:29092") == {1: "fluxo:29092"}
        net_kcat(kcat_image, network, "-b", "fluxo:29092", "-P", "-t", topic, "-K", ":",
                 input=b"c10:from the network\n")
        want.append((10, "c10", "from the network"))
        assert _kcat_consume(bs, topic) == want
        # the published metrics port
        assert http_get(f"http://127.0.0.1:{mport}/health") == (200, "ok\n")
        status, body = http_get(f"http://127.0.0.1:{mport}/metrics")
        assert status == 200
        assert metric(body, "fluxo_partition_high_watermark", topic=topic, partition=0) == 11
        sh(*base, "restart", env=env, timeout=120)
        c.wait_healthy(timeout=90)
        assert _kcat_consume(bs, topic) == want
        sh(*base, "stop", env=env, timeout=120)
        assert c.state()["ExitCode"] == 0, c.logs()
    except BaseException:
        r = sh(*base, "logs", "--tail", "100", env=env, check=False)
        print(r.stdout.decode(errors="replace"))
        raise
    finally:
        sh(*base, "down", "-v", "--remove-orphans", env=env, check=False, timeout=180)
        sh("docker", "volume", "rm", "-f", vol, check=False)


def test_compose_sasl_file_is_valid_and_secure():
    """docker/compose.sasl.yaml: `compose config` accepts it (and refuses it without the
    admin password), and it sets up SASL_SSL, SCRAM, the authorizer and the metrics port."""
    compose = _compose_cmd()
    if compose is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed")
    base = [*compose, "-f", DOCKER_DIR / "compose.sasl.yaml", "-p", f"fluxotestsasl{RUN_ID}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXO_")}
    r = subprocess.run([str(c) for c in base] + ["config"], capture_output=True, timeout=60, env=env)
    assert r.returncode != 0, "compose.sasl.yaml ran without FLUXO_ADMIN_PASSWORD"
    r = subprocess.run([str(c) for c in base] + ["config"], capture_output=True, timeout=60,
                       env={**env, "FLUXO_ADMIN_PASSWORD": "s3cret", "FLUXO_SASL_SSL_PORT": "19094"})
    assert r.returncode == 0, r.stderr.decode()
    import yaml
    cfg = yaml.safe_load(r.stdout)
    svc = cfg["services"]["fluxo"]
    e = svc["environment"]
    assert e["FLUXO_LISTENERS"] == "SASL_SSL://0.0.0.0:9094,INTERNAL://0.0.0.0:29092"
    assert e["FLUXO_ADVERTISED_LISTENERS"] == "SASL_SSL://localhost:19094,INTERNAL://fluxo:29092"
    assert e["FLUXO_LISTENER_SECURITY_PROTOCOL_MAP"] == "INTERNAL:SASL_PLAINTEXT"
    assert e["FLUXO_SASL_USERS"] == "admin:s3cret" and e["FLUXO_SUPER_USERS"] == "User:admin"
    assert e["FLUXO_AUTHORIZER_ENABLED"] == "true" and e["FLUXO_METRICS_LISTENER"] == "0.0.0.0:9644"
    # docker-compose 1.x writes "ip:published:target/proto", compose v2 a mapping.
    ports = [f"{p['published']}:{p['target']}" if isinstance(p, dict) else str(p) for p in svc["ports"]]
    assert any("19094:9094" in p for p in ports) and any("9644:9644" in p for p in ports), ports
    assert not any("29092" in p for p in ports), "the SASL_PLAINTEXT listener must not be published"

"""Harness for the Fluxo client-compatibility suite.

Starts the Fluxo broker binary (``FLUXO_BIN``, default
``${CARGO_TARGET_DIR:-<repo>/target}/release/fluxo``) on a free loopback port
with a temporary data dir, waits until it accepts TCP connections (with a
deadline), and always kills it at teardown, even when the test failed.
The broker runs with ``RUST_BACKTRACE=1`` and its output goes to a log file;
a test fails at teardown if that log reports a panic (``panicked at``), even
one the broker survived.

``FLUXO_COMPAT_TARGET=noida`` points the same harness at a peer broker
(``noida-db start --only kafka``) instead; that is only for validating the
tests themselves. The default target is Fluxo.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

COMPAT_DIR = Path(__file__).resolve().parent
REPO_ROOT = COMPAT_DIR.parent
if str(COMPAT_DIR) not in sys.path:
    sys.path.insert(0, str(COMPAT_DIR))

from compat_util import create_topic, unique_topic  # noqa: E402

TARGET = os.environ.get("FLUXO_COMPAT_TARGET", "fluxo").strip().lower() or "fluxo"
DEFAULT_TIMEOUT = 120  # seconds per test, unless a test marks its own


def fluxo_bin_path() -> Path:
    env = os.environ.get("FLUXO_BIN")
    if env:
        return Path(env)
    target_dir = os.environ.get("CARGO_TARGET_DIR") or str(REPO_ROOT / "target")
    return Path(target_dir) / "release" / "fluxo"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the test process dies (Linux only),
    so no broker outlives an interrupted or killed test run."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class BrokerError(RuntimeError):
    pass


class Broker:
    """One broker process on a fixed port and data dir; can be restarted."""

    def __init__(self, data_dir: Path, log_dir: Path, port: int | None = None,
                 extra_args: list[str] | None = None, target: str = TARGET,
                 bin_path: Path | None = None, start_timeout: float = 60.0):
        self.target = target
        self.bin_path = bin_path or fluxo_bin_path()
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir)
        self.port = port or free_port()
        self.extra_args = list(extra_args or [])
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.log_path: Path | None = None
        self.log_paths: list[Path] = []
        self._panics_reported = 0
        self._log_fh = None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)

    # -- properties -------------------------------------------------------
    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        addr = f"127.0.0.1:{self.port}"
        if self.target == "fluxo":
            return [str(self.bin_path), "--listener", addr,
                    "--advertised-listener", addr,
                    "--data-dir", str(self.data_dir), *self.extra_args]
        if self.target == "noida":
            exe = shutil.which("noida-db") or "noida-db"
            return [exe, "start", "--only", "kafka", "--host", "127.0.0.1",
                    "--kafka-port", str(self.port), "--data-dir", str(self.data_dir)]
        raise BrokerError(f"unknown FLUXO_COMPAT_TARGET={self.target!r}")

    # -- lifecycle --------------------------------------------------------
    def start(self) -> "Broker":
        if self.running:
            raise BrokerError("broker already running")
        if self.target == "fluxo" and not (self.bin_path.is_file() and os.access(self.bin_path, os.X_OK)):
            raise BrokerError(
                f"Fluxo binary not found or not executable at {self.bin_path}. "
                "Build it with `cargo build --release` or set FLUXO_BIN.")
        # The previous process (if any) must have released the port.
        deadline = time.monotonic() + 15
        while _port_open(self.port):
            if time.monotonic() > deadline:
                raise BrokerError(f"port {self.port} still in use before start")
            time.sleep(0.1)
        self.starts += 1
        self.log_path = self.log_dir / f"broker-{self.port}-start{self.starts}.log"
        self.log_paths.append(self.log_path)
        self._log_fh = open(self.log_path, "wb")
        cmd = self.command()
        self._log_fh.write(("$ " + " ".join(cmd) + "\n").encode())
        self._log_fh.flush()
        # Hermetic: FLUXO_* variables in the caller's environment would override the
        # broker's defaults (clap env fallbacks), so they are not passed on.
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXO_")}
        env["RUST_BACKTRACE"] = "1"  # a panic's backtrace lands in the log (see panic_lines)
        self.proc = subprocess.Popen(cmd, stdout=self._log_fh, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, env=env,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + self.start_timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise BrokerError(
                    f"broker exited with code {rc} before listening on {self.bootstrap}\n"
                    + self.log_tail())
            if _port_open(self.port):
                return self
            if time.monotonic() > deadline:
                self._kill_group(signal.SIGKILL)
                raise BrokerError(
                    f"broker did not listen on {self.bootstrap} within "
                    f"{self.start_timeout:.0f}s\n" + self.log_tail())
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code (Fluxo must exit 0)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill_group(signal.SIGKILL)
                self.proc.wait(timeout=10)
                self._close_log()
                raise BrokerError(f"broker did not exit within {timeout:.0f}s of SIGTERM\n"
                                  + self.log_tail())
        rc = self.proc.returncode
        self._reap_group()
        self._close_log()
        return rc

    def kill9(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._reap_group()
        self._close_log()

    def restart(self) -> "Broker":
        if self.running:
            rc = self.stop()
            if self.target == "fluxo" and rc != 0:
                raise BrokerError(f"broker exited with {rc} on SIGTERM\n" + self.log_tail())
        return self.start()

    def close(self) -> None:
        """Teardown: make sure nothing is left running; then fail the test if the
        broker panicked (and the panic was not reported already)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.stop(timeout=10)
            except BrokerError:
                pass
        self._reap_group()
        self._close_log()
        self.fail_on_new_panics()

    def panic_lines(self) -> list[str]:
        """Lines of every log of this broker reporting a panic, each followed by
        the line after it (the panic message)."""
        found: list[str] = []
        for path in self.log_paths:
            if not path.exists():
                continue
            lines = path.read_text(errors="replace").splitlines()
            for i, line in enumerate(lines):
                if "panicked at" in line:
                    found.append(f"{path.name}: {line}")
                    if i + 1 < len(lines):
                        found.append(f"    {lines[i + 1]}")
        return found

    def fail_on_new_panics(self) -> None:
        """pytest.fail with the panic lines if the logs report a panic not yet reported."""
        lines = self.panic_lines()
        if len(lines) > self._panics_reported:
            new = lines[self._panics_reported:]
            self._panics_reported = len(lines)
            pytest.fail("the broker panicked:\n" + "\n".join(new[:40]), pytrace=False)

    # -- helpers ----------------------------------------------------------
    def _kill_group(self, sig) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _reap_group(self) -> None:
        # Children (if the target forks any) live in the same new session.
        self._kill_group(signal.SIGKILL)

    def _close_log(self) -> None:
        if self._log_fh is not None:
            try:
                self._log_fh.close()
            finally:
                self._log_fh = None

    def log_tail(self, n: int = 60) -> str:
        if not self.log_path or not self.log_path.exists():
            return "(no broker log)"
        lines = self.log_path.read_text(errors="replace").splitlines()
        return f"--- last {min(n, len(lines))} lines of {self.log_path} ---\n" + "\n".join(lines[-n:])


# ---------------------------------------------------------------------------
# pytest plumbing
# ---------------------------------------------------------------------------

def pytest_configure(config):
    # kafka-python loads its protocol schemas through deprecated importlib APIs
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:kafka.*")
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:importlib.*")
    if not config.pluginmanager.hasplugin("timeout"):
        config.addinivalue_line("markers", "timeout(seconds): per-test timeout (pytest-timeout)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("timeout") is None and str(item.fspath).startswith(str(COMPAT_DIR)):
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _make_broker(tmp_path_factory, name, extra_args=None) -> Broker:
    base = tmp_path_factory.mktemp(name)
    return Broker(data_dir=base / "data", log_dir=base / "logs", extra_args=extra_args)


def _start_or_fail(b: Broker) -> Broker:
    try:
        return b.start()
    except BrokerError as e:
        b.close()
        pytest.fail(str(e), pytrace=False)


def _report_on_failure(request, b: Broker) -> None:
    failed = any(getattr(request.node, "rep_" + w, None) is not None
                 and getattr(request.node, "rep_" + w).failed for w in ("setup", "call"))
    if failed:
        sys.stderr.write("\n" + b.log_tail(80) + "\n")


@pytest.fixture(scope="session")
def fluxo_bin() -> Path:
    p = fluxo_bin_path()
    if TARGET == "fluxo" and not (p.is_file() and os.access(p, os.X_OK)):
        pytest.fail(f"Fluxo binary not found at {p}: build it (cargo build --release) "
                    "or set FLUXO_BIN", pytrace=False)
    return p


@pytest.fixture(scope="module")
def broker(fluxo_bin, tmp_path_factory):
    """A broker shared by the tests of one module (each test uses its own topics)."""
    b = _make_broker(tmp_path_factory, "broker")
    _start_or_fail(b)
    yield b
    b.close()


@pytest.fixture(autouse=True)
def _dump_shared_broker_log(request):
    yield
    if "broker" in request.fixturenames:
        b = request.getfixturevalue("broker")
        _report_on_failure(request, b)
        if isinstance(b, Broker):
            # Attribute a panic of the shared broker to the test that caused it.
            b.fail_on_new_panics()


@pytest.fixture
def fresh_broker(fluxo_bin, tmp_path_factory, request):
    """A broker of its own for one test (for stop/kill/restart tests)."""
    b = _make_broker(tmp_path_factory, "fresh")
    _start_or_fail(b)
    yield b
    _report_on_failure(request, b)
    b.close()


@pytest.fixture
def new_topic(broker):
    """Factory: new_topic(partitions=1, prefix=..., config=None) -> name (created, ready)."""
    def make(partitions: int = 1, prefix: str = "t", config: dict | None = None) -> str:
        name = unique_topic(prefix)
        create_topic(broker.bootstrap, name, partitions, config=config)
        return name
    return make

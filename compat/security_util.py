"""Helpers for the security compat tests: throw-away PEM certificates made with
the openssl CLI in a temp dir (never committed) and a broker with named listeners."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import Broker, free_port


def openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"openssl {' '.join(args)} failed:\n{r.stderr}"


def make_ca(d: Path, name: str = "ca") -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN=fluxo-test-{name}", "-keyout", f"{name}.key", "-out", f"{name}.pem",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return d / f"{name}.pem", d / f"{name}.key"


def make_cert(d: Path, ca: tuple[Path, Path], name: str, cn: str, server: bool,
              subject: str | None = None) -> tuple[Path, Path]:
    """A certificate signed by `ca` (server: SAN 127.0.0.1 and localhost): (cert, key);
    its subject is `/CN=<cn>/O=fluxo-tests` unless `subject` (openssl -subj form) is given."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject or f"/CN={cn}/O=fluxo-tests",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    ext = d / f"{name}.ext"
    if server:
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    else:
        ext.write_text("extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", str(ca[0]), "-CAkey", str(ca[1]),
            "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", str(ext), cwd=d)
    return d / f"{name}.pem", d / f"{name}.key"


class Certs:
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""

    def __init__(self, d: Path):
        self.dir = d
        self.ca, self.ca_key = make_ca(d)
        self.server, self.server_key = make_cert(d, (self.ca, self.ca_key), "server", "127.0.0.1", True)
        self.client, self.client_key = make_cert(d, (self.ca, self.ca_key), "client", "alice", False)


def secure_broker(base: Path, listeners: dict[str, str], extra: list[str] | None = None) -> tuple[Broker, dict[str, int]]:
    """A broker with a PLAINTEXT listener on its harness port plus one named listener per
    `listeners` entry (name -> security protocol); returns it (not started) and the ports."""
    plain = free_port()
    ports = {name: free_port() for name in listeners}
    named = [f"PLAINTEXT://127.0.0.1:{plain}"] + [f"{n}://127.0.0.1:{p}" for n, p in ports.items()]
    args = ["--listeners", ",".join(named)]
    mapping = [f"{n}:{proto}" for n, proto in listeners.items()]
    if mapping:
        args += ["--listener-security-protocol-map", ",".join(mapping)]
    b = Broker(data_dir=base / "data", log_dir=base / "logs", port=plain, extra_args=args + (extra or []))
    return b, ports

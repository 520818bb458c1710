"""Owns starting and stopping a real rekeyd for every Python test and benchmark: the binary, a data
directory, a free loopback port, plain HTTP or HTTPS with a throwaway CA, SQLite or a fresh
PostgreSQL database, extra flags and settings. Readiness is rekeyd's ready file (`--ready-file`),
which names the URL, the owner token and the bootstrap ids, so nothing here reads the log for them.

The PostgreSQL policy is the Rust tests': a run that wants PostgreSQL without
REKEY_TEST_POSTGRES_URL fails, unless REKEY_TEST_BACKENDS=sqlite leaves PostgreSQL out on purpose.
Only the standard library is used (plus `openssl` for certificates and `psql` for databases).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
POSTGRES_URL_VAR = "REKEY_TEST_POSTGRES_URL"
BACKENDS_VAR = "REKEY_TEST_BACKENDS"
# Settings rekeyd reads from the environment that must come from the caller, never the shell.
CLEARED_ENV = ("REKEY_MASTER_KEY", "REKEY_DATABASE_URL", "REKEY_PUBLIC_URL", "REKEY_READY_FILE")


class StartError(RuntimeError):
    """rekeyd exited or wrote no ready file in time; the message ends with its log's tail."""


def rekeyd_binary() -> Path:
    """`REKEYD_BIN` (relative to the repository root unless absolute), default target/debug/rekeyd."""
    path = Path(os.environ.get("REKEYD_BIN", "target/debug/rekeyd"))
    return path if path.is_absolute() else REPO_ROOT / path


def backends() -> list[str]:
    """The backends a suite runs on: SQLite, and PostgreSQL unless REKEY_TEST_BACKENDS=sqlite."""
    if os.environ.get(BACKENDS_VAR, "").strip() == "sqlite":
        return ["sqlite"]
    return ["sqlite", "postgres"]


def postgres_admin_url() -> str:
    """The PostgreSQL server to make test databases on; a clear error when none is named."""
    url = os.environ.get(POSTGRES_URL_VAR, "").strip()
    if not url:
        raise SystemExit(
            f"{POSTGRES_URL_VAR} is not set: start a server with `scripts/pg-cluster start DIR` and "
            f"set it to the URL printed, or set {BACKENDS_VAR}=sqlite to leave PostgreSQL out on "
            "purpose (scripts/test does the former by itself)"
        )
    return url


def with_database(url: str, database: str) -> str:
    """`url` (postgres://USER@HOST:PORT/DB?QUERY) with its database name replaced."""
    base, sep, query = url.partition("?")
    start = base.find("://") + 3 if "://" in base else 0
    slash = base.find("/", start)
    host = base if slash < 0 else base[:slash]
    return f"{host}/{database}{sep}{query}"


class FreshDatabase:
    """A new, empty database on the PostgreSQL server `admin_url` names, dropped on exit (with its
    connections: nodes killed mid-run may leave some behind). A context manager; `url` is the new
    database's URL."""

    def __init__(self, admin_url: str, prefix: str = "rekey_test") -> None:
        self.admin_url = admin_url
        self.name = f"{prefix}_{uuid.uuid4().hex}"
        self.url = with_database(admin_url, self.name)

    def _psql(self, sql: str) -> None:
        try:
            done = subprocess.run(
                ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.admin_url, "-c", sql],
                capture_output=True,
                text=True,
                timeout=60,
            )
        except FileNotFoundError as e:
            raise SystemExit("psql not found: apt-get install postgresql-client") from e
        if done.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {done.stderr.strip()}")

    def create(self) -> "FreshDatabase":
        self._psql(f"CREATE DATABASE {self.name}")
        return self

    def drop(self) -> None:
        self._psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")

    def __enter__(self) -> "FreshDatabase":
        return self.create()

    def __exit__(self, *exc: Any) -> None:
        self.drop()


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl") or "/usr/bin/openssl"
    proc = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")


def make_certificates(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost (ECDSA P-256): keys are
    PKCS#8 PEM, the server certificate file holds the leaf only; clients trust `ca_cert`."""
    directory.mkdir(parents=True, exist_ok=True)
    ec = ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
    _openssl("genpkey", *ec, "-out", "ca.key", cwd=directory)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "7",
        "-subj", "/CN=rekey test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
        "-out", "ca.pem",
        cwd=directory,
    )
    _openssl("genpkey", *ec, "-out", "server.key", cwd=directory)
    _openssl(
        "req", "-new", "-key", "server.key", "-subj", "/CN=localhost", "-out", "server.csr",
        cwd=directory,
    )
    (directory / "server.ext").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "7", "-sha256", "-extfile", "server.ext",
        "-out", "server.pem",
        cwd=directory,
    )
    return {
        "ca_cert": directory / "ca.pem",
        "ca_key": directory / "ca.key",
        "cert": directory / "server.pem",
        "key": directory / "server.key",
    }


class Rekeyd:
    """A rekeyd process on `workdir` (data in `workdir/data`, log appended to `workdir/rekeyd.log`,
    ready file `workdir/ready.json`), which outlives the process so a node can be killed and
    restarted; `binary` defaults to [`rekeyd_binary`]. `tls=True` serves HTTPS with a certificate from a CA made in `workdir/tls`
    (`ca_path`). With `joins`, another node on that started node's PostgreSQL database, sharing its
    master key file and owner token (a joining node has none of its own to give)."""

    def __init__(
        self,
        workdir: Path,
        env: Optional[dict[str, str]] = None,
        args: Sequence[str] = (),
        tls: bool = False,
        joins: Optional["Rekeyd"] = None,
        log_level: str = "info",
        binary: Optional[Path] = None,
    ) -> None:
        self.binary = Path(binary) if binary is not None else rekeyd_binary()
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "rekeyd.log"
        self.ready_path = self.workdir / "ready.json"
        self.extra_env = dict(env or {})
        self.args = list(args)
        self.log_level = log_level
        self.joins = joins
        self.ca_path: Optional[str] = None
        if tls:
            certs = make_certificates(self.workdir / "tls")
            self.ca_path = str(certs["ca_cert"])
            self.args += ["--tls-cert", str(certs["cert"]), "--tls-key", str(certs["key"])]
        if joins is not None:
            if "REKEY_DATABASE_URL" not in joins.extra_env:
                raise ValueError("only a node on PostgreSQL can be joined")
            self.extra_env["REKEY_DATABASE_URL"] = joins.extra_env["REKEY_DATABASE_URL"]
            self.extra_env["REKEY_MASTER_KEY_FILE"] = str(joins.data_dir / "master.key")
        self.proc: Optional[subprocess.Popen] = None
        self.base_url = ""
        self.token = ""
        self.subscription = ""
        self.tenant_id = ""
        self.starts = 0

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "--listen", "127.0.0.1:0",
            "--data-dir", str(self.data_dir),
            "--ready-file", str(self.ready_path),
            *self.args,
        ]

    def start(self) -> "Rekeyd":
        """Starts rekeyd and waits for its ready file; raises StartError with the log's tail."""
        if not self.binary.is_file():
            raise SystemExit(f"rekeyd binary not found at {self.binary}: build it or set REKEYD_BIN")
        self.workdir.mkdir(parents=True, exist_ok=True)
        # rekeyd removes an old ready file itself, but only once it runs.
        self.ready_path.unlink(missing_ok=True)
        env = dict(os.environ)
        for name in CLEARED_ENV:
            env.pop(name, None)
        env.update({"RUST_LOG": self.log_level, "RUST_BACKTRACE": "1"})
        env.update(self.extra_env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=subprocess.DEVNULL,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.ready_path.exists():
            if self.proc.poll() is not None:
                raise StartError(f"rekeyd exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise StartError(
                    f"rekeyd wrote no ready file within {START_TIMEOUT_S:.0f}s:\n{self.log_tail()}"
                )
            time.sleep(0.01)
        # Renamed into place whole by rekeyd: once it exists, it is complete.
        ready = json.loads(self.ready_path.read_text())
        self.base_url = ready["url"]
        self.subscription = ready["subscriptionId"]
        self.tenant_id = ready["tenantId"]
        # A node on a database another node bootstrapped has no owner token to give.
        self.token = ready.get("token") or (self.joins.token if self.joins is not None else "")
        self.starts += 1
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a power cut of the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM (rekeyd shuts down gracefully), SIGKILL if that takes over 15 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def __enter__(self) -> "Rekeyd":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_nodes(workdir: Path, count: int, env: dict[str, str], node=Rekeyd) -> list:
    """`count` nodes (of class `node`) on the database `env["REKEY_DATABASE_URL"]` names: the first
    bootstraps it, the others join it. On failure the nodes already started are stopped."""
    nodes: list = []
    try:
        for i in range(count):
            started = node(Path(workdir) / f"node{i}", env, joins=nodes[0] if nodes else None)
            started.start()
            nodes.append(started)
    except BaseException:
        for started in nodes:
            started.stop()
        raise
    return nodes

"""Owns starting, killing and talking to a real rekeyd for the reliability scripts.

The crash, linearizability and resource-limit scripts all need the same things: the rekeyd binary
started on a fresh (or the same) data directory on a free loopback port, the owner token from
bootstrap.json, a Cognitive Services account to work on, and a small HTTP client that keeps its
connection and reports a dropped one as "no answer" rather than crashing the worker. For several
nodes: a fresh PostgreSQL database (made and dropped with `psql`, which Debian's `postgresql`
package that CI installs brings) and nodes that join the first one on it. Only the standard library
is used so that CI needs nothing beyond python3.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
CS_VERSION = "2025-09-01"
RG_VERSION = "2025-04-01"
START_TIMEOUT_S = 30.0


def rekeyd_binary() -> Path:
    raw = os.environ.get("REKEYD_BIN", "target/debug/rekeyd")
    path = Path(raw)
    return path if path.is_absolute() else REPO_ROOT / path


class NoAnswer(Exception):
    """The request got no HTTP answer. With `sent` false the connection was never made (the server
    was down), so the request cannot have taken effect; otherwise it may or may not have."""

    def __init__(self, why: str, sent: bool = True) -> None:
        super().__init__(why)
        self.sent = sent


class Client:
    """One keep-alive HTTP/1.1 connection to rekeyd; not shared between threads."""

    def __init__(self, base_url: str, token: Optional[str], timeout: float = 10.0) -> None:
        self.token = token
        self.timeout = timeout
        self.conn: Optional[http.client.HTTPConnection] = None
        self.base_url = ""
        self.retarget(base_url)

    def retarget(self, base_url: str) -> None:
        if base_url != self.base_url:
            self.close()
            self.base_url = base_url
            match = re.match(r"http://([^:/]+):(\d+)", base_url)
            if not match:
                raise ValueError(f"not a plain http URL: {base_url}")
            self.host, self.port = match.group(1), int(match.group(2))

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Optional[dict[str, str]] = None,
        auth: bool = True,
    ) -> tuple[int, Any]:
        """Sends one request; returns (status, parsed JSON or None). Raises NoAnswer."""
        all_headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode() if not isinstance(body, bytes) else body
            all_headers.setdefault("content-type", "application/json")
        if auth and self.token:
            all_headers["authorization"] = f"Bearer {self.token}"
        if self.conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                conn.connect()
            except OSError as e:
                conn.close()
                raise NoAnswer(repr(e), sent=False) from e
            self.conn = conn
        try:
            self.conn.request(method, path, body=data, headers=all_headers)
            resp = self.conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise NoAnswer(repr(e)) from e
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return resp.status, parsed


class Rekeyd:
    """A rekeyd process on a data directory that outlives the process (for kill and restart).

    With `joins`, another node on the PostgreSQL database of that (started) node: it shares that
    node's master key file and owner token, and writes no bootstrap.json of its own."""

    def __init__(
        self,
        workdir: Path,
        env: Optional[dict[str, str]] = None,
        joins: Optional["Rekeyd"] = None,
    ) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.log_path = workdir / "rekeyd.log"
        self.extra_env = dict(env or {})
        self.joins = joins
        if joins is not None:
            if "REKEY_DATABASE_URL" not in joins.extra_env:
                raise ValueError("only a node on PostgreSQL can be joined")
            self.extra_env["REKEY_DATABASE_URL"] = joins.extra_env["REKEY_DATABASE_URL"]
            self.extra_env["REKEY_MASTER_KEY_FILE"] = str(joins.data_dir / "master.key")
        self.proc: Optional[subprocess.Popen] = None
        self.base_url = ""
        self.token = ""
        self.subscription = ""
        self.starts = 0

    def start(self) -> None:
        binary = rekeyd_binary()
        if not binary.is_file():
            raise SystemExit(f"rekeyd binary not found at {binary}: build it or set REKEYD_BIN")
        self.workdir.mkdir(parents=True, exist_ok=True)
        skip = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = dict(os.environ)
        env.update({"RUST_LOG": "info", "RUST_BACKTRACE": "1"})
        env.pop("REKEY_MASTER_KEY", None)
        env.pop("REKEY_DATABASE_URL", None)
        env.update(self.extra_env)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(binary), "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            text = self.log_path.read_bytes()[skip:].decode(errors="replace")
            match = re.search(r"rekeyd listening on (\S+)", text)
            if match:
                self.base_url = match.group(1)
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"rekeyd exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"rekeyd did not start:\n{self.log_tail()}")
            time.sleep(0.02)
        if self.joins is not None:
            self.token, self.subscription = self.joins.token, self.joins.subscription
        else:
            boot = json.loads((self.data_dir / "bootstrap.json").read_text())
            self.token, self.subscription = boot["token"], boot["subscriptionId"]
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a power cut of the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
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

    def client(self, timeout: float = 10.0) -> Client:
        return Client(self.base_url, self.token, timeout)

    def account_path(self, group: str, name: str) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{group}"
            f"/providers/Microsoft.CognitiveServices/accounts/{name}"
        )

    def create_account(self, group: str, name: str) -> dict[str, Any]:
        """Creates the group (if needed) and a Cognitive Services account; returns the account."""
        c = self.client()
        status, body = c.request(
            "PUT",
            f"/subscriptions/{self.subscription}/resourcegroups/{group}?api-version={RG_VERSION}",
            {"location": "westus"},
        )
        if status not in (200, 201):
            raise RuntimeError(f"creating group {group}: {status} {body}")
        status, body = c.request(
            "PUT",
            f"{self.account_path(group, name)}?api-version={CS_VERSION}",
            {"location": "westus", "kind": "TextAnalytics", "sku": {"name": "S0"}},
        )
        if status != 201:
            raise RuntimeError(f"creating account {name}: {status} {body}")
        c.close()
        return body


def start_nodes(workdir: Path, count: int, env: dict[str, str]) -> list[Rekeyd]:
    """`count` rekeyd nodes on the database `env["REKEY_DATABASE_URL"]` names: the first one
    bootstraps it, the others join it. On failure the nodes already started are stopped."""
    nodes: list[Rekeyd] = []
    try:
        for i in range(count):
            node = Rekeyd(workdir / f"node{i}", env, joins=nodes[0] if nodes else None)
            node.start()
            nodes.append(node)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return nodes


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

    def __init__(self, admin_url: str, prefix: str = "rekey_rel") -> None:
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

    def __enter__(self) -> "FreshDatabase":
        self._psql(f"CREATE DATABASE {self.name}")
        return self

    def __exit__(self, *exc: Any) -> None:
        self._psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def is_cs_key(value: Any) -> bool:
    """The shape of a Cognitive Services key: `rkcs_` + 36 base62 + 6 base62 checksum."""
    return isinstance(value, str) and re.fullmatch(r"rkcs_[0-9A-Za-z]{42}", value) is not None


def short(key: Optional[str]) -> str:
    """A key shortened for printing: enough to tell keys apart, not enough to use one."""
    if key is None:
        return "-"
    return key[5:13] + "…" if key.startswith("rk") else key[:8] + "…"

"""Owns talking to a real rekeyd for the reliability scripts: a small HTTP client that keeps its
connection and reports a dropped one as "no answer" rather than crashing the worker, and a
Cognitive Services account to work on. Starting, killing and restarting rekeyd (on a fresh or the
same data directory, on a fresh PostgreSQL database, several nodes joining the first) is
tests/common/rekeyd.py's, shared with every Python suite. Only the standard library is used so that
CI needs nothing beyond python3.
"""

from __future__ import annotations

import http.client
import json
import re
import sys
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import rekeyd as common  # noqa: E402
from common.rekeyd import FreshDatabase, with_database  # noqa: E402,F401

CS_VERSION = "2025-09-01"
RG_VERSION = "2025-04-01"


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


class Rekeyd(common.Rekeyd):
    """A rekeyd (see tests/common/rekeyd.py) with the calls the reliability scripts make."""

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
    """`count` nodes on the database `env["REKEY_DATABASE_URL"]` names (see common.start_nodes)."""
    return common.start_nodes(workdir, count, env, node=Rekeyd)


def is_cs_key(value: Any) -> bool:
    """The shape of a Cognitive Services key: `rkcs_` + 36 base62 + 6 base62 checksum."""
    return isinstance(value, str) and re.fullmatch(r"rkcs_[0-9A-Za-z]{42}", value) is not None


def short(key: Optional[str]) -> str:
    """A key shortened for printing: enough to tell keys apart, not enough to use one."""
    if key is None:
        return "-"
    return key[5:13] + "…" if key.startswith("rk") else key[:8] + "…"

"""Owns the resource-limit checks against a live rekeyd, on loopback only:

- request bodies over the documented limits get 413 (management: `--max-body-bytes`, 1 MiB by
  default, whether the length is announced or the body is chunked; data plane:
  `--max-data-plane-body-bytes`), and a body at the limit is still accepted;
- slow-loris clients (headers dribbled a byte at a time, or nothing sent at all) are disconnected
  after `--header-read-timeout-seconds`;
- `--idle` (default 10,000) idle TCP connections held open at once do not stop service: /healthz
  and a data-plane call still answer while they are all connected.

    python3 tests/reliability/limits.py [--idle 10000] [--report]
"""

from __future__ import annotations

import argparse
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402
from rekeyd import RG_VERSION, Rekeyd  # noqa: E402

MAX_BODY = 1 << 20
DATA_PLANE_MAX_BODY = 4 << 20  # set small here so the check sends little
HEADER_TIMEOUT_S = 2
BATCH = 100


def raise_fd_limit(needed: int) -> int:
    """Lets this process (and the rekeyd it starts) hold `needed` descriptors; root may raise the
    hard limit too. Returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 1024
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            pass
    new_soft = want if hard == resource.RLIM_INFINITY else min(max(soft, want), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
    return new_soft


def raw_request(port: int, head: bytes, body: bytes = b"", timeout: float = 10.0) -> tuple[int, bytes]:
    """Sends raw bytes; returns the status and whatever came back before the server closed or the
    timeout passed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        if body:
            try:
                s.sendall(body)
            except OSError:
                pass  # the server may answer 413 and close before reading the body
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, data


def check_body_limits(server: Rekeyd, data_path: str) -> list[str]:
    port = int(server.base_url.rsplit(":", 1)[1])
    auth = f"Authorization: Bearer {server.token}\r\n".encode()
    group = f"/subscriptions/{server.subscription}/resourcegroups/limits?api-version={RG_VERSION}"
    failures = []

    def put_group(body: bytes, chunked: bool) -> int:
        if chunked:
            head = (
                f"PUT {group} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Transfer-Encoding: chunked\r\nConnection: close\r\n"
            ).encode() + auth + b"\r\n"
            framed = b"".join(
                f"{len(body[i:i + 65536]):x}\r\n".encode() + body[i : i + 65536] + b"\r\n"
                for i in range(0, len(body), 65536)
            ) + b"0\r\n\r\n"
            return raw_request(port, head, framed)[0]
        head = (
            f"PUT {group} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n"
        ).encode() + auth + b"\r\n"
        return raw_request(port, head, body)[0]

    at_limit = b'{"location":"westus"}'
    at_limit += b" " * (MAX_BODY - len(at_limit))
    for chunked in (False, True):
        how = "chunked" if chunked else "with Content-Length"
        status = put_group(at_limit, chunked)
        if status not in (200, 201):
            failures.append(f"a management body of exactly {MAX_BODY} bytes {how}: {status}, wanted 200/201")
        status = put_group(at_limit + b" ", chunked)
        if status != 413:
            failures.append(f"a management body of {MAX_BODY + 1} bytes {how}: {status}, wanted 413")
    # The data plane refuses an announced oversize body before reading it.
    head = (
        f"POST {data_path} HTTP/1.1\r\nHost: x\r\nContent-Length: {DATA_PLANE_MAX_BODY + 1}\r\n"
        f"Connection: close\r\n\r\n"
    ).encode()
    status, _ = raw_request(port, head)
    if status != 413:
        failures.append(f"a data-plane body announced at {DATA_PLANE_MAX_BODY + 1} bytes: {status}, wanted 413")
    return failures


def closed_within(sock: socket.socket, seconds: float, dribble: bool) -> float | None:
    """Seconds until the server closed `sock` (None if it did not within `seconds`). With
    `dribble`, one header byte is sent every 0.25 s, as a slow-loris client does."""
    start = time.monotonic()
    sock.settimeout(0.25)
    while time.monotonic() - start < seconds:
        if dribble:
            try:
                sock.send(b"a")
            except OSError:
                return time.monotonic() - start
        try:
            if sock.recv(1024) == b"":
                return time.monotonic() - start
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - start
    return None


def check_slow_loris(server: Rekeyd) -> tuple[list[str], dict[str, float]]:
    port = int(server.base_url.rsplit(":", 1)[1])
    failures, figures = [], {}
    limit = HEADER_TIMEOUT_S + 3
    for name, dribble in (("dribbling", True), ("silent", False)):
        sock = socket.create_connection(("127.0.0.1", port))
        if dribble:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        took = closed_within(sock, limit, dribble)
        sock.close()
        if took is None:
            failures.append(f"a {name} slow-loris connection was still open after {limit} s")
        else:
            figures[name] = took
    return failures, figures


def check_idle(server: Rekeyd, count: int, data_path: str, key: str) -> tuple[list[str], dict[str, float]]:
    port = int(server.base_url.rsplit(":", 1)[1])
    failures: list[str] = []
    socks: list[socket.socket] = []
    started = time.monotonic()
    try:
        # Non-blocking connects in batches smaller than the listen backlog (128): one at a time
        # would wait a round trip each, a larger burst would overflow the backlog and wait for
        # SYN retransmits.
        import selectors

        for first in range(0, count, BATCH):
            batch = []
            for _ in range(min(BATCH, count - first)):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                batch.append(s)
            sel = selectors.DefaultSelector()
            for s in batch:
                sel.register(s, selectors.EVENT_WRITE)
            pending, deadline = len(batch), time.monotonic() + 30
            while pending and time.monotonic() < deadline:
                for ready, _ in sel.select(timeout=1):
                    sel.unregister(ready.fileobj)
                    pending -= 1
            sel.close()
            for s in batch:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    failures.append("an idle connection could not be opened")
                    return failures, {}
            socks.extend(batch)
        opened = time.monotonic() - started
        c = server.client(timeout=10)
        t0 = time.monotonic()
        status, body = c.request("GET", "/healthz", auth=False)
        health_ms = 1000 * (time.monotonic() - t0)
        if status != 200:
            failures.append(f"/healthz with {count} idle connections: {status} {body}")
        t0 = time.monotonic()
        status, body = c.request("GET", data_path, headers={"Ocp-Apim-Subscription-Key": key}, auth=False)
        data_ms = 1000 * (time.monotonic() - t0)
        if status != 200:
            failures.append(f"a data-plane call with {count} idle connections: {status} {body}")
        c.close()
        # How many of the idle connections the server still held when service was checked.
        still_open = 0
        for s in socks:
            s.setblocking(False)
            try:
                still_open += s.recv(1) != b""
            except BlockingIOError:
                still_open += 1
            except OSError:
                pass
    finally:
        for s in socks:
            s.close()
    if not socks:
        return failures, {}
    if still_open < count:
        failures.append(f"only {still_open} of {count} idle connections were still open at the check")
    return failures, {"opened_s": opened, "health_ms": health_ms, "data_ms": data_ms, "held": still_open}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--report", action="store_true", help="rewrite docs/reliability.md")
    args = parser.parse_args()
    fd_limit = raise_fd_limit(args.idle)
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rekey-limits-") as tmp:
        server = Rekeyd(
            Path(tmp),
            {
                "REKEY_MAX_DATA_PLANE_BODY_BYTES": str(DATA_PLANE_MAX_BODY),
                "REKEY_HEADER_READ_TIMEOUT_SECONDS": str(HEADER_TIMEOUT_S),
            },
        )
        server.start()
        try:
            account = server.create_account("limits", "acct")
            data_path = account["properties"]["endpoint"][len(server.base_url) :] + "limits"
            c = server.client()
            _, keys = c.request("POST", f"{server.account_path('limits', 'acct')}/listKeys?api-version=2025-09-01")
            c.close()
            failures += check_body_limits(server, data_path)
            slow_failures, slow = check_slow_loris(server)
            failures += slow_failures
            # Idle connections are held on a server whose header timeout is long enough for all of
            # them to be open at once; the timeout itself was checked above.
            server.stop()
            server.extra_env = {"REKEY_HEADER_READ_TIMEOUT_SECONDS": "300"}
            server.start()
            idle_failures, idle = check_idle(server, args.idle, data_path, keys["key1"])
            failures += idle_failures
            if not server.alive():
                failures.append("rekeyd died")
        finally:
            server.stop()
    if failures:
        print("resource limits FAILED:\n  " + "\n  ".join(failures))
        print(server.log_tail())
        return 1
    print(
        f"resource limits: 413 above {MAX_BODY} bytes (management, announced and chunked) and above "
        f"{DATA_PLANE_MAX_BODY} bytes (data plane); slow-loris connections closed after "
        f"{slow['dribbling']:.1f} s (dribbling) and {slow['silent']:.1f} s (silent) with a {HEADER_TIMEOUT_S} s "
        f"header timeout; {idle['held']} idle connections held (opened in {idle['opened_s']:.1f} s, "
        f"fd limit {fd_limit}) while /healthz answered in {idle['health_ms']:.1f} ms and the data "
        f"plane in {idle['data_ms']:.1f} ms"
    )
    if args.report:
        report.update(
            "limits",
            "| check | result |\n|---|---|\n"
            f"| management body over {MAX_BODY} bytes (Content-Length / chunked) | 413 / 413; exactly the limit: accepted |\n"
            f"| data-plane body announced over the limit ({DATA_PLANE_MAX_BODY} bytes in the test) | 413 |\n"
            f"| slow-loris, one header byte every 0.25 s (header timeout {HEADER_TIMEOUT_S} s) | closed after {slow['dribbling']:.1f} s |\n"
            f"| slow-loris, connected and silent | closed after {slow['silent']:.1f} s |\n"
            f"| idle connections held at once | {idle['held']} (opened in {idle['opened_s']:.1f} s) |\n"
            f"| /healthz while they are held | 200 in {idle['health_ms']:.1f} ms |\n"
            f"| data-plane call while they are held | 200 in {idle['data_ms']:.1f} ms |",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the data-plane benchmarks share (bench/verify, bench/nodes, bench/scale): management calls, waiting for a
server, Cognitive Services accounts with their keys, wrk runs of a "PATH KEY" list (keys.lua), the
median of interleaved rounds, and rewriting a README's results section. rekeyd itself is started
through tests/common/rekeyd.py. Only the standard library, wrk and the servers under test are used.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
KEYS_LUA = HERE / "verify" / "keys.lua"
CS = "api-version=2025-09-01"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method: str, url: str, token: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        text = resp.read()
        return json.loads(text) if text else {}


def wait_http(url: str, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def account_url(base: str, sub: str, i: int) -> str:
    return f"{base}/subscriptions/{sub}/resourceGroups/bench/providers/Microsoft.CognitiveServices/accounts/acct{i}"


def make_accounts(base: str, token: str, sub: str, indices: range, threads: int = 8) -> list[tuple[str, str]]:
    """Creates group `bench` and accounts acct{i} for i in `indices` through the server at `base`;
    returns each account's ("PATH", key) pairs for Key1 and Key2, PATH being its data-plane endpoint
    path (the same on every node of one database) plus a Text Analytics call."""
    call("PUT", f"{base}/subscriptions/{sub}/resourcegroups/bench?api-version=2025-04-01", token, {"location": "westus"})
    port = base.rsplit(":", 1)[1]

    def make(i: int) -> list[tuple[str, str]]:
        acct = account_url(base, sub, i)
        created = call("PUT", f"{acct}?{CS}", token, {"location": "westus", "kind": "TextAnalytics", "sku": {"name": "S0"}})
        keys = call("POST", f"{acct}/listKeys?{CS}", token)
        path = created["properties"]["endpoint"].split(str(port), 1)[1] + "text/analytics/v3.1/languages"
        return [(path, keys["key1"]), (path, keys["key2"])]

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return [p for ps in pool.map(make, indices) for p in ps]


def write_keys(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{p} {k}\n" for p, k in pairs))
    return path


def wrk(url: str, keys_file: Path, seconds: int, connections: int,
        script: Path = KEYS_LUA, env: dict[str, str] | None = None) -> dict:
    """One bounded wrk run of `script` (by default keys.lua, cycling through `keys_file`, a
    "PATH KEY" list); requests per second and latencies."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        env={**os.environ, **(env or {}), "KEYS_FILE": str(keys_file)},
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    r = json.loads(line[len("RESULT "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


def interleaved(targets: dict[str, Callable[[], dict]], rounds: int) -> dict[str, list[dict]]:
    """Runs every target once per round, each round in another order (rotated), so a slow moment of
    a shared machine falls on different targets; returns each target's runs in round order."""
    runs: dict[str, list[dict]] = {name: [] for name in targets}
    names = list(targets)
    for i in range(rounds):
        for name in names[i % len(names):] + names[:i % len(names)]:
            runs[name].append(targets[name]())
    return runs


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def median_run(runs: list[dict]) -> dict:
    """Each figure's median over the rounds; answer and error counts summed."""
    return {"rps": median([r["rps"] for r in runs]), "p50_us": median([r["p50_us"] for r in runs]),
            "p99_us": median([r["p99_us"] for r in runs]),
            "non2xx": sum(r["non2xx"] for r in runs), "errors": sum(r["errors"] for r in runs)}


def rewrite_results(readme: Path, report: str) -> None:
    """Replaces what lies between `<!-- results -->` and `<!-- /results -->` in `readme`."""
    text = readme.read_text()
    start, end = "<!-- results -->", "<!-- /results -->"
    head, rest = text.split(start, 1)
    readme.write_text(head + start + "\n" + report + end + rest.split(end, 1)[1])

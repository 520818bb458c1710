#!/usr/bin/env python3
"""bench/propagation: how fast a regeneration on one node is in force on the others, and how many
durable regenerations per second each backend commits.

Propagation: three release rekeyd nodes on loopback share one PostgreSQL (a throwaway cluster from
scripts/pg-cluster, or a fresh database on REKEY_BENCH_POSTGRES_URL). Each rotation regenerates Key1 of
one Cognitive Services account on node A; as soon as A's answer is read, one thread per other node
polls that node's data plane (GET the account's endpoint with `Ocp-Apim-Subscription-Key: <old key>`,
on a kept-alive connection, back to back) until it answers 401. The time from A's answer to the 401 is
recorded per node; a rotation waits for both before the next starts.

Throughput: wrk POSTs regenerateKey to 64 accounts in turn, with concurrent connections, against a
SQLite rekeyd (WAL, synchronous=FULL), one PostgreSQL node, and three PostgreSQL nodes at once
(synchronous_commit=on): every 200 is a committed, durable regeneration.

    python3 bench/propagation/run.py [--rotations 1000] [--seconds 5] [--connections 16]

Needs wrk and Debian's postgresql (apt-get install wrk postgresql). Prints tables and rewrites the
results section of bench/propagation/README.md. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tests"))
from common.rekeyd import Rekeyd  # noqa: E402
CS = "api-version=2025-09-01"
POLL_LIMIT_S = 5.0


def call(method: str, url: str, token: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        text = resp.read()
        return json.loads(text) if text else {}


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True, capture_output=True)


def with_database(url: str, database: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}/{database}"


class Node:
    """A release rekeyd on loopback (tests/common/rekeyd.py starts it)."""

    def __init__(self, work: Path, name: str, env: dict[str, str]):
        # Every rotation ends in a refused key per polling node: throttling would answer 429 after
        # 50 of them, so it is set out of reach.
        self.server = Rekeyd(
            work / name,
            {"REKEY_AUTH_FAILURE_LIMIT": "1000000000", **env},
            log_level="warn",
            binary=ROOT / "target/release/rekeyd",
        ).start()
        self.base = self.server.base_url
        self.port = int(self.base.rsplit(":", 1)[1])
        self.data = self.server.data_dir
        self.proc = self.server.proc

    def stop(self) -> None:
        self.server.stop()


def wrk(node: Node, paths_file: Path, token: str, seconds: int, connections: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(HERE / "regenerate.lua"), node.base],
        env={**os.environ, "PATHS_FILE": str(paths_file), "TOKEN": token},
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    r = json.loads(line[len("RESULT "):])
    r["rps"] = (r["requests"] - r["non2xx"] - r["errors"]) / (r["duration_us"] / 1e6)
    return r


def accounts(node: Node, token: str, sub: str, count: int) -> list[str]:
    """Creates `count` accounts in group `bench`; returns their regenerateKey paths."""
    call("PUT", f"{node.base}/subscriptions/{sub}/resourcegroups/bench?api-version=2025-04-01", token, {"location": "westus"})

    def make(i: int) -> str:
        path = f"/subscriptions/{sub}/resourceGroups/bench/providers/Microsoft.CognitiveServices/accounts/acct{i}"
        call("PUT", f"{node.base}{path}?{CS}", token, {"location": "westus", "kind": "TextAnalytics", "sku": {"name": "S0"}})
        return f"{path}/regenerateKey?{CS}"

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return list(pool.map(make, range(count)))


class Poller(threading.Thread):
    """Polls one node with an old key until it answers 401, once per rotation."""

    def __init__(self, node: Node, path: str):
        super().__init__(daemon=True)
        self.node, self.path = node, path
        self.start_rotation = threading.Event()
        self.finished = threading.Event()
        self.job: tuple[str, float] | None = None
        self.results: list[float] = []
        self.other_statuses: dict[int, int] = {}
        self.timeouts = 0

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.node.port, timeout=10)
        while True:
            self.start_rotation.wait()
            self.start_rotation.clear()
            old_key, acknowledged = self.job
            while True:
                conn.request("GET", self.path, headers={"Ocp-Apim-Subscription-Key": old_key})
                resp = conn.getresponse()
                resp.read()
                now = time.perf_counter()
                if resp.status == 401:
                    self.results.append(now - acknowledged)
                    break
                if resp.status != 200:
                    self.other_statuses[resp.status] = self.other_statuses.get(resp.status, 0) + 1
                if now - acknowledged > POLL_LIMIT_S:
                    self.timeouts += 1
                    break
            self.finished.set()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def propagation(nodes: list[Node], token: str, sub: str, rotations: int) -> dict:
    a, others = nodes[0], nodes[1:]
    path = f"/subscriptions/{sub}/resourceGroups/prop/providers/Microsoft.CognitiveServices/accounts/acct"
    call("PUT", f"{a.base}/subscriptions/{sub}/resourcegroups/prop?api-version=2025-04-01", token, {"location": "westus"})
    created = call("PUT", f"{a.base}{path}?{CS}", token, {"location": "westus", "kind": "TextAnalytics", "sku": {"name": "S0"}})
    endpoint = created["properties"]["endpoint"]
    data_path = endpoint[endpoint.index("/data/"):]
    key = call("POST", f"{a.base}{path}/listKeys?{CS}", token)["key1"]
    # Every node has the account before the clock starts.
    for node in others:
        deadline = time.time() + 10
        while True:
            req = urllib.request.Request(f"{node.base}{data_path}", headers={"Ocp-Apim-Subscription-Key": key})
            try:
                urllib.request.urlopen(req, timeout=5)
                break
            except urllib.error.HTTPError:
                if time.time() > deadline:
                    raise SystemExit(f"{node.base} never learned of the account")
                time.sleep(0.05)

    pollers = [Poller(node, data_path) for node in others]
    for p in pollers:
        p.start()
    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for _ in range(rotations):
        conn.request("POST", f"{path}/regenerateKey?{CS}", body='{"keyName":"Key1"}', headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        acknowledged = time.perf_counter()
        if resp.status != 200:
            raise SystemExit(f"regenerate on A answered {resp.status}: {body[:200]!r}")
        for p in pollers:
            p.job = (key, acknowledged)
            p.finished.clear()
            p.start_rotation.set()
        for p in pollers:
            p.finished.wait(POLL_LIMIT_S + 10)
        key = json.loads(body)["key1"]
    return {"B": pollers[0], "C": pollers[1]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rotations", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--accounts", type=int, default=64)
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    subprocess.run(["cargo", "build", "--release", "--bin", "rekeyd"], cwd=ROOT, check=True)

    work = Path(tempfile.mkdtemp(prefix="rekey-bench-prop-"))
    nodes: list[Node] = []
    cluster = None
    admin = os.environ.get("REKEY_BENCH_POSTGRES_URL")
    database = "rekey_bench_" + os.urandom(6).hex()
    load_before = os.getloadavg()
    try:
        if not admin:
            cluster = work / "pg"
            admin = subprocess.run([str(ROOT / "scripts/pg-cluster"), "start", str(cluster)],
                                   check=True, capture_output=True, text=True).stdout.strip()
        psql(admin, f"CREATE DATABASE {database}")
        version = pg_version(admin)
        env = {"REKEY_DATABASE_URL": with_database(admin, database), "REKEY_MASTER_KEY": os.urandom(32).hex()}
        nodes.append(Node(work, "a", env))
        token, sub = nodes[0].server.token, nodes[0].server.subscription
        nodes += [Node(work, "b", env), Node(work, "c", env)]

        started = time.time()
        polled = propagation(nodes, token, sub, args.rotations)
        propagation_s = time.time() - started

        pg_paths = work / "pg-paths.txt"
        pg_paths.write_text("\n".join(accounts(nodes[0], token, sub, args.accounts)) + "\n")
        pg_one = wrk(nodes[0], pg_paths, token, args.seconds, args.connections)
        per_node = max(1, args.connections // 3)
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            pg_three = list(pool.map(lambda n: wrk(n, pg_paths, token, args.seconds, per_node), nodes))
        for n in nodes:
            n.stop()
        nodes.clear()

        sqlite = Node(work, "sqlite", {})
        nodes.append(sqlite)
        sq_paths = work / "sqlite-paths.txt"
        sq_paths.write_text("\n".join(accounts(sqlite, sqlite.server.token, sqlite.server.subscription, args.accounts)) + "\n")
        sq = wrk(sqlite, sq_paths, sqlite.server.token, args.seconds, args.connections)
    finally:
        for n in nodes:
            n.stop()
        if cluster:
            subprocess.run([str(ROOT / "scripts/pg-cluster"), "stop", str(cluster), "immediate"], capture_output=True)
        elif admin:
            subprocess.run(["psql", "-q", admin, "-c", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    ms = lambda s: f"{s * 1000:.2f} ms"
    rows = ["| node | rotations | p50 | p99 | max | not refused within 5 s | other answers while polling |",
            "|---|---:|---:|---:|---:|---:|---|"]
    everything: list[float] = []
    for name, p in polled.items():
        everything += p.results
        other = ", ".join(f"{k}×{v}" for k, v in sorted(p.other_statuses.items())) or "none"
        rows.append(f"| {name} | {len(p.results):,} | {ms(statistics.median(p.results))} | {ms(percentile(p.results, 99))} "
                    f"| {ms(max(p.results))} | {p.timeouts} | {other} |")
    rows.append(f"| **B and C** | {len(everything):,} | **{ms(statistics.median(everything))}** | "
                f"**{ms(percentile(everything, 99))}** | **{ms(max(everything))}** | "
                f"{sum(p.timeouts for p in polled.values())} | |")

    def line(label: str, nodes_n: int, conns: str, r: dict) -> str:
        return (f"| {label} | {nodes_n} | {conns} | **{r['rps']:,.0f}** | {r['p50_us'] / 1000:.2f} ms | "
                f"{r['p99_us'] / 1000:.2f} ms | {r['non2xx'] + r['errors']} |")

    three = {"rps": sum(r["rps"] for r in pg_three), "p50_us": max(r["p50_us"] for r in pg_three),
             "p99_us": max(r["p99_us"] for r in pg_three), "non2xx": sum(r["non2xx"] for r in pg_three),
             "errors": sum(r["errors"] for r in pg_three)}
    throughput = "\n".join([
        "| backend | nodes | connections | regenerations/s | p50 | p99 | not 200 |",
        "|---|---:|---:|---:|---:|---:|---:|",
        line("SQLite (WAL, synchronous=FULL)", 1, str(args.connections), sq),
        line("PostgreSQL (synchronous_commit=on)", 1, str(args.connections), pg_one),
        line("PostgreSQL, all three nodes at once", 3, f"3 × {per_node}", three),
    ])
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report = (
        f"Run {stamp} on {os.cpu_count()} cores (load average {load_before[0]:.1f} at the start: the machine is shared), "
        f"loopback, release rekeyd with RUST_LOG=warn, PostgreSQL {version} with default durability.\n\n"
        f"**Revocation** ({args.rotations:,} rotations in {propagation_s:.1f} s): time from node A's regenerateKey answer "
        f"to the old key's 401 on node B and C.\n\n" + "\n".join(rows) +
        f"\n\n**Regenerations per second** (wrk, {args.seconds} s per row, {args.accounts} accounts in turn; "
        f"each 200 is a committed, durable regeneration):\n\n{throughput}\n"
    )
    print(report)
    if not args.no_readme:
        readme = HERE / "README.md"
        text = readme.read_text()
        start, end = "<!-- results -->", "<!-- /results -->"
        head, rest = text.split(start, 1)
        readme.write_text(head + start + "\n" + report + end + rest.split(end, 1)[1])


def pg_version(admin: str | None) -> str:
    try:
        out = subprocess.run(["psql", "-tA", admin or "", "-c", "SHOW server_version"], capture_output=True, text=True)
        return out.stdout.strip().split()[0] if out.stdout.strip() else "?"
    except OSError:
        return "?"


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""bench/nodes: data-plane throughput of each of three rekeyd nodes sharing one PostgreSQL, against a
single SQLite rekeyd, in the same run.

Starts (through tests/common/rekeyd.py) a release SQLite rekeyd and three release rekeyd nodes on a
fresh database of one PostgreSQL server, all with the default staleness bound (0: a key regenerated
on any node is refused on every node once the regeneration answers). Each side gets the same number of
Cognitive Services accounts; wrk (bench/verify/keys.lua) sends every key in turn to one server at a
time, and the rounds are interleaved, each in another order. The table shows each server's median and
each PostgreSQL node's ratio to the SQLite node (ratio of medians, and the spread of the per-round
ratios). Before the rounds, a few regenerations on one node check that the old key is refused on every
node the moment the regeneration answers.

    python3 bench/nodes/run.py [--accounts 2000] [--seconds 10] [--connections 64] [--rounds 5]

PostgreSQL: a fresh database on REKEY_BENCH_POSTGRES_URL's server if set, else a throwaway cluster
from scripts/pg-cluster (Debian's postgresql package). Needs wrk. Prints the table and rewrites the
results section of bench/nodes/README.md. Loopback only; every wrk run is bounded by --seconds.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from common.rekeyd import FreshDatabase, Rekeyd, start_nodes  # noqa: E402
from benchlib import (  # noqa: E402
    account_url, call, cpu_seconds, interleaved, make_accounts, median, median_run, write_requests, write_results, wrk,
)

CS = "api-version=2025-09-01"

BINARY = ROOT / "target/release/rekeyd"
NODES = ("A", "B", "C")


def status(base: str, path: str, key: str) -> int:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path, headers={"Ocp-Apim-Subscription-Key": key})
        return conn.getresponse().status
    finally:
        conn.close()


def measured(server: Rekeyd, keys: Path, seconds: int, connections: int) -> dict:
    """One wrk run against `server`, with the server's CPU time per answered request: unlike
    requests per second, it hardly depends on what else the shared machine is running."""
    before = cpu_seconds(server.proc.pid)
    r = wrk(server.base_url, keys, seconds, connections)
    r["cpu_us"] = (cpu_seconds(server.proc.pid) - before) * 1e6 / max(r["requests"], 1)
    return r


def revocation_check(nodes: list[Rekeyd], index: int, rotations: int) -> int:
    """Regenerates acct{index}'s Key1 on node A `rotations` times; after each answer, asks every node
    for the old key at once. Returns how many of those checks were not refused (should be 0)."""
    a = nodes[0]
    path = make_accounts(a, 1, first=index)[0][0]
    url = account_url(a, index)
    old = call("POST", f"{url}/listKeys?{CS}", a.token)["key1"]
    accepted = 0
    for _ in range(rotations):
        new = call("POST", f"{url}/regenerateKey?{CS}", a.token, {"keyName": "Key1"})["key1"]
        accepted += sum(status(n.base_url, path, old) != 401 for n in nodes)
        old = new
    return accepted


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=2_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5,
                    help="wrk runs per server, interleaved; the table shows each figure's median")
    ap.add_argument("--no-build", action="store_true", help="use target/release/rekeyd as it is")
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "rekey-server", "--bin", "rekeyd"], cwd=ROOT, check=True)

    work = Path(tempfile.mkdtemp(prefix="rekey-bench-nodes-"))
    cluster = None
    servers: list[Rekeyd] = []
    database = None
    try:
        admin = os.environ.get("REKEY_BENCH_POSTGRES_URL")
        if not admin:
            cluster = work / "pg"
            admin = subprocess.run([str(ROOT / "scripts/pg-cluster"), "start", str(cluster)],
                                   capture_output=True, text=True, check=True).stdout.strip()
        database = FreshDatabase(admin, prefix="rekey_bench_nodes").create()
        # Throttling would answer 429 to the revocation check's refused keys after 50 of them.
        env = {"REKEY_AUTH_FAILURE_LIMIT": "1000000000"}
        node = functools.partial(Rekeyd, binary=BINARY, log_level="warn")
        sqlite = node(work / "sqlite", env).start()
        servers.append(sqlite)
        nodes = start_nodes(work, len(NODES), {**env, "REKEY_DATABASE_URL": database.url}, node=node)
        servers.extend(nodes)

        started = time.time()
        sqlite_keys = write_requests(work / "sqlite.txt", make_accounts(sqlite, args.accounts))
        pg_keys = write_requests(work / "postgres.txt", make_accounts(nodes[0], args.accounts))
        setup_s = time.time() - started
        # On an account of its own, outside the measured key list.
        accepted = revocation_check(nodes, args.accounts, 20)

        targets = {"sqlite": functools.partial(measured, sqlite, sqlite_keys, args.seconds, args.connections)}
        for name, n in zip(NODES, nodes):
            targets[name] = functools.partial(measured, n, pg_keys, args.seconds, args.connections)
        load = os.getloadavg()[0]
        rounds = interleaved(targets, args.rounds)
    finally:
        for s in servers:
            s.stop()
        if database is not None:
            database.drop()
        if cluster:
            subprocess.run([str(ROOT / "scripts/pg-cluster"), "stop", str(cluster), "immediate"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    runs = {name: median_run(rs) for name, rs in rounds.items()}
    for name, r in runs.items():
        if r["non2xx"] or r["errors"]:
            print(f"warning: {name}: {r['non2xx']} non-2xx answers, {r['errors']} socket errors", file=sys.stderr)
    base = runs["sqlite"]
    lines = [
        "| server | req/s (median) | min – max | p50 | p99 | non-2xx | / SQLite (ratio of medians) | per-round ratios | server CPU per request |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, rs in rounds.items():
        r = runs[name]
        label = "SQLite, one node" if name == "sqlite" else f"PostgreSQL node {name} (of 3)"
        rps = [x["rps"] for x in rs]
        if name == "sqlite":
            ratio, per_round = "1", ""
        else:
            ratio = f"**{r['rps'] / base['rps']:.2f}×**"
            per_round = ", ".join(f"{x['rps'] / s['rps']:.2f}" for x, s in zip(rs, rounds["sqlite"]))
        lines.append(f"| {label} | {r['rps']:,.0f} | {min(rps):,.0f} – {max(rps):,.0f} | {r['p50_us'] / 1000:.2f} ms "
                     f"| {r['p99_us'] / 1000:.2f} ms | {r['non2xx']} | {ratio} | {per_round} "
                     f"| {median([x['cpu_us'] for x in rs]):.1f} µs |")
    pg_ratios = [runs[n]["rps"] / base["rps"] for n in NODES]
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report = (
        f"Run {stamp} on {os.cpu_count()} cores (load average {load:.1f} before the rounds), loopback: {args.rounds} "
        f"interleaved rounds of wrk -t2 -c{args.connections} -d{args.seconds}s per server, release rekeyd with "
        f"RUST_LOG=warn and the default staleness bound (0), {args.accounts:,} accounts ({2 * args.accounts:,} keys) "
        f"on each side; setup took {setup_s:.1f} s.\n\n" + "\n".join(lines) + "\n\n"
        f"Lowest PostgreSQL node / SQLite: **{min(pg_ratios):.2f}×**. Revocation check: 20 regenerations on node A, "
        f"the old key asked of all three nodes right after each answer: {accepted} of {20 * len(NODES)} not refused.\n"
    )
    print(report)
    if not args.no_readme:
        write_results(HERE / "README.md", report)


if __name__ == "__main__":
    main()

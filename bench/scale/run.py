#!/usr/bin/env python3
"""bench/scale: rekeyd with a million Cognitive Services accounts beside its anchor at 10,000.

For each backend (SQLite, PostgreSQL) and each size (--anchor, --accounts): a release rekeyd starts
on an empty database (its resident memory after one data-plane call is the empty baseline), stops;
`examples/bulk_load` writes the accounts straight through rekey-store (keys sealed and digested as
the API does, thousands per transaction); rekeyd starts again, cold, and is timed from spawn to its
first answered data-plane call and to the end of its index's load; its resident memory is read
again. Then, with both sizes' servers running, wrk measures the data plane (the request mix of
bench/verify: a key of each sampled account in turn) and listKeys in rounds interleaving them.

    python3 bench/scale/run.py [--accounts 1000000] [--anchor 10000] [--backends sqlite,postgres]

Needs wrk, and REKEY_TEST_POSTGRES_URL for PostgreSQL (tests/common/rekeyd.py's policy). Prints a
table and rewrites the results section of bench/scale/README.md. Loopback only, every run bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
import benchlib  # noqa: E402
import common.rekeyd as harness  # noqa: E402
from common.rekeyd import FreshDatabase, Rekeyd, postgres_admin_url  # noqa: E402

# A cold start with a million accounts may take longer than the harness's usual wait.
harness.START_TIMEOUT_S = 300.0


API = "api-version=2025-09-01"
# What the data plane is asked, as in bench/verify: a Text Analytics call below the account.
CALL = "text/analytics/v3.1/languages"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used: unlike wall time, not stretched by other work
    on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def data_call(base: str, internal_id: str, key: str | None) -> int:
    """One data-plane call; its status (any answer counts as answered)."""
    headers = {"Ocp-Apim-Subscription-Key": key} if key else {}
    req = urllib.request.Request(f"{base}/data/{internal_id}/{CALL}", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def first_answer(server: Rekeyd, internal_id: str, key: str) -> float:
    """Starts `server` and returns the seconds from spawn to its first 200 on the data plane."""
    started = time.monotonic()
    server.start()
    while True:
        try:
            if data_call(server.base_url, internal_id, key) == 200:
                return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError):
            pass
        if time.monotonic() - started > 120:
            raise SystemExit("rekeyd answered no data-plane call within 120 s")
        time.sleep(0.005)


def load_lines(server: Rekeyd) -> int:
    """How many index loads `server`'s log (kept across its starts) has recorded."""
    if not server.log_path.exists():
        return 0
    return server.log_path.read_text(errors="replace").count("key index load timings")


def index_loaded(server: Rekeyd, since_spawn: float, before: int) -> float:
    """Waits for `server`'s index to finish loading (a load-timings log line beyond the `before` of
    earlier starts, written just before the index opens); returns the seconds from spawn,
    `since_spawn` being the time already spent."""
    started = time.monotonic() - since_spawn
    while load_lines(server) <= before:
        if time.monotonic() - started > 300:
            raise SystemExit("rekeyd's key index did not load within 300 s")
        time.sleep(0.05)
    loaded = time.monotonic() - started
    time.sleep(1)  # the final catch-up and the opening follow the line
    return loaded


def load_phases(log: Path) -> dict[str, int]:
    """The last index load's phase timings (milliseconds) from rekeyd's log."""
    phases: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        if "key index load timings" in line:
            phases = {k: int(v) for k, v in re.findall(r"(\w+)_ms=(\d+)", line)}
    return phases


def prepare(backend: str, accounts: int, args, binary: Path) -> dict:
    """Loads `accounts` accounts for a fresh rekeyd on `backend` and starts it cold: the returned
    dict holds its figures so far and the running server (`release` stops it)."""
    work = Path(tempfile.mkdtemp(prefix=f"rekey-scale-{backend}-"))
    db = FreshDatabase(postgres_admin_url(), prefix="rekey_scale").create() if backend == "postgres" else None
    env = {"REKEY_DATABASE_URL": db.url} if db else {}
    # The index's load logs its phases' timings at info; everything else stays at warn.
    server = Rekeyd(work, env=env, binary=binary, log_level="warn,rekey_server::dataplane::index=info")
    try:
        server.start()
        base, token, sub = server.base_url, server.token, server.subscription
        benchlib.call("PUT", f"{base}/subscriptions/{sub}/resourcegroups/bench?api-version=2025-04-01", token, {"location": "westus"})
        data_call(base, uuid.uuid4().hex, None)
        empty_rss = rss_bytes(server.proc.pid)
        server.stop()

        sample_file = work / "sample.txt"
        load = [str(ROOT / "target/release/examples/bulk_load"), "--data-dir", str(server.data_dir),
                "--subscription", sub, "--group", "bench", "--accounts", str(accounts),
                "--sample", str(min(args.sample, accounts)), "--sample-out", str(sample_file)]
        if db:
            load += ["--database-url", db.url]
        loaded = json.loads(subprocess.run(load, check=True, capture_output=True, text=True, timeout=900).stdout)
        sample = [line.split() for line in sample_file.read_text().splitlines()]

        first_id, _, first_key = sample[0]
        before = load_lines(server)
        cold_s = first_answer(server, first_id, first_key)
        # The first answer may come from the store (the index loads in the background): memory
        # and throughput are measured once the index holds every key.
        loaded_s = index_loaded(server, cold_s, before)
        cold_cpu_s = cpu_seconds(server.proc.pid)
        phases = load_phases(server.log_path)
        rss = rss_bytes(server.proc.pid)
        base, token = server.base_url, server.token

        keys_file = work / "keys.txt"
        keys_file.write_text("".join(f"/data/{i}/{CALL} {k}\n" for i, _, k in sample))
        mgmt_file = work / "listkeys.txt"
        mgmt_file.write_text("".join(
            f"/subscriptions/{sub}/resourceGroups/bench/providers/Microsoft.CognitiveServices/accounts/{name}/listKeys?{API}\n"
            for _, name, _ in sample))
        # Warm-up: every sampled key's first use, and the flush of those last uses and counts,
        # happen here rather than in the measured rounds. rekeyd writes a take of counts over the
        # half minute after it (dataplane::usage::PendingCounts): the settle waits that out idle.
        if args.warmup:
            benchlib.wrk(base, keys_file, args.warmup, args.connections)
            time.sleep(args.settle)
        return {"backend": backend, "accounts": accounts, "load_s": loaded["seconds"], "cold_s": cold_s, "loaded_s": loaded_s, "cold_cpu_s": cold_cpu_s, "phases": phases,
                "empty_rss": empty_rss, "rss": rss, "bytes_per_key": (rss - empty_rss) / (2 * accounts),
                "base": base, "token": token, "keys_file": keys_file, "mgmt_file": mgmt_file,
                "server": server, "db": db, "work": work}
    except BaseException:
        release({"server": server, "db": db, "work": work})
        raise


def release(r: dict) -> None:
    r["server"].stop()
    if r["db"]:
        r["db"].drop()
    shutil.rmtree(r["work"], ignore_errors=True)


def measure(backend: str, args, binary: Path) -> list[dict]:
    """Both sizes of `backend`, running side by side, measured in interleaved rounds (anchor, then
    the million, each round), so drift of the machine moves both alike."""
    prepared: list[dict] = []
    try:
        for accounts in (args.anchor, args.accounts):
            prepared.append(prepare(backend, accounts, args, binary))
        data: list[list] = [[] for _ in prepared]
        lists: list[list] = [[] for _ in prepared]
        for _ in range(args.rounds):
            for i, r in enumerate(prepared):
                data[i].append(benchlib.wrk(r["base"], r["keys_file"], args.seconds, args.connections))
        for _ in range(args.rounds):
            for i, r in enumerate(prepared):
                lists[i].append(benchlib.wrk(r["base"], r["mgmt_file"], args.seconds, args.list_connections,
                                             script=HERE / "listkeys.lua", env={"TOKEN": r["token"]}))
        out = []
        for i, r in enumerate(prepared):
            figures = {k: v for k, v in r.items() if k not in ("server", "db", "work", "keys_file", "mgmt_file", "token", "base")}
            figures["data"] = benchlib.median_run(data[i])
            figures["list_keys"] = benchlib.median_run(lists[i])
            figures["data_rounds"] = [run["rps"] for run in data[i]]
            out.append(figures)
        return out
    finally:
        for r in prepared:
            release(r)


def mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MB"


def table(results: list[dict], args) -> str:
    rows = ["| backend | accounts (keys) | load | cold start to first answer | index loaded (CPU) | RSS above empty | bytes / key | data plane req/s | p99 | listKeys req/s | listKeys p99 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        d, l = r["data"], r["list_keys"]
        rows.append(
            f"| {r['backend']} | {r['accounts']:,} ({2 * r['accounts']:,}) | {r['load_s']:.0f} s | {r['cold_s']:.2f} s | {r['loaded_s']:.2f} s ({r.get('cold_cpu_s', float('nan')):.2f} s) "
            f"| {mb(r['rss'] - r['empty_rss'])} | {r['bytes_per_key']:,.0f} | {d['rps']:,.0f} | {d['p99_us'] / 1000:.2f} ms "
            + (f"| {l['rps']:,.0f} | {l['p99_us'] / 1000:.2f} ms |" if l["rps"] else "| 0 | none answered |"))
    rows.append(f"| **target at {args.accounts:,}** | | | **≤ 3 s** | | **≤ 256 MB** | **≈ 128** | **≥ 0.9× the anchor** | | | **unchanged** |")
    lines = ["\n".join(rows), ""]
    for backend in dict.fromkeys(r["backend"] for r in results):
        mine = [r for r in results if r["backend"] == backend]
        anchor = next(r for r in mine if r["accounts"] == args.anchor)
        big = next(r for r in mine if r["accounts"] == args.accounts)
        lines.append(
            f"{backend}: data-plane throughput at {args.accounts:,} / at {args.anchor:,}: "
            f"**{big['data']['rps'] / anchor['data']['rps']:.2f}×**; listKeys p99 "
            f"{anchor['list_keys']['p99_us'] / 1000:.2f} ms → "
            f"{f'{big_list:.2f} ms' if (big_list := big['list_keys']['p99_us'] / 1000) else 'none answered'}; "
            f"memory {big['bytes_per_key']:,.0f} bytes per key; cold start {big['cold_s']:.2f} s to the first answer, "
            f"index loaded in {big['loaded_s']:.2f} s ({big['loaded_s'] / (2 * args.accounts) * 1e6:.2f} µs per key; index load phases, ms: "
            f"{', '.join(f'{k} {v:,}' for k, v in big.get('phases', {}).items()) or 'not logged'}).")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--anchor", type=int, default=10_000)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--sample", type=int, default=200_000,
                    help="accounts, spread evenly, whose keys wrk sends (one key each)")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=10,
                    help="seconds of data-plane load before the measured rounds (0: none)")
    ap.add_argument("--settle", type=int, default=35,
                    help="idle seconds after the warm-up, while rekeyd writes what it counted")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--list-connections", type=int, default=8)
    ap.add_argument("--binary", default=str(ROOT / "target/release/rekeyd"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "rekey-server", "--bin", "rekeyd", "--example", "bulk_load"],
                       cwd=ROOT, check=True)
    started = time.time()
    results = []
    for backend in args.backends.split(","):
        for r in measure(backend, args, Path(args.binary)):
            print(json.dumps(r, default=str), file=sys.stderr)
            results.append(r)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report = (f"Run {stamp} on {os.cpu_count()} cores ({os.uname().machine}, {os.uname().sysname} {os.uname().release}), "
              f"{time.time() - started:.0f} s in all: release rekeyd with RUST_LOG=warn, loopback; "
              f"wrk -t2 -c{args.connections} (data plane) and -c{args.list_connections} (listKeys), "
              f"{args.warmup} s warm-up and {args.settle} s idle, {args.rounds} × {args.seconds} s each, medians shown, over {args.sample:,} sampled accounts.\n\n"
              f"{table(results, args)}\n")
    print(report)
    if not args.no_readme:
        benchlib.write_results(HERE / "README.md", report)


if __name__ == "__main__":
    main()

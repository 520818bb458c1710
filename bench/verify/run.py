#!/usr/bin/env python3
"""bench/verify: rekeyd's data plane against nginx answering the same requests from a static map.

Starts a release rekeyd on loopback with 10,000 Cognitive Services accounts, and nginx with a `map`
of the same 20,000 keys (200 for a known key, 401 otherwise). wrk sends the same request mix to
both (every key in turn, spread evenly over the accounts). Then proxy mode: rekeyd forwarding to a
plain nginx upstream, against wrk hitting that upstream directly.

    python3 bench/verify/run.py [--accounts 10000] [--seconds 10] [--connections 64] [--rounds 3]

Needs nginx and wrk (Debian packages nginx-light, wrk). Prints a table and rewrites the results
section of bench/verify/README.md. Loopback only; every run is bounded by --seconds.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tests"))
from common.rekeyd import Rekeyd  # noqa: E402


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


def wrk(url: str, keys_file: Path, seconds: int, connections: int,
        script: Path = HERE / "keys.lua", env: dict[str, str] | None = None) -> dict:
    """One bounded wrk run of `script` (default: every "PATH KEY" line of `keys_file` in turn)."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        env={**os.environ, **(env or {}), "KEYS_FILE": str(keys_file)},
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    r = json.loads(line[len("RESULT "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


# Accounts that forward to the plain upstream in proxy mode, besides --accounts.
PROXIED = 100


def median_run(runs: list[dict]) -> dict:
    """Each figure's median over the rounds; answer and error counts summed."""
    med = lambda key: sorted(r[key] for r in runs)[len(runs) // 2]
    return {"rps": med("rps"), "p50_us": med("p50_us"), "p99_us": med("p99_us"),
            "non2xx": sum(r["non2xx"] for r in runs), "errors": sum(r["errors"] for r in runs)}


def nginx_conf(prefix: Path, port: int, upstream_port: int, keys: list[str]) -> Path:
    entries = "\n".join(f'    "{k}" 1;' for k in keys)
    conf = f"""
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy; fastcgi_temp_path {prefix}/fcgi;
  uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
  map_hash_max_size 262144; map_hash_bucket_size 128;
  map $http_ocp_apim_subscription_key $rekey_known {{
    default 0;
{entries}
  }}
  server {{
    listen 127.0.0.1:{port};
    default_type application/json;
    # The same JSON as rekeyd answers (naming the method and the path below the resource), so wrk
    # reads about as much from both: with nginx's own headers the replies are 411 and 420 bytes.
    location ~ ^/data/[^/]+(?<rest>/.*)?$ {{
      if ($rekey_known) {{ return 200 '{{"authenticated":true,"resourceId":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/bench/providers/Microsoft.CognitiveServices/accounts/acct","keyName":"key1","access":"readWrite","method":"$request_method","path":"$rest"}}'; }}
      return 401 '{{"error":{{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}}}';
    }}
  }}
  server {{
    listen 127.0.0.1:{upstream_port};
    default_type application/json;
    location / {{ return 200 '{{"upstream":"ok"}}'; }}
  }}
}}
"""
    path = prefix / "nginx.conf"
    path.write_text(conf)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3,
                    help="wrk runs per target, interleaved; the table shows each figure's median")
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args()
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is needed: apt-get install nginx-light wrk")
    subprocess.run(["cargo", "build", "--release", "--bin", "rekeyd", "--example", "bench_floor"], cwd=ROOT, check=True)

    work = Path(tempfile.mkdtemp(prefix="rekey-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        ng_port, up_port, floor_port = free_port(), free_port(), free_port()
        server = Rekeyd(work, binary=ROOT / "target/release/rekeyd", log_level="warn").start()
        procs.append(server.proc)
        base, token, sub = server.base_url, server.token, server.subscription
        port = base.rsplit(":", 1)[1]
        call("PUT", f"{base}/subscriptions/{sub}/resourcegroups/bench?api-version=2025-04-01", token, {"location": "westus"})

        def make(i: int) -> list[tuple[str, str]]:
            acct = f"{base}/subscriptions/{sub}/resourceGroups/bench/providers/Microsoft.CognitiveServices/accounts/acct{i}"
            created = call("PUT", f"{acct}?api-version=2025-09-01", token, {"location": "westus", "kind": "TextAnalytics", "sku": {"name": "S0"}})
            keys = call("POST", f"{acct}/listKeys?api-version=2025-09-01", token)
            path = created["properties"]["endpoint"].split(str(port), 1)[1] + "text/analytics/v3.1/languages"
            return [(path, keys["key1"]), (path, keys["key2"])]

        started = time.time()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            # PROXIED extra accounts for proxy mode, kept out of the self-answer runs: a call
            # forwarded on a connection also moves that connection off rekeyd's fast path.
            made = [p for ps in pool.map(make, range(args.accounts + PROXIED)) for p in ps]
        setup_s = time.time() - started
        proxied, pairs = made[:2 * PROXIED], made[2 * PROXIED:]
        keys_file = work / "keys.txt"
        keys_file.write_text("".join(f"{p} {k}\n" for p, k in pairs))

        prefix = work / "nginx"
        prefix.mkdir()
        conf = nginx_conf(prefix, ng_port, up_port, [k for _, k in pairs])
        nginx = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(prefix), "-g", "daemon off;"], stderr=subprocess.DEVNULL)
        procs.append(nginx)
        wait_http(f"http://127.0.0.1:{ng_port}/")
        floor = subprocess.Popen([str(ROOT / "target/release/examples/bench_floor"), f"127.0.0.1:{floor_port}"])
        procs.append(floor)
        wait_http(f"http://127.0.0.1:{floor_port}/")
        wait_http(f"http://127.0.0.1:{up_port}/")

        # Proxy mode: the first PROXIED accounts forward to the plain upstream.
        for i in range(PROXIED):
            acct = f"{base}/subscriptions/{sub}/resourceGroups/bench/providers/Microsoft.CognitiveServices/accounts/acct{i}"
            call("PATCH", f"{acct}?api-version=2025-09-01", token, {"properties": {"x-rekey-upstream": f"http://127.0.0.1:{up_port}"}})
        proxied_file = work / "proxied.txt"
        proxied_file.write_text("".join(f"{p} {k}\n" for p, k in proxied))
        direct_file = work / "direct.txt"
        direct_file.write_text("".join(f"/text/analytics/v3.1/languages \n" for _ in proxied))

        targets = {
            "rekey": (base, keys_file),
            "nginx": (f"http://127.0.0.1:{ng_port}", keys_file),
            "floor": (f"http://127.0.0.1:{floor_port}", keys_file),
            "upstream": (f"http://127.0.0.1:{up_port}", direct_file),
            "proxy": (base, proxied_file),
        }
        # Interleaved rounds, each in another order, so a slow moment of this shared machine
        # falls on different targets; the table reports medians.
        rounds: dict[str, list[dict]] = {name: [] for name in targets}
        names = list(targets)
        for i in range(args.rounds):
            for name in names[i % len(names):] + names[:i % len(names)]:
                url, file = targets[name]
                rounds[name].append(wrk(url, file, args.seconds, args.connections))
        runs = {name: median_run(rs) for name, rs in rounds.items()}
        ratios = [a["rps"] / b["rps"] for a, b in zip(rounds["rekey"], rounds["nginx"])]
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)

    for name, r in runs.items():
        if r["non2xx"] or r["errors"]:
            print(f"warning: {name}: {r['non2xx']} non-2xx answers, {r['errors']} socket errors", file=sys.stderr)
    r, n, u, p, f = runs["rekey"], runs["nginx"], runs["upstream"], runs["proxy"], runs["floor"]
    table = "\n".join([
        f"| target | req/s | p50 | p99 | non-2xx |",
        f"|---|---:|---:|---:|---:|",
        f"| rekeyd data plane (self-answer, {args.accounts:,} accounts, {2 * args.accounts:,} keys) | {r['rps']:,.0f} | {r['p50_us'] / 1000:.2f} ms | {r['p99_us'] / 1000:.2f} ms | {r['non2xx']} |",
        f"| nginx `map` of the same keys | {n['rps']:,.0f} | {n['p50_us'] / 1000:.2f} ms | {n['p99_us'] / 1000:.2f} ms | {n['non2xx']} |",
        f"| **ratio rekey / nginx** | **{r['rps'] / n['rps']:.2f}×** | | p99 {r['p99_us'] / max(n['p99_us'], 1):.2f}× | |",
        f"| rekeyd's HTTP stack answering without any check (`examples/bench_floor`) | {f['rps']:,.0f} | {f['p50_us'] / 1000:.2f} ms | {f['p99_us'] / 1000:.2f} ms | {f['non2xx']} |",
        f"| ratio floor / nginx; rekey / floor | {f['rps'] / n['rps']:.2f}× | | {r['rps'] / f['rps']:.2f}× | |",
        f"| plain upstream, hit directly | {u['rps']:,.0f} | {u['p50_us'] / 1000:.2f} ms | {u['p99_us'] / 1000:.2f} ms | {u['non2xx']} |",
        f"| rekeyd proxy mode to that upstream | {p['rps']:,.0f} | {p['p50_us'] / 1000:.2f} ms | {p['p99_us'] / 1000:.2f} ms | {p['non2xx']} |",
        f"| **proxy / direct** | **{p['rps'] / u['rps']:.2f}×** | | p99 +{(p['p99_us'] - u['p99_us']) / 1000:.2f} ms | |",
    ])
    table += ("\n\nrekey / nginx throughput in each round: "
              + ", ".join(f"{x:.2f}×" for x in ratios) + ".")
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report = (f"Run {stamp} on {os.cpu_count()} cores: {args.rounds} interleaved rounds of wrk -t2 -c{args.connections} -d{args.seconds}s "
              f"per target, medians shown, loopback, "
              f"rekeyd release build with RUST_LOG=warn, nginx with access_log off; setup of {args.accounts + PROXIED:,} accounts ({PROXIED} of them for proxy mode) took {setup_s:.1f} s.\n\n{table}\n")
    print(report)
    if not args.no_readme:
        readme = HERE / "README.md"
        text = readme.read_text()
        start, end = "<!-- results -->", "<!-- /results -->"
        head, rest = text.split(start, 1)
        readme.write_text(head + start + "\n" + report + end + rest.split(end, 1)[1])


if __name__ == "__main__":
    main()

"""Owns what the benchmarks (bench/verify, bench/gateway, bench/nodes) share: a release rekeyd with
Cognitive Services accounts and their keys, nginx started from a generated configuration, wrk runs
of one request list (`keys.lua`), interleaved rounds with medians and spread, and rewriting a
README's results section. Only the standard library, nginx, wrk and openssl are used.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tests"))
from common.rekeyd import Rekeyd, make_certificates  # noqa: E402,F401

KEYS_LUA = HERE / "verify" / "keys.lua"


def need_tools() -> None:
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is needed: apt-get install nginx-light wrk")


def build(*extra: str) -> None:
    """The release rekeyd (and any `extra` cargo targets, e.g. `--example bench_floor`)."""
    subprocess.run(["cargo", "build", "--release", "-p", "rekey-server", "--bin", "rekeyd", *extra],
                   cwd=ROOT, check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_context(ca: Optional[Path]) -> Optional[ssl.SSLContext]:
    return ssl.create_default_context(cafile=str(ca)) if ca else None


def call(method: str, url: str, token: str, body: dict | None = None,
         context: Optional[ssl.SSLContext] = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60, context=context) as resp:
        text = resp.read()
        return json.loads(text) if text else {}


def wait_http(url: str, seconds: float = 30) -> None:
    """Until `url` answers at all (any status); TLS certificates are not checked here."""
    deadline = time.time() + seconds
    insecure = ssl._create_unverified_context()
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1, context=insecure)
            return
        except urllib.error.HTTPError:
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def start_rekeyd(work: Path, args: list[str] = (), tls: bool = False) -> Rekeyd:
    return Rekeyd(work, binary=ROOT / "target/release/rekeyd", log_level="warn",
                  args=list(args), tls=tls).start()


def make_accounts(server: Rekeyd, count: int, first: int = 0,
                  context: Optional[ssl.SSLContext] = None) -> list[tuple[str, str]]:
    """`count` Cognitive Services accounts (`acct{first}`…) in group `bench`: each one's data-plane
    path (`/data/{id}/text/analytics/v3.1/languages`) with key1, then with key2."""
    base, token, sub = server.base_url, server.token, server.subscription
    port = base.rsplit(":", 1)[1]
    call("PUT", f"{base}/subscriptions/{sub}/resourcegroups/bench?api-version=2025-04-01", token,
         {"location": "westus"}, context)

    def make(i: int) -> list[tuple[str, str]]:
        acct = account_url(server, i)
        created = call("PUT", f"{acct}?api-version=2025-09-01", token, {"location": "westus", "kind": "TextAnalytics", "sku": {"name": "S0"}}, context)
        keys = call("POST", f"{acct}/listKeys?api-version=2025-09-01", token, None, context)
        path = created["properties"]["endpoint"].split(str(port), 1)[1] + "text/analytics/v3.1/languages"
        return [(path, keys["key1"]), (path, keys["key2"])]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return [p for ps in pool.map(make, range(first, first + count)) for p in ps]


def account_url(server: Rekeyd, i: int) -> str:
    return (f"{server.base_url}/subscriptions/{server.subscription}/resourceGroups/bench/providers/"
            f"Microsoft.CognitiveServices/accounts/acct{i}")


def forward_to(server: Rekeyd, i: int, upstream: str, context: Optional[ssl.SSLContext] = None) -> None:
    call("PATCH", f"{account_url(server, i)}?api-version=2025-09-01", server.token,
         {"properties": {"x-rekey-upstream": upstream}}, context)


def write_requests(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{p} {k}\n" for p, k in pairs))
    return path


def key_map(keys: list[str]) -> str:
    """An nginx `map` of the Cognitive Services key header: 1 for each known key, 0 otherwise."""
    entries = "\n".join(f'    "{k}" 1;' for k in keys)
    return f"""  map_hash_max_size 262144; map_hash_bucket_size 128;
  map $http_ocp_apim_subscription_key $rekey_known {{
    default 0;
{entries}
  }}"""


def start_nginx(work: Path, name: str, http_block: str, wait_urls: list[str]) -> subprocess.Popen:
    """nginx (`-p work/name`) with `http_block` inside its `http {}`; waits until each URL answers."""
    prefix = work / name
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy; fastcgi_temp_path {prefix}/fcgi;
  uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
{http_block}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(prefix), "-g", "daemon off;"],
                            stderr=subprocess.DEVNULL)
    for url in wait_urls:
        wait_http(url)
    return proc


def wrk(url: str, requests: Path, seconds: int, connections: int, headers: list[str] = (),
        script: Path = KEYS_LUA, env: dict[str, str] | None = None) -> dict:
    """One bounded wrk run of `script` (by default keys.lua, cycling through `requests`, "PATH KEY"
    lines); `headers` ("Name: value") go on every request, `env` to the script."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script)]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(
        [*cmd, url],
        env={**os.environ, **(env or {}), "KEYS_FILE": str(requests)},
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    r = json.loads(line[len("RESULT "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by `pid` and its child processes (nginx's workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state, ppid, …; utime and stime are the 14th and 15th fields.
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def with_cpu(run: Callable[[], dict], pid: int) -> Callable[[], dict]:
    """`run`, also noting the CPU time `pid` (and its children) spent per request meanwhile: on a
    busy machine a steadier comparison than throughput, which other processes' load moves."""
    def measured() -> dict:
        before = cpu_seconds(pid)
        r = run()
        r["cpu_us"] = (cpu_seconds(pid) - before) * 1e6 / max(r["requests"], 1)
        return r
    return measured


def median_run(runs: list[dict]) -> dict:
    """Each figure's median over the rounds, the throughput's range; answer and error counts summed."""
    med = lambda key: sorted(r[key] for r in runs)[len(runs) // 2]
    out = {"rps": med("rps"), "p50_us": med("p50_us"), "p99_us": med("p99_us"),
           "rps_min": min(r["rps"] for r in runs), "rps_max": max(r["rps"] for r in runs),
           "non2xx": sum(r["non2xx"] for r in runs), "errors": sum(r["errors"] for r in runs)}
    if all("cpu_us" in r for r in runs):
        out["cpu_us"] = med("cpu_us")
    return out


def interleaved(targets: dict[str, Callable[[], dict]], rounds: int) -> dict[str, list[dict]]:
    """Runs every target once per round, each round in another order, so a slow moment of this
    shared machine falls on different targets."""
    results: dict[str, list[dict]] = {name: [] for name in targets}
    names = list(targets)
    for i in range(rounds):
        for name in names[i % len(names):] + names[:i % len(names)]:
            results[name].append(targets[name]())
    return results


def ratios(results: dict[str, list[dict]], a: str, b: str) -> list[float]:
    """`a`'s throughput over `b`'s in each round."""
    return [x["rps"] / y["rps"] for x, y in zip(results[a], results[b])]


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def row(label: str, r: dict) -> str:
    cpu = f"{r['cpu_us']:.0f} µs" if "cpu_us" in r else "—"
    return (f"| {label} | {r['rps']:,.0f} ({r['rps_min']:,.0f}–{r['rps_max']:,.0f}) | "
            f"{r['p50_us'] / 1000:.2f} ms | {r['p99_us'] / 1000:.2f} ms | {cpu} | {r['non2xx'] + r['errors']} |")


def ratio_row(label: str, a: dict, b: dict, per_round: list[float]) -> str:
    cpu = f"{a['cpu_us'] / b['cpu_us']:.2f}×" if "cpu_us" in a and "cpu_us" in b and b["cpu_us"] else ""
    return (f"| **{label}** | **{a['rps'] / b['rps']:.2f}×** (rounds {min(per_round):.2f}–{max(per_round):.2f}×) | | "
            f"p99 {a['p99_us'] / max(b['p99_us'], 1):.2f}× | {cpu} | |")


TABLE_HEAD = ("| target | req/s median (range) | p50 | p99 | server CPU per request | non-2xx + errors |\n"
              "|---|---:|---:|---:|---:|---:|")


def warn_failures(runs: dict[str, dict]) -> None:
    for name, r in runs.items():
        if r["non2xx"] or r["errors"]:
            print(f"warning: {name}: {r['non2xx']} non-2xx answers, {r['errors']} socket errors", file=sys.stderr)


def stop_all(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def write_results(readme: Path, report: str, marker: str = "results") -> None:
    """Replaces what lies between `<!-- {marker} -->` and `<!-- /{marker} -->` in `readme`."""
    text = readme.read_text()
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    head, rest = text.split(start, 1)
    readme.write_text(head + start + "\n" + report + end + rest.split(end, 1)[1])


def stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

#!/usr/bin/env python3
"""bench/verify: rekeyd's data plane against nginx answering the same requests from a static map.

Starts a release rekeyd on loopback with 10,000 Cognitive Services accounts, and nginx with a `map`
of the same 20,000 keys (200 for a known key, 401 otherwise). wrk sends the same request mix to
both (every key in turn, spread evenly over the accounts). Then proxy mode: rekeyd forwarding to a
plain nginx upstream, against wrk hitting that upstream directly.

    python3 bench/verify/run.py [--accounts 10000] [--seconds 10] [--connections 64] [--rounds 3]
    python3 bench/verify/run.py --tls [...]

With --tls, both serve HTTPS with the same ECDSA P-256 certificate instead: keep-alive connections,
then a new connection (and TLS handshake, resumed when the client offers a session) per request,
over TLS 1.3 and again with wrk capped at TLS 1.2.

Needs nginx, wrk and openssl. Prints a table and rewrites the results (or TLS results) section of
bench/verify/README.md. Loopback only; every run is bounded by --seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import benchlib as b  # noqa: E402

# Accounts that forward to the plain upstream in proxy mode, besides --accounts.
PROXIED = 100

ANSWER_LOCATION = """
    default_type application/json;
    # The same JSON as rekeyd answers (naming the method and the path below the resource), so wrk
    # reads about as much from both: with nginx's own headers the replies are 411 and 420 bytes.
    location ~ ^/data/[^/]+(?<rest>/.*)?$ {
      if ($rekey_known) { return 200 '{"authenticated":true,"resourceId":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/bench/providers/Microsoft.CognitiveServices/accounts/acct","keyName":"key1","access":"readWrite","method":"$request_method","path":"$rest"}'; }
      return 401 '{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}';
    }"""


def nginx_block(port: int, upstream_port: int, keys: list[str]) -> str:
    return f"""{b.key_map(keys)}
  server {{
    listen 127.0.0.1:{port};
{ANSWER_LOCATION}
  }}
  server {{
    listen 127.0.0.1:{upstream_port};
    default_type application/json;
    location / {{ return 200 '{{"upstream":"ok"}}'; }}
  }}"""


def nginx_tls_block(port: int, keys: list[str], cert: Path, key: Path) -> str:
    # TLS 1.3 named: before 1.23.4 nginx's default protocols stop at TLS 1.2, and a resumed TLS 1.2
    # handshake skips the key exchange that every TLS 1.3 one makes (rekeyd offers both), so an
    # older nginx would be measured on a cheaper protocol than rekeyd.
    return f"""{b.key_map(keys)}
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:10m;
  ssl_session_tickets on;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
{ANSWER_LOCATION}
  }}"""


def plain(args, work: Path) -> str:
    b.build("--example", "bench_floor")
    procs: list[subprocess.Popen] = []
    try:
        ng_port, up_port, floor_port = b.free_port(), b.free_port(), b.free_port()
        server = b.start_rekeyd(work / "rekeyd")
        procs.append(server.proc)
        started = time.time()
        # PROXIED extra accounts for proxy mode, kept out of the self-answer runs: before the
        # fast path forwarded, a forwarded call moved its connection to hyper.
        made = b.make_accounts(server, args.accounts + PROXIED)
        setup_s = time.time() - started
        proxied, pairs = made[:2 * PROXIED], made[2 * PROXIED:]
        keys_file = b.write_requests(work / "keys.txt", pairs)
        procs.append(b.start_nginx(work, "nginx", nginx_block(ng_port, up_port, [k for _, k in pairs]),
                                   [f"http://127.0.0.1:{ng_port}/", f"http://127.0.0.1:{up_port}/"]))
        floor = subprocess.Popen([str(ROOT / "target/release/examples/bench_floor"), f"127.0.0.1:{floor_port}"])
        procs.append(floor)
        b.wait_http(f"http://127.0.0.1:{floor_port}/")
        for i in range(PROXIED):
            b.forward_to(server, i, f"http://127.0.0.1:{up_port}")
        proxied_file = b.write_requests(work / "proxied.txt", proxied)
        direct_file = b.write_requests(work / "direct.txt", [("/text/analytics/v3.1/languages", "")] * len(proxied))
        targets = {
            "rekey": (server.base_url, keys_file),
            "nginx": (f"http://127.0.0.1:{ng_port}", keys_file),
            "floor": (f"http://127.0.0.1:{floor_port}", keys_file),
            "upstream": (f"http://127.0.0.1:{up_port}", direct_file),
            "proxy": (server.base_url, proxied_file),
        }
        pids = {"rekey": server.proc.pid, "nginx": procs[1].pid, "floor": floor.pid, "upstream": procs[1].pid,
                "proxy": server.proc.pid}
        results = b.interleaved(
            {name: b.with_cpu(lambda url=url, f=f: b.wrk(url, f, args.seconds, args.connections), pids[name])
             for name, (url, f) in targets.items()},
            args.rounds)
    finally:
        b.stop_all(procs)

    runs = {name: b.median_run(rs) for name, rs in results.items()}
    b.warn_failures(runs)
    r, n, u, p, f = runs["rekey"], runs["nginx"], runs["upstream"], runs["proxy"], runs["floor"]
    ratios = b.ratios(results, "rekey", "nginx")
    table = "\n".join([
        b.TABLE_HEAD,
        b.row(f"rekeyd data plane (self-answer, {args.accounts:,} accounts, {2 * args.accounts:,} keys)", r),
        b.row("nginx `map` of the same keys", n),
        b.ratio_row("ratio rekey / nginx", r, n, ratios),
        b.row("rekeyd's HTTP stack answering without any check (`examples/bench_floor`)", f),
        f"| ratio floor / nginx; rekey / floor | {f['rps'] / n['rps']:.2f}× | | {r['rps'] / f['rps']:.2f}× | | |",
        b.row("plain upstream, hit directly", u),
        b.row("rekeyd proxy mode to that upstream", p),
        f"| **proxy / direct** | **{p['rps'] / u['rps']:.2f}×** | | p99 +{(p['p99_us'] - u['p99_us']) / 1000:.2f} ms | | |",
    ])
    table += "\n\nrekey / nginx throughput in each round: " + ", ".join(f"{x:.2f}×" for x in ratios) + "."
    return (f"Run {b.stamp()} on {os.cpu_count()} cores: {args.rounds} interleaved rounds of wrk -t2 -c{args.connections} -d{args.seconds}s "
            f"per target, medians shown with the range over rounds (server CPU per request: user + system, nginx's workers included, from /proc; "
            f"the upstream's, hit directly, includes the anchor nginx's idle workers), loopback, "
            f"rekeyd release build with RUST_LOG=warn, nginx with access_log off; setup of {args.accounts + PROXIED:,} accounts ({PROXIED} of them for proxy mode) took {setup_s:.1f} s.\n\n{table}\n")


# An OpenSSL configuration for wrk that caps the client at TLS 1.2, so both servers are measured on
# the older protocol too.
TLS12_CLIENT = """openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MaxProtocol = TLSv1.2
"""


def tls(args, work: Path) -> str:
    b.build()
    procs: list[subprocess.Popen] = []
    try:
        ng_port = b.free_port()
        # rekeyd's certificate (ECDSA P-256, from a throwaway CA) is nginx's too.
        server = b.start_rekeyd(work / "rekeyd", tls=True)
        procs.append(server.proc)
        context = b.client_context(Path(server.ca_path))
        certs = work / "rekeyd" / "tls"
        started = time.time()
        pairs = b.make_accounts(server, args.accounts, context=context)
        setup_s = time.time() - started
        keys_file = b.write_requests(work / "keys.txt", pairs)
        procs.append(b.start_nginx(work, "nginx", nginx_tls_block(ng_port, [k for _, k in pairs], certs / "server.pem", certs / "server.key"),
                                   [f"https://127.0.0.1:{ng_port}/"]))
        nginx_url = f"https://127.0.0.1:{ng_port}"
        close = ["Connection: close"]
        tls12 = work / "tls12.cnf"
        tls12.write_text(TLS12_CLIENT)
        env12 = {"OPENSSL_CONF": str(tls12)}
        targets = {
            "rekey": lambda: b.wrk(server.base_url, keys_file, args.seconds, args.connections),
            "nginx": lambda: b.wrk(nginx_url, keys_file, args.seconds, args.connections),
            "rekey-new": lambda: b.wrk(server.base_url, keys_file, args.seconds, args.connections, close),
            "nginx-new": lambda: b.wrk(nginx_url, keys_file, args.seconds, args.connections, close),
            "rekey-new12": lambda: b.wrk(server.base_url, keys_file, args.seconds, args.connections, close, env=env12),
            "nginx-new12": lambda: b.wrk(nginx_url, keys_file, args.seconds, args.connections, close, env=env12),
        }
        pids = {name: server.proc.pid if name.startswith("rekey") else procs[1].pid for name in targets}
        results = b.interleaved({name: b.with_cpu(run, pids[name]) for name, run in targets.items()}, args.rounds)
        resumed = {name: sessions_resumed(url, server.ca_path) for name, url in (("rekeyd", server.base_url), ("nginx", nginx_url))}
    finally:
        b.stop_all(procs)

    runs = {name: b.median_run(rs) for name, rs in results.items()}
    b.warn_failures(runs)
    kept, new = b.ratios(results, "rekey", "nginx"), b.ratios(results, "rekey-new", "nginx-new")
    new12 = b.ratios(results, "rekey-new12", "nginx-new12")
    table = "\n".join([
        b.TABLE_HEAD,
        b.row(f"rekeyd over HTTPS, keep-alive ({args.accounts:,} accounts)", runs["rekey"]),
        b.row("nginx `ssl`, keep-alive, `map` of the same keys", runs["nginx"]),
        b.ratio_row("rekey / nginx, keep-alive", runs["rekey"], runs["nginx"], kept),
        b.row("rekeyd over HTTPS, a new connection per request (TLS 1.3)", runs["rekey-new"]),
        b.row("nginx `ssl`, a new connection per request (TLS 1.3)", runs["nginx-new"]),
        b.ratio_row("rekey / nginx, new connections (TLS 1.3)", runs["rekey-new"], runs["nginx-new"], new),
        b.row("rekeyd, a new connection per request, client capped at TLS 1.2", runs["rekey-new12"]),
        b.row("nginx, a new connection per request, client capped at TLS 1.2", runs["nginx-new12"]),
        b.ratio_row("rekey / nginx, new connections (TLS 1.2)", runs["rekey-new12"], runs["nginx-new12"], new12),
    ])
    table += ("\n\nrekey / nginx throughput in each round: keep-alive " + ", ".join(f"{x:.2f}×" for x in kept)
              + "; new connections, TLS 1.3 " + ", ".join(f"{x:.2f}×" for x in new)
              + "; TLS 1.2 " + ", ".join(f"{x:.2f}×" for x in new12) + ". "
              + "A second TLS 1.3 connection offering the first one's session ticket (`openssl s_client -sess_in`) was resumed: "
              + ", ".join(f"{name} {'yes' if ok else 'no'}" for name, ok in resumed.items()) + ".")
    return (f"Run {b.stamp()} on {os.cpu_count()} cores: {args.rounds} interleaved rounds of wrk -t2 -c{args.connections} -d{args.seconds}s "
            f"per target, medians shown with the range over rounds (server CPU per request: user + system, nginx's workers included, from /proc), loopback, the same ECDSA P-256 certificate on both, "
            f"rekeyd release build with RUST_LOG=warn, nginx with access_log off, `ssl_protocols TLSv1.2 TLSv1.3`, `ssl_session_cache` and `ssl_session_tickets on`; "
            f"setup of {args.accounts:,} accounts took {setup_s:.1f} s.\n\n{table}\n")


def sessions_resumed(url: str, ca: str) -> bool:
    """Whether a second connection offering the first one's session is resumed."""
    host = url.split("://", 1)[1]
    with tempfile.TemporaryDirectory() as d:
        sess = Path(d) / "session"
        # -ign_eof: read until the server closes (the request says `Connection: close`). Without
        # it s_client quits at its input's end, which may come before the server's post-handshake
        # session tickets arrive: there is then no ticket to offer, and the check says "no".
        base = ["openssl", "s_client", "-ign_eof", "-connect", host, "-CAfile", ca]
        run = lambda extra: subprocess.run([*base, *extra], input=b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                           capture_output=True, timeout=30)
        run(["-sess_out", str(sess)])
        out = run(["-sess_in", str(sess)])
        text = (out.stdout + out.stderr).decode(errors="replace")
        return "\nReused, " in text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3,
                    help="wrk runs per target, interleaved; the table shows each figure's median")
    ap.add_argument("--tls", action="store_true", help="HTTPS on both, with keep-alive and with a new connection per request")
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args()
    b.need_tools()
    work = Path(tempfile.mkdtemp(prefix="rekey-bench-"))
    try:
        report = tls(args, work) if args.tls else plain(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(report)
    if not args.no_readme:
        b.write_results(HERE / "README.md", report, "tls-results" if args.tls else "results")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""bench/gateway: rekeyd's gateway mode against nginx doing the same job, side by side in one run.

Both check the Cognitive Services key of each call, strip it, and forward the call to the same fast
upstream (a separate nginx answering `return 200`) over pooled keep-alive connections: rekeyd
through `x-rekey-upstream` on every account, nginx through a `map` of the same keys and
`proxy_pass` to an `upstream` block with `keepalive`. One row pair over a plain-HTTP upstream, one
over an HTTPS upstream (rekeyd trusting the upstream's CA by `--upstream-ca-file`, nginx by
`proxy_ssl_trusted_certificate`, with `proxy_ssl_session_reuse on`).

    python3 bench/gateway/run.py [--accounts 2000] [--seconds 10] [--connections 64] [--rounds 3]

Needs nginx, wrk and openssl. Prints a table and rewrites the results section of
bench/gateway/README.md. Loopback only; every run is bounded by --seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import benchlib as b  # noqa: E402

# What the upstream answers, and what both gateways add to the forwarded call.
UPSTREAM_BODY = '{"upstream":"ok"}'
RESOURCE_ID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/bench/providers/Microsoft.CognitiveServices/accounts/acct"


def upstream_block(plain: int, tls: int, certs: dict) -> str:
    return f"""
  server {{
    listen 127.0.0.1:{plain};
    listen 127.0.0.1:{tls} ssl;
    ssl_certificate {certs['cert']};
    ssl_certificate_key {certs['key']};
    ssl_session_cache shared:up:10m;
    keepalive_requests 1000000;
    default_type application/json;
    location / {{ return 200 '{UPSTREAM_BODY}'; }}
  }}"""


def gateway_block(port: int, plain: int, tls: int, certs: dict, keys: list[tuple[str, str]],
                  connections: int) -> str:
    # The map's value names the slot, so nginx tells the upstream what rekeyd tells it.
    entries = "\n".join(f'    "{k}" {slot};' for k, slot in keys)
    return f"""
  map_hash_max_size 262144; map_hash_bucket_size 128;
  map $http_ocp_apim_subscription_key $rekey_slot {{
    default "";
{entries}
  }}
  upstream plain_up {{ server 127.0.0.1:{plain}; keepalive {connections}; keepalive_requests 1000000; }}
  upstream tls_up {{ server 127.0.0.1:{tls}; keepalive {connections}; keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{port};
    keepalive_requests 1000000;
    default_type application/json;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Ocp-Apim-Subscription-Key "";
    proxy_set_header X-Rekey-Key-Name $rekey_slot;
    proxy_set_header X-Rekey-Resource-Id "{RESOURCE_ID}";
    proxy_set_header X-Rekey-Access readWrite;
    proxy_buffering off;
    proxy_ssl_session_reuse on;
    proxy_ssl_verify on;
    proxy_ssl_trusted_certificate {certs['ca_cert']};
    proxy_ssl_name localhost;
    proxy_ssl_server_name on;
    location ~ ^/plain/[^/]+(?<rest>/.*)?$ {{
      if ($rekey_slot = "") {{ return 401 '{{"error":{{"code":"401","message":"Access denied due to invalid subscription key."}}}}'; }}
      proxy_pass http://plain_up/base$rest$is_args$args;
    }}
    location ~ ^/tls/[^/]+(?<rest>/.*)?$ {{
      if ($rekey_slot = "") {{ return 401 '{{"error":{{"code":"401","message":"Access denied due to invalid subscription key."}}}}'; }}
      proxy_pass https://tls_up/base$rest$is_args$args;
    }}
  }}"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=2_000, help="accounts per upstream (plain, HTTPS)")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3,
                    help="wrk runs per target, interleaved; the table shows each figure's median")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args()
    b.need_tools()
    if not args.no_build:
        b.build()

    work = Path(tempfile.mkdtemp(prefix="rekey-bench-gateway-"))
    procs = []
    try:
        certs = b.make_certificates(work / "upstream-tls")
        plain_port, tls_port, ng_port = b.free_port(), b.free_port(), b.free_port()
        procs.append(b.start_nginx(work, "upstream", upstream_block(plain_port, tls_port, certs),
                                   [f"http://127.0.0.1:{plain_port}/", f"https://127.0.0.1:{tls_port}/"]))
        server = b.start_rekeyd(work / "rekeyd", ["--upstream-ca-file", str(certs["ca_cert"])])
        procs.append(server.proc)
        started = time.time()
        plain = b.make_accounts(server, args.accounts)
        tls = b.make_accounts(server, args.accounts, first=args.accounts)
        for i in range(2 * args.accounts):
            up = f"http://127.0.0.1:{plain_port}/base" if i < args.accounts else f"https://127.0.0.1:{tls_port}/base"
            b.forward_to(server, i, up)
        setup_s = time.time() - started
        keys = [(k, f"key{n % 2 + 1}") for n, (_, k) in enumerate(plain + tls)]
        procs.append(b.start_nginx(work, "gateway", gateway_block(ng_port, plain_port, tls_port, certs, keys, args.connections),
                                   [f"http://127.0.0.1:{ng_port}/"]))

        # nginx gets the same paths under /plain/ or /tls/ (its location picks the upstream); the
        # account id and everything below it are the same.
        def renamed(pairs, prefix):
            return [(p.replace("/data/", f"/{prefix}/", 1), k) for p, k in pairs]

        files = {
            "rekey": b.write_requests(work / "rekey-plain.txt", plain),
            "nginx": b.write_requests(work / "nginx-plain.txt", renamed(plain, "plain")),
            "rekey-tls": b.write_requests(work / "rekey-tls.txt", tls),
            "nginx-tls": b.write_requests(work / "nginx-tls.txt", renamed(tls, "tls")),
            "upstream": b.write_requests(work / "direct.txt", [("/base/text/analytics/v3.1/languages", "")] * len(plain)),
        }
        urls = {"rekey": server.base_url, "rekey-tls": server.base_url,
                "nginx": f"http://127.0.0.1:{ng_port}", "nginx-tls": f"http://127.0.0.1:{ng_port}",
                "upstream": f"http://127.0.0.1:{plain_port}"}
        # A first short pass warms both gateways' upstream pools and TLS sessions.
        for name in files:
            b.wrk(urls[name], files[name], 1, args.connections)
        # Whose CPU time each run is charged: the gateway's (or, hit directly, the upstream's).
        pids = {"rekey": server.proc.pid, "rekey-tls": server.proc.pid, "nginx": procs[2].pid,
                "nginx-tls": procs[2].pid, "upstream": procs[0].pid}
        results = b.interleaved(
            {name: b.with_cpu(lambda name=name: b.wrk(urls[name], files[name], args.seconds, args.connections), pids[name])
             for name in files},
            args.rounds)
    finally:
        b.stop_all(procs)
        shutil.rmtree(work, ignore_errors=True)

    runs = {name: b.median_run(rs) for name, rs in results.items()}
    b.warn_failures(runs)
    plain_ratio = b.ratios(results, "rekey", "nginx")
    tls_ratio = b.ratios(results, "rekey-tls", "nginx-tls")
    table = "\n".join([
        b.TABLE_HEAD,
        b.row(f"rekeyd gateway → plain upstream ({args.accounts:,} accounts)", runs["rekey"]),
        b.row("nginx `map` + `proxy_pass http://` (keepalive)", runs["nginx"]),
        b.ratio_row("rekey / nginx, plain upstream", runs["rekey"], runs["nginx"], plain_ratio),
        b.row(f"rekeyd gateway → HTTPS upstream ({args.accounts:,} accounts)", runs["rekey-tls"]),
        b.row("nginx `proxy_pass https://` (keepalive, `proxy_ssl_session_reuse on`)", runs["nginx-tls"]),
        b.ratio_row("rekey / nginx, HTTPS upstream", runs["rekey-tls"], runs["nginx-tls"], tls_ratio),
        b.row("the plain upstream hit directly (no gateway)", runs["upstream"]),
    ])
    table += ("\n\nrekey / nginx throughput in each round: plain "
              + ", ".join(f"{x:.2f}×" for x in plain_ratio) + "; HTTPS "
              + ", ".join(f"{x:.2f}×" for x in tls_ratio) + ".")
    report = (f"Run {b.stamp()} on {os.cpu_count()} cores: {args.rounds} interleaved rounds of wrk -t2 -c{args.connections} -d{args.seconds}s "
              f"per target after a 1 s warm-up each, medians shown with the range over rounds, loopback, rekeyd release build with "
              f"RUST_LOG=warn, nginx with access_log off; server CPU per request is the gateway's own (user + system, its workers "
              f"included; the upstream's not), read from /proc; setup of {2 * args.accounts:,} accounts took {setup_s:.1f} s.\n\n{table}\n")
    print(report)
    if not args.no_readme:
        b.write_results(HERE / "README.md", report)


if __name__ == "__main__":
    main()

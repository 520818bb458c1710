"""A regeneration whose answer is lost on the way back, retried by the unmodified Azure SDK on its
own, rotates the key once: rekeyd replays the committed answer for the resent
`x-ms-client-request-id` (azure-core's RequestIdPolicy sets it once, before its RetryPolicy), so the
key the SDK finally gets is the key that works.

Between the SDK and rekeyd sits a small HTTPS proxy (the server's own test certificate) that
forwards every request, and loses the answer to the first `regenerateKey` after rekeyd committed
it: it closes the connection without a word, or answers 503. azure-core retries a POST after a 503
on its own; after a closed connection it retries only methods in `retry_on_methods` (a documented
per-call option of every azure-core operation; POST is not in its default list), which the first
case passes.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from azure.mgmt.cognitiveservices.models import Account, AccountProperties, Sku

LOCATION = "westus"
# azure-core's default retry methods, and POST.
RETRY_POST = ["HEAD", "GET", "PUT", "DELETE", "OPTIONS", "TRACE", "POST"]


class LosingProxy:
    """Forwards to rekeyd; the first regenerateKey's answer is lost after rekeyd sent it
    (`how`: "close" or "503"). Records each forwarded regeneration's status and whether rekeyd
    marked it replayed."""

    def __init__(self, rekey, how: str) -> None:
        self.how = how
        self.lost = False
        self.regenerations: list[tuple[int, str | None, str | None]] = []
        upstream = rekey.base_url.split("://", 1)[1]
        host, port = upstream.rsplit(":", 1)
        client_tls = ssl.create_default_context(cafile=rekey.ca_path)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn = http.client.HTTPSConnection(host, int(port), context=client_tls, timeout=30)
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                payload = answer.read()
                conn.close()
                if "/regeneratekey" in self.path.lower():
                    proxy.regenerations.append(
                        (
                            answer.status,
                            answer.getheader("x-rekey-replayed"),
                            self.headers.get("x-ms-client-request-id"),
                        )
                    )
                    if not proxy.lost:
                        proxy.lost = True
                        if proxy.how == "close":
                            self.close_connection = True
                            self.connection.close()
                            return
                        self.send_response(503)
                        self.send_header("content-type", "application/json")
                        unavailable = b'{"error":{"code":"ServiceUnavailable","message":"lost"}}'
                        self.send_header("content-length", str(len(unavailable)))
                        self.end_headers()
                        self.wfile.write(unavailable)
                        return
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        tls_dir = rekey.server.workdir / "tls"
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(tls_dir / "server.pem", tls_dir / "server.key")
        self.server.socket = server_tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "LosingProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def account(cs_client, rm_client):
    group = f"rg-{uuid.uuid4().hex[:12]}"
    name = f"acct-{uuid.uuid4().hex[:12]}"
    rm_client.resource_groups.create_or_update(group, {"location": LOCATION})
    cs_client.accounts.begin_create(
        group,
        name,
        Account(location=LOCATION, kind="TextAnalytics", sku=Sku(name="S0"), properties=AccountProperties()),
    ).result()
    yield group, name
    try:
        rm_client.resource_groups.begin_delete(group).result()
    except Exception:  # already gone, or the server failed; the test said so
        pass


@pytest.mark.parametrize("how", ["close", "503"])
def test_a_regeneration_whose_answer_is_lost_is_retried_by_the_sdk_and_rotates_once(
    rekey, make_cs_client, cs_client, account, how
):
    group, name = account
    before = cs_client.accounts.list_keys(group, name)
    options = {"retry_on_methods": RETRY_POST} if how == "close" else {}
    with LosingProxy(rekey, how) as proxy, make_cs_client(base_url=proxy.url) as through_proxy:
        got = through_proxy.accounts.regenerate_key(group, name, key_name="Key1", **options)

    # The SDK sent it twice with one request id; rekeyd rotated once and replayed the second.
    assert len(proxy.regenerations) == 2, proxy.regenerations
    (first, first_replayed, first_id), (second, second_replayed, second_id) = proxy.regenerations
    assert first_id and first_id == second_id
    assert (first, first_replayed) == (200, None)
    assert (second, second_replayed) == (200, "true")

    after = cs_client.accounts.list_keys(group, name)
    assert got.key1 != before.key1
    assert got.key1 == after.key1, "the key the SDK got is the one in force"
    assert after.key2 == before.key2

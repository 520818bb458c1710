"""The seeds' az commands, unmodified, against rekeyd: the four set-up commands from the README,
then keys list/regenerate for Cognitive Services and Cosmos DB, and event subscriptions."""

from __future__ import annotations

import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

AZ = Path(sys.executable).parent / "az"


def rest(rekey, method: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(
        rekey.base_url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {rekey.token}", "Content-Type": "application/json"},
    )
    ctx = ssl.create_default_context(cafile=rekey.ca_path)
    with urllib.request.urlopen(req, context=ctx) as resp:
        text = resp.read()
        return json.loads(text) if text else {}


def make_az(rekey, config: Path):
    """Runs az with its own config dir, trusting the test CA."""
    env = dict(os.environ)
    env.update(
        AZURE_CONFIG_DIR=str(config),
        REQUESTS_CA_BUNDLE=rekey.ca_path,
        AZURE_CORE_COLLECT_TELEMETRY="false",
        AZURE_CORE_ONLY_SHOW_ERRORS="true",
    )

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(AZ), *args], env=env, capture_output=True, text=True, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"az {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}\n{rekey.log_tail()}")
        return proc

    return run


def set_up_cloud(az, rekey) -> None:
    """The first three of the README's four set-up commands."""
    az("config", "set", "core.instance_discovery=false")
    az("cloud", "register", "-n", "rekey", "--endpoint-resource-manager", f"{rekey.base_url}/")
    az("cloud", "set", "-n", "rekey")


@pytest.fixture(scope="module")
def az(rekey, tmp_path_factory):
    return make_az(rekey, tmp_path_factory.mktemp("azure-config"))


@pytest.fixture(scope="module")
def logged_in(rekey, az):
    boot = json.loads((rekey.data_dir / "bootstrap.json").read_text())
    # The four set-up commands of the README, as a user types them.
    set_up_cloud(az, rekey)
    az("login", "--service-principal", "-u", boot["principalId"], "-p", rekey.token, "--tenant", boot["tenantId"])
    sub = rekey.subscription_id
    rest(rekey, "PUT", f"/subscriptions/{sub}/resourcegroups/cog-services-staging?api-version=2025-04-01", {"location": "westus"})
    rest(
        rekey,
        "PUT",
        f"/subscriptions/{sub}/resourceGroups/cog-services-staging/providers/Microsoft.CognitiveServices/accounts/myMultiCogService?api-version=2025-09-01",
        {"location": "westus", "kind": "CognitiveServices", "sku": {"name": "S0"}},
    )
    rest(
        rekey,
        "PUT",
        f"/subscriptions/{sub}/resourceGroups/cog-services-staging/providers/Microsoft.DocumentDB/databaseAccounts/docdb-test?api-version=2026-03-15",
        {"location": "westus", "kind": "GlobalDocumentDB",
         "properties": {"databaseAccountOfferType": "Standard", "locations": [{"locationName": "westus", "failoverPriority": 0}]}},
    )
    return boot


def test_account_show_lists_the_rekey_subscription(az, logged_in, rekey):
    shown = json.loads(az("account", "show", "-o", "json").stdout)
    assert shown["id"] == rekey.subscription_id
    assert shown["tenantId"] == logged_in["tenantId"]


def test_cognitive_services_keys_list_and_regenerate_key1(az, logged_in):
    names = ["--name", "myMultiCogService", "--resource-group", "cog-services-staging"]
    before = json.loads(az("cognitiveservices", "account", "keys", "list", *names, "-o", "json").stdout)
    assert before["key1"] and before["key2"]
    after = json.loads(
        az("cognitiveservices", "account", "keys", "regenerate", *names, "--key-name", "key1", "-o", "json").stdout
    )
    assert after["key1"] != before["key1"]
    assert after["key2"] == before["key2"]
    listed = json.loads(az("cognitiveservices", "account", "keys", "list", "-n", "myMultiCogService", "-g", "cog-services-staging", "-o", "json").stdout)
    assert (listed["key1"], listed["key2"]) == (after["key1"], after["key2"])


def test_cosmosdb_keys_list_and_regenerate_secondary(az, logged_in):
    names = ["--name", "docdb-test", "--resource-group", "cog-services-staging"]
    before = json.loads(az("cosmosdb", "keys", "list", *names, "-o", "json").stdout)
    assert len(before) >= 4
    az("cosmosdb", "keys", "regenerate", *names, "--key-kind", "secondary")
    after = json.loads(az("cosmosdb", "keys", "list", *names, "-o", "json").stdout)
    assert after["secondaryMasterKey"] != before["secondaryMasterKey"]
    for kind in ("primaryMasterKey", "primaryReadonlyMasterKey", "secondaryReadonlyMasterKey"):
        assert after[kind] == before[kind], kind


def test_login_with_a_wrong_secret_fails(rekey, tmp_path):
    # A fresh config dir: MSAL would otherwise answer from the token it cached at the first login.
    az = make_az(rekey, tmp_path / "azure-config")
    set_up_cloud(az, rekey)
    boot = json.loads((rekey.data_dir / "bootstrap.json").read_text())
    proc = az(
        "login", "--service-principal", "-u", boot["principalId"], "-p", "rkt_not-the-secret",
        "--tenant", boot["tenantId"], check=False,
    )
    assert proc.returncode != 0
    assert "invalid_client" in proc.stderr or "Invalid client" in proc.stderr, proc.stderr
    # The same commands with the right secret succeed, so the refusal was the secret's.
    az("login", "--service-principal", "-u", boot["principalId"], "-p", rekey.token, "--tenant", boot["tenantId"])


class _Hook(http.server.BaseHTTPRequestHandler):
    """A webhook on 127.0.0.1 that answers Event Grid's handshake and keeps what it is sent in
    `received` (each subclass brings its own list)."""

    received: list

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        events = json.loads(body)
        if self.headers.get("aeg-event-type") == "SubscriptionValidation":
            answer = json.dumps({"validationResponse": events[0]["data"]["validationCode"]}).encode()
        else:
            type(self).received.append(events)
            answer = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def test_eventgrid_event_subscription_create_list_and_delete(az, logged_in, rekey):
    # A class of its own per run: what one backend's run received is not the other's.
    hook = type("Hook", (_Hook,), {"received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/hook"
        scope = (
            f"/subscriptions/{rekey.subscription_id}/resourceGroups/cog-services-staging"
            "/providers/Microsoft.CognitiveServices/accounts/myMultiCogService"
        )
        created = json.loads(
            az(
                "eventgrid", "event-subscription", "create", "--name", "rotations",
                "--source-resource-id", scope, "--endpoint", endpoint,
                "--included-event-types", "Microsoft.Resources.ResourceActionSuccess", "-o", "json",
            ).stdout
        )
        assert created["provisioningState"] == "Succeeded", created
        listed = json.loads(az("eventgrid", "event-subscription", "list", "--source-resource-id", scope, "-o", "json").stdout)
        assert [s["name"] for s in listed] == ["rotations"]

        names = ["--name", "myMultiCogService", "--resource-group", "cog-services-staging"]
        az("cognitiveservices", "account", "keys", "regenerate", *names, "--key-name", "key2")
        deadline = time.monotonic() + 20
        while not hook.received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert hook.received, "the regeneration's event arrived"
        event = hook.received[0][0]
        assert event["eventType"] == "Microsoft.Resources.ResourceActionSuccess"
        assert event["subject"].lower() == scope.lower()

        az("eventgrid", "event-subscription", "delete", "--name", "rotations", "--source-resource-id", scope)
        listed = json.loads(az("eventgrid", "event-subscription", "list", "--source-resource-id", scope, "-o", "json").stdout)
        assert listed == []
    finally:
        server.shutdown()

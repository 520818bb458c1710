"""Fixtures that start a real rekeyd over HTTPS and point the Azure SDKs at it.

The SDK packages are used exactly as published on PyPI. The only client
options set are documented constructor kwargs:

* ``base_url``: the generated clients accept it positionally or by keyword;
  when it is given, ``cloud_setting`` / ``azure.core.settings`` are not
  consulted for the endpoint.
* ``credential_scopes``: left at the SDK default
  (``https://management.azure.com/.default``); the static credential below
  ignores scopes, so nothing needs to change.
* ``connection_verify``: path of the test CA, passed through to the requests
  transport.
* ``polling_interval``: 1 s instead of 30 s, so an LRO that does poll (202 +
  Location / Azure-AsyncOperation without Retry-After) does not stall.

ARMChallengeAuthenticationPolicy (a BearerTokenCredentialPolicy) refuses to
send a bearer token over plain http, which is why the server runs with TLS.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from azure.core.credentials import AccessToken

try:  # azure-core >= 1.31
    from azure.core.credentials import AccessTokenInfo
except ImportError:  # pragma: no cover - older azure-core
    AccessTokenInfo = None  # type: ignore[assignment]

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests"))
from common import rekeyd as common  # noqa: E402


# --------------------------------------------------------------------------
# rekeyd process (tests/common/rekeyd.py starts it)


@dataclass
class Rekey:
    base_url: str
    token: str
    subscription_id: str
    tenant_id: Optional[str]
    ca_path: str
    data_dir: Path
    log_path: Path
    server: common.Rekeyd

    def log_tail(self, lines: int = 60) -> str:
        return self.server.log_tail(lines)


@pytest.fixture(scope="session", params=common.backends())
def rekey(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A rekeyd over HTTPS per backend: every SDK test runs against SQLite and, when a server is
    given, against a fresh PostgreSQL database (dropped afterwards)."""
    env: dict[str, str] = {}
    if request.param == "postgres":
        if not os.environ.get(common.POSTGRES_URL_VAR, "").strip():
            pytest.fail(
                f"{common.POSTGRES_URL_VAR} is not set: start a server with `scripts/pg-cluster "
                "start DIR` and set it to the URL printed, or set REKEY_TEST_BACKENDS=sqlite to "
                "leave PostgreSQL out on purpose (scripts/test does the former by itself)",
                pytrace=False,
            )
        database = common.FreshDatabase(common.postgres_admin_url(), "rekey_sdk").create()
        request.addfinalizer(database.drop)
        env["REKEY_DATABASE_URL"] = database.url
    binary = common.rekeyd_binary()
    if not binary.is_file():
        pytest.fail(
            f"rekeyd binary not found at {binary} "
            "(build it with `cargo build -p rekey-server` or set REKEYD_BIN)",
            pytrace=False,
        )
    server = common.Rekeyd(tmp_path_factory.mktemp("rekeyd"), env, tls=True)
    server.start()
    try:
        yield Rekey(
            base_url=server.base_url,
            token=server.token,
            subscription_id=server.subscription,
            tenant_id=server.tenant_id,
            ca_path=server.ca_path,
            data_dir=server.data_dir,
            log_path=server.log_path,
            server=server,
        )
    finally:
        server.stop()


# --------------------------------------------------------------------------
# credentials and clients


class StaticTokenCredential:
    """A TokenCredential (and SupportsTokenInfo) that hands out a fixed token."""

    def __init__(self, token: str, lifetime_s: int = 3600) -> None:
        self._token = token
        self._lifetime_s = lifetime_s

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + self._lifetime_s)

    if AccessTokenInfo is not None:

        def get_token_info(self, *scopes: str, options: Any = None) -> "AccessTokenInfo":
            return AccessTokenInfo(self._token, int(time.time()) + self._lifetime_s)

    def close(self) -> None:
        pass

    def __enter__(self) -> "StaticTokenCredential":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _client_kwargs(rekey: Rekey, overrides: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "base_url": rekey.base_url,
        "connection_verify": rekey.ca_path,
        "polling_interval": 1,
        "connection_timeout": 10,
        "read_timeout": 60,
    }
    kwargs.update(overrides)
    return kwargs


@pytest.fixture(scope="session")
def credential(rekey: Rekey) -> StaticTokenCredential:
    return StaticTokenCredential(rekey.token)


@pytest.fixture(scope="session")
def make_credential() -> Callable[[str], StaticTokenCredential]:
    """Factory for a StaticTokenCredential with an arbitrary token."""
    return StaticTokenCredential


@pytest.fixture(scope="session")
def make_cs_client(rekey: Rekey, credential: StaticTokenCredential) -> Callable[..., Any]:
    """Factory: CognitiveServicesManagementClient against rekeyd.

    Keyword overrides are passed to the client constructor, plus
    ``credential=`` to use another credential.
    """
    from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient

    def make(credential_override: Any = None, **overrides: Any):
        return CognitiveServicesManagementClient(
            credential_override or credential,
            rekey.subscription_id,
            **_client_kwargs(rekey, overrides),
        )

    return make


@pytest.fixture(scope="session")
def make_rm_client(rekey: Rekey, credential: StaticTokenCredential) -> Callable[..., Any]:
    """Factory: ResourceManagementClient against rekeyd.

    azure-mgmt-resource >= 26 ships only azure.mgmt.resource.resources;
    ``from azure.mgmt.resource import ResourceManagementClient`` no longer works.
    """
    from azure.mgmt.resource.resources import ResourceManagementClient

    def make(credential_override: Any = None, **overrides: Any):
        return ResourceManagementClient(
            credential_override or credential,
            rekey.subscription_id,
            **_client_kwargs(rekey, overrides),
        )

    return make


@pytest.fixture(scope="session")
def cosmos_client(rekey: Rekey, credential: StaticTokenCredential):
    """CosmosDBManagementClient (azure-mgmt-cosmosdb) against rekeyd."""
    from azure.mgmt.cosmosdb import CosmosDBManagementClient

    with CosmosDBManagementClient(credential, rekey.subscription_id, **_client_kwargs(rekey, {})) as client:
        yield client


@pytest.fixture(scope="session")
def quantum_client(rekey: Rekey, credential: StaticTokenCredential):
    """AzureQuantumMgmtClient (azure-mgmt-quantum) against rekeyd."""
    from azure.mgmt.quantum import AzureQuantumMgmtClient

    with AzureQuantumMgmtClient(credential, rekey.subscription_id, **_client_kwargs(rekey, {})) as client:
        yield client


@pytest.fixture(scope="session")
def cs_client(make_cs_client):
    with make_cs_client() as client:
        yield client


@pytest.fixture(scope="session")
def rm_client(make_rm_client):
    with make_rm_client() as client:
        yield client


# --------------------------------------------------------------------------
# show the server's side of a failure


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        # funcargs holds every fixture in the test's closure once set up, so
        # this also covers tests that reach `rekey` through another fixture.
        server = getattr(item, "funcargs", {}).get("rekey")
        if isinstance(server, Rekey):
            report.sections.append(
                (f"rekeyd log tail ({server.log_path})", server.log_tail(40))
            )

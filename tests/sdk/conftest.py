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

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from azure.core.credentials import AccessToken

try:  # azure-core >= 1.31
    from azure.core.credentials import AccessTokenInfo
except ImportError:  # pragma: no cover - older azure-core
    AccessTokenInfo = None  # type: ignore[assignment]

REPO_ROOT = Path(__file__).resolve().parents[2]
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
START_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------
# certificates


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(
        [OPENSSL, *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"openssl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
        )


def make_certificates(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server cert for 127.0.0.1/localhost (ECDSA P-256).

    Keys are PKCS#8 PEM ("BEGIN PRIVATE KEY"), certs are PEM. The server cert
    file holds the leaf only; clients trust ca.pem.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ec = ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
    _openssl("genpkey", *ec, "-out", "ca.key", cwd=directory)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "7",
        "-subj", "/CN=rekey test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
        "-out", "ca.pem",
        cwd=directory,
    )
    _openssl("genpkey", *ec, "-out", "server.key", cwd=directory)
    _openssl(
        "req", "-new", "-key", "server.key", "-subj", "/CN=localhost",
        "-out", "server.csr",
        cwd=directory,
    )
    (directory / "server.ext").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "7", "-sha256", "-extfile", "server.ext",
        "-out", "server.pem",
        cwd=directory,
    )
    return {
        "ca_cert": directory / "ca.pem",
        "ca_key": directory / "ca.key",
        "cert": directory / "server.pem",
        "key": directory / "server.key",
    }


# --------------------------------------------------------------------------
# rekeyd process


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(text.splitlines()[-lines:])


def rekeyd_binary() -> Path:
    raw = os.environ.get("REKEYD_BIN", "target/debug/rekeyd")
    p = Path(raw)
    if not p.is_absolute():
        p = REPO_ROOT / p
    return p


@dataclass
class Rekey:
    base_url: str
    token: str
    subscription_id: str
    tenant_id: Optional[str]
    ca_path: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    def log_tail(self, lines: int = 60) -> str:
        return _tail(self.log_path, lines)


def _healthz_ok(url: str, ctx: ssl.SSLContext) -> bool:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, OSError, ssl.SSLError):
        return False


def _backends() -> list[str]:
    """SQLite and PostgreSQL (on the server REKEY_TEST_POSTGRES_URL names; scripts/test starts
    one), unless REKEY_TEST_BACKENDS=sqlite leaves PostgreSQL out on purpose."""
    if os.environ.get("REKEY_TEST_BACKENDS", "").strip() == "sqlite":
        return ["sqlite"]
    return ["sqlite", "postgres"]


def _psql(url: str, sql: str) -> None:
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                   check=True, capture_output=True, text=True)


def _with_database(url: str, database: str) -> str:
    """The server URL ``postgres://user@host:port/db`` with another database name."""
    scheme, rest = url.split("://", 1)
    host = rest.split("/", 1)[0]
    return f"{scheme}://{host}/{database}"


@pytest.fixture(scope="session", params=_backends())
def rekey(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A rekeyd per backend: every SDK test runs against SQLite and, when a server is given,
    against a fresh PostgreSQL database (dropped afterwards)."""
    database_url = None
    if request.param == "postgres":
        admin = os.environ.get("REKEY_TEST_POSTGRES_URL")
        if not admin:
            pytest.fail(
                "REKEY_TEST_POSTGRES_URL is not set: start a server with `scripts/pg-cluster start "
                "DIR` and set it to the URL printed, or set REKEY_TEST_BACKENDS=sqlite to leave "
                "PostgreSQL out on purpose (scripts/test does the former by itself)",
                pytrace=False,
            )
        name = "rekey_sdk_" + os.urandom(8).hex()
        _psql(admin, f"CREATE DATABASE {name}")
        request.addfinalizer(lambda: _psql(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        database_url = _with_database(admin, name)
    yield from _start_rekeyd(tmp_path_factory, database_url)


def _start_rekeyd(tmp_path_factory: pytest.TempPathFactory, database_url: Optional[str]):
    binary = rekeyd_binary()
    if not binary.is_file():
        pytest.fail(
            f"rekeyd binary not found at {binary} "
            "(build it with `cargo build -p rekey-server` or set REKEYD_BIN)",
            pytrace=False,
        )

    tmp = tmp_path_factory.mktemp("rekeyd")
    certs = make_certificates(tmp / "tls")
    data_dir = tmp / "data"
    data_dir.mkdir()
    log_path = tmp / "rekeyd.log"
    port = _free_port()
    base_url = f"https://127.0.0.1:{port}"

    env = dict(os.environ)
    env.pop("REKEY_DATABASE_URL", None)
    if database_url:
        env["REKEY_DATABASE_URL"] = database_url
    env["RUST_LOG"] = "info"
    env.setdefault("RUST_BACKTRACE", "1")
    cmd = [
        str(binary),
        "--listen", f"127.0.0.1:{port}",
        "--data-dir", str(data_dir),
        "--tls-cert", str(certs["cert"]),
        "--tls-key", str(certs["key"]),
    ]
    log = open(log_path, "wb")
    log.write(("$ " + " ".join(cmd) + "\n").encode())
    log.flush()
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=env, cwd=tmp,
    )

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()

    def fail(why: str) -> None:
        stop()
        raise RuntimeError(
            f"rekeyd did not start: {why}\n"
            f"command: {' '.join(cmd)}\n"
            f"log {log_path} (tail):\n{_tail(log_path)}"
        )

    ctx = ssl.create_default_context(cafile=str(certs["ca_cert"]))
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            fail(f"process exited with status {proc.returncode}")
        if _healthz_ok(base_url + "/healthz", ctx):
            break
        if time.monotonic() > deadline:
            fail(f"GET {base_url}/healthz did not answer 200 within {START_TIMEOUT_S:.0f}s")
        time.sleep(0.2)

    bootstrap_path = data_dir / "bootstrap.json"
    while not bootstrap_path.is_file():
        if time.monotonic() > deadline:
            fail(f"{bootstrap_path} was not written")
        time.sleep(0.1)
    try:
        bootstrap = json.loads(bootstrap_path.read_text())
        token = bootstrap["token"]
        subscription_id = bootstrap["subscriptionId"]
    except (ValueError, KeyError) as e:
        fail(f"bad {bootstrap_path}: {e!r}: {bootstrap_path.read_text()!r}")

    try:
        yield Rekey(
            base_url=base_url,
            token=token,
            subscription_id=subscription_id,
            tenant_id=bootstrap.get("tenantId"),
            ca_path=str(certs["ca_cert"]),
            data_dir=data_dir,
            log_path=log_path,
            process=proc,
        )
    finally:
        stop()


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

"""Owns the API fuzzing run: starts rekeyd on a fresh data directory (plain HTTP, 127.0.0.1),
creates a resource group, one resource of each type and a service token so that generated calls
can reach real handlers, then runs schemathesis against the live `/openapi.json` (every route it
documents) with the owner's bearer token.

Checks (all must hold): no 5xx; status codes, content types, headers and bodies as the document
says; schema-valid data accepted and invalid data rejected; a created resource can be fetched and a
deleted one is gone (the stateful phase chains calls through the links schemathesis infers).

    tests/fuzz-api/run.sh [max-examples-per-operation] [--report]
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "reliability"))
import report  # noqa: E402
from rekeyd import Rekeyd  # noqa: E402

REPO_ROOT = HERE.parents[1]
# schemathesis's whole output (the console shows only its end).
FULL_OUTPUT = REPO_ROOT / "target" / "fuzz-api" / "schemathesis.txt"

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
]


def seed_resources(server: Rekeyd) -> dict[str, str]:
    """A group with one resource of each type and a service token, so that calls on those names
    reach real handlers; returns facts for the config (the data-plane id, the token and its
    principal)."""
    c = server.client()
    sub = f"/subscriptions/{server.subscription}"
    calls = [
        ("PUT", f"{sub}/resourcegroups/fuzz?api-version=2025-04-01", {"location": "westus"}),
        (
            "PUT",
            f"{sub}/resourceGroups/fuzz/providers/Microsoft.CognitiveServices/accounts/acct1?api-version=2025-09-01",
            {"location": "westus", "kind": "TextAnalytics", "sku": {"name": "S0"}},
        ),
        (
            "PUT",
            f"{sub}/resourceGroups/fuzz/providers/Microsoft.Quantum/workspaces/ws1?api-version=2023-11-13-preview",
            {"location": "westus", "properties": {"providers": []}},
        ),
        (
            "PUT",
            f"{sub}/resourceGroups/fuzz/providers/Microsoft.DocumentDB/databaseAccounts/db1?api-version=2026-03-15",
            {
                "location": "westus",
                "kind": "GlobalDocumentDB",
                "properties": {
                    "databaseAccountOfferType": "Standard",
                    "locations": [{"locationName": "westus", "failoverPriority": 0}],
                },
            },
        ),
    ]
    facts: dict[str, str] = {}
    for method, path, body in calls:
        status, answer = c.request(method, path, body)
        if status not in (200, 201):
            raise SystemExit(f"seeding {path}: {status} {answer}")
        props = answer.get("properties", {}) if isinstance(answer, dict) else {}
        if "endpoint" in props:
            facts["resourceId"] = props["internalId"]
    status, created = c.request("POST", "/rekey/tokens", {"name": "fuzz"})
    if status != 201:
        raise SystemExit(f"seeding a token: {status} {created}")
    facts["principalId"] = created["principalId"]
    facts["token"] = created["token"]
    c.close()
    return facts


def config(server: Rekeyd, facts: dict[str, str]) -> str:
    """schemathesis.toml: calls on the seeded resources get their real names (deletes excepted, so
    they survive the run), and so do role assignments and the activity log at subscription and
    group scope; everything else is generated.

    Generated valid bodies name the seeded token where one is asked for, so that role assignments
    are really made, and sign-in and the OAuth token endpoint really answer with a session and a
    token (a token endpoint or sign-in that refuses generated secrets is only doing its job).

    Role assignments name a principal, and whether one exists is not something a schema can say:
    Azure answers an unknown one 400 PrincipalNotFound, and so does rekey (the Azure tooling
    expects it). And an assignment name already in use with another role or principal is refused
    400 RoleAssignmentUpdateNotPermitted, as ARM does: generated cases reuse names, and whether a
    name is taken is not something a schema can say either. So for these PUTs only, in every
    phase, a 400 is taken as an answer to valid data; every other check holds.

    A regenerateKey's `Idempotency-Key` (or `x-ms-client-request-id`) repeated with another
    resource, key or grace is refused 422 IdempotencyKeyReused: generated cases reuse header
    values, and whether a token was used before is not something a schema can say. So for
    regenerateKey only, a 422 is taken as an answer to valid data. regenerateKey is also the one
    operation that declares request headers (rekey's rotation headers), and the coverage phase
    counts a request with an extra, unknown header as invalid; HTTP says an unknown header is
    ignored (RFC 9110, section 5.1), so there a success is taken as an answer to it. Invalid values
    of the declared headers are still refused, as the fuzzing phase checks.
    """
    out = [
        "[dictionaries]\n"
        f'principals = {{ values = ["{facts["principalId"]}"] }}\n'
        f'tokens = {{ values = ["{facts["token"]}"] }}\n'
        "\n[parameters]\n"
        '"body.properties.principalId" = { dictionary = "principals" }\n'
        '"body.client_id" = { dictionary = "principals" }\n'
        '"body.client_secret" = { dictionary = "tokens" }\n'
        '"body.token" = { dictionary = "tokens" }\n',
        "[[operations]]\n"
        'include-path-regex = "/providers/Microsoft\\\\.Authorization/roleAssignments/\\\\{roleAssignmentName\\\\}$"\n'
        'include-method = ["PUT"]\n'
        + "".join(
            f"phases.{phase}.checks.positive_data_acceptance.expected-statuses = "
            '["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]\n'
            for phase in ("coverage", "fuzzing", "stateful")
        ),
        "[[operations]]\n"
        'include-path-regex = "/regenerateKey$"\n'
        'include-method = ["POST"]\n'
        + "".join(
            f"phases.{phase}.checks.positive_data_acceptance.expected-statuses = "
            '["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]\n'
            for phase in ("coverage", "fuzzing", "stateful")
        ),
        "phases.coverage.checks.negative_data_rejection.expected-statuses = "
        '["2xx", "400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429", "5xx"]\n',
        "[[operations]]\n"
        'include-path-regex = "^/subscriptions/\\\\{subscriptionId\\\\}/(resourceGroups/\\\\{resourceGroupName\\\\}/)?'
        'providers/Microsoft\\\\.(Authorization|Insights)/"\n'
        f'parameters = {{ "path.subscriptionId" = "{server.subscription}", '
        '"path.resourceGroupName" = "fuzz" }\n',
    ]
    pinned = [
        (r"Microsoft\\.CognitiveServices/accounts/\\{accountName\\}", {"accountName": "acct1"}),
        (r"Microsoft\\.DocumentDB/databaseAccounts/\\{accountName\\}", {"accountName": "db1"}),
        (r"Microsoft\\.Quantum/workspaces/\\{workspaceName\\}", {"workspaceName": "ws1"}),
        (r"^/data/", {"resourceId": facts.get("resourceId", "0")}),
    ]
    for regex, params in pinned:
        if not regex.startswith("^/data"):
            params = {"subscriptionId": server.subscription, "resourceGroupName": "fuzz", **params}
        values = ", ".join(f'"path.{k}" = "{v}"' for k, v in params.items())
        out.append(
            "[[operations]]\n"
            f'include-path-regex = "{regex}"\n'
            'include-method = ["GET", "PUT", "PATCH", "POST"]\n'
            f"parameters = {{ {values} }}\n"
        )
    return "\n".join(out)


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--report"]
    write_report = "--report" in sys.argv[1:]
    examples = int(args[0]) if args else 25
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rekey-fuzz-api-") as tmp:
        # Failed data-plane key checks are most of what a fuzzer sends there: no throttling.
        server = Rekeyd(Path(tmp), {"REKEY_AUTH_FAILURE_LIMIT": "1000000000"})
        server.start()
        try:
            facts = seed_resources(server)
            report_dir = Path(tmp) / "report"
            config_file = Path(tmp) / "schemathesis.toml"
            config_file.write_text(config(server, facts))
            cmd = [
                str(Path(sys.executable).with_name("schemathesis")),
                "--config-file",
                str(config_file),
                "run",
                f"{server.base_url}/openapi.json",
                "--header",
                f"Authorization: Bearer {server.token}",
                "--checks",
                ",".join(CHECKS),
                "--max-examples",
                str(examples),
                # One worker: hypothesis inspecting lambdas from several threads at once trips a
                # CPython 3.11 parser bug ("AST constructor recursion depth mismatch").
                "--workers",
                "1",
                "--seed",
                "20260101",
                "--generation-database",
                "none",
                "--request-timeout",
                "30",
                "--suppress-health-check",
                "all",
                "--report",
                "junit",
                "--report-dir",
                str(report_dir),
                "--output-sanitize",
                "true",
                "--no-color",
            ]
            print(f"schemathesis: {examples} examples per operation against {server.base_url}")
            proc = subprocess.run(cmd, cwd=tmp, stdin=subprocess.DEVNULL, capture_output=True, text=True)
            output = proc.stdout + proc.stderr
            FULL_OUTPUT.parent.mkdir(parents=True, exist_ok=True)
            FULL_OUTPUT.write_text(output)
            print(output[-20000:])
            print(f"schemathesis: the whole output is in {FULL_OUTPUT}")
            crashed = not server.alive()
        finally:
            server.stop()
        if crashed:
            print("rekeyd died during the run:\n" + server.log_tail())
            return 1
        if proc.returncode != 0:
            print("rekeyd log tail:\n" + server.log_tail(20))
            return proc.returncode
    elapsed = time.monotonic() - started
    cases = re.search(r"Test cases:\s*\n?\s*(\d[\d,]*) generated", output)
    ops = re.search(r"API Operations:\s*\n?\s*Selected:\s*(\d+)/(\d+)", output)
    summary = {
        "cases": cases.group(1).replace(",", "") if cases else "?",
        "operations": ops.group(1) if ops else "?",
    }
    print(f"schemathesis: {json.dumps(summary)} in {elapsed:.0f} s")
    if write_report:
        report.update(
            "schemathesis",
            "| schemathesis | operations | max examples per operation | test cases generated | failures | time |\n"
            "|---|---|---|---|---|---|\n"
            f"| 4.32.5 | {summary['operations']} | {examples} | {summary['cases']} | 0 | {elapsed:.0f} s |\n\n"
            f"Checks: {', '.join(f'`{c}`' for c in CHECKS)}.",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

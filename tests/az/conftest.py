"""Reuses the SDK harness's fixture that starts rekeyd over HTTPS with a generated CA."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "rekey_sdk_fixtures", Path(__file__).resolve().parents[1] / "sdk" / "conftest.py"
)
_fixtures = importlib.util.module_from_spec(_spec)
# dataclasses look their module up in sys.modules while the module loads.
sys.modules[_spec.name] = _fixtures
_spec.loader.exec_module(_fixtures)  # type: ignore[union-attr]

rekey = _fixtures.rekey

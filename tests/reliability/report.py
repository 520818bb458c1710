"""Owns rewriting the figures in docs/reliability.md: each script replaces only its own marked
section (`<!-- figures:NAME -->` … `<!-- /figures:NAME -->`), so the prose around the figures stays
hand-written and every figure in the file comes from a run of the script that measured it.

Usable from Python (`update("crash", text)`) and from shell scripts
(`python3 tests/reliability/report.py NAME < text`).
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"


def stamp() -> str:
    """When and where a figure was measured, so a stale one is visible."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"_Measured {when} on {os.cpu_count()} cores ({platform.machine()})._"


def update(name: str, body: str) -> None:
    text = DOC.read_text()
    begin, end = f"<!-- figures:{name} -->", f"<!-- /figures:{name} -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{DOC} has no section {begin} … {end}")
    replacement = f"{begin}\n{body.strip()}\n\n{stamp()}\n{end}"
    DOC.write_text(pattern.sub(lambda _: replacement, text, count=1))
    print(f"updated the '{name}' figures in {DOC}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: report.py SECTION < markdown")
    update(sys.argv[1], sys.stdin.read())

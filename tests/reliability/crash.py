"""Owns the crash-consistency check: rekeyd serves concurrent regenerateKey, listKeys, POST /verify
and data-plane calls on one account while it is killed with SIGKILL at random moments and restarted
on the same data directory, `--kills` times. Every call is recorded with its invoke and return time;
a call that got no answer (the process died under it) is "in doubt": it may or may not have happened.
The history is then checked:

1. every acknowledged regeneration is present later: each later listKeys shows its key in the
   slot, or a regeneration of that slot that may have come after it (acknowledged, or in doubt)
   explains the key shown instead;
2. no slot ever lost its key: every listKeys and regenerateKey answer carries both keys in the
   key format, and after every restart the account and its keys are there;
3. no old key is accepted after its regeneration was acknowledged (by /verify or the data plane);
4. no call is answered with a 5xx or an unexpected status.

    python3 tests/reliability/crash.py [--kills 50] [--clients 6] [--report]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402
from rekeyd import CS_VERSION, NoAnswer, Rekeyd, is_cs_key, short  # noqa: E402

SLOTS = ("key1", "key2")
INF = float("inf")


@dataclass
class Call:
    kind: str  # "regenerate" | "list" | "verify"
    t0: float
    t1: float  # INF for a call in doubt: it may take effect at any time after t0
    slot: Optional[int] = None  # regenerate: the slot; verify: the slot it was valid for
    keys: Optional[tuple[str, str]] = None  # regenerate / list answers
    key: Optional[str] = None  # verify: the key presented
    valid: Optional[bool] = None
    via: str = ""

    @property
    def acknowledged(self) -> bool:
        return self.t1 != INF


class Load:
    def __init__(self, server: Rekeyd, path: str, data_path: str, seed: int) -> None:
        self.server = server
        self.path = path
        self.data_path = data_path
        self.seed = seed
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self.known: list[str] = []
        self.problems: list[str] = []
        self.stop = threading.Event()
        self.url = server.base_url

    def _record(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)
            for k in call.keys or ():
                if k not in self.known:
                    self.known.append(k)

    def _problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)

    def _keys(self, what: str, status: int, body: Any) -> Optional[tuple[str, str]]:
        if status != 200:
            self._problem(f"{what} answered {status}: {body}")
            return None
        if not isinstance(body, dict) or not all(is_cs_key(body.get(s)) for s in SLOTS):
            self._problem(f"{what} lost a key: {body}")
            return None
        return body["key1"], body["key2"]

    def list_keys(self, c) -> None:
        t0 = time.monotonic()
        try:
            status, body = c.request("POST", f"{self.path}/listKeys?api-version={CS_VERSION}")
        except NoAnswer:
            return
        t1 = time.monotonic()
        keys = self._keys("listKeys", status, body)
        if keys:
            self._record(Call("list", t0, t1, keys=keys))

    def one(self, c, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.3:
            slot = rng.randrange(2)
            t0 = time.monotonic()
            try:
                status, body = c.request(
                    "POST",
                    f"{self.path}/regenerateKey?api-version={CS_VERSION}",
                    {"keyName": ("Key1", "Key2")[slot]},
                )
            except NoAnswer as e:
                if e.sent:  # cut off by the kill: it may or may not have happened
                    self._record(Call("regenerate", t0, INF, slot=slot))
                raise
            t1 = time.monotonic()
            keys = self._keys("regenerateKey", status, body)
            self._record(Call("regenerate", t0, t1 if keys else INF, slot=slot, keys=keys))
            return
        if roll < 0.5:
            self.list_keys(c)
            return
        with self.lock:
            known = list(self.known)
        if not known:
            return
        key = rng.choice(known[-4:]) if rng.random() < 0.7 else rng.choice(known)
        t0 = time.monotonic()
        if roll < 0.8:
            status, body = c.request("POST", "/verify", {"key": key})
            t1 = time.monotonic()
            if status != 200 or not isinstance(body, dict):
                self._problem(f"verify answered {status}: {body}")
                return
            valid = bool(body.get("valid"))
            slot = SLOTS.index(body["keyName"]) if valid else None
            self._record(Call("verify", t0, t1, slot=slot, key=key, valid=valid, via="verify"))
            return
        status, body = c.request(
            "GET", self.data_path, headers={"Ocp-Apim-Subscription-Key": key}, auth=False
        )
        t1 = time.monotonic()
        if status not in (200, 401):
            self._problem(f"data plane answered {status}: {body}")
            return
        slot = SLOTS.index(body["keyName"]) if status == 200 else None
        self._record(Call("verify", t0, t1, slot=slot, key=key, valid=status == 200, via="dataplane"))

    def worker(self, seed: int) -> None:
        rng = random.Random(seed)
        c = self.server.client(timeout=30)
        while not self.stop.is_set():
            c.retarget(self.url)
            try:
                self.one(c, rng)
            except NoAnswer:
                time.sleep(0.02)  # the server is down or restarting
        c.close()


def check(calls: list[Call]) -> list[str]:
    """The three promises over a finished history; returns what was violated."""
    problems: list[str] = []
    regens = [c for c in calls if c.kind == "regenerate"]
    acked = [c for c in regens if c.acknowledged and c.keys]
    lists = [c for c in calls if c.kind == "list"]
    verifies = [c for c in calls if c.kind == "verify"]
    # Which acknowledged regeneration produced each key.
    made_by = {r.keys[r.slot]: r for r in acked}

    # 1. Acknowledged regenerations are never lost.
    for r in acked:
        k = r.keys[r.slot]
        for l in lists:
            if l.t0 <= r.t1 or l.keys[r.slot] == k:
                continue
            shown = l.keys[r.slot]
            later = made_by.get(shown)
            if later is not None:
                # The key shown must come from a regeneration that may follow r and precede l.
                explained = later.slot == r.slot and later.t1 > r.t0 and later.t0 < l.t1
            else:
                # An unknown key: only a regeneration in doubt on this slot can have made it.
                explained = any(
                    d.slot == r.slot and not d.acknowledged and d.t0 < l.t1 for d in regens
                )
            if not explained:
                problems.append(
                    f"acknowledged regeneration of {SLOTS[r.slot]} (answered at {r.t1:.3f}, "
                    f"key {short(k)}) is missing from listKeys at {l.t0:.3f}, which shows {short(shown)}"
                )
                break

    # 3. No old key accepted after its replacement was acknowledged. A key was in slot s before r
    #    if some answer showing it in s returned before r was sent.
    first_seen: dict[tuple[str, int], float] = {}
    for c in acked + lists:
        for s in (0, 1):
            key = (c.keys[s], s)
            first_seen[key] = min(first_seen.get(key, INF), c.t1)
    revoked_at: dict[str, float] = {}
    for r in acked:
        for (k, s), seen in first_seen.items():
            if s == r.slot and seen < r.t0 and k != r.keys[r.slot]:
                revoked_at[k] = min(revoked_at.get(k, INF), r.t1)
    for v in verifies:
        if v.valid and v.t0 > revoked_at.get(v.key, INF):
            problems.append(
                f"{v.via}: key {short(v.key)} accepted at {v.t0:.3f} although its regeneration "
                f"was acknowledged at {revoked_at[v.key]:.3f}"
            )
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--min-gap", type=float, default=0.2, help="seconds of load before a kill, at least")
    parser.add_argument("--max-gap", type=float, default=1.2, help="seconds of load before a kill, at most")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--report", action="store_true", help="rewrite docs/reliability.md")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"crash consistency: {args.kills} SIGKILLs under {args.clients} clients, seed {seed}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rekey-crash-") as tmp:
        server = Rekeyd(Path(tmp), {"REKEY_AUTH_FAILURE_LIMIT": "1000000000"})
        server.start()
        try:
            account = server.create_account("crash", "acct")
            path = server.account_path("crash", "acct")
            data_path = account["properties"]["endpoint"][len(server.base_url) :] + "crash/check"
            load = Load(server, path, data_path, seed)
            c = server.client()
            load.list_keys(c)
            threads = [
                threading.Thread(target=load.worker, args=(rng.randrange(1 << 30),))
                for _ in range(args.clients)
            ]
            for t in threads:
                t.start()
            kills = 0
            for _ in range(args.kills):
                time.sleep(rng.uniform(args.min_gap, args.max_gap))
                server.kill()
                kills += 1
                server.start()
                load.url = server.base_url
                # The first call after each restart: the account and both keys must be there.
                c.retarget(server.base_url)
                before = len(load.calls)
                load.list_keys(c)
                if len(load.calls) == before:
                    load._problem(f"after restart {kills} listKeys did not answer with both keys")
                if load.problems:
                    break
            time.sleep(args.min_gap)
            load.stop.set()
            for t in threads:
                t.join()
            load.list_keys(c)
            c.close()
        finally:
            server.stop()
        problems = load.problems + check(load.calls)
        if problems:
            print(f"FAILED after {kills} kills:")
            for p in problems[:20]:
                print("  " + p)
            print("rekeyd log tail:\n" + server.log_tail())
            return 1
    calls = load.calls
    regens = [x for x in calls if x.kind == "regenerate"]
    acked = sum(1 for x in regens if x.acknowledged)
    lists = sum(1 for x in calls if x.kind == "list")
    verifies = [x for x in calls if x.kind == "verify"]
    refused_old = sum(1 for v in verifies if not v.valid)
    elapsed = time.monotonic() - started
    print(
        f"crash consistency: {kills} kills survived; {acked} acknowledged and "
        f"{len(regens) - acked} in-doubt regenerations, {lists} listKeys, {len(verifies)} key checks "
        f"({refused_old} refused) all consistent, in {elapsed:.1f} s"
    )
    if args.report:
        report.update(
            "crash",
            "| kills survived | acknowledged regenerations | in doubt (killed mid-call) | listKeys | "
            "key checks (refused) | clients | time |\n|---|---|---|---|---|---|---|\n"
            f"| {kills} | {acked} | {len(regens) - acked} | {lists} | {len(verifies)} ({refused_old}) | "
            f"{args.clients} | {elapsed:.0f} s |",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

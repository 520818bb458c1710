"""Owns the linearizability check of one resource's keys: concurrent clients call regenerateKey,
listKeys, POST /verify and the data plane on one Cognitive Services account while every call's
invoke and return times are recorded; a Wing–Gong search (with Lowe's memoization of
(linearized set, state)) then looks for a sequential order that respects real time and the model.

The model is one register per slot, with rekey's own rotation controls beside it:
- regenerate(slot) writes a new, never-seen value to the slot and returns both slots' values; with
  an overlap (`x-rekey-grace-seconds`, long enough never to run out during a history) the value it
  replaced keeps opening the slot, without one any overlap of the slot ends;
- endKeyGrace(slot) ends the slot's overlap; disableKey(slot) and enableKey(slot) set its flag;
- listKeys reads both slots;
- verify(k) (POST /verify or a data-plane call with the key) answers valid with slot s iff the slot
  is not disabled and k is its current value or its value in an overlap, and invalid iff no slot
  accepts k.

A failing history is shrunk (chunks, then single calls, are dropped while it still fails; then
answers it does not need are forgotten, shown as `-`) and printed as a short table, so the
contradiction is readable.

With `--nodes N --postgres URL` the same histories are recorded against N rekeyd nodes sharing one
fresh PostgreSQL database (made on the server URL names, dropped at the end): every call goes to a
node chosen at random, so a key regenerated through one node is checked, listed and regenerated
again through the others, under the same model and checker. Two answers exist only there:
- 503 from a node that cannot confirm its key cache is current, for listKeys, /verify or the data
  plane: a refusal that changed nothing and revealed nothing, so the call is left out of the
  history (and counted). A 503 to regenerateKey may come after its commit, so it is in doubt: the
  model has no such call, and the run stops there.
- 404 from the data plane, a node that does not serve the account (yet): the key did not open it,
  recorded as refused, so the model finds it out if the key was current.

    python3 tests/reliability/linearizability.py [--histories N] [--clients C] [--ops N] [--report]
    python3 tests/reliability/linearizability.py --nodes 3 --postgres postgres://… [options]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402
from rekeyd import CS_VERSION, FreshDatabase, NoAnswer, Rekeyd, short, start_nodes  # noqa: E402

SLOTS = ("key1", "key2")
# (key1, key2, key1 in its overlap, key2 in its overlap, key1 disabled, key2 disabled); a history's
# initial state may give the keys alone.
State = tuple
# Long enough that no overlap runs out during a history: expiry by time is not modelled.
GRACE_SECONDS = "600"


def _full(state: State) -> State:
    """`state` with the rotation controls, which start with no overlap and nothing disabled."""
    return tuple(state) + (None, None, False, False)[len(state) - 2 :]


def _accepts(state: State, slot: int, key: Any) -> bool:
    return not state[4 + slot] and key in (state[slot], state[2 + slot]) and key is not None


@dataclass
class Op:
    """One completed call. `arg`: the slot index for regenerate, the key for verify. `result`: both
    keys for regenerate and list, the slot index (or None for invalid) for verify."""

    client: int
    kind: str  # "regenerate" | "list" | "verify"
    arg: Any
    result: Any
    invoke: float
    ret: float
    via: str = ""
    node: int = -1  # which rekeyd node answered, with several; -1 with one
    grace: bool = False  # a regeneration that asked for an overlap

    def describe(self) -> str:
        if self.kind == "regenerate":
            k1, k2 = self.result
            overlap = " (overlap)" if self.grace else ""
            return f"regenerate {SLOTS[self.arg]:4}{overlap} -> key1={short(k1)} key2={short(k2)}"
        if self.kind in ("endgrace", "disable", "enable"):
            return f"{self.kind} {SLOTS[self.arg]}"
        if self.kind == "list":
            k1, k2 = self.result
            return f"listKeys        -> key1={short(k1)} key2={short(k2)}"
        answer = "invalid" if self.result is None else f"valid as {SLOTS[self.result]}"
        return f"{self.via or 'verify'}({short(self.arg)}) -> {answer}"


def _seen(answer: Optional[str], value: str) -> bool:
    """Whether an answered key agrees with the model's; `None` is an answer the shrinker forgot."""
    return answer is None or answer == value


def step(state: State, op: Op) -> tuple[bool, State]:
    """The sequential model: whether `op` may take effect in `state`, and the state after it."""
    state = _full(state)
    if op.kind == "list":
        return all(_seen(a, v) for a, v in zip(op.result, state)), state
    if op.kind == "regenerate":
        slot, new = op.arg, op.result
        other = 1 - slot
        ok = _seen(new[other], state[other]) and new[slot] != state[slot]
        after = list(state)
        after[slot] = new[slot]
        after[2 + slot] = state[slot] if op.grace else None
        return ok, tuple(after)
    if op.kind in ("endgrace", "disable", "enable"):
        after = list(state)
        if op.kind == "endgrace":
            after[2 + op.arg] = None
        else:
            after[4 + op.arg] = op.kind == "disable"
        return True, tuple(after)
    if op.kind == "verify":
        if op.result is None:
            return not any(_accepts(state, s, op.arg) for s in range(len(SLOTS))), state
        return _accepts(state, op.result, op.arg), state
    raise ValueError(f"unknown operation {op.kind}")


class _Entry:
    __slots__ = ("op", "index", "is_call", "match", "prev", "next")

    def __init__(self, op: Optional[Op], index: int, is_call: bool) -> None:
        self.op, self.index, self.is_call = op, index, is_call
        self.match: Optional[_Entry] = None
        self.prev: Optional[_Entry] = None
        self.next: Optional[_Entry] = None


def _lift(e: _Entry) -> None:
    e.prev.next = e.next
    e.next.prev = e.prev
    m = e.match
    m.prev.next = m.next
    if m.next is not None:
        m.next.prev = m.prev


def _unlift(e: _Entry) -> None:
    m = e.match
    m.prev.next = m
    if m.next is not None:
        m.next.prev = m
    e.prev.next = e
    e.next.prev = e


@dataclass
class Verdict:
    ok: bool
    explored: int = 0
    # The longest order found that the model accepts, when the history is not linearizable.
    longest: list[Op] = field(default_factory=list)


def check(ops: list[Op], init: State, budget: int = 2_000_000) -> Verdict:
    """Wing–Gong search with memoization. Calls that start at the same instant as another call's
    return are treated as concurrent with it (the permissive reading of equal timestamps)."""
    if len({op.result[op.arg] for op in ops if op.kind == "regenerate"}) != sum(
        op.kind == "regenerate" for op in ops
    ):
        return Verdict(False, 0, [])  # a "new" key handed out twice is never linearizable
    events = []
    for i, op in enumerate(ops):
        events.append((op.invoke, 0, i))
        events.append((op.ret, 1, i))
    events.sort()
    head = _Entry(None, -1, False)
    calls: dict[int, _Entry] = {}
    prev = head
    for _, kind, i in events:
        e = _Entry(ops[i], i, kind == 0)
        if kind == 0:
            calls[i] = e
        else:
            e.match = calls[i]
            calls[i].match = e
        prev.next, e.prev = e, prev
        prev = e

    state, linearized = _full(init), 0
    stack: list[tuple[_Entry, State]] = []
    cache: set[tuple[int, State]] = set()
    longest: list[Op] = []
    explored = 0
    entry = head.next
    while head.next is not None:
        explored += 1
        if explored > budget:
            raise RuntimeError(f"linearizability search exceeded {budget} steps")
        if entry.is_call:
            ok, new_state = step(state, entry.op)
            if ok:
                key = (linearized | (1 << entry.index), new_state)
                if key not in cache:
                    cache.add(key)
                    stack.append((entry, state))
                    state, linearized = new_state, key[0]
                    _lift(entry)
                    if len(stack) > len(longest):
                        longest = [e.op for e, _ in stack]
                    entry = head.next
                    continue
            entry = entry.next
        else:
            if not stack:
                return Verdict(False, explored, longest)
            entry, state = stack.pop()
            linearized &= ~(1 << entry.index)
            _unlift(entry)
            entry = entry.next
    return Verdict(True, explored)


def shrink(ops: list[Op], init: State) -> list[Op]:
    """A smaller history that still fails: drop chunks, halving their size, then single calls,
    as long as what is left is still not linearizable (delta debugging); then forget the keys in
    answers that the contradiction does not need (a regeneration's other slot, a listKeys slot),
    which may let more calls go, until nothing more can.

    Forgetting an answer only removes a constraint, so a history that still fails without it
    failed with it too. It is what keeps a cross-node failure short: every regeneration answers
    both keys, so without it a shrunk history would keep the whole chain of regenerations that
    made the other slot's key."""
    current = sorted(ops, key=lambda o: o.invoke)
    while True:
        current = _drop_calls(current, init)
        forgotten = _forget_answers(current, init)
        if forgotten is None:
            return current
        current = forgotten


def _forget_answers(ops: list[Op], init: State) -> Optional[list[Op]]:
    """`ops` with every key answer the failure does not need forgotten, or None if none is."""
    current, changed = list(ops), False
    for i, op in enumerate(ops):
        if op.kind not in ("list", "regenerate"):
            continue
        for slot in range(len(SLOTS)):
            result = current[i].result
            if result[slot] is None or (op.kind == "regenerate" and slot == op.arg):
                continue
            weaker = list(result)
            weaker[slot] = None
            candidate = current[:i] + [replace(current[i], result=tuple(weaker))] + current[i + 1 :]
            if not check(candidate, init).ok:
                current, changed = candidate, True
    return current if changed else None


# Calls the shrinker keeps: without them a refusal they explain (a disabled slot, an ended overlap)
# or an acceptance (an enabled slot) would look like a failure of its own.
CONTROLS = ("endgrace", "disable", "enable")


def _drop_calls(ops: list[Op], init: State) -> list[Op]:
    controls = [op for op in ops if op.kind in CONTROLS]
    others = _drop_others([op for op in ops if op.kind not in CONTROLS], controls, init)
    return sorted(others + controls, key=lambda o: o.invoke)


def _drop_others(ops: list[Op], controls: list[Op], init: State) -> list[Op]:
    original = ops + controls

    def fails(candidate: list[Op]) -> bool:
        whole = sorted(candidate + controls, key=lambda o: o.invoke)
        return (
            _self_contained(whole, init)
            and _refusals_explained(whole, original, init)
            and not check(whole, init).ok
        )

    current = ops
    chunk = max(1, len(current) // 2)
    while True:
        i, dropped = 0, False
        while i < len(current):
            candidate = current[:i] + current[i + chunk :]
            if candidate and fails(candidate):
                current, dropped = candidate, True
            else:
                i += chunk
        if not dropped:
            if chunk == 1:
                return current
            chunk //= 2


def _identity(op: Op) -> tuple:
    return (op.client, op.kind, op.invoke, op.ret)


def _refusals_explained(ops: list[Op], original: list[Op], init: State) -> bool:
    """A known key refused in `ops` keeps a regeneration of its slot that could have replaced it,
    when the whole history had one: else dropping that write would make the refusal a failure of
    its own, and the part printed would not be the one that failed."""
    made = {key: (slot, float("-inf")) for slot, key in enumerate(init[: len(SLOTS)])}
    for op in original:
        if op.kind == "regenerate" and op.result[op.arg] is not None:
            made[op.result[op.arg]] = (op.arg, op.invoke)
    kept = {_identity(op) for op in ops}
    for op in ops:
        if op.kind != "verify" or op.result is not None or op.arg not in made:
            continue
        slot, since = made[op.arg]
        could = [
            _identity(r)
            for r in original
            if r.kind == "regenerate" and r.arg == slot and since < r.invoke < op.ret
        ]
        if could and not kept.intersection(could):
            return False
    return True


def _self_contained(ops: list[Op], init: State) -> bool:
    """Every key the calls mention comes from the initial state or a regeneration among them, so a
    shrunk history keeps the writes that explain its reads (else dropping a write would "explain"
    any failure)."""
    made = set(init) | {op.result[op.arg] for op in ops if op.kind == "regenerate"}
    for op in ops:
        if op.kind in ("list", "regenerate") and not set(op.result) - {None} <= made:
            return False
        if op.kind == "verify" and op.result is not None and op.arg not in made:
            return False
    return True


def render(ops: list[Op], init: State, title: str) -> str:
    t0 = min(op.invoke for op in ops) if ops else 0.0
    lines = [title, f"  initial state: key1={short(init[0])} key2={short(init[1])}"]
    nodes = any(op.node >= 0 for op in ops)
    lines.append("  client  " + ("node  " if nodes else "") + "invoke(ms)  return(ms)  call")
    for op in sorted(ops, key=lambda o: o.invoke):
        node = f"n{op.node:<4} " if nodes else ""
        lines.append(
            f"  c{op.client:<5} {node}{1000 * (op.invoke - t0):10.2f}  "
            f"{1000 * (op.ret - t0):10.2f}  {op.describe()}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# recording histories against a live rekeyd


class Unavailable(Exception):
    """A node answered 503 to a read: the call had no effect and is left out of the history."""


class Recorder:
    """Runs `clients` threads of random calls on one account and collects their history. With
    several nodes (one database), the account is made through `creator` and every call goes to a
    node chosen at random."""

    def __init__(
        self, nodes: list[Rekeyd], group: str, name: str, seed: int, creator: int = 0
    ) -> None:
        self.nodes = nodes
        self.several = len(nodes) > 1
        server = nodes[creator]
        account = server.create_account(group, name)
        self.path = server.account_path(group, name)
        endpoint = account["properties"]["endpoint"]
        # The path is the same on every node (the endpoint names the node that made it).
        self.data_path = endpoint[len(server.base_url) :] + "lin/check"
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.known: list[str] = []
        self.ops: list[Op] = []
        self.errors: list[str] = []
        self.unavailable = 0  # reads answered 503, left out of the history

    def _keys(self, body: Any, what: str) -> State:
        if not isinstance(body, dict) or not all(isinstance(body.get(s), str) for s in SLOTS):
            raise AssertionError(f"{what} did not return both keys: {body}")
        keys = (body["key1"], body["key2"])
        with self.lock:
            for k in keys:
                if k not in self.known:
                    self.known.append(k)
        return keys

    def initial_state(self) -> State:
        c = self.nodes[0].client()
        status, body = c.request("POST", f"{self.path}/listKeys?api-version={CS_VERSION}")
        c.close()
        if status != 200:
            raise AssertionError(f"listKeys: {status} {body}")
        return self._keys(body, "listKeys")

    def _unavailable(self, status: int, what: str, body: Any) -> None:
        """A 503 from one of several nodes is a refusal with no effect; anything else is not."""
        if status == 503 and self.several:
            raise Unavailable(what)
        raise AssertionError(f"{what}: {status} {body}")

    def _pick_key(self, rng: random.Random) -> str:
        with self.lock:
            known = list(self.known)
        roll = rng.random()
        if roll < 0.1 or not known:
            # Well-formed shape, wrong checksum: refused without a lookup.
            return "rkcs_" + "".join(rng.choice("abcdefABCDEF0123456789") for _ in range(42))
        if roll < 0.8:
            return rng.choice(known[-4:])
        return rng.choice(known)

    def _one(self, client_id: int, clients: list, rng: random.Random) -> Op:
        if not self.several:
            return self._call(client_id, clients[0], rng)  # a seed replays as before
        node = rng.randrange(len(clients))
        op = self._call(client_id, clients[node], rng)
        op.node = node
        return op

    def _call(self, client_id: int, c, rng: random.Random) -> Op:
        roll = rng.random()
        if roll < 0.2:
            slot = rng.randrange(2)
            grace = rng.random() < 0.5
            headers = {"x-rekey-grace-seconds": GRACE_SECONDS} if grace else None
            t0 = time.monotonic()
            status, body = c.request(
                "POST",
                f"{self.path}/regenerateKey?api-version={CS_VERSION}",
                {"keyName": SLOTS[slot].capitalize()},
                headers=headers,
            )
            t1 = time.monotonic()
            if status != 200:
                raise AssertionError(f"regenerateKey: {status} {body}")
            keys = self._keys(body, "regenerateKey")
            return Op(client_id, "regenerate", slot, keys, t0, t1, grace=grace)
        if roll < 0.25:
            slot = rng.randrange(2)
            kind, action = rng.choice(
                [("endgrace", "endKeyGrace"), ("disable", "disableKey"), ("enable", "enableKey")]
            )
            t0 = time.monotonic()
            status, body = c.request(
                "POST",
                f"{self.path}/{action}?api-version={CS_VERSION}",
                {"keyName": SLOTS[slot].capitalize()},
            )
            t1 = time.monotonic()
            if status != 204:
                raise AssertionError(f"{action}: {status} {body}")
            return Op(client_id, kind, slot, None, t0, t1)
        if roll < 0.45:
            t0 = time.monotonic()
            status, body = c.request("POST", f"{self.path}/listKeys?api-version={CS_VERSION}")
            t1 = time.monotonic()
            if status != 200:
                self._unavailable(status, "listKeys", body)
            return Op(client_id, "list", None, self._keys(body, "listKeys"), t0, t1)
        key = self._pick_key(rng)
        if roll < 0.75:
            t0 = time.monotonic()
            status, body = c.request("POST", "/verify", {"key": key})
            t1 = time.monotonic()
            if status != 200 or not isinstance(body, dict):
                self._unavailable(status, "verify", body)
            slot = SLOTS.index(body["keyName"]) if body.get("valid") else None
            return Op(client_id, "verify", key, slot, t0, t1, "verify")
        t0 = time.monotonic()
        status, body = c.request(
            "GET", self.data_path, headers={"Ocp-Apim-Subscription-Key": key}, auth=False
        )
        t1 = time.monotonic()
        if status == 200:
            slot = SLOTS.index(body["keyName"])
        elif status == 401 or (status == 404 and self.several):
            slot = None  # 404: this node does not serve the account (yet): the key opened nothing
        else:
            self._unavailable(status, "data plane", body)
        return Op(client_id, "verify", key, slot, t0, t1, "dataplane")

    def run(self, clients: int, ops_per_client: int) -> tuple[State, list[Op]]:
        init = self.initial_state()
        barrier = threading.Barrier(clients)

        def worker(client_id: int, seed: int) -> None:
            rng = random.Random(seed)
            clients = [node.client() for node in self.nodes]
            barrier.wait()
            try:
                for _ in range(ops_per_client):
                    try:
                        op = self._one(client_id, clients, rng)
                    except Unavailable:
                        with self.lock:
                            self.unavailable += 1
                        continue
                    with self.lock:
                        self.ops.append(op)
            except (AssertionError, NoAnswer, KeyError, ValueError) as e:
                with self.lock:
                    self.errors.append(f"client {client_id}: {e!r}")
            finally:
                for c in clients:
                    c.close()

        threads = [
            threading.Thread(target=worker, args=(i, self.rng.randrange(1 << 30)))
            for i in range(clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return init, self.ops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--histories", type=int, default=100)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--ops", type=int, default=40, help="calls per client per history")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--nodes", type=int, default=1, help="rekeyd nodes on one database (more than 1: --postgres)"
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=None,
        help="a PostgreSQL server to make a fresh database on (postgres://USER@HOST:PORT/DB);\n"
        "without it the one node runs on SQLite",
    )
    parser.add_argument("--report", action="store_true", help="rewrite docs/reliability.md")
    args = parser.parse_args()
    if args.nodes < 1 or (args.nodes > 1 and not args.postgres):
        parser.error("--nodes above 1 needs --postgres: nodes share one PostgreSQL database")
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    where = f", {args.nodes} nodes on PostgreSQL" if args.postgres else ""
    print(
        f"linearizability: {args.histories} histories x {args.clients} clients x {args.ops} calls"
        f"{where}, seed {seed}"
    )
    rng = random.Random(seed)
    started = time.monotonic()
    total_ops = max_concurrency = unavailable = 0
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rekey-lin-")))
        # Failed data-plane key checks are part of the workload: no throttling here.
        env = {"REKEY_AUTH_FAILURE_LIMIT": "1000000000"}
        if args.postgres:
            database = stack.enter_context(FreshDatabase(args.postgres, "rekey_lin"))
            env["REKEY_DATABASE_URL"] = database.url
            nodes = start_nodes(tmp, args.nodes, env)
        else:
            nodes = [Rekeyd(tmp, env)]
            nodes[0].start()
        # Stopped before the database is dropped (the stack unwinds in reverse).
        for node in nodes:
            stack.callback(node.stop)
        for h in range(args.histories):
            rec = Recorder(nodes, "lin", f"acct{h}", rng.randrange(1 << 30), h % len(nodes))
            init, ops = rec.run(args.clients, args.ops)
            if rec.errors:
                print("a call failed outright:\n  " + "\n  ".join(rec.errors))
                for i, node in enumerate(nodes):
                    print(f"--- node {i} log ---\n{node.log_tail()}" if len(nodes) > 1 else node.log_tail())
                return 1
            verdict = check(ops, init)
            total_ops += len(ops)
            unavailable += rec.unavailable
            max_concurrency = max(max_concurrency, _max_overlap(ops))
            if not verdict.ok:
                small = shrink(ops, init)
                print(render(small, init, f"history {h} is NOT linearizable; a minimal failing part:"))
                return 1
    elapsed = time.monotonic() - started
    refused = f", {unavailable} reads answered 503 left out" if args.postgres else ""
    print(
        f"linearizability: {args.histories} histories, {total_ops} calls checked{where}, all "
        f"linearizable (max {max_concurrency} calls in flight at once{refused}) in {elapsed:.1f} s"
    )
    if args.report and args.postgres:
        report.update(
            "linearizability-nodes",
            f"| histories checked | calls | nodes | clients per history | calls in flight at most "
            f"| reads answered 503 (left out) | time |\n"
            f"|---|---|---|---|---|---|---|\n"
            f"| {args.histories} | {total_ops} | {args.nodes} | {args.clients} | {max_concurrency} "
            f"| {unavailable} | {elapsed:.0f} s |",
        )
    elif args.report:
        report.update(
            "linearizability",
            f"| histories checked | calls | clients per history | calls in flight at most | time |\n"
            f"|---|---|---|---|---|\n"
            f"| {args.histories} | {total_ops} | {args.clients} | {max_concurrency} | {elapsed:.0f} s |",
        )
    return 0


def _max_overlap(ops: list[Op]) -> int:
    events = sorted([(o.invoke, 1) for o in ops] + [(o.ret, -1) for o in ops])
    best = current = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


if __name__ == "__main__":
    sys.exit(main())

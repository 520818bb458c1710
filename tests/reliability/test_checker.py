"""Owns the tests of the history checkers themselves (the linearizability search and the crash
checks): hand-written histories whose verdict is known, so a checker that accepts everything (or
nothing) cannot pass CI unnoticed."""

from __future__ import annotations

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import crash  # noqa: E402

A, B, C, Y = "rkcs_A", "rkcs_B", "rkcs_C", "rkcs_Y"

INF = crash.INF


def c_regen(slot, keys, t0, t1):
    return crash.Call("regenerate", t0, t1, slot=slot, keys=keys)


def c_list(keys, t0, t1):
    return crash.Call("list", t0, t1, keys=keys)


def c_verify(key, slot, t0, t1):
    return crash.Call("verify", t0, t1, slot=slot, key=key, valid=slot is not None, via="verify")


class CrashCheckTests(unittest.TestCase):
    def test_a_consistent_history_passes(self):
        calls = [
            c_list((A, Y), 0, 1),
            c_regen(0, (B, Y), 2, 3),
            c_verify(A, 0, 2.5, 2.6),  # in flight with the regeneration: either answer is fine
            c_verify(A, None, 4, 5),
            c_list((B, Y), 6, 7),
        ]
        self.assertEqual(crash.check(calls), [])

    def test_a_lost_acknowledged_regeneration_is_caught(self):
        calls = [c_list((A, Y), 0, 1), c_regen(0, (B, Y), 2, 3), c_list((A, Y), 10, 11)]
        self.assertEqual(len(crash.check(calls)), 1)

    def test_a_regeneration_cut_off_by_the_kill_may_explain_an_unknown_key(self):
        calls = [
            c_regen(0, (B, Y), 2, 3),
            c_regen(0, None, 4, INF),
            c_list((C, Y), 10, 11),
        ]
        self.assertEqual(crash.check(calls), [])

    def test_an_unknown_key_without_a_regeneration_in_doubt_is_caught(self):
        calls = [c_regen(0, (B, Y), 2, 3), c_list((C, Y), 10, 11)]
        self.assertEqual(len(crash.check(calls)), 1)

    def test_an_old_key_accepted_after_its_regeneration_answered_is_caught(self):
        calls = [c_list((A, Y), 0, 1), c_regen(0, (B, Y), 2, 3), c_verify(A, 0, 4, 5)]
        self.assertEqual(len(crash.check(calls)), 1)


if __name__ == "__main__":
    unittest.main()

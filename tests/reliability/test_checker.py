"""Owns the tests of the history checkers themselves (the linearizability search and the crash
checks): hand-written histories whose verdict is known, so a checker that accepts everything (or
nothing) cannot pass CI unnoticed."""

from __future__ import annotations

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import crash  # noqa: E402
from linearizability import Op, check, render, shrink  # noqa: E402

A, B, C, Y = "rkcs_A", "rkcs_B", "rkcs_C", "rkcs_Y"
INIT = (A, Y)


def regen(client, slot, result, t0, t1):
    return Op(client, "regenerate", slot, result, t0, t1)


def listed(client, result, t0, t1):
    return Op(client, "list", None, result, t0, t1)


def verify(client, key, slot, t0, t1):
    return Op(client, "verify", key, slot, t0, t1, "verify")


class CheckerTests(unittest.TestCase):
    def test_a_sequential_history_that_follows_the_model_is_linearizable(self):
        ops = [
            verify(0, A, 0, 0, 1),
            regen(0, 0, (B, Y), 2, 3),
            verify(0, A, None, 4, 5),
            verify(0, B, 0, 6, 7),
            listed(0, (B, Y), 8, 9),
        ]
        self.assertTrue(check(ops, INIT).ok)

    def test_an_old_key_valid_after_its_regeneration_answered_is_caught_and_shrunk(self):
        ops = [
            listed(1, (A, Y), 0, 1),
            regen(0, 0, (B, Y), 2, 3),
            verify(2, Y, 1, 2.5, 3.5),
            verify(1, A, 0, 4, 5),
            listed(2, (B, Y), 6, 7),
        ]
        self.assertFalse(check(ops, INIT).ok)
        small = shrink(ops, INIT)
        self.assertEqual([o.kind for o in small], ["regenerate", "verify"], render(small, INIT, ""))

    def test_an_old_key_valid_while_the_regeneration_is_in_flight_is_fine(self):
        ops = [regen(0, 0, (B, Y), 0, 10), verify(1, A, 0, 1, 2), verify(1, B, 0, 3, 4)]
        self.assertTrue(check(ops, INIT).ok)

    def test_the_new_key_valid_then_the_old_key_valid_again_is_caught(self):
        ops = [regen(0, 0, (B, Y), 0, 10), verify(1, B, 0, 1, 2), verify(1, A, 0, 3, 4)]
        self.assertFalse(check(ops, INIT).ok)

    def test_concurrent_regenerations_of_one_slot_may_land_in_either_order(self):
        ops = [regen(0, 0, (B, Y), 0, 2), regen(1, 0, (C, Y), 1, 3), listed(2, (B, Y), 4, 5)]
        self.assertTrue(check(ops, INIT).ok)

    def test_a_lost_regeneration_is_caught(self):
        ops = [regen(0, 0, (B, Y), 0, 2), regen(1, 0, (C, Y), 2.5, 3), listed(2, (B, Y), 4, 5)]
        self.assertFalse(check(ops, INIT).ok)

    def test_a_regeneration_that_touches_the_other_slot_is_caught(self):
        ops = [regen(0, 0, (B, C), 0, 2)]
        self.assertFalse(check(ops, INIT).ok)

    def test_a_key_handed_out_twice_is_caught(self):
        ops = [regen(0, 0, (B, Y), 0, 1), regen(0, 1, (B, B), 2, 3)]
        self.assertFalse(check(ops, INIT).ok)

    def test_an_old_key_accepted_by_another_node_after_the_answer_is_caught_and_names_the_nodes(self):
        ops = [
            listed(1, (A, Y), 0, 1),
            Op(0, "regenerate", 0, (B, Y), 2, 3, node=0),
            Op(2, "list", None, (B, Y), 3.5, 3.8, node=2),
            Op(1, "verify", A, 0, 4, 5, "dataplane", node=1),
        ]
        self.assertFalse(check(ops, INIT).ok)
        small = shrink(ops, INIT)
        self.assertEqual([o.kind for o in small], ["regenerate", "verify"])
        printed = render(small, INIT, "")
        self.assertIn("node", printed)
        self.assertRegex(printed, r"c1 +n1 .*dataplane\(A…?\) -> valid as key1")

    def test_shrinking_forgets_the_other_slots_keys_instead_of_keeping_their_regenerations(self):
        D, E = "rkcs_D", "rkcs_E"
        ops = [
            regen(0, 1, (A, B), 0, 1),
            regen(0, 0, (C, B), 2, 3),
            regen(1, 1, (C, D), 4, 5),
            listed(2, (C, D), 5.5, 5.8),
            regen(1, 0, (E, D), 6, 7),
            verify(2, C, 0, 8, 9),
        ]
        self.assertFalse(check(ops, INIT).ok)
        small = shrink(ops, INIT)
        self.assertEqual(
            [(o.kind, o.result) for o in small],
            [("regenerate", (C, None)), ("regenerate", (E, None)), ("verify", 0)],
            render(small, INIT, ""),
        )
        self.assertIn("key2=-", render(small, INIT, ""))

    def test_a_forgotten_answer_matches_any_key(self):
        ops = [regen(0, 0, (B, None), 0, 1), listed(1, (None, Y), 2, 3), listed(1, (B, None), 4, 5)]
        self.assertTrue(check(ops, INIT).ok)
        self.assertFalse(check(ops + [listed(1, (A, None), 6, 7)], INIT).ok)

    def test_wide_concurrency_stays_fast_thanks_to_memoization(self):
        # 12 overlapping reads of the same state and one regeneration: 2^13 orders without memo.
        ops = [verify(i, A, 0, 0, 100) for i in range(12)] + [regen(99, 1, (A, B), 0, 100)]
        verdict = check(ops, INIT)
        self.assertTrue(verdict.ok)
        self.assertLess(verdict.explored, 20_000)

    def test_an_old_key_in_its_overlap_opens_its_slot_until_the_overlap_ends(self):
        overlap = Op(0, "regenerate", 0, (B, Y), 0, 1, grace=True)
        ops = [
            overlap,
            verify(1, A, 0, 2, 3),
            verify(1, B, 0, 4, 5),
            Op(0, "endgrace", 0, None, 6, 7),
            verify(1, A, None, 8, 9),
        ]
        self.assertTrue(check(ops, INIT).ok)
        # Accepted after the overlap was ended: caught.
        self.assertFalse(check(ops + [verify(1, A, 0, 10, 11)], INIT).ok)
        # Without an overlap asked, the old key is refused at once.
        self.assertFalse(check([regen(0, 0, (B, Y), 0, 1), verify(1, A, 0, 2, 3)], INIT).ok)

    def test_a_second_regeneration_ends_the_slots_overlap(self):
        ops = [
            Op(0, "regenerate", 0, (B, Y), 0, 1, grace=True),
            regen(0, 0, (C, Y), 2, 3),
            verify(1, A, 0, 4, 5),
        ]
        self.assertFalse(check(ops, INIT).ok)

    def test_a_disabled_slot_refuses_its_key_until_enabled(self):
        ops = [
            Op(0, "disable", 1, None, 0, 1),
            verify(1, Y, None, 2, 3),
            verify(1, A, 0, 2, 3),
            Op(0, "enable", 1, None, 4, 5),
            verify(1, Y, 1, 6, 7),
        ]
        self.assertTrue(check(ops, INIT).ok)
        self.assertFalse(check(ops[:1] + [verify(1, Y, 1, 2, 3)], INIT).ok)



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

"""The range ledger: claims never overlap, splits keep every byte owned once, the done list is exact."""

from __future__ import annotations

import random

from hfget._pieces import Ledger, merge


def test_a_fresh_file_is_claimed_whole_then_split_in_halves():
    ledger = Ledger(100, min_split=10)
    first = ledger.claim()
    assert (first.position, first.end) == (0, 100)
    second = ledger.claim()
    assert (first.end, second.position, second.end) == (50, 50, 100)
    ledger.record(second, 10)  # the second connection is ahead: the first has the most left, so it is halved
    third = ledger.claim()
    assert (first.end, third.position, third.end) == (25, 25, 50)


def test_no_split_below_twice_the_minimum():
    ledger = Ledger(30, min_split=10)
    ledger.claim()
    ledger.claim()  # 0-15, 15-30
    assert ledger.claim() is None


def test_resume_claims_the_holes_first():
    ledger = Ledger(100, done=[(0, 20), (60, 70)], min_split=5)
    assert ledger.done_bytes == 30 and ledger.contiguous_prefix() == 20
    first = ledger.claim()
    assert (first.position, first.end) == (20, 60)
    second = ledger.claim()
    assert (second.position, second.end) == (70, 100)


def test_random_workloads_cover_every_byte_exactly_once():
    rng = random.Random(7)
    for _ in range(60):
        size = rng.randint(1, 5000)
        ledger = Ledger(size, min_split=rng.randint(1, 200))
        written = [0] * size
        while not ledger.complete:
            segment = ledger.claim()
            if segment is None:
                segment = rng.choice(ledger.active)
            else:
                continue
            n = min(segment.remaining, rng.randint(1, 300))
            for i in range(segment.position, segment.position + n):
                written[i] += 1
            ledger.record(segment, n)
            if segment.remaining == 0:
                ledger.release(segment)
            elif rng.random() < 0.05:
                ledger.release(segment)  # a failed connection: its rest becomes free
        assert written == [1] * size
        assert ledger.done == [(0, size)]


def test_merge():
    assert merge([(5, 6), (0, 2), (2, 4), (8, 8)]) == [(0, 4), (5, 6)]

"""The range ledger: claims never overlap, splits keep every byte owned once, the done list is exact."""

from __future__ import annotations

import random

from hfget._pieces import PIECE_FLOOR, PIECE_SECONDS, Ledger, merge


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



def test_pieces_are_claimed_in_file_order_and_bounded():
    ledger = Ledger(100, min_split=5)
    claims = [ledger.claim(20) for _ in range(5)]
    assert [(s.position, s.end) for s in claims if s] == [(0, 20), (20, 40), (40, 60), (60, 80), (80, 100)]
    ledger.record(claims[1], 20)
    ledger.release(claims[1])
    assert ledger.claim(ledger.piece_size(None)) is None  # nothing free, and the others will finish together
    for segment in claims[2:]:
        assert segment is not None
        ledger.record(segment, 20)
        ledger.release(segment)
    tail = ledger.claim(ledger.piece_size(None))  # one lags behind: half of it is taken
    assert tail is not None and (claims[0].end, tail.position, tail.end) == (10, 10, 20)


def test_no_piece_leaves_a_sliver_behind():
    ledger = Ledger(100, min_split=11)
    first = ledger.claim(45)
    second = ledger.claim(45)
    assert first is not None and second is not None and (second.position, second.end) == (45, 100)


def test_a_released_piece_is_claimed_again_before_later_ones():
    ledger = Ledger(100, min_split=5)
    first, second = ledger.claim(30), ledger.claim(30)
    assert first is not None and second is not None
    ledger.record(first, 10)
    ledger.release(first)  # failed at byte 10
    again = ledger.claim(30)
    assert again is not None and (again.position, again.end) == (10, 30) and second.position == 30


def test_resume_fetches_only_the_holes_as_pieces():
    ledger = Ledger(100, done=[(0, 20), (60, 70)], min_split=5)
    claims = []
    while (segment := ledger.claim(25, allow_split=False)) is not None:
        claims.append((segment.position, segment.end))
    assert claims == [(20, 45), (45, 60), (70, 95), (95, 100)]


def test_piece_size_follows_speed_and_shares_the_tail():
    size = 1 << 30
    ledger = Ledger(size, min_split=1 << 20)
    assert ledger.piece_size(None) == PIECE_FLOOR
    assert PIECE_SECONDS == 2.0
    assert ledger.piece_size(50e6) == 100_000_000  # two seconds at 50 MB/s
    ledger.done = [(0, size - (40 << 20))]  # 40 MiB left, of which 8 in flight on another connection
    assert ledger.claim(8 << 20) is not None
    assert ledger.piece_size(50e6) == (40 << 20) // 2  # an even share of what is left among the two

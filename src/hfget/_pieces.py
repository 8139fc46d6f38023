"""Byte-range bookkeeping for one file: what is done, what each connection is fetching, what is free. No I/O.

Modelled on aria2's piece ledger and its in-order piece selection. Ranges are half-open `[start, end)`
everywhere in hfget's code; the inclusive HTTP form is produced only by `Segment.http_range`.

- `claim(piece)` gives a connection work: the lowest free offset first, at most `piece` bytes from it (holes left
  by a resumed run, or a released segment, come first because they are lowest). Every request is bounded, so it
  is read to its end and its keep-alive connection serves the next piece; claimed in file order, the contiguous
  prefix grows steadily and the streaming hash (_verify.PrefixHasher) keeps pace.
- Only when nothing is free (the tail) does a connection take half of the in-flight segment with the most bytes
  still to come ("dynamic splitting"), as long as both halves keep at least `min_split` bytes and that segment
  holds at least twice an even share of what is left (a slow connection or mirror is relieved; connections that
  will finish together are left alone). The segment being split keeps its start; its `end` moves down, and its
  connection stops there, closing a request the server has already pushed past that point: a socket buffer's
  worth (about bandwidth x RTT) sent for nothing. Before pieces every connection but the first joined by such a
  cut: 2 files of 512 MiB from the test Hub (25 MB/s per connection, 40 ms) were served 1.003-1.02x their size
  with 10 cut requests; in pieces, 1.0000x with none or two.
- `piece_size`: `PIECE_SECONDS` at the connection's measured speed, at least `PIECE_FLOOR` while nothing is
  measured, and at most an even share of what is left among the connections the file has or is about to have
  (free bytes plus what the others still have to fetch), so the last pieces are about equal and finish
  together. Each piece costs a round trip with nothing arriving: 2% of a 40 ms link's time at 2 s a piece.
  Smaller pieces would advance the prefix in smaller steps, but the hash already keeps pace (same runs: 0.2-0.6 s
  of hashing left after the last byte, against 0.9-1.0 s with ranges that all finished together; wall time
  4.0-4.3 s against 4.5-4.9 s).
- `record(segment, n)` marks the next `n` bytes of the segment as written.
- `release(segment)` gives back what a failed or cancelled connection did not fetch.

The caller serialises access (one lock per file); `Segment.end` is read by the connection between chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

Range = tuple[int, int]
MIN_SPLIT = 4 << 20  # a range is split only if both halves keep this much; files under twice this are "small"
PIECE_FLOOR = 16 << 20  # a piece while the connection's speed is not measured yet
PIECE_SECONDS = 2.0  # a piece lasts this long at the measured speed (the round trip per piece is then small)


@dataclass(eq=False)
class Segment:
    start: int  # where this connection's request began
    position: int  # next byte this connection will write
    end: int  # where it must stop (exclusive); moves down when the segment is split

    @property
    def remaining(self) -> int:
        return max(0, self.end - self.position)

    def http_range(self) -> str:
        """The inclusive HTTP form (RFC 9110 §14.1.2)."""
        return f"bytes={self.position}-{self.end - 1}"


def merge(ranges: list[Range]) -> list[Range]:
    merged: list[Range] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


class Ledger:
    def __init__(self, size: int, done: list[Range] | None = None, *, min_split: int = 1 << 20) -> None:
        self.size = size
        self.min_split = max(1, min_split)
        self.done = merge([(max(0, a), min(size, b)) for a, b in done or []])
        self.active: list[Segment] = []

    # -- queries -----------------------------------------------------------------------------------------------

    @property
    def done_bytes(self) -> int:
        return sum(b - a for a, b in self.done)

    @property
    def complete(self) -> bool:
        return self.done == [(0, self.size)] or self.size == 0

    def contiguous_prefix(self) -> int:
        """Bytes from offset 0 that are all written (what a streaming hash may consume)."""
        return self.done[0][1] if self.done and self.done[0][0] == 0 else 0

    def free(self) -> list[Range]:
        """Ranges neither written nor being fetched."""
        taken = merge(self.done + [(s.position, s.end) for s in self.active])
        gaps, cursor = [], 0
        for start, end in taken:
            if start > cursor:
                gaps.append((cursor, start))
            cursor = max(cursor, end)
        if cursor < self.size:
            gaps.append((cursor, self.size))
        return gaps

    # -- changes -----------------------------------------------------------------------------------------------

    def piece_size(self, speed: float | None, connections: int = 1) -> int:
        """Bytes for the next piece of a connection fetching `speed` bytes per second, one of `connections` the
        file has or is about to have (see the module docstring)."""
        target = max(PIECE_FLOOR, int(speed * PIECE_SECONDS)) if speed else PIECE_FLOOR
        left = self.size - self.done_bytes  # free, or still to come on the connections in flight
        share = -(-left // max(connections, len(self.active) + 1))  # the claiming one is not in `active` yet
        return max(self.min_split, min(target, share))

    def claim(self, piece: int | None = None, *, allow_split: bool = True) -> Segment | None:
        """The lowest free range, at most `piece` bytes of it (None: all of it); else, with `allow_split`, half of
        the widest segment in flight, if it has at least twice `piece` left (a `piece_size` is then an even share
        of what the connections have left: a segment with less finishes about when the others do, and cutting
        its request would only waste what the server already sent past the cut)."""
        gaps = self.free()
        if gaps:
            start, end = gaps[0]
            if piece is not None and end - start - piece >= self.min_split:  # no sliver left behind
                end = start + max(1, piece)
            return self._activate(Segment(start, start, end))
        if not allow_split or not self.active:
            return None
        widest = max(self.active, key=lambda s: s.remaining)
        if widest.remaining < 2 * max(self.min_split, piece or 0):  # an even share left: all finish together
            return None
        middle = widest.position + widest.remaining // 2
        taken = Segment(middle, middle, widest.end)
        widest.end = middle
        return self._activate(taken)

    def _activate(self, segment: Segment) -> Segment:
        self.active.append(segment)
        return segment

    def record(self, segment: Segment, nbytes: int) -> None:
        """`nbytes` more of `segment` are on disk (the caller has clipped them to `segment.end`)."""
        if nbytes <= 0:
            return
        start = segment.position
        segment.position += nbytes
        done = self.done
        for index, (a, b) in enumerate(done):  # a handful of ranges: extend the one this continues
            if b == start:
                done[index] = (a, segment.position)
                if index + 1 < len(done) and done[index + 1][0] <= segment.position:
                    self.done = merge(done)
                return
        self.done = merge([*done, (start, segment.position)])

    def release(self, segment: Segment) -> None:
        """The connection stopped (done, failed or cancelled): its unfetched bytes become free again."""
        if segment in self.active:
            self.active.remove(segment)

    def reset(self) -> None:
        """Forget everything (a server that ignores Range sends the whole body from byte 0)."""
        self.done = []
        for segment in self.active:
            segment.end = segment.position  # stop every other connection
        self.active = []

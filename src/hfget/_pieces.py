"""Byte-range bookkeeping for one file: what is done, what each connection is fetching, what is free. No I/O.

Modelled on aria2's piece ledger. Ranges are half-open `[start, end)` everywhere in hfget's code; the
inclusive HTTP form is produced only by `Segment.http_range`.

- `claim()` gives a connection work: the largest free range if there is one (holes left by a resumed run,
  or a released segment), else half of the in-flight segment with the most bytes still to come ("dynamic
  splitting"), as long as both halves keep at least `min_split` bytes. The segment being split keeps
  its start; its `end` moves down, and its connection stops when it reaches it.
- `record(segment, n)` marks the next `n` bytes of the segment as written.
- `release(segment)` gives back what a failed or cancelled connection did not fetch.

The caller serialises access (one lock per file); `Segment.end` is read by the connection between chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

Range = tuple[int, int]
MIN_SPLIT = 4 << 20  # a range is split only if both halves keep this much; files under twice this are "small"


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

    def claim(self, *, allow_split: bool = True) -> Segment | None:
        gaps = self.free()
        if gaps:
            start, end = max(gaps, key=lambda r: r[1] - r[0])
            return self._activate(Segment(start, start, end))
        if not allow_split or not self.active:
            return None
        widest = max(self.active, key=lambda s: s.remaining)
        if widest.remaining < 2 * self.min_split:
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

"""The endpoint in use and the mirrors to fail over to: one selector for metadata and file transfers alike.

Evidence against the endpoint in use accumulates in points (a refused connection or a stall weighs 2, a 5xx 1,
a 404 for a listed file 3); at `THRESHOLD` points the rest of the run moves to the next mirror, and any good
answer clears the count. A metadata request that fails for good moves at once (`fail_over`). `on_switch`
hears of every switch (the engine reports it). Evidence from a mirror the run has already left counts against no
one (the transfer layer compares the endpoint a failure came from), and a CDN link is reused only while the
mirror that gave it is still in use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

THRESHOLD = 3


class Mirrors:
    def __init__(self, endpoints: Sequence[str], *, on_switch: Callable[[str, str, str], None]) -> None:
        if not endpoints:
            raise ValueError("at least one endpoint")
        self._endpoints = tuple(endpoints)
        self._index = 0
        self._points = 0
        self._lock = threading.Lock()
        self._on_switch = on_switch

    @property
    def current(self) -> str:
        return self._endpoints[self._index]

    @property
    def remaining(self) -> tuple[str, ...]:
        """The endpoint in use and those after it."""
        return self._endpoints[self._index:]

    def keep(self, endpoints: Sequence[str]) -> None:
        """Use only these of the remaining endpoints from now on, in their order (e.g. those serving the newest
        commit of a revision)."""
        with self._lock:
            kept = tuple(e for e in self._endpoints[self._index:] if e in endpoints)
            if kept:
                self._endpoints, self._index, self._points = kept, 0, 0

    def blame(self, points: int, reason: str) -> bool:
        """Count evidence against the endpoint in use; True if the run moved to the next one."""
        with self._lock:
            self._points += points
            if self._points < THRESHOLD or not self._has_next():
                return False
        return self.fail_over(reason)

    def answered(self) -> None:
        """A good answer from the endpoint in use: the evidence so far was bad luck."""
        if self._points:
            with self._lock:
                self._points = 0

    def fail_over(self, reason: str) -> bool:
        """Move to the next mirror now; False if there is none."""
        with self._lock:
            if not self._has_next():
                return False
            previous = self.current
            self._index += 1
            self._points = 0
            current = self.current
        self._on_switch(previous, current, reason)
        return True

    def _has_next(self) -> bool:
        return self._index + 1 < len(self._endpoints)

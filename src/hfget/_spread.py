"""Which mirror the next range of a large file is asked from, when several serve the run's commit (issue 11).

aria2's model (its adaptive selector over the several URIs of one file): a large file's ranges are spread over
every healthy mirror serving the commit, and each mirror gets work in proportion to the speed it delivers.

- Work follows speed by itself: every range is one request bound to one endpoint, and a connection that finishes
  its range takes half of the largest range still in flight (_pieces.py), so a fast mirror's connections end up
  fetching more of the file than a slow one's. What is left to decide is where each new request goes.
- Each endpoint has a meter: the bytes per second all of its ranges together delivered over the last window
  (every file counts: a mirror's cap is on the mirror, not on one file). A request goes first to an endpoint never
  tried in this run (with nothing in flight); else to the endpoint whose measured speed divided by its requests in
  flight plus this one is the highest. That is D'Hondt's apportionment: requests in flight end up in proportion to
  the speed each mirror delivers. A mirror capped in total (60 MB/s in all, however many connections) measures
  the same total with more connections, so its share per connection falls and new requests go elsewhere; a mirror
  capped only per connection measures more with each connection it gets, so it keeps getting them. An endpoint
  tried but not measured yet counts as delivering what the best one delivers per connection, so a burst of new
  connections (a file ramping up) alternates between mirrors instead of piling on one.
- How many connections a file holds is not decided here: that is Task.cap (the file's size, the budget, and
  whether the machine or the streams are the limit). The selector only places them.
- A mirror that fails is dropped for the rest of the run by the evidence rules of _mirrors.py; only the healthy
  ones are offered (`Mirrors.remaining`), so a dropped mirror's meter is simply never read again.
- A file's first range (the probe, which must prove that Range works) and small files go to the endpoint in use
  (`Mirrors.current`): with one mirror, and before any file is large, everything is as it was without spreading.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from ._mirrors import Mirrors

WINDOW = 0.25  # seconds of delivery one measurement covers


@dataclass
class Meter:
    """What one endpoint delivers: requests in flight, bytes per second over the last window (None: not yet)."""

    in_flight: int = 0
    since: float = 0.0
    nbytes: int = 0
    speed: float | None = None
    delivered: int = 0  # bytes this run (for reports and tests)

    def add(self, nbytes: int, now: float) -> None:
        self.nbytes += nbytes
        self.delivered += nbytes
        elapsed = now - self.since
        if elapsed >= WINDOW:
            self.speed = self.nbytes / elapsed
            self.since, self.nbytes = now, 0


class Spread:
    """Places each new range of a large file on one of the healthy endpoints (see the module docstring)."""

    def __init__(self, mirrors: Mirrors) -> None:
        self.mirrors = mirrors
        self._meters: dict[str, Meter] = {}
        self._lock = threading.Lock()

    def choose(self, endpoint: str | None = None) -> str:
        """The endpoint for a new range (`endpoint` if given: a probe), counted as in flight there until `closed`."""
        healthy = self.mirrors.remaining
        with self._lock:
            meters = [self._meters.setdefault(e, Meter()) for e in healthy]
            if endpoint is None:
                untried = [e for e, m in zip(healthy, meters, strict=True) if m.speed is None and not m.in_flight]
                endpoint = untried[0] if untried else healthy[self._best(meters)]
            meter = self._meters.setdefault(endpoint, Meter())
            if not meter.in_flight:  # a fresh window: idle time says nothing of speed
                meter.since, meter.nbytes = time.monotonic(), 0
            meter.in_flight += 1
            return endpoint

    @staticmethod
    def _best(meters: list[Meter]) -> int:
        measured = [m.speed / max(1, m.in_flight) for m in meters if m.speed is not None]
        default = max(measured, default=1.0)  # tried, not measured yet: as good as the best per connection

        def share(index: int) -> tuple[float, int]:
            meter = meters[index]
            speed = meter.speed if meter.speed is not None else default
            return speed / (meter.in_flight + 1), -index  # ties: the earlier mirror

        return max(range(len(meters)), key=share)

    def delivered(self, endpoint: str, nbytes: int) -> None:
        with self._lock:
            meter = self._meters.get(endpoint)
            if meter is not None:
                meter.add(nbytes, time.monotonic())

    def closed(self, endpoint: str) -> None:
        with self._lock:
            meter = self._meters.get(endpoint)
            if meter is not None and meter.in_flight > 0:
                meter.in_flight -= 1

    def bytes_from(self) -> dict[str, int]:
        """Bytes each endpoint delivered to ranges placed here, this run."""
        with self._lock:
            return {e: m.delivered for e, m in self._meters.items()}

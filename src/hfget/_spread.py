"""Which mirror the next range of a large file is asked from, when several serve the run's commit (issue 11).

aria2's model (its adaptive selector over the several URIs of one file): a large file's ranges are spread over
every healthy mirror serving the commit, and each mirror gets work in proportion to the speed it delivers.

- Work follows speed by itself: every piece is one request bound to one endpoint, and a connection that finishes
  its piece asks for the next (at the end, half of a range still in flight that lags, _pieces.py), so a fast
  mirror's connections fetch more of the file than a slow one's. What is left to decide is where each new
  request goes: each piece is placed anew, so a connection may move to another mirror between pieces.
- Each endpoint has a meter: the bytes per second all of its ranges together delivered over the last window
  (every file counts: a mirror's cap is on the mirror, not on one file), and per connection (bytes over the
  connection-seconds of the window, so connections opened mid-window count for the time they were open). A window
  begins with the first byte, so a far mirror's round trip is not read as slowness.
- A request goes first to an endpoint never asked in this run; else to the endpoint whose
  measured speed divided by its requests in flight plus this one is the highest. That is D'Hondt's apportionment:
  requests in flight end up in proportion to the speed each mirror delivers. A mirror capped in total (60 MB/s in
  all, however many connections) measures the same total with more connections, so its share per connection falls
  and new requests go elsewhere; a mirror capped only per connection measures more with each connection it gets,
  so it keeps getting them. An endpoint tried but not measured yet counts as delivering what the best one delivers
  per connection, so a burst of new connections (a file ramping up) alternates between mirrors instead of piling
  on one. How many connections a file holds is not decided here but by Task.cap (its size, the budget, and
  whether the machine or the streams are the limit); the selector only places them.
- A mirror that lags is dropped for the rest of the run, as one that fails is: when its connections deliver less
  than 1/`LAGS_BEHIND` of the best mirror's, both per connection and in all (so neither a mirror saturated by many
  connections nor a capped one tried with a single connection counts as lagging), in `LAG_WINDOWS` of its windows
  in a row (a second: a pause of the whole machine, which one window of one mirror covers and an earlier window of
  another did not, drops no one), `Mirrors.fail_over` drops it and its ranges in flight stop where they are
  (_large.py), so a slow mirror never holds the last piece of a file. The others' last measurements count even
  when they have nothing in flight now: at the end of a file, the fast mirror is idle precisely because the slow
  one holds the last ranges.
  Without this, a mirror ten times slower than the other would keep the range it was given first (work stealing
  splits no range below the ledger's minimum) and finish it long after the others.
- A mirror that fails is dropped by the evidence rules of _mirrors.py; only the healthy ones that a revision
  lookup found serving the commit are offered (`Mirrors.serving`; for a commit the user pinned, those whose answer
  came while the file is fetched: the engine's `_confirm_mirrors`), so a dropped mirror's meter is simply never
  read again.
- A file's first range (the probe, which must prove that Range works) and small files go to the endpoint in use
  (`Mirrors.current`): with one mirror, and before any file is large, everything is as it was without spreading.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from ._mirrors import Mirrors

WINDOW = 0.25  # seconds of delivery one measurement covers
LAGS_BEHIND = 8  # a mirror delivering less than an eighth of the best (per connection and in all)...
LAG_WINDOWS = 4  # ...in this many of its windows in a row (a second) is dropped


@dataclass
class Meter:
    """What one endpoint delivers: requests in flight, bytes per second over the last window, in all and per
    connection (None: not measured yet)."""

    in_flight: int = 0
    since: float = 0.0  # when the window began (its first byte); 0: not begun
    mark: float = 0.0  # when `busy` was last brought up to date
    busy: float = 0.0  # connection-seconds in the window
    nbytes: int = 0
    speed: float | None = None
    per_connection: float = 0.0
    lagging: int = 0  # windows in a row it lagged behind the best
    tried: bool = False  # asked for a range in this run (one that failed before its first byte measured nothing)

    def count(self, now: float, change: int = 0) -> None:
        """Bring the connection-seconds up to date, then change the requests in flight."""
        if self.since:
            self.busy += self.in_flight * (now - self.mark)
        self.mark = now
        self.in_flight += change

    def add(self, nbytes: int, now: float) -> bool:
        """Count bytes; True when a window closed and the speeds were measured again."""
        if not self.since:
            self.since = self.mark = now
        self.count(now)
        self.nbytes += nbytes
        elapsed = now - self.since
        if elapsed < WINDOW or self.busy <= 0:
            return False
        self.speed, self.per_connection = self.nbytes / elapsed, self.nbytes / self.busy
        self.since, self.nbytes, self.busy = now, 0, 0.0
        return True


class Spread:
    """Places each new range of a large file on one of the healthy endpoints (see the module docstring)."""

    def __init__(self, mirrors: Mirrors) -> None:
        self.mirrors = mirrors
        self._meters: dict[str, Meter] = {}
        self._lock = threading.Lock()

    def choose(self, endpoint: str | None = None) -> str:
        """The endpoint for a new range (`endpoint` if given: a probe), counted as in flight there until `closed`."""
        healthy = self.mirrors.serving
        with self._lock:
            meters = [self._meters.setdefault(e, Meter()) for e in healthy]
            if endpoint is None:
                untried = [e for e, m in zip(healthy, meters, strict=True) if not m.tried]
                endpoint = untried[0] if untried else healthy[self._best(meters)]
            meter = self._meters.setdefault(endpoint, Meter())
            meter.tried = True
            if not meter.in_flight:  # a fresh window, from the first byte: idle time says nothing of speed
                meter.since, meter.nbytes, meter.busy = 0.0, 0, 0.0
            meter.count(time.monotonic(), +1)
            return endpoint

    @staticmethod
    def _best(meters: list[Meter]) -> int:
        measured = [m.per_connection for m in meters if m.speed is not None]
        default = max(measured, default=1.0)  # tried, not measured yet: as good as the best per connection

        def share(index: int) -> tuple[float, int]:
            meter = meters[index]
            speed = meter.speed if meter.speed is not None else default
            return speed / (meter.in_flight + 1), -index  # ties: the earlier mirror

        return max(range(len(meters)), key=share)

    def delivered(self, endpoint: str, nbytes: int) -> None:
        """Bytes of a range from `endpoint` arrived; a mirror found lagging is dropped."""
        with self._lock:
            meter = self._meters.get(endpoint)
            now = time.monotonic()
            if meter is None or not meter.add(nbytes, now):
                return
            behind = self._behind(endpoint, meter)
            meter.lagging = meter.lagging + 1 if behind else 0
            drop = behind if meter.lagging >= LAG_WINDOWS else None
        if drop is not None:
            self.mirrors.fail_over(drop, endpoint)

    def _behind(self, endpoint: str, meter: Meter) -> str | None:
        """Why `endpoint`'s window just measured lags far behind another mirror's last one, if it does."""
        speed = meter.speed or 0.0
        for other, best in self._meters.items():
            if (other != endpoint and self.mirrors.healthy(other) and speed * LAGS_BEHIND < (best.speed or 0.0)
                    and meter.per_connection * LAGS_BEHIND < best.per_connection):
                return (f"it delivers {speed / 1e6:.1f} MB/s, less than 1/{LAGS_BEHIND} of the "
                        f"{(best.speed or 0) / 1e6:.1f} MB/s of {other}")
        return None

    def closed(self, endpoint: str) -> None:
        with self._lock:
            meter = self._meters.get(endpoint)
            if meter is not None and meter.in_flight > 0:
                meter.count(time.monotonic(), -1)

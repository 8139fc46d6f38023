"""The endpoints a run may use and fail-over between them: one selector for metadata and file transfers alike.

The endpoints are kept in the order given; the first healthy one is the endpoint in use (`current`): metadata,
small files and each large file's first range go there. When several are known to serve the run's commit
(`serving`: a revision lookup found it on each, see `keep`), the others take ranges of large files too
(_spread.py places them), so evidence is counted per endpoint. A commit pinned by the user is looked up on the
other mirrors only when a large file of it is to be fetched, while it is (the engine's `_confirm_mirrors`): each
that answers with the commit is `confirm`ed and takes ranges from then on, each that says it lacks it is
`exclude`d; the others are only there to fail over to.
Evidence against an endpoint accumulates in points (a refused connection or a stall weighs 2, a 5xx 1, a 404 for
a listed file 3); at `THRESHOLD` points that endpoint is dropped for the rest of the run, as long as another
healthy one is left, and a good answer from it clears its count, if that request was sent after the last
evidence came (an answer to one sent before says nothing of the mirror now: with several connections on a
mirror that starts failing, the last good answer often lands after its first failures). A metadata request
that fails for good drops the endpoint in use at once (`fail_over`). `on_switch(dropped, current, reason)`
hears of every drop (the engine reports it); with one mirror in use at a time, as before spreading, that is a
move from the dropped one to the next. Evidence from a mirror already dropped counts against no one (the
transfer layer asks `healthy`), and a CDN link is reused only by requests to the mirror that gave it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

THRESHOLD = 3


class Mirrors:
    def __init__(self, endpoints: Sequence[str], *, on_switch: Callable[[str, str, str], None]) -> None:
        if not endpoints:
            raise ValueError("at least one endpoint")
        self._endpoints = tuple(endpoints)  # the healthy ones, in the order given
        self._points: dict[str, int] = {}
        self._blamed_at: dict[str, float] = {}  # endpoint -> when its last evidence was counted (monotonic)
        self._known: frozenset[str] = frozenset()  # endpoints found serving the run's commit (a lookup's answer)
        self._lock = threading.Lock()
        self._on_switch = on_switch

    @property
    def current(self) -> str:
        return self._endpoints[0]

    @property
    def remaining(self) -> tuple[str, ...]:
        """The healthy endpoints: the one in use first, then the others, in their order."""
        return self._endpoints

    @property
    def serving(self) -> tuple[str, ...]:
        """The healthy endpoints known to serve the run's commit (`keep`, `confirm`), and the one in use."""
        endpoints = self._endpoints
        return tuple(e for i, e in enumerate(endpoints) if i == 0 or e in self._known)

    def healthy(self, endpoint: str) -> bool:
        return endpoint in self._endpoints

    def keep(self, endpoints: Sequence[str]) -> None:
        """Use only these of the remaining endpoints from now on, in their order (e.g. those serving the newest
        commit of a revision)."""
        with self._lock:
            kept = tuple(e for e in self._endpoints if e in endpoints)
            if kept:
                self._endpoints, self._points, self._known = kept, {}, frozenset(kept)

    def confirm(self, endpoint: str) -> None:
        """A lookup found `endpoint` serving the run's commit: ranges of large files may go there from now on (the
        others stay, for fail-over; for a commit the user pinned, whose lookups come while files are fetched)."""
        with self._lock:
            self._known |= {endpoint}

    def exclude(self, endpoint: str) -> None:
        """A lookup found `endpoint` without the run's commit: not used from now on, fail-over included, unless it is
        the one in use (its own answers then drop it) or the last one left. Sends no event (a lookup's thread)."""
        with self._lock:
            if endpoint in self._endpoints[1:]:
                self._endpoints = tuple(e for e in self._endpoints if e != endpoint)
                self._points.pop(endpoint, None)

    def blame(self, points: int, reason: str, endpoint: str | None = None) -> bool:
        """Count evidence against `endpoint` (default: the one in use); True if it was dropped for the run."""
        with self._lock:
            endpoint = endpoint or self.current
            if endpoint not in self._endpoints:
                return False
            self._points[endpoint] = self._points.get(endpoint, 0) + points
            self._blamed_at[endpoint] = time.monotonic()
            if self._points[endpoint] < THRESHOLD or len(self._endpoints) < 2:
                return False
        return self.fail_over(reason, endpoint)

    def answered(self, endpoint: str | None = None, asked_at: float = float("inf")) -> None:
        """A good answer from `endpoint` (default: the one in use) to a request sent at `asked_at` (monotonic): the
        evidence counted before it was sent was bad luck."""
        endpoint = endpoint or self.current
        if self._points.get(endpoint):
            with self._lock:
                if asked_at > self._blamed_at.get(endpoint, 0.0):
                    self._points.pop(endpoint, None)

    def fail_over(self, reason: str, endpoint: str | None = None) -> bool:
        """Drop `endpoint` (default: the one in use) for the rest of the run now; False if no other is left."""
        with self._lock:
            endpoint = endpoint or self.current
            if endpoint not in self._endpoints or len(self._endpoints) < 2:
                return False
            self._endpoints = tuple(e for e in self._endpoints if e != endpoint)
            self._points.pop(endpoint, None)
            current = self.current
        self._on_switch(endpoint, current, reason)
        return True

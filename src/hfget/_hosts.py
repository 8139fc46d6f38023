"""Connections per host, learned from refusals: mirrors that cap how many connections one client may hold.

Public and corporate mirrors limit connections per client (nginx `limit_conn`, per-IP limits) and answer 503
(sometimes 429, or a reset) past the cap. A refusal that comes while this run holds more than one connection to
that host is read as a cap, not a failure: the host's allowance drops to the connections that were working,
the refused request waits for a slot (it costs the file no retry), and every `PROBE_AFTER` seconds without a
refusal the allowance grows by one again. A refusal with a single connection open is an ordinary failure.
Each host is counted on its own: the API, the CDN and each mirror.

    slots.acquire(host)   -> bool   False while the host is at its allowance (send nothing, try again soon)
    slots.release(host)             the response was closed
    slots.refused(host)   -> bool   True if the refusal was read as a cap (the caller then retries for free)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx2

PROBE_AFTER = 15.0  # seconds at an allowance without a refusal before trying one connection more


@dataclass
class _Host:
    allowed: int
    open: int = 0  # connections this run holds to the host
    working: int = 0  # of those, the ones the host answered (the others await their answer)
    capped_at: float = 0.0  # when the allowance last dropped (0: never capped)


class HostSlots:
    def __init__(self, maximum: int, *, on_capped: Callable[[str, int], None]) -> None:
        self.maximum = maximum
        self.on_capped = on_capped
        self._hosts: dict[str, _Host] = {}
        self._told: set[str] = set()
        self._lock = threading.Lock()

    def acquire(self, host: str) -> bool:
        with self._lock:
            state = self._hosts.setdefault(host, _Host(self.maximum))
            self._probe(state)
            if state.open >= state.allowed:
                return False
            state.open += 1
            return True

    def answered(self, host: str) -> None:
        """The host accepted a request: that connection is one it allows."""
        with self._lock:
            state = self._hosts.get(host)
            if state is not None:
                state.working += 1

    def release(self, host: str, *, answered: bool = False) -> None:
        with self._lock:
            state = self._hosts.get(host)
            if state is not None and state.open > 0:
                state.open -= 1
                if answered and state.working > 0:
                    state.working -= 1

    def refused(self, host: str) -> bool:
        """A 503, 429 or reset from `host` on a request that held a slot (still held: release it after)."""
        with self._lock:
            state = self._hosts.get(host)
            if state is None or state.open <= 1:
                return False
            state.allowed = max(1, min(state.allowed, state.working or state.open - 1))
            state.capped_at = time.monotonic()
            allowed, first = state.allowed, host not in self._told
            self._told.add(host)
        if first:
            self.on_capped(host, allowed)
        return True

    def _probe(self, state: _Host) -> None:
        if state.capped_at and state.allowed < self.maximum and time.monotonic() - state.capped_at >= PROBE_AFTER:
            state.allowed += 1
            state.capped_at = time.monotonic()


class SlotStream(httpx2.SyncByteStream):
    """A response body that gives its host's connection slot back when it is closed (once)."""

    def __init__(self, stream: httpx2.SyncByteStream | httpx2.AsyncByteStream, release: Callable[[], None]) -> None:
        assert isinstance(stream, httpx2.SyncByteStream)
        self._stream = stream
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()

"""When to try again, and how long to wait: one policy for file transfers and metadata calls.

- Transient: connect errors, resets, truncated bodies, timeouts, and HTTP 408, 429, 500, 502, 503, 504.
  Everything else (404, 401/403 on the endpoint, 416, a wrong Content-Range) is final: retrying cannot help.
- Delay: exponential backoff with full jitter (0.5 s, 1 s, 2 s ... capped at 30 s, each scaled by a random
  factor in [0.5, 1)), unless the server said how long: `Retry-After` (seconds or an HTTP date, RFC 9110
  §10.2.3) or the Hub's `RateLimit: "bucket";r=R;t=T` (T seconds until the window resets, hub-protocol.md §4).
- Budget: `retries` attempts per file (per byte range for ranged files), and `retries * 20` for the whole run, so
  a dead endpoint cannot keep a thousand-file run busy for hours.
- 429 also narrows the run: `Concurrency` halves the requests allowed in flight on each 429 and adds one back
  for every few seconds without one (additive increase, multiplicative decrease).
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Mapping

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def is_transient_status(status: int | None) -> bool:
    """Whether an HTTP status is worth another attempt: the one classifier for files and metadata."""
    return status in RETRY_STATUSES
_RATELIMIT = re.compile(r'"?[\w-]+"?\s*;\s*r\s*=\s*(\d+)\s*;\s*t\s*=\s*(\d+)')
_MAX_DELAY = 30.0


def server_delay(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, from Retry-After or RateLimit; None if it did not say."""
    if not headers:
        return None
    retry_after = headers.get("Retry-After")
    if retry_after:
        value = retry_after.strip()
        if value.isdigit():
            return float(value)
        import email.utils  # only for the rare HTTP-date form

        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            return max(0.0, when - (now if now is not None else time.time()))
    ratelimit = headers.get("RateLimit")
    if ratelimit:
        match = _RATELIMIT.search(ratelimit)
        if match and int(match.group(1)) == 0:
            return float(match.group(2)) + 1  # as huggingface_hub does: t + 1
    return None


class RetryPolicy:
    def __init__(self, retries: int = 5, *, base: float = 0.5, seed: int | None = None) -> None:
        self.retries = retries
        self.base = base
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.run_budget = retries * 20

    def delay(self, attempt: int, headers: Mapping[str, str] | None = None) -> float:
        """How long to wait before attempt `attempt + 1` (attempt counts from 1)."""
        asked = server_delay(headers)
        if asked is not None:
            return min(asked, 300.0)
        backoff = min(_MAX_DELAY, self.base * 2.0 ** (attempt - 1))
        with self._lock:
            return backoff * (0.5 + self._random.random() / 2)

    def spend(self) -> bool:
        """Take one retry from the run's budget; False when it is used up."""
        with self._lock:
            if self.run_budget <= 0:
                return False
            self.run_budget -= 1
            return True


class Concurrency:
    """How many requests may be in flight: AIMD on 429 (halve), +1 for every `recover` seconds without one."""

    def __init__(self, maximum: int, *, recover: float = 2.0) -> None:
        self.maximum = maximum
        self.allowed = maximum
        self.recover = recover
        self._last_change = time.monotonic()
        self._lock = threading.Lock()

    def rate_limited(self) -> int:
        with self._lock:
            self.allowed = max(1, self.allowed // 2)
            self._last_change = time.monotonic()
            return self.allowed

    def current(self) -> int:
        with self._lock:
            if self.allowed < self.maximum:
                steps = int((time.monotonic() - self._last_change) / self.recover)
                if steps:
                    self.allowed = min(self.maximum, self.allowed + steps)
                    self._last_change = time.monotonic()
            return self.allowed

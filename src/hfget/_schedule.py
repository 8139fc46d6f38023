"""What runs next: files waiting, files running, the connection budget, 429 pauses and the rate limit.

Workers ask `next_work()`, which answers in this order:
  1. another connection for a large file already running (below its cap, see Task.cap): a range of its ledger;
  2. the next file, while fewer than `jobs` files are in flight;
and otherwise waits. A 429 halves the requests allowed in flight (AIMD, see _retry.Concurrency) and pauses new
requests until its Retry-After. A file waiting to retry goes back to the queue and gives its worker back.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from ._pieces import Segment
from ._retry import Concurrency
from ._task import State, Task

Work = tuple[Task, Segment | None]


class Scheduler:
    def __init__(self, *, jobs: int, max_connections: int, per_file: int, split_below: float,
                 cancel: threading.Event) -> None:
        self.jobs = jobs
        self.per_file = per_file
        self.split_below = split_below
        self.cancel = cancel
        self.concurrency = Concurrency(max_connections)
        self.pending: deque[Task] = deque()
        self.running: list[Task] = []
        self._busy = 0
        self._paused_until = 0.0
        self._cond = threading.Condition()

    def add(self, tasks: list[Task]) -> None:
        with self._cond:
            self.pending.extend(tasks)
            self._cond.notify_all()

    def next_work(self) -> Work | None:
        """Block until there is work for one more worker; None when everything is finished or the run stops."""
        with self._cond:
            while not self.cancel.is_set():
                now = time.monotonic()
                if not self._admits(self._busy, now):
                    self._cond.wait(min(0.25, max(0.01, self._paused_until - now)))
                    continue
                work = self._more_connections(now) or self._next_file(now)
                if work is not None:
                    self._busy += 1
                    return work
                if not self.pending and not self.running:
                    return None
                self._cond.wait(0.25)
        return None

    def _more_connections(self, now: float) -> Work | None:
        for task in self.running:
            if task.large:
                segment = task.join(now, self.per_file, self.split_below)
                if segment is not None:
                    return task, segment
        return None

    def _next_file(self, now: float) -> Work | None:
        if not self.pending or len(self.running) >= self.jobs:
            return None
        for index, task in enumerate(self.pending):  # files waiting to retry sit at the back
            if task.retry_at <= now:
                del self.pending[index]
                self.running.append(task)
                return task, None
        return None

    def may_continue(self) -> bool:
        """May a busy worker send another request now (no 429 pause, no fewer requests allowed than are busy)?"""
        with self._cond:
            return self._admits(self._busy - 1, time.monotonic())  # the asking worker is one of the busy

    def _admits(self, busy: int, now: float) -> bool:
        """Room for one more request beside `busy` others (caller holds the condition)."""
        return now >= self._paused_until and busy < self.concurrency.current()

    def worker_free(self) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify()

    def requeue(self, task: Task, delay: float) -> None:
        """Give the worker back while this file waits to retry, so the limits hold."""
        task.retry_at = time.monotonic() + delay
        with self._cond:
            if task in self.running:
                self.running.remove(task)
            if task.state is State.RUNNING:
                task.move(State.QUEUED)
            self.pending.append(task)
            self._cond.notify_all()

    def retire(self, task: Task) -> None:
        with self._cond:
            if task in self.running:
                self.running.remove(task)
            self._cond.notify_all()

    def replace(self, old: Task, fresh: Task) -> None:
        """`fresh` takes `old`'s place, at the front of the queue (a file fetched again after a bad hash)."""
        with self._cond:
            if old in self.running:
                self.running.remove(old)
            self.pending.appendleft(fresh)
            self._cond.notify_all()

    def connection_done(self, task: Task) -> None:
        with self._cond:
            task.connections = max(0, task.connections - 1)
            self._cond.notify_all()

    def wake(self) -> None:
        """Something changed that may give idle workers work (a 206 arrived, a file got faster)."""
        with self._cond:
            self._cond.notify_all()

    def pause(self, seconds: float) -> int:
        """A 429: no new request for `seconds`, and fewer at once; returns how many are allowed now."""
        allowed = self.concurrency.rate_limited()
        with self._cond:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
        return allowed

    def unfinished(self) -> list[Task]:
        """Files running, and files waiting (to retry, or for another process) that may hold a partial."""
        with self._cond:
            return [*self.running, *self.pending]


class RateLimiter:
    """One budget of bytes per second for the whole run (--limit-rate), shared by every connection."""

    def __init__(self, rate: float, cancel: threading.Event) -> None:
        self.rate = rate
        self.cancel = cancel
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def consume(self, nbytes: int) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(self._next, now - 0.05)  # a 50 ms burst at most
            self._next = start + nbytes / self.rate
            delay = self._next - now
        if delay > 0:
            self.cancel.wait(delay)

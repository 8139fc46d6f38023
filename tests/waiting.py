"""Waiting on other processes and threads without timing anything: poll with a sleep, fail clearly on a deadline.

The deadlines here are safety nets for a test that would otherwise hang, never the assertion: they are generous,
and when one expires the test fails with a message naming what it waited for.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], what: str, *, timeout: float = 60, interval: float = 0.02) -> None:
    """Check `condition` every `interval` seconds until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def finish(proc: subprocess.Popen, what: str, *, timeout: float = 60) -> tuple[str, str]:
    """The output of a process that is expected to end by itself; kill it and fail if it does not."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"the process was still running {timeout:g} s later: {what}") from None

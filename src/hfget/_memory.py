"""How much memory the C allocator keeps: two malloc arenas when hfget owns its process (the CLI).

glibc gives each thread that finds the arenas busy an arena of its own (up to eight per core) and keeps what was
freed in each. A large file's connections each receive 1 MiB reads, which h11 and httpcore2 copy twice more, so
every connection's thread churns through megabytes: with 32 connections (the bench's `mirror`, `-c 16`) the peak
resident memory was 207 MB, of which about 90 MB was freed memory held in per-thread arenas; with two arenas, 120 MB
and no slower (measured: 2.86-3.03 s against 2.95 s). glibc reads the same setting from `MALLOC_ARENA_MAX` at
start-up; a user who set that variable keeps their value.

Only the CLI calls `own_process()`: a program that calls hfget's Python API keeps its own allocator settings.
`limit_arenas()` is called where the transfer threads start (so a run that fetches nothing loads no ctypes), does
its work once, and nothing where there is no glibc.
"""

from __future__ import annotations

import os
import sys
import threading

M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2

_owner = False
_done = False
_lock = threading.Lock()


def own_process() -> None:
    """The caller owns the process (the CLI): the allocator may be tuned for hfget's threads."""
    global _owner
    _owner = True


def limit_arenas() -> bool:
    """At most `ARENAS` malloc arenas from now on, if the process is hfget's and runs on glibc; True if set."""
    global _done
    with _lock:
        if _done or not _owner or not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
            return False
        _done = True
        import ctypes

        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):
            return False
        return bool(mallopt(M_ARENA_MAX, ARENAS))

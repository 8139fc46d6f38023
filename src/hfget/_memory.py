"""How much memory the C allocator keeps: two malloc arenas when hfget owns its process (the CLI).

glibc gives threads arenas of their own (up to eight per core) and keeps what was freed in each. A large file's
connections each receive reads of up to 1 MiB, which h11 and httpcore2 copy twice more, so every
connection's thread churns through megabytes: with 32 connections (the bench's `mirror`, `-c 16`) the peak
resident memory was 207 MB, of which about 90 MB was freed memory held in per-thread arenas; with two arenas, 120 MB
and no slower (measured: 2.86-3.03 s against 2.95 s). Over TLS the records that have arrived are gathered into reads
of the same size.

Only in a process the CLI owns (_process.py): a program that calls hfget's Python API keeps its own allocator settings.
`limit_arenas()` is called where the transfer threads start (a run that fetches nothing loads no ctypes), acts once,
and does nothing without glibc, or when the user chose (MALLOC_ARENA_MAX, or arena_max in GLIBC_TUNABLES). It
limits the arenas made after it: the few threads started before (the lookups of several mirrors) may have
their own already, and glibc ignores the setting once it has fixed its limit (past eight arenas), which a long
`hfget serve` may have done; then the arenas stay as glibc made them.
"""

from __future__ import annotations

import os
import threading

from ._process import owned

M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2

_done = False
_lock = threading.Lock()


def limit_arenas() -> bool:
    """glibc makes no arena past `ARENAS` from now on, if the process is hfget's (see the module docstring);
    True if it took the setting."""
    global _done
    with _lock:
        chosen = "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get("GLIBC_TUNABLES", "")
        if _done or not owned() or chosen or not is_glibc():
            return False
        _done = True
        import ctypes

        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):
            return False
        return bool(mallopt(M_ARENA_MAX, ARENAS))


def is_glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError, AttributeError):  # no such name here (macOS, Windows, musl)
        return False

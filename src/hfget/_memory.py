"""How the process's memory is managed when hfget owns it (the CLI): two malloc arenas, a lighter garbage collector.

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

The garbage collector (`lighter_collection`, around each command the CLI runs; `serve` goes back to
`usual_collection`). A download of 2,000
small files allocates hundreds of thousands of short-lived containers (requests, responses, headers). At Python's
default the youngest generation is collected every 700 of them, and the older collections walk the ~40,000 objects
of the modules imported at start-up: in `many`, 150 young, 14 middle and one full collection, 60-80 ms of one
process's CPU. In a process hfget owns, what exists when the command starts is frozen out of the collector's walks,
and the youngest generation is collected every `YOUNGEST` allocations: 37 and 3 collections, 15 ms (measured:
`many`, 2.083 -> 2.029 s median with an early version, 2.204 -> 2.157 s with this one, 10 alternating runs each). As
the command ends everything is frozen again, so the interpreter's exit does not walk every object the run made for
cycles to break (40-55 ms after 2,000 files, 20 ms of a 0.29 s re-run: 2.239 -> 2.212 s and 0.293 -> 0.272 s
medians). Objects are freed by reference counting as ever; a garbage cycle waits for a later collection, or at exit
for the end of the process. Nothing hfget writes waits on one: its files are closed where they are written, and the
standard streams are flushed at exit anyway. A forked helper inherits the setting; a program that calls hfget's
Python API keeps its own. Not for `hfget serve`, which runs for days: there a cancelled stream's cycle holds its
file and its read until collected.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ._process import owned

M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2
YOUNGEST = 10_000  # container objects allocated (net) between two collections of the youngest generation (Python: 700)
USUAL = gc.get_threshold()  # the interpreter's own, as found when this module is imported

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


def usual_collection() -> None:
    """Python's own collection from now on, for a process that runs for days (`hfget serve`): there a cancelled
    stream's cycle would hold its file and its read until the lighter collection came round to it."""
    gc.set_threshold(*USUAL)


@contextmanager
def lighter_collection() -> Iterator[None]:
    """The garbage collector of a process hfget owns, while the body runs and as it ends (see the module docstring)."""
    if owned():
        gc.freeze()
        gc.set_threshold(YOUNGEST, 10, 10)
    try:
        yield
    finally:
        if owned():
            gc.freeze()

"""Work done beside the network instead of before it, on a first download (a cached re-run does neither).

While a listing is awaited from the network (two round trips and the server's time, with the CPU idle), a thread
imports what the transfers and the cache's writers will need (`warm`: 40-90 ms of imports on a first download).
It is joined before the transfers start (`warmed`), when a helper process may be forked: a fork needs this
process to run no other thread.

Writes that no transfer waits for (the listing kept in trees/, the cache's CACHEDIR.TAG: 40-100 ms of JSON and
imports for a listing of 2,000 files; the removal of partials left for files in place) are made on a thread
started with the transfers (`meanwhile`), from the first file done on, while requests are in flight and the CPU
waits for them, instead of before the first request. The first two writers are huggingface_hub's; all of them
ignore a failure: a read-only cache still serves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress


class Meanwhile:
    """Imports made while the listing is awaited (`warm`, `warmed`), and writes no transfer waits for (`add`),
    made on a thread beside the transfers (`meanwhile`) or `now`."""

    def __init__(self) -> None:
        self.work: list[Callable[[], None]] = []
        self.warming: threading.Thread | None = None

    def warm(self, modules: Sequence[str]) -> None:
        """Import `modules` on a thread (see the module docstring); `warmed` waits for it. Once per run."""
        if self.warming is not None:
            return
        import importlib

        from . import _memory

        def load() -> None:
            _memory.limit_arenas()  # as the transfers would (ctypes), before their threads' first allocations
            for name in modules:
                try:
                    importlib.import_module(name)
                except Exception:  # imported again where it is used, and any error raised there
                    pass

        self.warming = threading.Thread(target=load, daemon=True, name="hfget-imports")
        self.warming.start()

    def warmed(self) -> None:
        if self.warming is not None:
            self.warming.join()
            self.warming = None

    @contextmanager
    def settled(self) -> Iterator[None]:
        """However the body ends, the import thread is joined and the writes left are made (a run that fails before
        its transfers, e.g. for lack of space, keeps the listing it paid for); their error never hides the body's."""
        try:
            yield
        except BaseException:
            self.warmed()
            with suppress(Exception):
                self.now()
            raise
        self.warmed()
        self.now()

    def add(self, write: Callable[[], None]) -> None:
        if write not in self.work:
            self.work.append(write)

    def now(self) -> None:
        work, self.work = self.work, []
        for write in work:
            write()

    @contextmanager
    def meanwhile(self, begin: threading.Event) -> Iterator[None]:
        """The writes on a thread while the body runs, from when `begin` is set (the transfers' first file is done:
        their first requests are all out by then, and the CPU waits for the answers; measured, 12 alternating runs
        of 2,000 files: 2.37 -> 2.27 s median against writing at once, which held up this process's first
        requests), ended before it returns: a run's end is reported after them. An error there (a
        bug: the writers ignore OSError) is raised once the body is done."""
        if not self.work:
            yield
            return
        failed: list[BaseException] = []

        def save() -> None:
            begin.wait()
            try:
                self.now()
            except BaseException as error:  # raised in the caller's thread, below
                failed.append(error)

        thread = threading.Thread(target=save, daemon=True, name="hfget-bookkeeping")
        thread.start()
        try:
            yield
        finally:
            begin.set()  # the body ended first (nothing published, an error, Ctrl-C): write now
            thread.join()
        if failed:
            raise failed[0]

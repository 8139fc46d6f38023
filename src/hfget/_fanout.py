"""Small files over two processes: a run with many small files to fetch hands half of them to a helper process.

Why: a small file costs this process about 2 ms of CPU (httpx2's request path alone is 0.65 ms; then the partial's
creation, the hash, the rename and the link, and the GIL handed among the worker threads). With thousands of small
files a run is bound by that CPU on one core, not by the network; a second process uses the second core. Measured
(2,000 files of 8 KiB behind 40 ms, nginx, 2 cores, 64 in flight): one process 4.35-5.04 s, two 2.55-3.1 s.

When (`share`): the CLI owns the process (_process.owned: a program calling hfget's Python API gets no child
process it did not ask for), more than one core is usable, at least FANOUT_MIN small files are to be fetched, two
files may be in flight, no `limit_rate` (one cap for the whole run), no `on_written` hook (`hfget serve` streams
from this process's partials), and the helper's part of the budget is worth its start (`helper_jobs`). Every other
small file goes to the helper, up to FORKED_SHARE or SPAWNED_SHARE of them, except files whose content other paths
share (their links are made here, after them).

How (`Helper`):
- `start` forks this process when it runs no other thread (a thread could hold a lock the child would wait on
  forever): the child has every module and the job already, and is at work about 0.5 s sooner than a fresh
  interpreter (the terminal's progress bars start their thread after it). Otherwise (another thread runs: a
  pinned commit's lookups on other mirrors; not Linux) it spawns `python -c SPAWNED` (not `-m`, which would
  import modules from the working folder) and a thread here writes it one JSON line: the job (repo, commit,
  mirrors in order, store, options with the token, files). The token goes through the pipe only: never argv,
  the environment or a file.
- The helper (_helper.py) fetches its files with the same engine (Download.transfer: Transfers, the publisher,
  blob locks, so the two processes never write one blob) and writes each event for its files as a JSON line on a
  pipe; a thread here reads them to the end and hands each to this process's sink (bytes received go with the
  file's next event).
- The budget is split (`helper_jobs`): this process keeps what its large files in flight may need (a file in
  flight each, and `-c` connections, which a capped stream opens at once), and the rest, in files in flight and
  in connections, is shared evenly between the two halves of the small files: the helper gets half of it (one
  connection per file in flight), and no helper starts with less than a quarter of the files in flight. Neither
  half of the small files waits for the other's share, nor for the large files. The run keeps to
  `max_connections` and `jobs`. With the defaults (64 and 64, `-c 12`): 32 files in flight for the helper beside
  no large file, 26 beside 1, 20 beside 2, no helper beside 3 or more.
  Each process reacts to a 429 or a failing mirror on its own, as two runs would.
- `finish` waits for the helper and returns its failures, its bytes, and the files it did not report done or
  failed (it could not start, or died): this process fetches those itself, so a helper lost costs time, not files.
- An error that stops a run (authentication, storage) stops the helper; it sends it, and `when_fatal` here stops
  this process's transfers with the same error. Ctrl-C reaches both (one process group). The helper's control
  pipe (a spawned one's stdin) stays open while this process lives: its end stops the helper, which parks its
  partials; `stop` closes it, then sends SIGTERM, then SIGKILL, so no helper outlives the run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Protocol

from . import _errors, _events, _helper, _process
from ._errors import FileDownloadError, HfgetError
from ._models import RemoteFile

if TYPE_CHECKING:
    from ._options import Options
    from ._target import Target

FANOUT_MIN = 256  # small files to fetch before a helper pays for its start (~0.3 s of CPU for its imports)
# of the small files, a helper's share: half for a fork; a spawned one starts later by its imports (measured: with
# 1,000 files each, this process ended its half 0.4 s before the helper)
FORKED_SHARE, SPAWNED_SHARE = 0.5, 0.45
STOP_WAIT = 2.0  # seconds a helper gets to park its partials once told to stop
# what a spawned helper runs: not `-m`, which puts the working directory first on sys.path (a downloaded folder
# could then hold an `ssl.py` or `httpx2.py` it would import); `-c` puts '' there, taken out before any import
SPAWNED = ("import sys; getattr(sys.flags, 'safe_path', 0) or sys.path.pop(0); "
           "from hfget._helper import main; sys.exit(main())")


@dataclass(frozen=True)
class Share:
    """How a run's files are split: `kept` here with `own` options, `helped` in the helper with `theirs`."""

    kept: list[RemoteFile]
    helped: list[RemoteFile]
    own: Options
    theirs: Options


def share(files: list[RemoteFile], followers: dict[str, list[RemoteFile]], options: Options, *,
          hooked: bool) -> Share | None:
    """The split of `files` with a helper process, or None when one is not worth it (see the module docstring)."""
    from ._verify import usable_cores

    if hooked or options.limit_rate or options.files_in_flight < 2 or not _process.owned() or usable_cores() < 2:
        return None
    small = [f for f in files if not options.splits(f.size) and f.path not in followers]
    large = sum(1 for f in files if options.splits(f.size))
    helper = helper_jobs(options, large)
    if len(small) < FANOUT_MIN or helper is None:
        return None
    own, theirs = split(options, helper)
    helped = small[1::2][:int(len(small) * (FORKED_SHARE if _forkable() else SPAWNED_SHARE))]
    chosen = set(map(id, helped))
    return Share([f for f in files if id(f) not in chosen], helped, own, theirs)


def helper_jobs(options: Options, large: int) -> int | None:
    """The files in flight (one connection each) a helper gets beside `large` files fetched here, or None when
    that is too few to be worth its start: half of what those large files leave of the budget, in files in flight
    and in connections, so this process has as many of both for its own half of the small files."""
    running = min(large, options.files_in_flight)  # the large files in flight here, largest first
    needed = running * options.connections_per_file  # a capped stream opens them all
    helper = min((options.files_in_flight - running) // 2, (options.max_connections - needed) // 2)
    return helper if helper >= max(1, options.files_in_flight // 4) else None


def split(options: Options, helper: int) -> tuple[Options, Options]:
    """(this process's options, the helper's): `helper` files in flight go to the helper, one connection each."""
    return (dataclasses.replace(options, jobs=options.files_in_flight - helper,
                                max_connections=options.max_connections - helper),
            dataclasses.replace(options, jobs=helper, max_connections=helper))


def _forkable() -> bool:
    """A fork is safe only with no other thread (one could hold a lock the child would then wait on forever)."""
    return sys.platform.startswith("linux") and threading.active_count() == 1  # macOS: no fork without exec


class Helper:
    """A helper process fetching `files`; its events go to `sink` (see the module docstring)."""

    def __init__(self, process: _Child | None, files: list[RemoteFile], sink: _events.Sink) -> None:
        self.process, self.files, self.sink = process, files, sink
        self._on_fatal: Callable[[HfgetError], None] = lambda error: None
        self._fatal_lock = threading.Lock()
        self.fatal: HfgetError | None = None
        self.done: set[str] = set()
        self.failures: list[FileDownloadError] = []
        self.received = 0
        self.ended = threading.Event()
        self.reader: threading.Thread | None = None

    @classmethod
    def start(cls, target: Target, commit: str, options: Options, files: list[RemoteFile],
              sink: _events.Sink) -> Helper:
        """Fork this process when it has no other thread (the helper then needs no imports: about 0.5 s sooner at
        work); else start a fresh interpreter and send it the job (_helper.encode_job). `target.endpoints`: the
        mirrors in use, in order."""
        job = None
        if _forkable():
            from . import _memory

            _memory.limit_arenas()  # once, here: the child inherits the setting, and ctypes with it
            process: _Child | None = _Forked.start(lambda events: _helper.serve(events, lambda sink: _helper.fetch(
                target, commit, options, files, sink)))
        else:
            job = _helper.encode_job(target, commit, options, files)
            process = _spawn()
        helper = cls(process, files, sink)
        if process is None:
            helper.ended.set()
        else:
            helper.reader = threading.Thread(target=helper._talk, args=(job,), daemon=True,
                                             name="hfget-helper-reader")
            helper.reader.start()
        return helper

    def _talk(self, job: str | None) -> None:
        process = self.process
        assert process is not None and process.stdin is not None and process.stdout is not None
        try:
            if job is not None:
                process.stdin.write(job.encode() + b"\n")
                process.stdin.flush()
            for line in process.stdout:  # read to the end whatever happens: a helper blocked writing would hang
                try:
                    self._receive(json.loads(line))
                except Exception:  # a line cut short, or the sink failing: that event is lost, not the run
                    continue
        except (OSError, ValueError):  # ValueError: stop() closed the pipe while the sink held this thread up
            pass  # a helper that died mid-way: finish() takes back the files it did not report
        finally:
            self.ended.set()

    def _receive(self, message: list[Any]) -> None:
        name, fields, received = message
        if name == "fatal":
            error = _rebuilt(fields["kind"], fields["message"], fields["hint"])
            with self._fatal_lock:
                self.fatal, callback = error, self._on_fatal
            callback(error)
            return
        event = _helper.RELAYED[name](**fields)
        if received:
            self.sink.advance(fields["path"], received)
        if isinstance(event, _events.FileDone):
            self.done.add(event.path)
            self.received += event.fetched
        elif isinstance(event, _events.FileFailed):
            self.failures.append(FileDownloadError(event.path, event.message))
        self.sink.handle(event)

    def when_fatal(self, callback: Callable[[HfgetError], None]) -> None:
        """Call `callback` with the error that ended the helper, if one does (at once if one already has)."""
        with self._fatal_lock:
            self._on_fatal, fatal = callback, self.fatal
        if fatal is not None:
            callback(fatal)

    def finish(self) -> tuple[list[FileDownloadError], int, list[RemoteFile]]:
        """Wait for the helper; (its failures, its bytes received, the files it left to this process)."""
        while not self.ended.wait(0.2):  # short waits, so Ctrl-C reaches the main thread promptly
            pass
        if self.reader is not None:
            self.reader.join()
        if self.process is not None and not self.process.ended_within(STOP_WAIT):
            self.stop()  # its events ended but it did not: it gets what a run that stops gives it
        if self.fatal is not None:
            raise self.fatal
        reported = self.done | {f.path for f in self.failures}
        return self.failures, self.received, [f for f in self.files if f.path not in reported]

    def stop(self) -> None:
        """End a helper still running (this process is stopping): it parks its partials, or is killed."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            _close(process.stdin)
            if not process.ended_within(STOP_WAIT):
                process.terminate()
                if not process.ended_within(STOP_WAIT):
                    process.kill()
                    process.wait()
        _close(process.stdin)
        if self.reader is not None:
            self.reader.join(STOP_WAIT)
        _close(process.stdout)


class _Child(Protocol):
    """What Helper needs of its process: Popen's, and `ended_within`."""

    stdin: IO[bytes] | None  # closed: the helper stops
    stdout: IO[bytes] | None  # its events

    def poll(self) -> int | None: ...
    def wait(self) -> int: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def ended_within(self, seconds: float) -> bool: ...


class _Spawned(subprocess.Popen[bytes]):
    def ended_within(self, seconds: float) -> bool:
        try:
            self.wait(seconds)
        except subprocess.TimeoutExpired:
            return False
        return True


def _spawn() -> _Spawned | None:
    try:
        return _Spawned([sys.executable, "-c", SPAWNED], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    except OSError:
        return None


class _Forked:
    """A forked copy of this process running `body(events)`, with Popen's ways to watch and end it."""

    def __init__(self, pid: int, stdin: IO[bytes] | None, stdout: IO[bytes] | None) -> None:
        self.pid, self.stdin, self.stdout = pid, stdin, stdout
        self.returncode: int | None = None

    @classmethod
    def start(cls, body: Callable[[IO[str]], int]) -> _Forked | None:
        control, events = os.pipe(), os.pipe()
        stopping = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stopping)  # until each side is ready for them: none can land
        try:                                                 # between the fork and the child's `try`
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stopping)
            for fd in (*control, *events):
                os.close(fd)
            return None
        if pid == 0:  # the helper: never returns into the caller's code
            code = 1
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, stopping)
                os.close(control[1])
                os.close(events[0])
                threading.Thread(target=_helper.stop_at_eof, args=(os.fdopen(control[0], "rb"),), daemon=True,
                                 name="hfget-helper-stdin").start()
                code = body(os.fdopen(events[1], "w"))
            finally:
                os._exit(code)
        try:
            os.close(control[0])
            os.close(events[1])
            return cls(pid, os.fdopen(control[1], "wb"), os.fdopen(events[0], "rb"))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stopping)

    def poll(self) -> int | None:
        return self._reap(os.WNOHANG)

    def wait(self) -> int:
        code = self._reap(0)
        assert code is not None
        return code

    def _reap(self, flags: int) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, flags)
            except ChildProcessError:  # reaped by the system already (SIGCHLD ignored), as Popen allows for
                pid, status = self.pid, 0
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def ended_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self.poll() is None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def terminate(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)


def _rebuilt(kind: str, message: str, hint: str | None) -> HfgetError:
    """The helper's error as the same class here, where it takes a message and a hint (else the base class)."""
    cls = getattr(_errors, kind, HfgetError)
    try:
        if isinstance(cls, type) and issubclass(cls, HfgetError):
            return cls(message, hint=hint)
    except TypeError:  # another signature (FileDownloadError's path): not an error that ends a run anyway
        pass
    return HfgetError(message, hint=hint)


def _close(stream: IO[bytes] | None) -> None:
    try:
        if stream is not None:
            stream.close()
    except OSError:
        pass

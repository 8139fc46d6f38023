"""Small files over two processes: a run with many small files to fetch hands half of them to a helper process.

Why: a small file costs this process about 2 ms of CPU (httpx2's request path alone is 0.65 ms; then the partial's
creation, the hash, the rename and the link, and the GIL handed among the worker threads). With thousands of small
files a run is bound by that CPU on one core, not by the network; a second process uses the second core. Measured
(2,000 files of 8 KiB behind 40 ms, nginx, 2 cores, 64 in flight): one process 4.35-5.04 s, two 2.55-3.1 s.

When (`share`): the CLI owns the process (_process.owned: a program calling hfget's Python API gets no child
process it did not ask for), more than one core is usable, at least FANOUT_MIN small files are to be fetched, two
files may be in flight, no `limit_rate` (one cap for the whole run), no `on_written` hook (`hfget serve` streams
from this process's partials), and no large file would get fewer connections from the split budget. Every other
small file goes to the helper, up to FORKED_SHARE or SPAWNED_SHARE of them, except files whose content other paths
share (their links are made here, after them).

How (`Helper`):
- `start` forks this process when it runs no other thread (a thread could hold a lock the child would wait on
  forever): the child has every module and the job already, and is at work about 0.5 s sooner than a fresh
  interpreter. Otherwise (the terminal's progress bar runs a thread; no fork on the system) it spawns `python -c
  SPAWNED` (not `-m`, which would import modules from the working folder) and a thread here writes it one JSON
  line: the job (repo, commit, mirrors in order, store, options with the token, files). The token goes through
  the pipe only: never argv, the environment or a file.
- The helper fetches its files with the same engine (Download.transfer: Transfers, the publisher, blob locks, so
  the two processes never write one blob) and writes each event for its files as a JSON line on a pipe; a thread
  here reads them to the end and hands each to this process's sink (bytes received go with the file's next event).
- The connections are split: the helper gets half the files in flight (one connection each), this process the
  rest of the budget (its large files and the other half), so the run keeps to `max_connections` and `jobs`.
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
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from . import _errors, _events, _process
from ._errors import FileDownloadError, HfgetError
from ._models import RemoteFile

if TYPE_CHECKING:
    from ._engine import Target
    from ._options import Options

FANOUT_MIN = 256  # small files to fetch before a helper pays for its start (~0.3 s of CPU for its imports)
# of the small files, a helper's share: half for a fork; a spawned one starts later by its imports (measured: with
# 1,000 files each, this process ended its half 0.4 s before the helper)
FORKED_SHARE, SPAWNED_SHARE = 0.5, 0.45
STOP_WAIT = 2.0  # seconds a helper gets to park its partials once told to stop
# what a spawned helper runs: not `-m`, which puts the working directory first on sys.path (a downloaded folder
# could then hold an `ssl.py` or `httpx2.py` it would import); `-c` puts '' there, taken out before any import
SPAWNED = "import sys; sys.path.pop(0); from hfget._fanout import _main; sys.exit(_main())"

# the events a helper sends: plain fields only (str, int, float), rebuilt here by name
RELAYED = {cls.__name__: cls for cls in (
    _events.FileStarted, _events.FileRetried, _events.FileDone, _events.FileFailed, _events.MirrorSwitched,
    _events.HostLimited, _events.FirstByteAwaited)}


def share(files: list[RemoteFile], followers: dict[str, list[RemoteFile]], options: Options, *,
          hooked: bool) -> list[RemoteFile]:
    """The files for a helper process to fetch (none when one is not worth it; see the module docstring)."""
    from ._verify import usable_cores

    if hooked or options.limit_rate or options.files_in_flight < 2 or not _process.owned() or usable_cores() < 2:
        return []
    small = [f for f in files if not options.splits(f.size) and f.path not in followers]
    own, _ = split(options)
    if len(small) < len(files) and own.connections_per_file < options.connections_per_file:
        return []  # a large file would get fewer connections (or lose its ranges) with the budget split
    part = FORKED_SHARE if _forkable() else SPAWNED_SHARE
    return small[1::2][:int(len(small) * part)] if len(small) >= FANOUT_MIN else []


def split(options: Options) -> tuple[Options, Options]:
    """(this process's options, the helper's): the helper takes half the files in flight, one connection each."""
    helper = options.files_in_flight // 2
    return (dataclasses.replace(options, jobs=options.files_in_flight - helper,
                                max_connections=options.max_connections - helper),
            dataclasses.replace(options, jobs=helper, max_connections=helper))


def _forkable() -> bool:
    """A fork is safe only with no other thread (one could hold a lock the child would then wait on forever)."""
    return hasattr(os, "fork") and threading.active_count() == 1


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
    def start(cls, target: Target, commit: str, endpoints: list[str], options: Options, files: list[RemoteFile],
              sink: _events.Sink) -> Helper:
        """Fork this process when it has no other thread (the helper then needs no imports: about 0.5 s sooner at
        work); else, or where there is no fork, start a fresh interpreter and send it the job."""
        job = None
        if _forkable():
            process: _Child | None = _Forked.start(lambda events: _serve(events, lambda sink: _fetch(
                target, commit, endpoints, options, files, sink)))
        else:
            job = json.dumps({"repo": [target.repo.repo_id, target.repo.repo_type], "commit": commit,
                              "endpoints": endpoints, "store": _store(target), "options": _dump(options),
                              "token": target.token, "offline": target.offline,
                              "files": [dataclasses.astuple(f) for f in files]})
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
        except OSError:
            pass  # a helper that died mid-way: finish() takes back the files it did not report
        finally:
            self.ended.set()

    def _receive(self, message: list[Any]) -> None:
        name, fields, received = message
        if name == "fatal":
            kind = getattr(_errors, fields["kind"], HfgetError)
            error = kind(fields["message"], hint=fields["hint"]) if issubclass(kind, HfgetError) else HfgetError(
                fields["message"])
            with self._fatal_lock:
                self.fatal, callback = error, self._on_fatal
            callback(error)
            return
        event = RELAYED[name](**fields)
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
        try:
            pid = os.fork()
        except OSError:
            for fd in (*control, *events):
                os.close(fd)
            return None
        if pid == 0:  # the helper: never returns into the caller's code
            code = 1
            try:
                os.close(control[1])
                os.close(events[0])
                threading.Thread(target=_stop_at_eof, args=(os.fdopen(control[0], "rb"),), daemon=True,
                                 name="hfget-helper-stdin").start()
                code = body(os.fdopen(events[1], "w"))
            finally:
                os._exit(code)
        os.close(control[0])
        os.close(events[1])
        return cls(pid, os.fdopen(control[1], "wb"), os.fdopen(events[0], "rb"))

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
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


def _close(stream: IO[bytes] | None) -> None:
    try:
        if stream is not None:
            stream.close()
    except OSError:
        pass


def _store(target: Target) -> dict[str, str]:
    from ._cache import CacheStore, LocalDirStore

    store = target.store
    if isinstance(store, LocalDirStore):
        return {"local_dir": str(store.root)}
    assert isinstance(store, CacheStore)
    return {"cache_dir": str(store.cache_dir)}


def _dump(options: Options) -> dict[str, Any]:
    fields = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    return {name: str(value) if isinstance(value, Path) else value for name, value in fields.items()}


def _load(fields: dict[str, Any]) -> Options:
    from ._options import Options

    paths = ("ca_bundle", "cache_dir", "local_dir")
    fields = {name: Path(value) if name in paths and value is not None else value for name, value in fields.items()}
    return Options(**{**fields, "mirror": tuple(fields["mirror"])})


# -- the helper's side -----------------------------------------------------------------------------------------------

class _PipeSink:
    """Writes the relayed events as JSON lines; bytes received for a file go with its next event."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.pending: dict[str, int] = {}

    def advance(self, path: str, nbytes: int) -> None:
        with self.lock:
            self.pending[path] = self.pending.get(path, 0) + nbytes

    def handle(self, event: _events.Event) -> None:
        name = type(event).__name__
        if name not in RELAYED:
            return
        fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
        with self.lock:
            received = self.pending.pop(fields["path"], 0) if "path" in fields else 0
            self.send([name, fields, received])

    def send(self, message: list[Any]) -> None:
        self.out.write(json.dumps(message) + "\n")
        self.out.flush()


def _main() -> int:
    """The spawned helper: read the job, fetch its files, report (see `_serve`)."""
    events = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything else printed goes to stderr, never into the events
    _stop_on_sigterm()
    try:
        job = json.loads(sys.stdin.readline())
    except (ValueError, KeyboardInterrupt):  # stopped before its job came
        return _errors.ExitCode.INTERRUPTED
    threading.Thread(target=_stop_at_eof, args=(sys.stdin,), daemon=True, name="hfget-helper-stdin").start()
    return _serve(events, lambda sink: _run(job, sink))


def _serve(events: IO[str], work: Callable[[_PipeSink], None]) -> int:
    """Run the helper's work; exit 0, 130 when stopped, or an error's code (sent to the parent first). A bug ends
    the helper with its traceback on stderr, and the parent fetches the files it did not report."""
    _process.own()
    _stop_on_sigterm()
    sink = _PipeSink(events)
    try:
        work(sink)
    except KeyboardInterrupt:
        return _errors.ExitCode.INTERRUPTED
    except HfgetError as error:
        with sink.lock:
            sink.send(["fatal", {"kind": type(error).__name__, "message": error.message, "hint": error.hint}, 0])
        return error.exit_code
    except Exception:
        import traceback

        traceback.print_exc()
        return 1
    return 0


def _run(job: dict[str, Any], sink: _PipeSink) -> None:
    from ._cache import CacheStore, LocalDirStore, Store
    from ._engine import Target
    from ._repo import Repo
    from ._select import Selection

    repo = Repo(*job["repo"])
    where = job["store"]
    store: Store = LocalDirStore(Path(where["local_dir"])) if "local_dir" in where else CacheStore(
        Path(where["cache_dir"]), repo)
    target = Target(repo=repo, endpoints=tuple(job["endpoints"]), selection=Selection(repo, job["commit"]),
                    token=job["token"], store=store, offline=job["offline"])
    files = [RemoteFile(*fields) for fields in job["files"]]
    _fetch(target, job["commit"], job["endpoints"], _load(job["options"]), files, sink)


def _fetch(target: Target, commit: str, endpoints: list[str], options: Options, files: list[RemoteFile],
           sink: _PipeSink) -> None:
    from ._engine import Download

    target = dataclasses.replace(target, endpoints=tuple(endpoints))
    Download(target, options, sink).transfer(commit, files, {})


def _stop_on_sigterm() -> None:
    import signal

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _stop_at_eof(control: IO[Any]) -> None:
    """The parent closed the helper's stdin (it is stopping, or gone): stop as Ctrl-C does, partials parked."""
    control.read()
    os.kill(os.getpid(), signal.SIGTERM)  # its handler raises KeyboardInterrupt (even where SIGINT is ignored)



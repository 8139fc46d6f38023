"""Small files over two processes: a run with many small files to fetch hands half of them to a helper process.

Why: a small file costs this process about 2 ms of CPU (httpx2's request path alone is 0.65 ms; then the partial's
creation, the hash, the rename and the link, and the GIL handed among the worker threads). With thousands of small
files a run is bound by that CPU on one core, not by the network; a second process uses the second core. Measured
(2,000 files of 8 KiB behind 40 ms, nginx, 2 cores): one process 4.35-5.04 s, the same files split over two
processes 2.59-2.72 s; a bare httpx2 floor (no hfget) in one process 3.3-4.5 s.

When (`share`): the CLI owns the process (_process.owned: a program calling hfget's Python API gets no child
process it did not ask for), the machine has more than one CPU, at least FANOUT_MIN small files are to be fetched,
two files may be in flight, no `limit_rate` (one cap for the whole run) and no `on_written` hook (`hfget serve`
streams from this process's partials). Every other small file goes to the helper, up to HELPER_SHARE of them,
except files whose content other paths share (their links are made here, after them).

How (`Helper`):
- `start` runs `python -m hfget._fanout`, and a thread here writes it one JSON line: the job (repo, commit,
  mirrors in order, store, options with the token, files). The token goes through the pipe only: never argv, the
  environment or a file. stdin stays open: its end (this process gone) stops the helper, which parks its partials.
- The helper fetches its files with the same engine (Download.transfer: Transfers, the publisher, blob locks, so
  the two processes never write one blob) and writes each event for its files as a JSON line on its stdout; the
  thread here hands each to this process's sink (bytes received are reported with the file's next event).
- The connections are split: the helper gets half the files in flight (one connection each), this process the
  rest of the budget (its large files and the other half), so the run keeps to `max_connections` and `jobs`.
- `finish` waits for the helper and returns its failures, its bytes, and the files it did not report done or
  failed (it could not start, or died): this process fetches those itself, so a helper lost costs time, not files.
- An error that stops a run (authentication, storage) stops the helper; it sends it, and `on_fatal` here stops
  this process's transfers with the same error. Ctrl-C reaches both (one process group); `stop` ends a helper still
  running (stdin closed, then SIGTERM, then SIGKILL), so none outlives the run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import _errors, _events, _process
from ._errors import FileDownloadError, HfgetError
from ._models import RemoteFile

if TYPE_CHECKING:
    from ._engine import Target
    from ._options import Options

FANOUT_MIN = 256  # small files to fetch before a helper pays for its start (~0.3 s of CPU for its imports)
# of the small files, the helper's share: it starts later than this process by its imports (measured: with 1,000
# files each, this process ended its half 0.4 s before the helper)
HELPER_SHARE = 0.45
STOP_WAIT = 2.0  # seconds a helper gets to park its partials once told to stop

# the events a helper sends: plain fields only (str, int, float), rebuilt here by name
RELAYED = {cls.__name__: cls for cls in (
    _events.FileStarted, _events.FileRetried, _events.FileDone, _events.FileFailed, _events.MirrorSwitched,
    _events.HostLimited, _events.FirstByteAwaited)}


def share(files: list[RemoteFile], followers: dict[str, list[RemoteFile]], options: Options, *,
          hooked: bool) -> list[RemoteFile]:
    """The files for a helper process to fetch (none when one is not worth it; see the module docstring)."""
    if hooked or options.limit_rate or options.files_in_flight < 2 or not _process.owned() \
            or (os.cpu_count() or 1) < 2:
        return []
    small = [f for f in files if not options.splits(f.size) and f.path not in followers]
    return small[1::2][:int(len(small) * HELPER_SHARE)] if len(small) >= FANOUT_MIN else []


def split(options: Options) -> tuple[Options, Options]:
    """(this process's options, the helper's): the helper takes half the files in flight, one connection each."""
    helper = options.files_in_flight // 2
    return (dataclasses.replace(options, jobs=options.files_in_flight - helper,
                                max_connections=options.max_connections - helper),
            dataclasses.replace(options, jobs=helper, max_connections=helper))


class Helper:
    """A helper process fetching `files`; its events go to `sink` (see the module docstring)."""

    def __init__(self, process: subprocess.Popen[bytes] | None, files: list[RemoteFile], sink: _events.Sink) -> None:
        self.process, self.files, self.sink = process, files, sink
        self.on_fatal: Callable[[HfgetError], None] = lambda error: None
        self.fatal: HfgetError | None = None
        self.done: set[str] = set()
        self.failures: list[FileDownloadError] = []
        self.received = 0
        self.ended = threading.Event()
        self.reader: threading.Thread | None = None

    @classmethod
    def start(cls, target: Target, commit: str, endpoints: list[str], options: Options, files: list[RemoteFile],
              sink: _events.Sink) -> Helper:
        job = json.dumps({"repo": [target.repo.repo_id, target.repo.repo_type], "commit": commit,
                          "endpoints": endpoints, "store": _store(target), "options": _dump(options),
                          "token": target.token, "offline": target.offline,
                          "files": [dataclasses.astuple(f) for f in files]})
        try:
            process = subprocess.Popen([sys.executable, "-m", "hfget._fanout"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE)
        except OSError:
            process = None
        helper = cls(process, files, sink)
        if process is None:
            helper.ended.set()
        else:
            helper.reader = threading.Thread(target=helper._talk, args=(job,), daemon=True,
                                             name="hfget-helper-reader")
            helper.reader.start()
        return helper

    def _talk(self, job: str) -> None:
        assert self.process is not None and self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(job.encode() + b"\n")
            self.process.stdin.flush()
            for line in self.process.stdout:
                self._receive(json.loads(line))
        except (OSError, ValueError):
            pass  # a helper that died mid-way: finish() takes back the files it did not report
        finally:
            self.ended.set()

    def _receive(self, message: list[Any]) -> None:
        name, fields, received = message
        if name == "fatal":
            kind = getattr(_errors, fields["kind"], HfgetError)
            error = kind(fields["message"], hint=fields["hint"]) if issubclass(kind, HfgetError) else HfgetError(
                fields["message"])
            self.fatal = error
            self.on_fatal(error)
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

    def finish(self) -> tuple[list[FileDownloadError], int, list[RemoteFile]]:
        """Wait for the helper; (its failures, its bytes received, the files it left to this process)."""
        while not self.ended.wait(0.2):  # short waits, so Ctrl-C reaches the main thread promptly
            pass
        if self.reader is not None:
            self.reader.join()
        if self.process is not None:
            self.process.wait()
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
            try:
                process.wait(STOP_WAIT)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(STOP_WAIT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        _close(process.stdin)
        if self.reader is not None:
            self.reader.join(STOP_WAIT)
        _close(process.stdout)


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
    """The helper: read the job, fetch its files, report; exit 0, 130 when stopped, or the error's code."""
    events = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything else printed goes to stderr, never into the events
    sink = _PipeSink(events)
    _stop_on_sigterm()
    try:
        job = json.loads(sys.stdin.readline())
        threading.Thread(target=_stop_at_eof, daemon=True, name="hfget-helper-stdin").start()
        _process.own()
        _run(job, sink)
    except KeyboardInterrupt:
        return _errors.ExitCode.INTERRUPTED
    except HfgetError as error:
        with sink.lock:
            sink.send(["fatal", {"kind": type(error).__name__, "message": error.message, "hint": error.hint}, 0])
        return error.exit_code
    return 0


def _run(job: dict[str, Any], sink: _PipeSink) -> None:
    from ._cache import CacheStore, LocalDirStore, Store
    from ._engine import Download, Target
    from ._repo import Repo
    from ._select import Selection

    repo = Repo(*job["repo"])
    where = job["store"]
    store: Store = LocalDirStore(Path(where["local_dir"])) if "local_dir" in where else CacheStore(
        Path(where["cache_dir"]), repo)
    target = Target(repo=repo, endpoints=tuple(job["endpoints"]), selection=Selection(repo, job["commit"]),
                    token=job["token"], store=store, offline=job["offline"])
    files = [RemoteFile(*fields) for fields in job["files"]]
    Download(target, _load(job["options"]), sink).transfer(job["commit"], files, {})


def _stop_on_sigterm() -> None:
    import signal

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _stop_at_eof() -> None:
    """The parent closed stdin (it is stopping, or gone): stop as Ctrl-C does, partials parked."""
    import _thread

    sys.stdin.read()
    _thread.interrupt_main()


if __name__ == "__main__":
    sys.exit(_main())

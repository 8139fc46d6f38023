"""The helper process's side of _fanout.py: run the job it was given, and send each event as a JSON line.

A forked helper runs `serve(events, work)` with its job in memory; a spawned one (`python -c _fanout.SPAWNED`)
runs `main()`, which reads the job from stdin first. Either way the work is `Download.transfer` over the helper's
files with a `PipeSink`; an error that ends a run is sent as a "fatal" line, and the helper ends with its exit code
(130 when stopped: SIGTERM, Ctrl-C, or the end of its control pipe, which is how the parent stops it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import _errors, _events, _memory, _process
from ._errors import HfgetError
from ._models import RemoteFile

if TYPE_CHECKING:
    from ._options import Options
    from ._target import Target

# the events a helper sends: plain fields only (str, int, float), rebuilt here by name
RELAYED = {cls.__name__: cls for cls in (
    _events.FileStarted, _events.FileRetried, _events.FileDone, _events.FileFailed, _events.MirrorSwitched,
    _events.HostLimited, _events.FirstByteAwaited)}


def encode_job(target: Target, commit: str, options: Options, files: list[RemoteFile]) -> str:
    """The job of a spawned helper, one JSON line (read back by `_run`): the token is in it, so it goes only
    through the helper's stdin."""
    from ._cache import CacheStore, LocalDirStore

    store = target.store
    assert isinstance(store, (CacheStore, LocalDirStore))
    where = {"local_dir": str(store.root)} if isinstance(store, LocalDirStore) else {"cache_dir": str(store.cache_dir)}
    settings = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    return json.dumps({"repo": [target.repo.repo_id, target.repo.repo_type], "commit": commit,
                       "endpoints": target.endpoints, "store": where, "token": target.token, "offline": target.offline,
                       "options": {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()},
                       "paths": [k for k, v in settings.items() if isinstance(v, Path)],
                       "files": [dataclasses.astuple(f) for f in files]})


def _load(fields: dict[str, Any], paths: list[str]) -> Options:
    """The options `encode_job` wrote (`paths`: those it wrote as strings from a Path)."""
    from ._options import Options

    fields = {name: Path(value) if name in paths else value for name, value in fields.items()}
    return Options(**{**fields, "mirror": tuple(fields["mirror"])})


class PipeSink:
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


def main() -> int:
    """The spawned helper: read the job, fetch its files, report (see `serve`)."""
    events = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything else printed goes to stderr, never into the events
    _process.interrupt_on_sigterm()
    try:
        job = json.loads(sys.stdin.readline())
    except (ValueError, KeyboardInterrupt):  # stopped before its job came
        return _errors.ExitCode.INTERRUPTED
    threading.Thread(target=stop_at_eof, args=(sys.stdin,), daemon=True, name="hfget-helper-stdin").start()
    _process.own()
    with _memory.lighter_collection():  # as the CLI's (a forked helper inherits it)
        return serve(events, lambda sink: _run(job, sink))


def serve(events: IO[str], work: Callable[[PipeSink], None]) -> int:
    """Run the helper's work; exit 0, 130 when stopped, or an error's code (sent to the parent first). A bug ends
    the helper with its traceback on stderr, and the parent fetches the files it did not report. SIGTERM already
    stops it as Ctrl-C does: `main` set that, and a fork has the CLI's handler. Either owns its process: `main` says
    so, and a fork is a copy of the CLI's, which does."""
    sink = PipeSink(events)
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


def _run(job: dict[str, Any], sink: PipeSink) -> None:
    from ._cache import CacheStore, LocalDirStore, Store
    from ._repo import Repo
    from ._select import Selection
    from ._target import Target

    repo = Repo(*job["repo"])
    where = job["store"]
    store: Store = LocalDirStore(Path(where["local_dir"])) if "local_dir" in where else CacheStore(
        Path(where["cache_dir"]), repo)
    target = Target(repo=repo, endpoints=tuple(job["endpoints"]), selection=Selection(repo, job["commit"]),
                    token=job["token"], store=store, offline=job["offline"])
    files = [RemoteFile(*fields) for fields in job["files"]]
    fetch(target, job["commit"], _load(job["options"], job.get("paths", [])), files, sink)


def fetch(target: Target, commit: str, options: Options, files: list[RemoteFile], sink: PipeSink) -> None:
    """The helper's work: `files` fetched at `commit` from the target's endpoints (in order) into its store."""
    from ._engine import Download

    Download(target, options, sink).transfer(commit, files, {})


def stop_at_eof(control: IO[Any]) -> None:
    """The parent closed the helper's stdin (it is stopping, or gone): stop as Ctrl-C does, partials parked."""
    control.read()
    os.kill(os.getpid(), signal.SIGTERM)  # its handler raises KeyboardInterrupt (even where SIGINT is ignored)

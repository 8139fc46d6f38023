"""Who fetches a file: advisory locks between processes, and a partial file of one's own.

Two mechanisms, for two jobs:
- `BlobLocks` spare duplicate downloads: a process that holds a blob's lock fetches it, the others wait and then
  find it published. One byte-range lock (`fcntl.lockf`) per blob in one file per repo: creating a lock file per
  blob cost ~1 s per 2,000 small files (profiled). Where locks are unavailable (Windows, some network
  filesystems, HFGET_LOCKS=0, a read-only cache) hfget runs without them.
- Owned partial names keep runs correct whether or not the locks work (on NFS and Lustre `flock` may silently do
  nothing). A partial at rest has the "parked" name `<...>.hfget.incomplete`; a run that works on it first
  renames it to `<...>.hfget-<host>-<pid>-<random>.incomplete`. A rename is atomic, so of several processes
  exactly one gets it and no two ever write one file. A run that stops parks its partial again; one that is
  killed leaves its own name behind, which a later run adopts once that process is gone (same host, dead pid)
  or the file has not changed for an hour. The resume sidecar (_resume.py) moves with its partial. A run that
  publishes a file drops what is parked for it (`drop_parked`): a partial parked after the run's listing of
  partials was taken would otherwise never be taken over, the blob being there. A run also drops the partials
  of files it finds in place, blob included (`drop_leftovers`): another tool finished them after an hfget run
  stopped, and they too would stay for good.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import os
import socket
import threading
import time
from pathlib import Path

from . import _resume
from ._models import RemoteFile

try:
    import fcntl
except ImportError:  # Windows: no lockf; owned partial names still keep concurrent runs correct
    fcntl = None  # type: ignore[assignment]

_HOST = socket.gethostname().replace(".", "_").replace("-", "_") or "host"
_STALE = 3600.0
_LISTING_TTL = 5.0
_SUFFIX = ".hfget.incomplete"


_LOCK_FILES: dict[str, list[int]] = {}  # lock file -> [descriptor, runs using it] (BlobLocks)
_LOCK_FILES_GUARD = threading.Lock()


class BlobLocks:
    """Advisory locks, one per blob, as one-byte locks in one file per repo.

    The locks are the process's, not the descriptor's: closing any descriptor of the file drops every lock the
    process holds on it (POSIX). So a process opens each lock file once, shared by its runs at the same time
    (`hfget serve` runs one per file it fetches), and closes it when the last of them closes."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def open(cls, path: Path) -> BlobLocks | None:
        if fcntl is None or os.environ.get("HFGET_LOCKS") == "0":
            return None
        key = os.path.realpath(path)  # one file reached by two paths (a symlinked cache) is still opened once
        with _LOCK_FILES_GUARD:
            entry = _LOCK_FILES.get(key)
            if entry is None:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    entry = _LOCK_FILES[key] = [os.open(path, os.O_RDWR | os.O_CREAT, 0o664), 0]
                except OSError:
                    return None  # e.g. a read-only cache: no locks, and nothing will be written without a claim
            entry[1] += 1
            return cls(key, entry[0])

    @staticmethod
    def offset(key: str) -> int:
        """Where the blob's byte lies: drawn from a digest of the key, the same in every process (unlike hash())."""
        return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=6).digest(), "big")

    def try_lock(self, key: str) -> bool:
        assert fcntl is not None
        if self.fd < 0:
            return False  # closed: the run is over (a worker past its end takes nothing)
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, self.offset(key), os.SEEK_SET)
        except (BlockingIOError, PermissionError):
            return False
        except OSError:
            return True  # the filesystem does not lock: carry on without
        return True

    def unlock(self, key: str) -> None:
        assert fcntl is not None
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, self.offset(key), os.SEEK_SET)
        except OSError:
            pass

    def close(self) -> None:
        """This run is done with the locks: the file is closed once no other run of the process uses it."""
        with _LOCK_FILES_GUARD:
            if self.fd < 0:
                return  # closed already
            entry = _LOCK_FILES[self.path]
            self.fd, entry[1] = -1, entry[1] - 1
            if entry[1] == 0:
                del _LOCK_FILES[self.path]
                os.close(entry[0])


class Claim(enum.Enum):
    GO = "go"  # this process owns the file now
    WAIT = "wait"  # another process is fetching it
    DONE = "done"  # another process published it meanwhile


def _base(parked: Path) -> str:
    return parked.name.removesuffix(_SUFFIX)


class _Owner:
    """This process in an owned partial's name: host, pid and a random token drawn once per process (a partial left
    by an earlier process of the same pid is not ours), then a count. Two system calls a file fewer than a pid and
    random bytes per name: each is a GIL hand-off among the 32 workers of a many-small-files run."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.token = os.urandom(3).hex()
        self.names = itertools.count()


_owner = _Owner()


def _forked() -> None:
    global _owner
    _owner = _Owner()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def owned_name(parked: Path) -> Path:
    owner = _owner
    return parked.with_name(f"{_base(parked)}.hfget-{_HOST}-{owner.pid}-{owner.token}{next(owner.names):x}.incomplete")


_LISTINGS: dict[str, tuple[float, dict[str, list[str]]]] = {}  # by folder, as a string (see _any_partial)
_RESCAN = threading.Lock()


def partial_bases(folder: Path | str) -> dict[str, list[str]]:
    """Partials in `folder` (parked or owned), by base name (the parked name less `.hfget.incomplete`): one scan
    per folder for a few seconds, not one per file (a repo of thousands of files would otherwise scan its blobs
    folder thousands of times), and one when it expires, not one per worker that finds it expired at the same
    moment (about 24 of a 2,000-entry folder)."""
    folder = os.fspath(folder)
    cached = _LISTINGS.get(folder)
    if cached is not None and time.monotonic() - cached[0] < _LISTING_TTL:
        return cached[1]
    with _RESCAN:
        cached = _LISTINGS.get(folder)
        if cached is not None and time.monotonic() - cached[0] < _LISTING_TTL:
            return cached[1]  # another worker scanned it while this one waited
        taken = time.monotonic()
        names = _scan(folder)
        _LISTINGS[folder] = (taken, names)
        return names


def _scan(folder: str) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                base, marker, _ = entry.name.partition(".hfget-")
                if marker and entry.name.endswith(".incomplete"):
                    names.setdefault(base, []).append(entry.name)
                elif entry.name.endswith(_SUFFIX):
                    names.setdefault(entry.name.removesuffix(_SUFFIX), []).append(entry.name)
    except OSError:
        pass
    return names


def _any_partial(parked: Path) -> bool:
    """Whether the folder's listing has a partial of this file, parked or owned (no system call while it holds)."""
    folder, _, name = os.fspath(parked).rpartition(os.sep)  # not parked.parent: a new Path, hashed, per file
    return name.removesuffix(_SUFFIX) in partial_bases(folder)


def forget_listing(folder: Path) -> None:
    """The next look at `folder` scans it again. Taken under the scan's lock: a scan already under way, which may
    have missed what just changed, has stored its listing by then, and it is this that is dropped."""
    with _RESCAN:
        _LISTINGS.pop(os.fspath(folder), None)


def orphans(parked: Path, *, by_age: bool = True) -> list[Path]:
    """Owned partials of this file whose owner is gone (dead pid on this host) or, `by_age`, silent for an hour."""
    found = []
    base = _base(parked)
    for name in partial_bases(parked.parent).get(base, ()):
        if name == parked.name:
            continue
        path = parked.parent / name
        owner = name[len(base) + len(".hfget-"):].removesuffix(".incomplete").split("-")
        try:
            host, pid = owner[0], int(owner[1])
            age = time.time() - path.stat().st_mtime
        except (IndexError, ValueError, OSError):
            continue
        if (host == _HOST and not _alive(pid)) or (by_age and age > _STALE):
            found.append(path)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def claim(parked: Path) -> Path:
    """A partial of our own for this file: the parked one or an orphan (renamed, with its sidecar), else a new
    name. An orphan's sidecar goes with it; a second orphan's leftovers are removed."""
    owned = owned_name(parked)
    _make_folder(parked.parent)
    if not _any_partial(parked):
        return owned  # nothing to take over: spare the failing renames (this runs for every file)
    taken = False
    for candidate in [parked, *orphans(parked)]:
        if taken:
            _resume.discard(candidate)  # an older leftover of the same file: what we took is as good
            continue
        taken = _take(candidate, owned)
    forget_listing(parked.parent)
    return owned


_MADE: set[Path] = set()


def _make_folder(folder: Path) -> None:
    if folder not in _MADE:  # thousands of files share a folder: one mkdir each
        folder.mkdir(parents=True, exist_ok=True)
        _MADE.add(folder)


def _take(candidate: Path, owned: Path) -> bool:
    try:
        os.rename(candidate, owned)
    except FileNotFoundError:
        return False  # someone else took that partial first
    try:
        os.rename(_resume.state_path(candidate), _resume.state_path(owned))
    except FileNotFoundError:
        _resume.state_path(owned).unlink(missing_ok=True)
    return True


def park(owned: Path, parked: Path) -> None:
    """Hand our partial to the next run under the parked name (unless another run parked one meanwhile). The
    folder's listing of partials is read again after this, so a next run in this process finds what was parked."""
    if not owned.exists():
        _resume.state_path(owned).unlink(missing_ok=True)
        return
    try:
        _park(owned, parked)
    finally:
        forget_listing(parked.parent)


def drop_parked(parked: Path) -> None:
    """The file is published: a partial parked for it meanwhile (by another process, after this one listed the
    partials) goes, with its sidecar. Called while the blob's lock is held; with locks that do nothing, a run
    taking that partial over at the same moment loses at most work (what it resumes is verified). The folder's
    listing of partials is left as it is: a claim that finds the name gone makes a name of its own."""
    _resume.discard(parked)


def _park(owned: Path, parked: Path) -> None:
    try:
        os.link(owned, parked)  # never replaces: an existing parked partial stays as it is
    except FileExistsError:
        _resume.discard(owned)
        return
    except OSError:
        return  # no hard links here: the partial stays under our name, adopted later as an orphan
    try:
        os.replace(_resume.state_path(owned), _resume.state_path(parked))
    except FileNotFoundError:
        _resume.state_path(parked).unlink(missing_ok=True)  # a stale sidecar must not describe the new partial
    owned.unlink(missing_ok=True)


def drop_leftovers(parked: Path) -> None:
    """Remove the partials of a file whose content is in place now (a run stopped, then another tool finished the
    file): the parked one and those of dead runs on this host, never one whose owner may live (an owned partial
    silent for an hour may be a stopped run's, still to be published). Each is taken by a rename first, as a
    claim takes it, so a run claiming it at the same moment gets it whole or not at all."""
    names = partial_bases(parked.parent).get(_base(parked), ())
    for candidate in ([parked] if parked.name in names else []) + orphans(parked, by_age=False):
        owned = owned_name(parked)
        try:
            if _take(candidate, owned):
                _resume.discard(owned)
        except OSError:
            pass  # e.g. a read-only cache: it stays, as it would have
    forget_listing(parked.parent)


def resumable_bytes(parked: Path, file: RemoteFile) -> int:
    """Bytes of `file` a run can take over from the parked partial or an orphan (for the plan's numbers). A file
    of which the folder's listing of partials has nothing costs no system call (a plan of 2,000 new files made
    2,000 failing stats here)."""
    if not _any_partial(parked):
        return 0
    best = 0
    for candidate in [parked, *orphans(parked)]:
        best = max(best, sum(b - a for a, b in _resume.load(candidate, file)))
    return best

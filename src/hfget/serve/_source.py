"""Where `hfget serve`'s answers come from: the cache first, the upstream Hub (through hfget's engine) for the rest.

    commit(repo, rev)      a commit is itself (the cache alone answers for it). A branch or tag is asked upstream
                           (one request, remembered BRANCH_TTL seconds) and recorded in refs/; refs/ answers when
                           offline or when upstream cannot be reached.
    listing(repo, commit)  trees/<commit>.json; else the snapshot folder's links (a cache written without trees/);
                           else upstream's tree, written to trees/ as the engine writes it. A commit never changes,
                           so a listing is kept in memory.
    target(repo, rev, ...) what a fetch of files asks upstream: hfget's mirrors, led by the one that answered for
                           that commit (its listing, or the lookup that gave it), so that a first mirror a commit
                           behind is not asked again, and answers 404, for every file of it.
    blob(repo, commit, f)  the file's verified content in the cache, if there: `blobs/<etag>`, or the snapshot's
                           own copy where the cache has no symlinks; never a path whose real location is outside
                           the repo's folder.

After a network failure upstream is left alone for UNREACHABLE_TTL seconds, so an unreachable Hub costs one
timeout, not one per request. Upstream uses hfget's own settings (mirrors, endpoint, token): a client's token is
never involved here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from .._cache import CacheStore
from .._engine import Download
from .._errors import (
    AuthError,
    GatedRepoError,
    HfgetError,
    NetworkError,
    NotFoundError,
    RepoNotFoundError,
    StorageError,
)
from .._events import NullSink
from .._hub import hub_date
from .._models import RemoteFile
from .._options import Options
from .._repo import Repo, is_commit
from .._select import Wanted
from .._target import Target, resolve_target
from ._routes import HubError

BRANCH_TTL = 5.0
UNREACHABLE_TTL = 5.0
_ETAG = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
T = TypeVar("T")


@dataclass
class Trace:
    """What one request cost: seconds spent waiting on upstream, and whether its file was in the cache."""

    upstream: float = 0.0
    cache: str = "-"  # "hit" or "miss" for a file body


@dataclass
class Listing:
    """The files of one commit, by path, and the folders they are in."""

    files: list[RemoteFile]
    by_path: dict[str, RemoteFile] = field(init=False)
    folders: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.by_path = {f.path: f for f in self.files}
        self.folders = {f.path.rsplit("/", i)[0] for f in self.files for i in range(1, f.path.count("/") + 1)}


class Source:
    """The cache at `cache_dir`, and upstream as hfget's options name it (unless `offline`)."""

    def __init__(self, cache_dir: Path, options: Options, *, offline: bool) -> None:
        self.cache_dir = cache_dir
        self.options = options
        self.offline = offline
        self._lookups = dataclasses.replace(options, retries=0)  # a client waits: one try, then the cache
        self._lock = threading.Lock()
        self._branches: dict[tuple[Repo, str], tuple[str, float]] = {}
        self._listings: dict[tuple[Repo, str], Listing] = {}
        self._dates: dict[tuple[Repo, str], str] = {}  # (repo, commit) -> the date upstream gave the commit
        self._served: dict[tuple[Repo, str], str] = {}  # (repo, commit) -> the mirror that answered for it
        self._down_until = 0.0

    # -- what the server asks ----------------------------------------------------------------------------------

    @property
    def upstream(self) -> bool:
        """Whether upstream may be asked now."""
        return not self.offline and time.monotonic() >= self._down_until

    def store(self, repo: Repo) -> CacheStore:
        return CacheStore(self.cache_dir, repo)

    def target(self, repo: Repo, revision: str, files: tuple[str, ...] = ()) -> Target:
        target = resolve_target(str(repo), files, self.options, Wanted(revision=revision))
        with self._lock:
            served = self._served.get((repo, revision))
        if served is None or served not in target.endpoints:
            return target
        return dataclasses.replace(target, endpoints=(served, *(e for e in target.endpoints if e != served)))

    def commit(self, repo: Repo, revision: str, trace: Trace) -> str:
        if is_commit(revision):
            return revision
        with self._lock:
            known = self._branches.get((repo, revision))
        if known is not None and time.monotonic() - known[1] < BRANCH_TTL:
            return known[0]
        if self.upstream:
            download = Download(self.target(repo, revision), self._lookups, NullSink())
            try:
                commit = self._ask(trace, download.resolve)
            except NetworkError:
                pass  # the cache answers
            else:
                self._remember(repo, revision, commit, download.metadata.dates.get(commit))
                self._served_by(repo, commit, download.mirrors.current)
                return commit
        cached = self.store(repo).cached_commit(revision)
        if cached is None or not is_commit(cached):
            raise self._not_cached(repo, f"Revision {revision!r} of {repo} is not in the cache.")
        return cached

    def listing(self, repo: Repo, commit: str, trace: Trace) -> Listing:
        with self._lock:
            known = self._listings.get((repo, commit))
        if known is not None:
            return known
        store = self.store(repo)
        files = store.read_listing(commit)
        if files is None and self.upstream:
            try:
                files = self._ask(trace, lambda: self._upstream_listing(repo, commit))
            except NetworkError:
                pass
        if files is None:  # the snapshot may be partial: only when nothing better answers, and not kept
            partial = _from_snapshot(store.storage, commit)
            if partial is None:
                raise self._not_cached(repo, f"Commit {commit} of {repo} is not in the cache.")
            return Listing(partial)
        listing = Listing(files)
        with self._lock:
            self._listings[(repo, commit)] = listing
        return listing

    def blob(self, repo: Repo, commit: str, file: RemoteFile) -> Path | None:
        """The file's content in the cache, checked to be inside the repo's folder and of the listed size."""
        storage = self.store(repo).storage
        candidates = [storage / "blobs" / file.etag] if _ETAG.match(file.etag) else []
        candidates.append(storage / "snapshots" / commit / file.path)
        for candidate in candidates:
            real = Path(os.path.realpath(candidate))
            if not _inside(real, storage):
                continue
            try:
                if real.stat().st_size == file.size and real.is_file():
                    return real
            except OSError:
                continue
        return None

    @staticmethod
    def fetchable(file: RemoteFile) -> bool:
        """Whether the listing's etag can name a blob (a hostile listing must not name a path)."""
        return _ETAG.match(file.etag) is not None

    # -- upstream ----------------------------------------------------------------------------------------------

    def _ask(self, trace: Trace, call: Callable[[], T]) -> T:
        started = time.monotonic()
        try:
            return call()
        except NetworkError:
            self._down_until = time.monotonic() + UNREACHABLE_TTL
            raise
        except NotFoundError as error:
            code = "RepoNotFound" if isinstance(error, RepoNotFoundError) else "RevisionNotFound"
            raise HubError(404, error.message, code) from None
        except GatedRepoError as error:
            raise HubError(403, error.message, "GatedRepo") from None
        except AuthError as error:
            raise HubError(403, error.message) from None
        finally:
            trace.upstream += time.monotonic() - started

    def _upstream_listing(self, repo: Repo, commit: str) -> list[RemoteFile]:
        download = Download(self.target(repo, commit), self._lookups, NullSink())
        files = download.metadata.list_files(repo, commit)
        self._served_by(repo, commit, download.mirrors.current)
        store = download.target.store
        try:
            store.prepare()
            store.write_listing(commit, files)
            store.label()
        except (OSError, HfgetError):
            pass  # a read-only cache: served from memory
        return files

    def date(self, repo: Repo, commit: str) -> str | None:
        """The commit's date as upstream gave it, in the Hub's format, if a lookup since the start gave one."""
        with self._lock:
            return self._dates.get((repo, commit))

    def _remember(self, repo: Repo, revision: str, commit: str, date: str | None) -> None:
        with self._lock:
            self._branches[(repo, revision)] = (commit, time.monotonic())
            if date:
                self._dates[(repo, commit)] = hub_date(date)
        try:
            self.store(repo).record_ref(revision, commit)
        except (OSError, StorageError):
            pass  # a read-only cache: the ref stays in memory

    def _served_by(self, repo: Repo, commit: str, endpoint: str) -> None:
        with self._lock:
            self._served[(repo, commit)] = endpoint

    def _not_cached(self, repo: Repo, message: str) -> HubError:
        if not self.store(repo).storage.is_dir():
            return HubError(404, f"Repository {repo} is not in the cache.", "RepoNotFound")
        return HubError(404, message, "RevisionNotFound")


def _inside(path: Path, folder: Path) -> bool:
    return path.is_relative_to(Path(os.path.realpath(folder)))


def _from_snapshot(storage: Path, commit: str) -> list[RemoteFile] | None:
    """A listing rebuilt from the snapshot's links to blobs (a cache written by a client that kept no trees/):
    a 64-hex blob name is an LFS file's sha256, a 40-hex one a git blob sha1 (hub-protocol.md §5)."""
    root = storage / "snapshots" / commit
    if not is_commit(commit) or not root.is_dir():
        return None
    blobs = Path(os.path.realpath(storage / "blobs"))
    files = []
    for link in sorted(root.rglob("*")):
        real = Path(os.path.realpath(link))
        if not link.is_symlink() or real.parent != blobs or not _ETAG.match(real.name) or not real.is_file():
            continue
        size, path = real.stat().st_size, link.relative_to(root).as_posix()
        if len(real.name) == 64:
            files.append(RemoteFile(path, size, _pointer_sha1(real.name, size), lfs_sha256=real.name))
        else:
            files.append(RemoteFile(path, size, real.name))
    return files or None


def _pointer_sha1(sha256: str, size: int) -> str:
    """The git blob sha1 of an LFS pointer file: what the tree calls an LFS file's `oid`."""
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    return hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()

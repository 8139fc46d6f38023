"""`hfget verify`: re-hash what is on disk against the listing, offline when it has to, and repair what is bad.

The commit checked is the one the target holds for the revision: a commit is itself; a branch or tag is read
from `refs/` in the cache, or resolved on the Hub when the cache has no ref (or it cannot be read offline). When
the branch has moved upstream since, the cached commit is still the one checked, and the report says so. The
listing comes from `trees/<commit>.json` when cached (no request at all), else from the Hub. Repair deletes the
bad files (a bad blob is never kept) and downloads exactly the bad and missing ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ._engine import Download
from ._errors import NetworkError, StorageError
from ._events import NullSink, Sink
from ._models import RemoteFile
from ._options import Options
from ._repo import is_commit
from ._select import DEFAULT, Wanted, select
from ._target import resolve_target
from ._verify import check_file


@dataclass(frozen=True)
class FileCheck:
    path: str
    size: int
    status: str  # "ok", "bad" (wrong size or hash) or "missing"
    problem: str | None = None  # for a bad file: what differs


@dataclass(frozen=True)
class VerifyReport:
    repo: str
    revision: str
    commit: str
    path: Path
    files: tuple[FileCheck, ...]
    repaired: tuple[str, ...] = ()
    upstream_commit: str | None = None  # the branch's commit upstream, when it differs from the one checked

    @property
    def ok(self) -> bool:
        return all(f.status == "ok" for f in self.files)


def verify(repo: str, files: Sequence[str], options: Options, wanted: Wanted = DEFAULT, *, repair: bool = False,
           sink: Sink | None = None) -> VerifyReport:
    """Check every selected file of `repo` on disk against its listed size and hash; with `repair`, fetch the
    bad and missing ones again."""
    target = resolve_target(repo, files, options, wanted)
    job = Download(target, options, NullSink())
    commit, upstream = _commit(job)
    chosen = select(job.listing(commit, write=False), target.selection)
    root = target.store.output_path(commit)
    report = VerifyReport(str(target.repo), target.revision, commit, root, _check_all(root, chosen),
                          upstream_commit=upstream)
    if not repair or report.ok:
        return report
    broken = [c.path for c in report.files if c.status != "ok"]
    for check in report.files:
        if check.status == "bad":
            _remove(root / check.path)
    exactly = replace(wanted, revision=commit, include=(), exclude=(), quant=None)  # the broken files, that commit
    Download(resolve_target(repo, broken, options, exactly), options, sink or NullSink()).run()
    return VerifyReport(str(target.repo), target.revision, commit, root, _check_all(root, chosen),
                        repaired=tuple(broken), upstream_commit=upstream)


def _commit(job: Download) -> tuple[str, str | None]:
    """The commit to check, and the upstream one if the branch has moved since."""
    target = job.target
    if is_commit(target.revision):
        return target.revision, None
    cached = target.store.cached_commit(target.revision)
    if target.offline and cached is not None:
        return cached, None
    try:
        upstream = job.resolve()
    except NetworkError:
        if cached is None:
            raise
        return cached, None
    if cached is not None and cached != upstream:
        return cached, upstream
    return upstream, None


def _check_all(root: Path, files: list[RemoteFile]) -> tuple[FileCheck, ...]:
    return tuple(_check(root, f) for f in sorted(files, key=lambda f: f.path))


def _check(root: Path, file: RemoteFile) -> FileCheck:
    target = root / file.path
    if not target.exists():
        return FileCheck(file.path, file.size, "missing")
    problem = check_file(file, target)
    return FileCheck(file.path, file.size, "ok" if problem is None else "bad", problem)


def _remove(path: Path) -> None:
    """A bad file: its blob too (a symlink's target), so nothing wrong stays to be linked again."""
    try:
        if path.is_symlink():
            path.resolve().unlink(missing_ok=True)
        path.unlink(missing_ok=True)
    except OSError as error:
        raise StorageError(f"Cannot remove the bad file {path}: {error.strerror or error}.",
                           hint="Check the permissions of the target folder; the bad file is still there.") from None

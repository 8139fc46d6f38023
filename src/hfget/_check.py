"""`hfget verify`: re-hash what is on disk against the listing, offline when it has to, and repair what is bad.

The listing comes from `trees/<commit>.json` when the commit is known and cached (no request at all), else
from the Hub. The revision is resolved on the Hub when it can be, else from `refs/` in the cache, so a machine
that is offline can still check what it has. Repair deletes the bad files (a bad blob is never kept) and
downloads exactly the bad and missing ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ._errors import NetworkError
from ._events import NullSink, Sink
from ._verify import hash_file


@dataclass(frozen=True)
class FileCheck:
    path: str
    size: int
    status: str  # "ok", "bad" (wrong size or hash) or "missing"


@dataclass(frozen=True)
class VerifyReport:
    repo: str
    commit: str
    path: Path
    files: tuple[FileCheck, ...]
    repaired: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(f.status == "ok" for f in self.files)


def verify(repo: str, files=(), *, repair: bool = False, sink: Sink | None = None, **options) -> VerifyReport:
    """Check every selected file of `repo` on disk against its listed size and hash; with `repair`, re-fetch the
    bad and missing ones. Options are `download`'s (revision, endpoint, mirrors, cache_dir, local_dir, ...)."""
    from ._engine import Download, _settings, resolve_target, select

    transfer_options = {k: options.pop(k) for k in list(options) if k in _TRANSFER_OPTIONS}
    target = resolve_target(repo, files, **options)
    job = Download(target, NullSink(), _settings(**transfer_options))
    job.dry_run = True
    try:
        commit = job._resolve_commit()
    except NetworkError:
        commit = target.store.cached_commit(target.revision)
        if commit is None:
            raise
    selected = select(job._listing(commit), target)
    root = target.store.output_path(commit)
    checks = tuple(_check(root, f) for f in sorted(selected, key=lambda f: f.path))
    report = VerifyReport(str(target.repo), commit, root, checks)
    if not repair or report.ok:
        return report
    broken = [c.path for c in checks if c.status != "ok"]
    for check in checks:
        if check.status == "bad":
            _remove(root / check.path)
    from ._engine import download

    download(repo, broken, sink=sink, **{**options, "revision": commit}, **transfer_options)
    again = tuple(_check(root, f) for f in sorted(selected, key=lambda f: f.path))
    return VerifyReport(str(target.repo), commit, root, again, repaired=tuple(broken))


_TRANSFER_OPTIONS = ("jobs", "max_connections", "connections", "limit_rate", "retries", "stall_timeout")


def _check(root: Path, file) -> FileCheck:
    target = root / file.path
    if not target.exists():
        return FileCheck(file.path, file.size, "missing")
    return FileCheck(file.path, file.size, "ok" if hash_file(file, target) else "bad")


def _remove(path: Path) -> None:
    """A bad file: its blob too (a symlink's target), so nothing wrong stays to be linked again."""
    try:
        if path.is_symlink():
            path.resolve().unlink(missing_ok=True)
        path.unlink(missing_ok=True)
    except OSError:
        pass

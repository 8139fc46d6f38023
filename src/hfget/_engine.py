"""The download, start to end: resolve once, list once, plan, fetch in parallel, publish, report.

    download(repo, ...)                        the public entry point (also `hfget.download`)
      resolve_target()   -> Target             repo, endpoint, revision, token, store: no I/O
      _resolve_commit()  -> commit             a commit needs no request; a branch costs one;
                                               HF_HUB_OFFLINE reads refs/ from the cache
      _listing()         -> [RemoteFile]       trees/<commit>.json if cached, else the Hub's tree (all pages)
      select()           -> [RemoteFile]       FILES, then --include/--exclude (huggingface_hub's matching)
      _plan()            -> Plan               present files skipped, known blobs linked, partials measured
      _run()                                   N worker threads over one httpx2 client; every file fetched at
                                               the one commit resolved at the start, so a push during the
                                               download cannot mix two commits

Events go to the sink (see _events.py); errors are HfgetError subclasses (see _errors.py).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import _resume
from ._cache import CacheStore, LocalDirStore, Store
from ._errors import (
    EntryNotFoundError,
    FileDownloadError,
    IncompleteDownloadError,
    NetworkError,
    NotFoundError,
    StorageError,
    UsageError,
)
from ._events import (
    DownloadFinished,
    DownloadPlanned,
    FileDone,
    FileFailed,
    MetadataRetried,
    MirrorSwitched,
    NullSink,
    PlannedFile,
    RevisionResolved,
    Sink,
)
from ._hub import HubMetadata, RemoteFile
from ._repo import DEFAULT_ENDPOINT, Repo, is_commit, normalize_endpoint, parse_repo, resolve_url

if TYPE_CHECKING:
    from ._settings import TransferSettings


@dataclass(frozen=True)
class Target:
    """Everything a download needs to know before its first request."""

    repo: Repo
    endpoints: tuple[str, ...]  # the endpoint to use, then the mirrors to fail over to
    revision: str
    files: tuple[str, ...]
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    token: str | None = field(repr=False)
    store: Store
    offline: bool
    quant: str | None = None


@dataclass
class Plan:
    commit: str
    selected: list[RemoteFile]
    to_fetch: list[RemoteFile]  # one file per content: files with the same partial path share one fetch
    followers: dict[str, list[RemoteFile]]  # path fetched -> other files of the same content, linked after it
    on_disk: dict[str, int]  # path -> bytes already in its partial file
    report: DownloadPlanned

    @property
    def files_to_write(self) -> int:
        return len(self.to_fetch) + sum(len(f) for f in self.followers.values())


def resolve_target(
    repo: str,
    files: Sequence[str] = (),
    *,
    repo_type: str | None = None,
    revision: str | None = None,
    endpoint: str | None = None,
    mirrors: Sequence[str] = (),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    cache_dir: str | Path | None = None,
    local_dir: str | Path | None = None,
    token: str | None = None,
    quant: str | None = None,
    offline: bool | None = None,
) -> Target:
    """Turn user input into a Target: endpoint = --endpoint, else the --mirrors in order, else the repo URL's
    host, else HF_ENDPOINT, else huggingface.co."""
    from huggingface_hub import constants, get_token

    spec = parse_repo(repo, repo_type=repo_type)
    if endpoint and mirrors:
        raise UsageError("Use --endpoint or --mirror, not both.")
    if endpoint:
        chosen = [endpoint]
    elif mirrors:
        chosen = list(mirrors)
    else:
        chosen = [spec.endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT]
    endpoints = tuple(dict.fromkeys(normalize_endpoint(e) for e in chosen))
    if cache_dir is not None and local_dir is not None:
        raise UsageError("Use --cache-dir or --local-dir, not both.")
    store: Store
    if local_dir is not None:
        store = LocalDirStore(Path(local_dir))
    else:
        store = CacheStore(Path(cache_dir) if cache_dir is not None else Path(constants.HF_HUB_CACHE), spec.repo)
    wanted = tuple(f.strip("/") if not f.endswith("/") else f for f in files)
    if spec.path:
        wanted += (spec.path,)
    return Target(
        repo=spec.repo,
        endpoints=endpoints,
        revision=revision or spec.revision or "main",
        files=wanted,
        include=tuple(include),
        exclude=tuple(exclude),
        token=token or get_token(),
        store=store,
        offline=constants.is_offline_mode() if offline is None else offline,
        quant=quant.strip() if quant else None,
    )


def download(
    repo: str,
    files: Sequence[str] = (),
    *,
    repo_type: str | None = None,
    revision: str | None = None,
    endpoint: str | None = None,
    mirrors: Sequence[str] = (),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    cache_dir: str | Path | None = None,
    local_dir: str | Path | None = None,
    token: str | None = None,
    quant: str | None = None,
    offline: bool | None = None,
    jobs: int = 32,
    max_connections: int = 32,
    connections: int = 8,
    limit_rate: float | None = None,
    retries: int = 5,
    stall_timeout: float = 30.0,
    space_check: bool = True,
    sink: Sink | None = None,
    _dry_run: bool = False,
) -> Path:
    """Download `repo` (or only `files` of it) and return the snapshot folder (or `local_dir`).

    `jobs`: files in flight; `max_connections`: the run's connection budget; `connections`: per large file;
    `limit_rate`: bytes per second for the whole run; `retries`: consecutive transient failures tolerated per file;
    `stall_timeout`: seconds without a byte before a connection is dropped and retried. Raises an `HfgetError` subclass on failure; see
    `hfget.ExitCode` for what each means.
    """
    settings = _settings(jobs=jobs, max_connections=max_connections, connections=connections,
                         limit_rate=limit_rate, retries=retries, stall_timeout=stall_timeout,
                         space_check=space_check)
    target = resolve_target(
        repo, files, repo_type=repo_type, revision=revision, endpoint=endpoint, mirrors=mirrors,
        include=include, exclude=exclude, cache_dir=cache_dir, local_dir=local_dir, token=token, quant=quant,
        offline=offline,
    )
    job = Download(target, sink or NullSink(), settings)
    return job.plan_only() if _dry_run else job.run()


def _settings(*, jobs: int = 32, max_connections: int = 32, connections: int = 8, limit_rate: float | None = None,
              retries: int = 5, stall_timeout: float = 30.0, space_check: bool = True) -> "TransferSettings":
    from ._settings import TransferSettings

    for name, value in (("--jobs", jobs), ("--max-connections", max_connections), ("--connections", connections)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1.")
    if limit_rate is not None and limit_rate <= 0:
        raise UsageError("--limit-rate must be positive.")
    if retries < 0 or stall_timeout <= 0:
        raise UsageError("--retries must be 0 or more and --stall-timeout positive.")
    return TransferSettings(max_connections=max_connections, connections_per_file=min(connections, max_connections),
                            jobs=min(jobs, max_connections), limit_rate=limit_rate, retries=retries,
                            stall_timeout=stall_timeout, space_check=space_check)


def plan(repo: str, files: Sequence[str] = (), **options) -> DownloadPlanned:
    """What `download(repo, files, **options)` would fetch: the matching files, their sizes, which are already
    in the target, the totals and the free space. Requests metadata only; writes nothing."""
    return download(repo, files, _dry_run=True, **options)  # type: ignore[return-value]


class Download:
    def __init__(self, target: Target, sink: Sink, settings: "TransferSettings") -> None:
        self.target = target
        self.sink = sink
        self.settings = settings
        self.endpoint_index = 0
        self.dry_run = False
        self._hub: HubMetadata | None = None
        self._resolved: RevisionResolved | None = None

    @property
    def endpoint(self) -> str:
        return self.target.endpoints[self.endpoint_index]

    @property
    def hub(self) -> HubMetadata:
        if self._hub is None:
            from ._retry import RetryPolicy

            self._hub = HubMetadata(self.endpoint, self.target.token, policy=RetryPolicy(self.settings.retries),
                                    on_retry=lambda what, reason, delay: self.sink.handle(
                                        MetadataRetried(what, reason, delay)))
        return self._hub

    def _metadata(self, call):
        """`call(hub)` on the endpoint in use; if that endpoint cannot answer, on the next mirror."""
        while True:
            try:
                return call(self.hub)
            except NetworkError as error:
                if self.endpoint_index + 1 >= len(self.target.endpoints):
                    raise
                previous = self.endpoint
                self.endpoint_index += 1
                self._hub = None
                self.sink.handle(MirrorSwitched(previous, self.endpoint, error.message))

    def plan_only(self) -> DownloadPlanned:
        """What a run would do, with no file body requested and nothing written."""
        self.dry_run = True
        commit = self._resolve_commit()
        selected = select(self._listing(commit), self.target)
        return self._plan(commit, selected).report

    def run(self) -> Path:
        started = time.monotonic()
        target = self.target
        commit = self._resolve_commit()
        files = self._listing(commit)
        selected = select(files, target)
        target.store.prepare()
        target.store.finish(target.revision, commit)
        plan = self._plan(commit, selected)
        output = target.store.output_path(commit)
        output.mkdir(parents=True, exist_ok=True)
        failures, fetched_bytes = self._run(plan) if plan.to_fetch else ([], 0)
        failed = len(failures) + sum(len(plan.followers.get(f.path, ())) for f in failures)
        self.sink.handle(DownloadFinished(
            path=output, commit=commit, files_fetched=plan.files_to_write - failed,
            bytes_fetched=fetched_bytes, seconds=time.monotonic() - started, failed=failed,
        ))
        if failures:
            raise IncompleteDownloadError(failures, total=len(selected))
        return output

    def _resolve_commit(self) -> str:
        target = self.target
        if is_commit(target.revision):
            commit, endpoint = target.revision, None
        elif target.offline:
            commit, endpoint = target.store.cached_commit(target.revision), None
            if commit is None:
                raise NetworkError(
                    f"HF_HUB_OFFLINE is set and {target.repo}@{target.revision} is not in the cache.",
                    hint="Unset HF_HUB_OFFLINE, or pass the commit with --revision.",
                )
        else:
            commit = self._metadata(lambda hub: hub.resolve_commit(target.repo, target.revision))
            endpoint = self.endpoint
        self._resolved = RevisionResolved(str(target.repo), target.revision, commit, endpoint)
        self.sink.handle(self._resolved)
        return commit

    def _listing(self, commit: str) -> list[RemoteFile]:
        cached = self.target.store.read_listing(commit)
        if cached is not None:
            return cached
        if self.target.offline:
            raise NetworkError(
                f"HF_HUB_OFFLINE is set and the file list of {self.target.repo}@{commit[:12]} is not in the cache.",
                hint="Unset HF_HUB_OFFLINE to download it.",
            )
        files = self._metadata(lambda hub: hub.list_files(self.target.repo, commit))
        if not self.dry_run:
            self.target.store.prepare()
            self.target.store.write_listing(commit, files)
        return files

    def _plan(self, commit: str, selected: list[RemoteFile]) -> Plan:
        store = self.target.store
        if self.dry_run:
            missing = [f for f in selected if not store.is_present(commit, f)]
        else:
            missing = [f for f in selected if not store.is_present(commit, f) and not store.adopt_blob(commit, f)]
        to_fetch: list[RemoteFile] = []
        followers: dict[str, list[RemoteFile]] = {}
        leaders: dict[Path, RemoteFile] = {}
        for file in missing:  # e.g. several empty __init__.py: one blob, fetched once
            leader = leaders.setdefault(store.partial_path(file), file)
            if leader is file:
                to_fetch.append(file)
            else:
                followers.setdefault(leader.path, []).append(file)
        on_disk = {}
        for file in to_fetch:
            resumable = _resume.resumable_bytes(store.partial_path(file), file)
            if resumable:
                on_disk[file.path] = resumable
        missing_bytes = sum(f.size for f in to_fetch) - sum(on_disk.values())
        free = _free_space(store.output_path(commit))
        if to_fetch and self.settings.space_check and not self.dry_run:
            _check_space(store.output_path(commit), missing_bytes, free)
        if to_fetch and self.target.offline and not self.dry_run:
            raise NetworkError(
                f"HF_HUB_OFFLINE is set and {len(to_fetch)} files of {self.target.repo} are not in the cache "
                f"(first: {to_fetch[0].path}).",
                hint="Unset HF_HUB_OFFLINE to download them.",
            )
        absent = {f.path for f in missing}
        report = DownloadPlanned(
            files_total=len(selected),
            bytes_total=sum(f.size for f in selected),
            files_to_fetch=len(missing),
            bytes_to_fetch=sum(f.size for f in to_fetch) - sum(on_disk.values()),
            bytes_on_disk=sum(on_disk.values()),
            repo=str(self.target.repo),
            revision=self.target.revision,
            commit=commit,
            path=store.output_path(commit),
            files=tuple(PlannedFile(f.path, f.size, f.path not in absent, on_disk.get(f.path, 0))
                        for f in sorted(selected, key=lambda f: f.path)),
            free_bytes=free,
        )
        self.sink.handle(report)
        # the largest first: they set the length of the run
        to_fetch.sort(key=lambda f: f.size, reverse=True)
        return Plan(commit, selected, to_fetch, followers, on_disk, report)

    def _run(self, plan: Plan) -> tuple[list[FileDownloadError], int]:
        """Fetch the plan's files (see _transfer.py); publish each as soon as it is verified."""
        from ._transfer import Transfers

        store, commit = self.target.store, plan.commit

        def publish(file: RemoteFile, partial: Path, received: int) -> None:
            store.publish(commit, file, partial)
            self.sink.handle(FileDone(file.path, file.size, received))
            for follower in plan.followers.get(file.path, ()):
                if not store.adopt_blob(commit, follower):
                    raise FileDownloadError(follower.path, f"{follower.path}: could not link it to {file.path}.")
                self.sink.handle(FileDone(follower.path, follower.size, 0))

        def present(file: RemoteFile) -> bool:
            """Another process fetched it while we waited: link it, report it, fetch nothing."""
            if not (store.is_present(commit, file) or store.adopt_blob(commit, file)):
                return False
            self.sink.handle(FileDone(file.path, file.size, 0))
            for follower in plan.followers.get(file.path, ()):
                if store.adopt_blob(commit, follower) or store.is_present(commit, follower):
                    self.sink.handle(FileDone(follower.path, follower.size, 0))
            return True

        settings = dataclasses.replace(self.settings, endpoints=self.target.endpoints[self.endpoint_index:])
        transfers = Transfers(
            endpoint=self.endpoint,
            token=self.target.token,
            sink=self.sink,
            settings=settings,
            partial_path=store.partial_path,
            resolve_url=lambda f, endpoint: resolve_url(endpoint, self.target.repo, commit, f.path),
            on_verified=publish,
            lock_path=store.lock_file(),
            already_done=present,
        )
        failures, received = transfers.run(plan.to_fetch)
        for failure in failures:
            self.sink.handle(FileFailed(failure.path, failure.message))
        return failures, received


def _free_space(target: Path) -> int | None:
    import shutil

    folder = target
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _check_space(target: Path, needed: int, free: int | None) -> None:
    """Stop before the first byte if the files cannot fit (partial files already on disk count as fetched)."""
    if free is None:
        return
    folder = target
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    margin = 16 << 20  # the listing, metadata and filesystem blocks
    if needed + margin > free:
        raise StorageError(
            f"Not enough space at {folder}: {_gb(needed)} GB still to download, {_gb(free)} GB free.",
            hint="Free some space or use another --cache-dir/--local-dir; --no-space-check tries anyway.",
        )


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f}"


def select(files: list[RemoteFile], target: Target) -> list[RemoteFile]:
    """FILES (exact paths, or folders ending in `/`), then --include/--exclude, as huggingface_hub matches them."""
    from huggingface_hub.utils import filter_repo_objects

    chosen = files
    if target.quant:
        from . import _quant

        chosen = [f for f in files if _quant.matches(f.path, target.quant)]
        if not chosen:
            labels = _quant.available([f.path for f in files])
            raise NotFoundError(
                f"No GGUF file of {target.repo}@{target.revision} is quantised {target.quant}.",
                hint=f"Available: {', '.join(labels)}." if labels else "This repo has no GGUF files.",
            )
    if target.files:
        by_path = {f.path: f for f in chosen}
        missing = [p for p in target.files
                   if p not in by_path and not any(f.path.startswith(p.rstrip("/") + "/") for f in chosen)]
        if missing:
            raise EntryNotFoundError(
                f"Not in {target.repo}@{target.revision}: {', '.join(missing)}.",
                hint="Check the path (case matters) and the revision; a folder is written with a trailing '/'.",
            )
        wanted = set(target.files)
        chosen = [f for f in chosen if f.path in wanted
                  or any(f.path.startswith(p.rstrip("/") + "/") for p in wanted)]
    chosen = list(filter_repo_objects(
        chosen,
        allow_patterns=list(target.include) or None,
        ignore_patterns=list(target.exclude) or None,
        key=lambda f: f.path,
    ))
    if not chosen:
        if target.include or target.exclude:
            raise NotFoundError(
                f"No file of {target.repo}@{target.revision} matches the --include/--exclude patterns.",
                hint="Patterns are globs where * also crosses '/'; a pattern ending in '/' means a folder.",
            )
        if files:
            raise NotFoundError(f"Nothing to download from {target.repo}@{target.revision}.")
    return chosen

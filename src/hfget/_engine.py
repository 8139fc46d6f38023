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

import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._cache import CacheStore, LocalDirStore, Store
from ._errors import (
    EntryNotFoundError,
    FileDownloadError,
    HfgetError,
    IncompleteDownloadError,
    InterruptedError_,
    NetworkError,
    NotFoundError,
    UsageError,
)
from ._events import (
    DownloadFinished,
    DownloadPlanned,
    FileDone,
    FileFailed,
    FileStarted,
    NullSink,
    RevisionResolved,
    Sink,
)
from ._hub import HubMetadata, RemoteFile
from ._repo import DEFAULT_ENDPOINT, Repo, is_commit, normalize_endpoint, parse_repo, resolve_url


@dataclass(frozen=True)
class Target:
    """Everything a download needs to know before its first request."""

    repo: Repo
    endpoint: str
    revision: str
    files: tuple[str, ...]
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    token: str | None = field(repr=False)
    store: Store
    offline: bool


@dataclass
class Plan:
    commit: str
    selected: list[RemoteFile]
    to_fetch: list[RemoteFile]  # one file per content: files with the same partial path share one fetch
    followers: dict[str, list[RemoteFile]]  # path fetched -> other files of the same content, linked after it
    on_disk: dict[str, int]  # path -> bytes already in its partial file

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
) -> Target:
    """Turn user input into a Target: endpoint = --endpoint, else the first --mirror, else the repo URL's host,
    else HF_ENDPOINT, else huggingface.co."""
    from huggingface_hub import constants, get_token

    spec = parse_repo(repo, repo_type=repo_type)
    if endpoint and mirrors:
        raise UsageError("Use --endpoint or --mirror, not both.")
    chosen = endpoint or (mirrors[0] if mirrors else None) or spec.endpoint or os.environ.get("HF_ENDPOINT")
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
        endpoint=normalize_endpoint(chosen or DEFAULT_ENDPOINT),
        revision=revision or spec.revision or "main",
        files=wanted,
        include=tuple(include),
        exclude=tuple(exclude),
        token=token or get_token(),
        store=store,
        offline=constants.is_offline_mode(),
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
    jobs: int = 8,
    sink: Sink | None = None,
) -> Path:
    """Download `repo` (or only `files` of it) and return the snapshot folder (or `local_dir`).

    Raises an `HfgetError` subclass on failure; see `hfget.ExitCode` for what each means.
    """
    if jobs < 1:
        raise UsageError("--jobs must be at least 1.")
    target = resolve_target(
        repo, files, repo_type=repo_type, revision=revision, endpoint=endpoint, mirrors=mirrors,
        include=include, exclude=exclude, cache_dir=cache_dir, local_dir=local_dir, token=token,
    )
    return Download(target, sink or NullSink(), jobs=jobs).run()


class Download:
    def __init__(self, target: Target, sink: Sink, *, jobs: int) -> None:
        self.target = target
        self.sink = sink
        self.jobs = jobs
        self._hub: HubMetadata | None = None

    @property
    def hub(self) -> HubMetadata:
        if self._hub is None:
            self._hub = HubMetadata(self.target.endpoint, self.target.token)
        return self._hub

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
            commit, endpoint = self.hub.resolve_commit(target.repo, target.revision), target.endpoint
        self.sink.handle(RevisionResolved(str(target.repo), target.revision, commit, endpoint))
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
        files = self.hub.list_files(self.target.repo, commit)
        self.target.store.prepare()
        self.target.store.write_listing(commit, files)
        return files

    def _plan(self, commit: str, selected: list[RemoteFile]) -> Plan:
        store = self.target.store
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
            try:
                size = store.partial_path(file).stat().st_size
            except OSError:
                continue
            if size <= file.size:
                on_disk[file.path] = size
        if to_fetch and self.target.offline:
            raise NetworkError(
                f"HF_HUB_OFFLINE is set and {len(to_fetch)} files of {self.target.repo} are not in the cache "
                f"(first: {to_fetch[0].path}).",
                hint="Unset HF_HUB_OFFLINE to download them.",
            )
        self.sink.handle(DownloadPlanned(
            files_total=len(selected),
            bytes_total=sum(f.size for f in selected),
            files_to_fetch=len(missing),
            bytes_to_fetch=sum(f.size for f in to_fetch) - sum(on_disk.values()),
            bytes_on_disk=sum(on_disk.values()),
        ))
        # the largest first: they set the length of the run
        to_fetch.sort(key=lambda f: f.size, reverse=True)
        return Plan(commit, selected, to_fetch, followers, on_disk)

    def _run(self, plan: Plan) -> tuple[list[FileDownloadError], int]:
        """Fetch every file of the plan with `jobs` worker threads; return the per-file failures and bytes."""
        from ._transfer import Transfer, make_client

        cancel = threading.Event()
        work: queue.SimpleQueue[RemoteFile] = queue.SimpleQueue()
        for file in plan.to_fetch:
            work.put(file)
        results: queue.SimpleQueue[tuple[RemoteFile, int | BaseException]] = queue.SimpleQueue()
        workers = min(self.jobs, len(plan.to_fetch))
        client = make_client(connections=workers, timeout=30.0)
        transfer = Transfer(client, endpoint=self.target.endpoint, token=self.target.token, sink=self.sink,
                            cancel=cancel)

        def worker() -> None:
            while not cancel.is_set():
                try:
                    file = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    results.put((file, self._fetch_file(transfer, plan, file)))
                except BaseException as error:  # reported to the main thread, which decides
                    results.put((file, error))

        threads = [threading.Thread(target=worker, daemon=True, name=f"hfget-{i}") for i in range(workers)]
        for thread in threads:
            thread.start()
        failures: list[FileDownloadError] = []
        fetched = 0
        try:
            for _ in plan.to_fetch:
                file, outcome = _next_result(results)
                if isinstance(outcome, FileDownloadError):
                    failures.append(outcome)
                    self.sink.handle(FileFailed(file.path, outcome.message))
                elif isinstance(outcome, BaseException):
                    raise outcome
                else:
                    fetched += outcome
        except BaseException as error:
            cancel.set()
            client.close()
            for thread in threads:
                thread.join(timeout=2)
            if isinstance(error, (KeyboardInterrupt, InterruptedError_)):
                raise InterruptedError_() from None
            raise
        client.close()
        return failures, fetched

    def _fetch_file(self, transfer, plan: Plan, file: RemoteFile) -> int:
        store = self.target.store
        partial = store.partial_path(file)
        resumed = plan.on_disk.get(file.path, 0)
        self.sink.handle(FileStarted(file.path, file.size, resumed))
        if file.size == 0:
            partial.touch()
        url = resolve_url(self.target.endpoint, self.target.repo, plan.commit, file.path)
        fetched = transfer.fetch(url, file, partial)
        store.publish(plan.commit, file, partial)
        self.sink.handle(FileDone(file.path, file.size, fetched))
        for follower in plan.followers.get(file.path, ()):
            if not store.adopt_blob(plan.commit, follower):
                raise FileDownloadError(follower.path, f"{follower.path}: could not link it to {file.path}.")
            self.sink.handle(FileDone(follower.path, follower.size, 0))
        return fetched


def _next_result(results: queue.SimpleQueue):
    while True:  # short waits so Ctrl-C reaches the main thread promptly
        try:
            return results.get(timeout=0.2)
        except queue.Empty:
            continue


def select(files: list[RemoteFile], target: Target) -> list[RemoteFile]:
    """FILES (exact paths, or folders ending in `/`), then --include/--exclude, as huggingface_hub matches them."""
    from huggingface_hub.utils import filter_repo_objects

    chosen = files
    if target.files:
        by_path = {f.path: f for f in files}
        missing = [p for p in target.files
                   if p not in by_path and not any(f.path.startswith(p.rstrip("/") + "/") for f in files)]
        if missing:
            raise EntryNotFoundError(
                f"Not in {target.repo}@{target.revision}: {', '.join(missing)}.",
                hint="Check the path (case matters) and the revision; a folder is written with a trailing '/'.",
            )
        wanted = set(target.files)
        chosen = [f for f in files if f.path in wanted
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

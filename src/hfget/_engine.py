"""The download, start to end: resolve once, list once, plan, fetch in parallel, publish, report.

    download(repo, ...) / plan(repo, ...)      the public entry points (`hfget.download`, `hfget.plan`)
      Options.build()      -> Options          flags or keywords > HFGET_* > config file > defaults (_options.py)
      resolve_target()     -> Target           repo, endpoints, revision, token, store: no I/O (_target.py)
      Download.resolve()   -> commit           a commit needs no request; a branch costs one;
                                               HF_HUB_OFFLINE reads refs/ from the cache
      Download.listing()   -> [RemoteFile]     trees/<commit>.json if cached, else the Hub's tree (all pages),
                                               kept there for the next run
      select()             -> [RemoteFile]     FILES, then --quant, --include/--exclude (_select.py)
      Download.plan()      -> Plan             present files skipped, known blobs linked, partials measured
      Download.run()                           the transfers (_transfer.py); every file is fetched at the one
                                               commit resolved at the start, so a push during the download
                                               cannot mix two commits

Work beside the network (_meanwhile.py): while the listing is awaited, a thread imports what the transfers will
need; the listing and CACHEDIR.TAG are written beside the transfers, from their first file done on, instead of
before the first request.

`Download(..., on_written=hook)`: `hook(file, partial, prefix)` hears, while a file is fetched, that its partial
file holds its first `prefix` bytes (unverified; see _transfer.py for the rules). `hfget serve` streams from it.

Nothing is written unless something changed: a complete cache mounted read-only serves a re-run.
Events go to the sink (see _events.py); errors are HfgetError subclasses (see _errors.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ._cache import Store
from ._errors import FileDownloadError, IncompleteDownloadError, NetworkError, StorageError
from ._events import (
    DownloadFinished,
    DownloadPlanned,
    FileDone,
    FileFailed,
    MirrorStale,
    MirrorSwitched,
    NullSink,
    PlannedFile,
    RevisionResolved,
    Sink,
)
from ._hub import Metadata, Served, lacks_commit
from ._meanwhile import Meanwhile
from ._mirrors import Mirrors
from ._models import RemoteFile
from ._network import Network
from ._repo import is_commit, resolve_url
from ._retry import RetryPolicy
from ._select import DEFAULT, Wanted, select
from ._target import Target, resolve_target

if TYPE_CHECKING:
    from . import _fanout
    from ._options import Options
    from ._transfer import OnWritten

TRANSFERS = ("hfget._fanout", "hfget._transfer")  # what a run that fetches imports (_meanwhile.py)
CONFIRM_WAIT = 30.0  # seconds at most for another mirror's answer about a pinned commit (nothing waits for it)


@dataclass
class Plan:
    commit: str
    selected: list[RemoteFile]
    to_fetch: list[RemoteFile]  # one file per content: files with the same partial path share one fetch
    followers: dict[str, list[RemoteFile]]  # path fetched -> other files of the same content, linked after it
    report: DownloadPlanned

    @property
    def files_to_write(self) -> int:
        return len(self.to_fetch) + sum(len(f) for f in self.followers.values())


class Download:
    """One run against one target: resolve, list, plan, fetch, publish."""

    def __init__(self, target: Target, options: Options, sink: Sink, *, on_written: OnWritten | None = None) -> None:
        self.target = target
        self.options = options
        self.sink = sink
        self.on_written = on_written
        self.mirrors = Mirrors(target.endpoints, on_switch=self._switched)
        self.metadata = Metadata(self.mirrors, target.token, policy=RetryPolicy(options.retries), sink=sink,
                                 timeout=options.first_byte_wait("metadata"), network=Network.from_options(options),
                                 deadline=options.metadata_deadline)
        self._later = Meanwhile()  # imports and writes made beside the network
        self._published = threading.Event()  # a file of this run is done: the writes may begin (_meanwhile.py)
        self._prepared = False  # the store's folders are made (listing, plan and run each may need them first)

    def _switched(self, previous: str, endpoint: str, reason: str) -> None:
        self.sink.handle(MirrorSwitched(previous, endpoint, reason))

    def resolve(self) -> str:
        """The commit to fetch: the revision if it is one, else the cache's ref offline, else one request."""
        target = self.target
        revision, endpoint = target.revision, None
        if is_commit(revision):
            commit = revision
        elif target.offline:
            cached = target.store.cached_commit(revision)
            if cached is None:
                raise NetworkError(f"HF_HUB_OFFLINE is set and {target.repo}@{revision} is not in the cache.",
                                   hint="Unset HF_HUB_OFFLINE, or ask for a commit that is on disk "
                                        "instead of a branch or tag.")
            commit = cached
        else:
            commit = self._lookup(revision)
            endpoint = self.mirrors.current
        self.sink.handle(RevisionResolved(str(target.repo), revision, commit, endpoint, pinned=is_commit(revision)))
        return commit

    def _lookup(self, revision: str) -> str:
        """One mirror: ask it. Several: ask them all at once, keep those serving the newest commit (the ranges of
        large files are spread over them: _spread.py)."""
        repo = self.target.repo
        if len(self.mirrors.remaining) == 1:
            return self.metadata.resolve_commit(repo, revision)
        first = self.mirrors.current
        newest, stale = self.metadata.resolve_everywhere(repo, revision)
        for old in stale:
            self.sink.handle(MirrorStale(old.endpoint, revision, old.commit, old.date, newest.endpoint,
                                         newest.commit, newest.date))
        self.mirrors.keep(self.metadata.serving(newest.commit))
        if first in self.metadata.unreachable:
            self.sink.handle(MirrorSwitched(first, self.mirrors.current, self.metadata.unreachable[first]))
        return newest.commit

    def _confirm_mirrors(self, commit: str) -> None:
        """A commit the user pinned (a CI job's `-r <sha>`), with several mirrors and a large file to fetch: ask the
        other mirrors for the commit, each on a thread of its own, while the files are fetched from the first; each
        that answers with the commit takes ranges from then on (Mirrors.confirm, _spread.py), as for a branch, and
        each that says it does not have it (a 404, or another commit) is left out of fail-over too (Mirrors.exclude).
        Nothing waits for these answers (a mirror behind a firewall that drops packets would hold the run up to its
        timeouts), nothing is retried, and a mirror that cannot answer stays for fail-over only, as before. The
        threads are daemons and send no event (a run that ends first is not kept waiting, nor its sink called after
        it ended). A pinned commit's listing and small files cost no lookup; a commit all in the cache asks nothing."""
        if len(self.mirrors.remaining) < 2 or self.target.offline:
            return
        wait = min(self.metadata.timeout, CONFIRM_WAIT)
        lookups = Metadata(self.mirrors, self.target.token, policy=RetryPolicy(0), sink=NullSink(), timeout=wait,
                           network=self.metadata.network, deadline=wait)
        for endpoint in self.mirrors.remaining[1:]:
            threading.Thread(target=self._confirm, args=(lookups, endpoint, commit), daemon=True,
                             name="hfget-mirror-lookup").start()

    def _confirm(self, lookups: Metadata, endpoint: str, commit: str) -> None:
        try:
            answer = lookups.try_lookup(self.target.repo, commit, endpoint)
        except Exception:  # advisory: a traceback from this thread would land in the middle of the progress
            return
        if isinstance(answer, Served) and answer.commit == commit:
            self.mirrors.confirm(endpoint)
        elif isinstance(answer, Served) or lacks_commit(answer):
            self.mirrors.exclude(endpoint)

    def listing(self, commit: str, *, write: bool) -> list[RemoteFile]:
        """The commit's files: from the cache if it has them, else from the Hub (kept in the cache when `write`,
        by the end of the run: _meanwhile.py)."""
        cached = self.target.store.read_listing(commit)
        if cached is not None:
            return cached
        if self.target.offline:
            raise NetworkError(
                f"HF_HUB_OFFLINE is set and the file list of {self.target.repo}@{commit[:12]} is not in the cache.",
                hint="Unset HF_HUB_OFFLINE to download it.",
            )
        if write:
            self._later.warm(TRANSFERS + self.target.store.writers())
        files = self.metadata.list_files(self.target.repo, commit)
        if write:
            self._prepare()
            self._later.add(lambda: self.target.store.write_listing(commit, files))
        return files

    def plan(self, *, dry_run: bool = False) -> Plan:
        """What a run would fetch. With `dry_run` no file body is requested and nothing is written."""
        with self._later.settled():
            return self._planned(dry_run=dry_run)

    def _planned(self, *, dry_run: bool) -> Plan:
        commit = self.resolve()
        selected = select(self.listing(commit, write=not dry_run), self.target.selection)
        return self._plan(commit, selected, dry_run=dry_run)

    def run(self) -> Path:
        started = time.monotonic()
        with self._later.settled():  # the listing is kept even if the run fails before its transfers
            plan = self._planned(dry_run=False)
            store, commit = self.target.store, plan.commit
            output = store.output_path(commit)
            if plan.to_fetch or not output.is_dir():
                self._prepare()
                output.mkdir(parents=True, exist_ok=True)
            store.record_ref(self.target.revision, commit)
            if is_commit(self.target.revision) and any(self.options.splits(f.size) for f in plan.to_fetch):
                self._confirm_mirrors(commit)
            self._later.warmed()  # before a fork (_fetch)
            failures, fetched_bytes = self._fetch(plan) if plan.to_fetch else ([], 0)
        failed = len(failures) + sum(len(plan.followers.get(f.path, ())) for f in failures)
        self.sink.handle(DownloadFinished(
            path=output, commit=commit, files_fetched=plan.files_to_write - failed,
            bytes_fetched=fetched_bytes, seconds=time.monotonic() - started, failed=failed,
        ))
        if failures:
            raise IncompleteDownloadError(failures, total=len(plan.selected))
        return output

    def _plan(self, commit: str, selected: list[RemoteFile], *, dry_run: bool) -> Plan:
        store = self.target.store
        absent = store.absent(commit, selected)
        if absent and not dry_run:
            self._prepare()
        linked = {f.path for f in store.may_adopt(absent)
                  if (store.can_adopt(f) if dry_run else store.adopt(commit, f))}
        missing = [f for f in absent if f.path not in linked]
        partials = {f.path: store.partial_path(f) for f in missing}  # one Path per file: ~3 us each
        to_fetch, followers = _leaders(missing, partials)
        on_disk = _partials(to_fetch, partials)
        free = _free_space(store.output_path(commit))
        missing_bytes = sum(f.size for f in to_fetch) - sum(on_disk.values())
        if to_fetch and not dry_run:
            self._check_can_fetch(to_fetch, missing_bytes, free, store.output_path(commit))
        missing_paths = {f.path for f in missing}
        report = DownloadPlanned(
            files_total=len(selected), bytes_total=sum(f.size for f in selected), files_to_fetch=len(missing),
            bytes_to_fetch=missing_bytes, bytes_on_disk=sum(on_disk.values()), repo=str(self.target.repo),
            revision=self.target.revision, commit=commit, path=store.output_path(commit),
            files=tuple(PlannedFile(f.path, f.size, f.path not in missing_paths, on_disk.get(f.path, 0))
                        for f in sorted(selected, key=lambda f: f.path)),
            free_bytes=free, endpoint=self.mirrors.current, dry_run=dry_run,
        )
        self.sink.handle(report)
        if not dry_run and len(missing) < len(selected):
            in_place = [f for f in selected if f.path not in missing_paths]
            self._later.add(lambda: _drop_leftovers(store, in_place))
        to_fetch.sort(key=lambda f: f.size, reverse=True)  # the largest first: they set the length of the run
        return Plan(commit, selected, to_fetch, followers, report)

    def _check_can_fetch(self, to_fetch: list[RemoteFile], missing_bytes: int, free: int | None,
                         output: Path) -> None:
        if self.target.offline:
            raise NetworkError(
                f"HF_HUB_OFFLINE is set and {len(to_fetch)} files of {self.target.repo} are not in the cache "
                f"(first: {to_fetch[0].path}).",
                hint="Unset HF_HUB_OFFLINE to download them.",
            )
        if self.options.space_check:
            _check_space(output, missing_bytes, free)

    def _fetch(self, plan: Plan) -> tuple[list[FileDownloadError], int]:
        """Fetch the plan's files; with many small files, half of them in a helper process (_fanout.py)."""
        from . import _fanout

        split = _fanout.share(plan.to_fetch, plan.followers, self.options, hooked=self.on_written is not None)
        if split is None:
            with self._later.meanwhile(self._published):
                return self.transfer(plan.commit, plan.to_fetch, plan.followers)
        target = replace(self.target, endpoints=tuple(self.mirrors.remaining))  # the mirrors in use, in order
        helper = _fanout.Helper.start(target, plan.commit, split.theirs, split.helped, self.sink)
        try:
            with self._later.meanwhile(self._published):  # after the fork: a thread must not be running then
                failures, received = self.transfer(plan.commit, split.kept, plan.followers, split.own,
                                                   helper=helper)
            more, extra, left = helper.finish()
            if left:  # the helper could not start, or died: this process fetches what it did not report
                failures_left, received_left = self.transfer(plan.commit, left, {})
                more, extra = more + failures_left, extra + received_left
            return failures + more, received + extra
        finally:
            helper.stop()

    def _prepare(self) -> None:
        """The store's folders, made now, once; its label (CACHEDIR.TAG) is left for later."""
        if self._prepared:
            return
        self.target.store.prepare()
        self._later.add(self.target.store.label)
        self._prepared = True

    def transfer(self, commit: str, files: list[RemoteFile], followers: dict[str, list[RemoteFile]],
                 options: Options | None = None, *, helper: _fanout.Helper | None = None,
                 ) -> tuple[list[FileDownloadError], int]:
        """Fetch `files` (see _transfer.py); publish each as soon as it is verified, then the files `followers`
        lists after it. `helper`, a helper process beside, stops these transfers if it meets an error that ends a
        run."""
        from ._transfer import Destination, Transfers

        store, repo = self.target.store, self.target.repo
        publisher = _Publisher(store, commit, followers, self.sink, self._published)
        destination = Destination(
            partial_path=store.partial_path,
            resolve_url=lambda f, endpoint: resolve_url(endpoint, repo, commit, f.path),
            on_verified=publisher.publish, already_done=publisher.already_done, lock_path=store.lock_file(),
            on_written=self.on_written,
        )
        transfers = Transfers(mirrors=self.mirrors, token=self.target.token, sink=self.sink,
                              options=self.options if options is None else options, destination=destination)
        if helper is not None:
            helper.when_fatal(transfers.abort)
        failures, received = transfers.run(files)
        for failure in failures:
            self.sink.handle(FileFailed(failure.path, failure.message))
        return failures, received


@dataclass
class _Publisher:
    """Puts verified files in place and links the files of the same content after them."""

    store: Store
    commit: str
    followers: dict[str, list[RemoteFile]]
    sink: Sink
    published: threading.Event

    def publish(self, file: RemoteFile, partial: Path, received: int) -> None:
        self.store.publish(self.commit, file, partial)
        if not self.published.is_set():
            self.published.set()
        self.sink.handle(FileDone(file.path, file.size, received))
        for follower in self.followers.get(file.path, ()):
            if not self.store.adopt(self.commit, follower):
                raise FileDownloadError(follower.path, f"{follower.path}: could not link it to {file.path}.")
            self.sink.handle(FileDone(follower.path, follower.size, 0))

    def already_done(self, file: RemoteFile) -> bool:
        """Another process fetched it while we waited: link it, report it, fetch nothing."""
        if not (self.store.is_present(self.commit, file) or self.store.adopt(self.commit, file)):
            return False
        self.sink.handle(FileDone(file.path, file.size, 0))
        for follower in self.followers.get(file.path, ()):
            if self.store.adopt(self.commit, follower) or self.store.is_present(self.commit, follower):
                self.sink.handle(FileDone(follower.path, follower.size, 0))
        return True


def _leaders(missing: list[RemoteFile], partials: dict[str, Path],
             ) -> tuple[list[RemoteFile], dict[str, list[RemoteFile]]]:
    """One fetch per content (e.g. several empty __init__.py: one blob, one partial); the others follow it."""
    to_fetch: list[RemoteFile] = []
    followers: dict[str, list[RemoteFile]] = {}
    leaders: dict[Path, RemoteFile] = {}
    for file in missing:
        leader = leaders.setdefault(partials[file.path], file)
        if leader is file:
            to_fetch.append(file)
        else:
            followers.setdefault(leader.path, []).append(file)
    return to_fetch, followers


def _drop_leftovers(store: Store, in_place: list[RemoteFile]) -> None:
    """Remove the partials left for files that are in place (_ownership.drop_leftovers). None of them is one this
    run fetches into: a file of the same content is linked from the blob that is there (`adopt`), not fetched,
    and a partial a worker has claimed bears a live run's name."""
    from ._ownership import drop_leftovers

    for parked in store.finished_partials(in_place):
        drop_leftovers(parked)


def _partials(to_fetch: list[RemoteFile], partials: dict[str, Path]) -> dict[str, int]:
    """Bytes already in partial files, by path (none to look at on a re-run with everything present)."""
    if not to_fetch:
        return {}
    from . import _ownership

    return {f.path: n for f in to_fetch if (n := _ownership.resumable_bytes(partials[f.path], f))}


def _existing_folder(target: Path) -> Path:
    folder = target
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _free_space(target: Path) -> int | None:
    import shutil

    try:
        return shutil.disk_usage(_existing_folder(target)).free
    except OSError:
        return None


def _check_space(target: Path, needed: int, free: int | None) -> None:
    """Stop before the first byte if the files cannot fit (partial files already on disk count as fetched)."""
    margin = 16 << 20  # the listing, metadata and filesystem blocks
    if free is not None and needed + margin > free:
        from rich.filesize import decimal

        raise StorageError(
            f"Not enough space at {_existing_folder(target)}: {decimal(needed)} still to download, "
            f"{decimal(free)} free.",
            hint="Free some space or use another --cache-dir/--local-dir; --no-space-check tries anyway.",
        )


def run_download(repo: str, files: Sequence[str], options: Options, wanted: Wanted = DEFAULT,
                 sink: Sink | None = None, *, dry_run: bool = False) -> Path | DownloadPlanned:
    target = resolve_target(repo, files, options, wanted)
    job = Download(target, options, sink or NullSink())
    return job.plan(dry_run=True).report if dry_run else job.run()

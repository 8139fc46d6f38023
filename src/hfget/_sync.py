"""`hfget sync`: the repos of a manifest (`hfget.toml`), pinned in `hfget.lock`. What a CI prefetch step runs.

    [defaults]                      # optional, applies to every repo
    mirror = ["hf-mirror.com"]

    [[repo]]
    id = "org/model"                # or "datasets/org/name", or a page URL
    type = "model"                  # optional: model, dataset, space
    revision = "main"               # optional
    include = ["*.json", "*.safetensors"]
    exclude = []
    quant = "Q4_K_M"                # optional, GGUF repos
    local_dir = "models/model"      # optional: plain files instead of the cache (relative to the manifest)

`sync` resolves each revision to a commit, downloads it, and writes `hfget.lock` (JSON: each repo's entry and
its commit). `--frozen` downloads exactly the locked commits (and fails if the manifest no longer matches the
lock); `--offline` sends no request and only checks that the cache holds every locked file (exit 0 or 1).
Repos are fetched at the same time, sharing one connection budget (`max_connections`, split evenly).
"""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._diskio import write_atomically
from ._engine import Download
from ._errors import NetworkError, UsageError
from ._events import Event, NullSink, RevisionResolved, Sink
from ._options import Options, check_keys, names, read_toml
from ._select import Wanted
from ._target import resolve_target

LOCK_VERSION = 1
_ENTRY_KEYS = ("id", "type", "revision", "include", "exclude", "quant", "local_dir")


@dataclass(frozen=True)
class Entry:
    id: str
    type: str | None = None
    revision: str = "main"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    quant: str | None = None
    local_dir: str | None = None

    def key(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class SyncResult:
    entry: Entry
    commit: str
    path: Path | None  # None when nothing of the repo is on disk
    missing: list[str] = field(default_factory=list)


def read_manifest(path: Path) -> tuple[dict[str, Any], list[Entry]]:
    data = read_toml(path)
    check_keys(data, ("defaults", "repo"), where=str(path))
    defaults = data.get("defaults", {})
    check_keys(defaults, ("mirror",), where=f"{path} [defaults]")
    entries = []
    for raw in data.get("repo", []):
        check_keys(raw, _ENTRY_KEYS, where=f"{path} [[repo]]")
        if "id" not in raw:
            raise UsageError(f"{path}: a [[repo]] has no id.", hint='Add id = "org/name".')
        entries.append(Entry(
            id=_text(raw["id"], "id", path), type=_optional(raw.get("type"), "type", path),
            revision=_text(raw.get("revision", "main"), "revision", path),
            include=names(raw.get("include", ()), f"{path} [[repo]] include"),
            exclude=names(raw.get("exclude", ()), f"{path} [[repo]] exclude"),
            quant=_optional(raw.get("quant"), "quant", path),
            local_dir=_optional(raw.get("local_dir"), "local_dir", path),
        ))
    if not entries:
        raise UsageError(f"{path} lists no [[repo]].")
    return defaults, entries


def _text(value: Any, key: str, path: Path) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{path}: {key} must be a string.")
    return value


def _optional(value: Any, key: str, path: Path) -> str | None:
    return None if value is None else _text(value, key, path)


def lock_path(manifest: Path) -> Path:
    return manifest.with_name("hfget.lock")


def read_lock(manifest: Path) -> dict[str, str]:
    """Entry key (as JSON) -> commit."""
    try:
        data = json.loads(lock_path(manifest).read_text())
    except FileNotFoundError:
        return {}
    except ValueError as error:
        raise UsageError(f"{lock_path(manifest)} is not valid JSON: {error}.") from None
    if not isinstance(data, dict) or data.get("version") != LOCK_VERSION:
        raise UsageError(f"{lock_path(manifest)} has an unknown version.", hint="Run `hfget sync` to rewrite it.")
    try:
        return {json.dumps(item["entry"], sort_keys=True): str(item["commit"]) for item in data.get("repos", [])}
    except (KeyError, TypeError) as error:
        raise UsageError(f"{lock_path(manifest)} is not a lock hfget wrote ({error!r} missing or wrong).",
                         hint="Delete it and run `hfget sync` to write it again.") from None


def write_lock(manifest: Path, results: list[SyncResult]) -> None:
    data = {"version": LOCK_VERSION, "repos": [{"entry": r.entry.key(), "commit": r.commit} for r in results]}
    write_atomically(lock_path(manifest), json.dumps(data, indent=2) + "\n")


@dataclass(frozen=True)
class _Job:
    entry: Entry
    commit: str | None  # the locked commit, if any
    options: Options

    @property
    def revision(self) -> str:
        return self.commit or self.entry.revision


def sync(manifest: Path, options: Options, *, frozen: bool = False, offline: bool = False,
         sink: Sink | None = None) -> list[SyncResult]:
    defaults, entries = read_manifest(manifest)
    locked = read_lock(manifest) if (frozen or offline) else {}
    if (frozen or offline) and not locked:
        raise UsageError(f"--frozen and --offline need {lock_path(manifest)}.", hint="Run `hfget sync` once first.")
    if options.origins.get("mirror") in (None, "default", "config file") and defaults.get("mirror"):
        mirrors = names(defaults["mirror"], f"{manifest} [defaults] mirror")  # configured: --endpoint, HF_ENDPOINT
        options = dataclasses.replace(options, mirror=mirrors,  # and a URL id still name the endpoint first
                                      origins={**options.origins, "mirror": "config file"})
    jobs = [_job(manifest, entry, locked, options, pinned=frozen or offline) for entry in entries]
    if offline:
        return [_check_offline(job) for job in jobs]
    results = _fetch_all(jobs, sink or NullSink())
    if not frozen:
        write_lock(manifest, results)
    return results


def _job(manifest: Path, entry: Entry, locked: dict[str, str], options: Options, *, pinned: bool) -> _Job:
    commit = locked.get(json.dumps(entry.key(), sort_keys=True))
    if pinned and commit is None:
        raise UsageError(f"{entry.id} is in {manifest.name} but not in hfget.lock (or its entry changed).",
                         hint="Run `hfget sync` without --frozen to update the lock.")
    if entry.local_dir:
        options = dataclasses.replace(options, local_dir=manifest.parent / entry.local_dir, cache_dir=None)
    return _Job(entry, commit, options)


def _download(job: _Job, sink: Sink, *, options: Options | None = None) -> Download:
    entry = job.entry
    wanted = Wanted(repo_type=entry.type, revision=job.revision, include=entry.include, exclude=entry.exclude,
                    quant=entry.quant)
    target = resolve_target(entry.id, (), options or job.options, wanted)
    return Download(target, options or job.options, sink)


def _check_offline(job: _Job) -> SyncResult:
    assert job.commit is not None
    options = dataclasses.replace(job.options, offline=True)
    try:
        report = _download(job, NullSink(), options=options).plan(dry_run=True).report
    except NetworkError:  # not even the file list is on disk
        return SyncResult(job.entry, job.commit, None, ["(the whole repo: not on disk)"])
    return SyncResult(job.entry, report.commit, report.path, [f.path for f in report.files if not f.present])


def _fetch_all(jobs: list[_Job], sink: Sink) -> list[SyncResult]:
    """Every repo at once, in daemon threads (Ctrl-C must not wait for them), within one connection budget."""
    budget = jobs[0].options.max_connections
    share = max(1, budget // len(jobs))
    outcomes: queue.SimpleQueue[tuple[int, SyncResult | BaseException]] = queue.SimpleQueue()

    def fetch(index: int, job: _Job) -> None:
        recorder = _CommitRecorder(sink, job.entry.id)
        options = dataclasses.replace(job.options, max_connections=share, jobs=min(job.options.jobs, share),
                                      connections=min(job.options.connections, share))
        try:
            path = _download(job, recorder, options=options).run()
            outcomes.put((index, SyncResult(job.entry, recorder.commit, path)))
        except BaseException as error:  # handed to the main thread
            outcomes.put((index, error))

    for index, job in enumerate(jobs):
        threading.Thread(target=fetch, args=(index, job), daemon=True).start()
    results: dict[int, SyncResult] = {}
    errors = []
    for _ in jobs:
        index, outcome = _next(outcomes)
        if isinstance(outcome, BaseException):
            errors.append(outcome)
        else:
            results[index] = outcome
    if errors:
        raise errors[0]
    return [results[i] for i in range(len(jobs))]


_Outcome = tuple[int, SyncResult | BaseException]


def _next(outcomes: queue.SimpleQueue[_Outcome]) -> _Outcome:
    while True:  # short waits, so Ctrl-C reaches the main thread
        try:
            return outcomes.get(timeout=0.2)
        except queue.Empty:
            continue


class _CommitRecorder:
    """Passes events on, and keeps the commit the run resolved (for the lock)."""

    def __init__(self, sink: Sink, repo: str) -> None:
        for_repo = getattr(sink, "for_repo", None)  # a sink that shows several repos at once names each
        self.sink: Sink = for_repo(repo) if for_repo is not None else sink
        self.commit = ""

    def handle(self, event: Event) -> None:
        if isinstance(event, RevisionResolved):
            self.commit = event.commit
        self.sink.handle(event)

    def advance(self, path: str, nbytes: int) -> None:
        self.sink.advance(path, nbytes)

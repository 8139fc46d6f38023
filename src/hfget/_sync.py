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

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ._errors import NetworkError, UsageError
from ._events import NullSink, Sink

LOCK_VERSION = 1


@dataclass(frozen=True)
class Entry:
    id: str
    type: str | None = None
    revision: str = "main"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    quant: str | None = None
    local_dir: str | None = None

    def key(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class SyncResult:
    entry: Entry
    commit: str
    path: Path
    missing: list[str] = field(default_factory=list)


def _load_toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"No manifest at {path}.", hint="Write an hfget.toml with [[repo]] entries.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"{path} is not valid TOML: {error}.") from None


def read_manifest(path: Path) -> tuple[dict, list[Entry]]:
    data = _load_toml(path)
    defaults = data.get("defaults", {})
    entries = []
    for raw in data.get("repo", []):
        unknown = set(raw) - {"id", "type", "revision", "include", "exclude", "quant", "local_dir"}
        if "id" not in raw or unknown:
            raise UsageError(f"{path}: each [[repo]] needs an id and only known keys (unknown: {sorted(unknown)}).")
        entries.append(Entry(
            id=raw["id"], type=raw.get("type"), revision=raw.get("revision", "main"),
            include=tuple(raw.get("include", ())), exclude=tuple(raw.get("exclude", ())),
            quant=raw.get("quant"), local_dir=raw.get("local_dir"),
        ))
    if not entries:
        raise UsageError(f"{path} lists no [[repo]].")
    return defaults, entries


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
    if data.get("version") != LOCK_VERSION:
        raise UsageError(f"{lock_path(manifest)} has an unknown version.", hint="Run `hfget sync` to rewrite it.")
    return {json.dumps(item["entry"], sort_keys=True): item["commit"] for item in data.get("repos", [])}


def write_lock(manifest: Path, results: list[SyncResult]) -> None:
    data = {"version": LOCK_VERSION,
            "repos": [{"entry": r.entry.key(), "commit": r.commit} for r in results]}
    path = lock_path(manifest)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def sync(manifest: Path, *, frozen: bool = False, offline: bool = False, sink: Sink | None = None,
         **options) -> list[SyncResult]:
    defaults, entries = read_manifest(manifest)
    locked = read_lock(manifest) if (frozen or offline) else {}
    if (frozen or offline) and not locked:
        raise UsageError(f"--frozen and --offline need {lock_path(manifest)}.", hint="Run `hfget sync` once first.")
    if "mirrors" not in options or not options["mirrors"]:
        options["mirrors"] = tuple(defaults.get("mirror", ()))
    jobs = []
    for entry in entries:
        key = json.dumps(entry.key(), sort_keys=True)
        commit = locked.get(key)
        if (frozen or offline) and commit is None:
            raise UsageError(f"{entry.id} is in {manifest.name} but not in hfget.lock (or its entry changed).",
                             hint="Run `hfget sync` without --frozen to update the lock.")
        local_dir = (manifest.parent / entry.local_dir) if entry.local_dir else None
        args = dict(options, repo_type=entry.type, revision=commit or entry.revision, include=entry.include,
                    exclude=entry.exclude, quant=entry.quant, local_dir=local_dir)
        if local_dir is not None:
            args["cache_dir"] = None  # this repo goes to its own folder
        jobs.append((entry, commit, args))
    if offline:
        return [_check_offline(entry, commit, args) for entry, commit, args in jobs]
    results = _fetch_all(jobs, sink or NullSink())
    if not frozen:
        write_lock(manifest, results)
    return results


def _check_offline(entry: Entry, commit: str, args: dict) -> SyncResult:
    from ._engine import plan

    try:
        report = plan(entry.id, offline=True, **args)
    except NetworkError:  # not even the file list is in the cache
        return SyncResult(entry, commit, Path(), ["(the whole repo)"])
    return SyncResult(entry, report.commit, report.path, [f.path for f in report.files if not f.present])


def _fetch_all(jobs: list, sink: Sink) -> list[SyncResult]:
    """Every repo at once, in daemon threads (Ctrl-C must not wait for them), within one connection budget."""
    import queue
    import threading

    from ._engine import download

    budget = jobs[0][2].pop("max_connections", None) or 32
    share = max(1, budget // len(jobs))
    outcomes: queue.SimpleQueue = queue.SimpleQueue()

    def fetch(index: int, entry: Entry, args: dict) -> None:
        recorder = _CommitRecorder(sink)
        try:
            args.pop("max_connections", None)
            path = download(entry.id, sink=recorder, max_connections=share, jobs=share,
                            connections=min(8, share), **args)
            outcomes.put((index, SyncResult(entry, recorder.commit, path)))
        except BaseException as error:  # handed to the main thread
            outcomes.put((index, error))

    for index, (entry, _, args) in enumerate(jobs):
        threading.Thread(target=fetch, args=(index, entry, args), daemon=True).start()
    results: dict[int, SyncResult] = {}
    errors = []
    for _ in jobs:
        while True:
            try:
                index, outcome = outcomes.get(timeout=0.2)
                break
            except queue.Empty:
                continue
        if isinstance(outcome, BaseException):
            errors.append(outcome)
        else:
            results[index] = outcome
    if errors:
        raise errors[0]
    return [results[i] for i in range(len(jobs))]


class _CommitRecorder:
    """Passes events on, and keeps the commit the run resolved (for the lock)."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.commit = ""

    def handle(self, event) -> None:
        from ._events import RevisionResolved

        if isinstance(event, RevisionResolved):
            self.commit = event.commit
        self.sink.handle(event)

    def advance(self, path: str, nbytes: int) -> None:
        self.sink.advance(path, nbytes)

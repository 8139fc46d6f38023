"""The resume sidecar of a multi-connection download: which byte ranges of the partial file are written.

`<partial minus .incomplete>.ranges`, JSON: {"version": 1, "size": N, "etag": "...", "done": [[a, b], ...]}
(half-open ranges). It is written to a temporary name and renamed, so a reader sees an old or a new state,
never half of one; it only ever lists bytes whose write had returned, so a run killed at any instant leaves a
state that understates the partial file, never one that overstates it. It is trusted only when its version,
size and etag match the listing; anything else means "start this file again".

A partial file with no sidecar was written front to back (a single-connection download): its length is
what is done.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path

from ._hub import RemoteFile
from ._pieces import Range, merge

VERSION = 1


def state_path(partial: Path) -> Path:
    return partial.with_name(partial.name.removesuffix(".incomplete") + ".ranges")


def load(partial: Path, file: RemoteFile) -> list[Range]:
    """The ranges of `partial` already written for `file` (empty when nothing can be trusted)."""
    try:
        on_disk = partial.stat().st_size
    except FileNotFoundError:
        return []
    try:
        text = state_path(partial).read_text()
    except FileNotFoundError:
        return [(0, on_disk)] if 0 < on_disk <= file.size else []
    except OSError:
        return []
    try:
        state = json.loads(text)
        if state["version"] != VERSION or state["size"] != file.size or state["etag"] != file.etag:
            return []
        ranges = [(int(a), int(b)) for a, b in state["done"]]
    except (ValueError, KeyError, TypeError):
        return []
    if any(a < 0 or b > min(file.size, on_disk) or a > b for a, b in ranges):
        return []
    return merge(ranges)


def save(partial: Path, file: RemoteFile, done: list[Range]) -> None:
    path = state_path(partial)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps({"version": VERSION, "size": file.size, "etag": file.etag,
                               "done": [list(r) for r in done]}))
    os.replace(tmp, path)


def discard(partial: Path) -> None:
    partial.unlink(missing_ok=True)
    state_path(partial).unlink(missing_ok=True)


# -- who owns a partial file -------------------------------------------------------------------------------------
#
# A partial file at rest (a run stopped, or died) has the "parked" name `<...>.hfget.incomplete`. A run that
# works on it first renames it to a name of its own, `<...>.hfget-<host>-<pid>-<random>.incomplete`: a rename is
# atomic, so of several processes (four CI jobs on one cache) exactly one gets it, and no two ever write one
# file, whether or not the advisory locks work (on NFS and Lustre `flock` may silently do nothing). A run that
# stops parks its partial again; one that is killed leaves its own name behind, which a later run adopts once
# that process is gone (same host, dead pid) or the file has not changed for an hour.

_HOST = socket.gethostname().replace(".", "_").replace("-", "_") or "host"
_STALE = 3600.0


def _base(parked: Path) -> str:
    return parked.name.removesuffix(".hfget.incomplete")


def owned_name(parked: Path) -> Path:
    return parked.with_name(f"{_base(parked)}.hfget-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:6]}.incomplete")


_LISTINGS: dict[Path, tuple[float, dict[str, list[str]]]] = {}
_LISTING_TTL = 5.0


def _owned_names(folder: Path) -> dict[str, list[str]]:
    """Partials owned by some process in `folder`, by base name: one directory scan per folder, not per file
    (a repo of thousands of files would otherwise scan its blobs folder thousands of times)."""
    now = time.monotonic()
    cached = _LISTINGS.get(folder)
    if cached is not None and now - cached[0] < _LISTING_TTL:
        return cached[1]
    names: dict[str, list[str]] = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                base, marker, _ = entry.name.partition(".hfget-")
                if marker and entry.name.endswith(".incomplete"):
                    names.setdefault(base, []).append(entry.name)
                elif entry.name.endswith(".hfget.incomplete"):
                    names.setdefault(entry.name.removesuffix(".hfget.incomplete"), []).append(entry.name)
    except OSError:
        pass
    _LISTINGS[folder] = (now, names)
    return names


def _orphans(parked: Path) -> list[Path]:
    found = []
    base = _base(parked)
    for name in _owned_names(parked.parent).get(base, ()):
        if name == parked.name:
            continue
        path = parked.parent / name
        owner = name[len(base) + len(".hfget-"):].removesuffix(".incomplete").split("-")
        try:
            host, pid = owner[0], int(owner[1])
            age = time.time() - path.stat().st_mtime
        except (IndexError, ValueError, OSError):
            continue
        if (host == _HOST and not _alive(pid)) or age > _STALE:
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
    """A partial of our own for this file: the parked one or an orphan if there is one (renamed), else a new name."""
    owned = owned_name(parked)
    if _quiet(parked):
        return owned  # nothing to take over: spare the failing renames (this runs for every file)
    for candidate in [parked, *_orphans(parked)]:
        try:
            os.rename(state_path(candidate), state_path(owned))
        except FileNotFoundError:
            pass
        try:
            os.rename(candidate, owned)
            return owned
        except FileNotFoundError:
            state_path(owned).unlink(missing_ok=True)  # someone else took that partial first
    return owned


def _quiet(parked: Path) -> bool:
    """No partial of this file in its folder, as of a scan at most a few seconds old."""
    return _base(parked) not in _owned_names(parked.parent)


def park(owned: Path, parked: Path) -> None:
    """Hand our partial to the next run under the parked name (unless another run parked one meanwhile)."""
    if not owned.exists():
        return
    try:
        os.link(owned, parked)  # never replaces: an existing parked partial stays as it is
    except FileExistsError:
        return
    except OSError:
        return  # no hard links here: the partial stays under our name, adopted later as an orphan
    try:
        os.replace(state_path(owned), state_path(parked))
    except FileNotFoundError:
        pass
    owned.unlink(missing_ok=True)


def resumable_bytes(parked: Path, file: RemoteFile) -> int:
    """Bytes of `file` a run can take over from the parked partial or an orphan (for the plan's numbers)."""
    best = 0
    for candidate in [parked, *_orphans(parked)]:
        best = max(best, sum(b - a for a, b in load(candidate, file)))
    return best

"""The resume sidecar of a multi-connection download: which byte ranges of the partial file are written.

`<partial minus .incomplete>.ranges`, JSON: {"version": 1, "size": N, "etag": "...", "done": [[a, b], ...]}
(half-open ranges). It is written to a temporary name and renamed, so a reader sees an old or a new state,
never half of one; it only ever lists bytes whose write had returned, so a run killed at any instant leaves a
state that understates the partial file, never one that overstates it. It is trusted only when its version,
size and etag match the listing; anything else means "start this file again".

A partial file with no sidecar was written front to back (a single-connection download): its length is
what is done. Who owns a partial, and parking it between runs, is _ownership.py's business.
"""

from __future__ import annotations

import json
from pathlib import Path

from ._diskio import write_atomically
from ._models import RemoteFile
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
    write_atomically(state_path(partial), json.dumps({"version": VERSION, "size": file.size, "etag": file.etag,
                                                      "done": [list(r) for r in done]}))


def discard(partial: Path) -> None:
    partial.unlink(missing_ok=True)
    state_path(partial).unlink(missing_ok=True)

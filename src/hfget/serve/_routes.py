"""What a request asks for: the Hub routes `hfget serve` answers, parsed from the raw path, validated, no I/O.

    GET  /api/{models|datasets|spaces}/{repo}[/revision/{rev}]        revision info
    GET  /api/{...}/{repo}/tree/{rev}[/{path}]                         the tree (paginated)
    POST /api/{...}/{repo}/paths-info/{rev}                            entries for given paths
    HEAD|GET /[datasets/|spaces/]{repo}/resolve/{rev}/{path}           file bytes

The raw path is split before each segment is percent-decoded once (hub-protocol.md §1: a revision travels as
`refs%2Fpr%2F1`). Nothing here is trusted to keep a request inside the cache: a repo id is `[\\w.-]` segments
(one or two, never `.` or `..`, never percent-encoded), a revision and a file path have no empty, `.` or `..`
component, no backslash, no NUL and no leading `/`. A file is then served only if the commit's listing names it
(see _source.py), so a double-encoded `..` is just a name that is not there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from .._listing import is_safe_path
from .._repo import Repo

_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space", None: "model"}
_REPO = r"([^/]+(?:/[^/]+)?)"
_API = re.compile(rf"^/api/(models|datasets|spaces)/{_REPO}(?:/(revision|tree|paths-info)/([^/]+)(?:/(.*))?)?$")
_RESOLVE = re.compile(rf"^/(?:(datasets|spaces)/)?{_REPO}/resolve/([^/]+)/(.+)$")
_REPO_ID = re.compile(r"^[\w\-.]+(?:/[\w\-.]+)?$", re.ASCII)


class HubError(Exception):
    """An answer in the Hub's error format (hub-protocol.md §4): a status, an `X-Error-Code`, a message."""

    def __init__(self, status: int, message: str, code: str | None = None, *, commit: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.commit = status, message, code, commit
        self.extra = headers or {}

    def headers(self) -> dict[str, str]:
        headers = {**self.extra, "X-Error-Message": self.message}
        if self.code:
            headers["X-Error-Code"] = self.code
        if self.commit:
            headers["X-Repo-Commit"] = self.commit
        return headers


@dataclass(frozen=True)
class Route:
    action: str  # "info", "tree", "paths-info" or "resolve"
    repo: Repo
    revision: str
    path: str = ""  # the file (resolve), or the folder of a tree ("" for the root)


def parse(method: str, raw_path: str) -> Route:
    """The route of a request; HubError 400 for a path that tries to leave the repo, 404 for an unknown route."""
    if "\0" in raw_path or "\\" in raw_path:
        raise HubError(400, "Bad request path.")
    if (api := _API.match(raw_path)) is not None:
        kind, repo_id, action, revision, rest = api.groups()
        action = action or "info"
        if action == "revision":
            action = "info"
        if rest is not None and action != "tree":
            raise HubError(404, "Not found.")
        route = Route(action, _repo(kind, repo_id), _revision(revision or "main"), _path(rest, folder=True))
        allowed = ("POST",) if action == "paths-info" else ("GET", "HEAD")
    elif (resolve := _RESOLVE.match(raw_path)) is not None:
        kind, repo_id, revision, path = resolve.groups()
        route = Route("resolve", _repo(kind, repo_id), _revision(revision), _path(path, folder=False))
        allowed = ("GET", "HEAD")
    else:
        raise HubError(404, "Not found.")
    if method not in allowed:
        raise HubError(405, f"{method} is not allowed here.")
    return route


def _repo(kind: str | None, raw: str) -> Repo:
    if not _REPO_ID.match(raw) or any(part in (".", "..") for part in raw.split("/")):
        raise HubError(400, "Bad repo id.")
    return Repo(raw, _TYPES[kind])


def _revision(raw: str) -> str:
    revision = _decoded(raw)
    if len(revision) > 255 or not is_safe_path(revision):
        raise HubError(400, "Bad revision.")
    return revision


def _path(raw: str | None, *, folder: bool) -> str:
    if raw is None or (folder and raw.strip("/") == ""):
        return ""
    path = _decoded(raw.rstrip("/") if folder else raw)
    if not is_safe_path(path):
        raise HubError(400, "Bad file path.")
    return path


def _decoded(raw: str) -> str:
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise HubError(400, "Bad percent-encoding.") from None


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The half-open range a `Range` header asks for (RFC 9110 §14.1.2), None for the whole file; HubError 416
    when it cannot be satisfied. Several ranges in one header are answered with the whole file, as RFC 9110
    allows."""
    if header is None or size == 0 or "," in header:
        return None
    match = _RANGE.match(header.strip())
    unsatisfiable = HubError(416, "Range Not Satisfiable", headers={"Content-Range": f"bytes */{size}"})
    if match is None or match.groups() == ("", ""):
        raise unsatisfiable
    first, last = match.groups()
    if first:
        start, end = int(first), min(int(last) + 1, size) if last else size
    else:
        start, end = max(size - int(last), 0), size
    if start >= size or start >= end:
        raise unsatisfiable
    return start, end

"""The ASGI app of `hfget serve`: the Hub's download routes (see _routes.py) answered from a Source and a Fetcher.

Answers follow hub-protocol.md and tests/hub.py (the test Hub answers the same protocol): revision info, the tree
(paginated, its `Link` naming this server), paths-info, and resolve with `ETag`, `X-Repo-Commit`,
`X-Linked-Etag`/`X-Linked-Size` (LFS files), `Accept-Ranges` and Range (206/416). Files are served by this server
itself, never redirected. A resolve answer at a commit never changes, so it says so (`Cache-Control: immutable`)
for a caching proxy in front; at a branch it says `no-cache`.

Blocking work (cache reads, upstream requests) runs in Starlette's thread pool; bodies are streamed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route as StarletteRoute

from .._hub import EXPAND
from .._models import RemoteFile
from .._repo import is_commit
from ._fetch import CHUNK, Fetcher, stream
from ._routes import HubError, Route, byte_range, parse
from ._source import Listing, Source, Trace

PAGE_SIZE = 1000
IMMUTABLE = "public, max-age=31536000, immutable"


class HubApp:
    """The handlers; one per server."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._fetcher: Fetcher | None = None

    def starlette(self) -> Starlette:
        return Starlette(routes=[StarletteRoute("/{rest:path}", self.handle, methods=["GET", "HEAD", "POST"])])

    @property
    def fetcher(self) -> Fetcher:
        if self._fetcher is None:  # made on the event loop, whose loop it wakes
            self._fetcher = Fetcher(self.source, asyncio.get_running_loop())
        return self._fetcher

    async def handle(self, request: Request) -> Response:
        trace: Trace = request.scope.setdefault("hfget.trace", Trace())
        raw_path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1").split("?", 1)[0]
        try:
            route = parse(request.method, raw_path)
            if route.action == "resolve":
                return await self._resolve(request, route, trace)
            body = await request.body() if route.action == "paths-info" else b""
            return await run_in_threadpool(self._api, request, route, body, trace)
        except HubError as error:
            return JSONResponse({"error": error.message}, error.status, headers=error.headers())

    # -- the API -----------------------------------------------------------------------------------------------

    def _api(self, request: Request, route: Route, body: bytes, trace: Trace) -> Response:
        commit = self.source.commit(route.repo, route.revision, trace)
        expand = request.query_params.getlist("expand")
        if route.action == "info" and expand and set(expand) <= set(EXPAND):  # a revision lookup: no listing
            return JSONResponse(_brief(route, commit, self.source.date(route.repo, commit), expand))
        listing = self.source.listing(route.repo, commit, trace)
        if route.action == "info":
            blobs = request.query_params.get("blobs") == "true"
            return JSONResponse(_info(route, commit, listing, blobs, self.source.date(route.repo, commit)))
        if route.action == "paths-info":
            wanted = parse_qs(body.decode("utf-8", "replace")).get("paths", [])
            return JSONResponse([e for p in wanted if (e := _entry(listing, p.strip("/"))) is not None])
        return self._tree(request, route, commit, listing)

    def _tree(self, request: Request, route: Route, commit: str, listing: Listing) -> Response:
        recursive = request.query_params.get("recursive", "false").lower() == "true"
        entries = _tree_entries(listing, route.path, recursive)
        if route.path and not entries and route.path not in listing.folders:
            raise HubError(404, f"{route.path} does not exist at {route.revision}", "EntryNotFound", commit=commit)
        cursor = request.query_params.get("cursor")
        try:
            start = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
        except ValueError:
            raise HubError(400, "Bad cursor.") from None
        page = entries[start : start + PAGE_SIZE]
        headers = {"Cache-Control": IMMUTABLE} if is_commit(route.revision) else {}
        if start + len(page) < len(entries):
            following = base64.urlsafe_b64encode(str(start + len(page)).encode()).decode()
            url = request.url.include_query_params(cursor=following)
            headers["Link"] = f'<{url}>; rel="next"'
        return JSONResponse(page, headers=headers)

    # -- file bodies -------------------------------------------------------------------------------------------

    async def _resolve(self, request: Request, route: Route, trace: Trace) -> Response:
        commit, file = await run_in_threadpool(self._locate, route, trace)
        headers = _file_headers(route, commit, file)
        if request.method == "HEAD":
            if file.size == 0:  # clients never GET an empty file (they create it): fill the cache now
                await self._prefetch(route, commit, file)
            return Response(b"", headers={**headers, "Content-Length": str(file.size)})
        wanted = byte_range(request.headers.get("range"), file.size)
        start, end = wanted or (0, file.size)
        headers["Content-Length"] = str(end - start)
        if wanted is not None:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{file.size}"
        status = 206 if wanted is not None else 200
        blob = await run_in_threadpool(self.source.blob, route.repo, commit, file)
        if blob is not None:
            trace.cache = "hit"
            return StreamingResponse(_read(blob, start, end), status, headers=headers)
        if not self.source.upstream or not self.source.fetchable(file):
            raise HubError(404, f"{file.path} is not in the cache and upstream cannot be asked.", "EntryNotFound",
                           commit=commit)
        trace.cache = "miss"
        partial = self.fetcher.get(route.repo, commit, file)
        return StreamingResponse(_timed(stream(partial, start, end), trace), status, headers=headers)

    async def _prefetch(self, route: Route, commit: str, file: RemoteFile) -> None:
        blob = await run_in_threadpool(self.source.blob, route.repo, commit, file)
        if blob is None and self.source.upstream and self.source.fetchable(file):
            self.fetcher.get(route.repo, commit, file)

    def _locate(self, route: Route, trace: Trace) -> tuple[str, RemoteFile]:
        commit = self.source.commit(route.repo, route.revision, trace)
        file = self.source.listing(route.repo, commit, trace).by_path.get(route.path)
        if file is None:
            raise HubError(404, f"Entry not found: {route.path}", "EntryNotFound", commit=commit)
        return commit, file


def _file_headers(route: Route, commit: str, file: RemoteFile) -> dict[str, str]:
    headers = {"X-Repo-Commit": commit, "ETag": f'"{file.etag}"', "Accept-Ranges": "bytes",
               "Content-Type": "application/octet-stream",
               "Cache-Control": IMMUTABLE if is_commit(route.revision) else "no-cache"}
    if file.lfs_sha256:
        headers.update({"X-Linked-Etag": f'"{file.lfs_sha256}"', "X-Linked-Size": str(file.size)})
    return headers


async def _read(path: Path, start: int, end: int) -> AsyncIterator[bytes]:
    with open(path, "rb", buffering=0) as f:
        position = start
        while position < end:
            chunk = await asyncio.to_thread(_pread, f.fileno(), min(CHUNK, end - position), position)
            if not chunk:
                return  # the file shrank under us: the client sees a short body and retries
            position += len(chunk)
            yield chunk


def _pread(fd: int, count: int, position: int) -> bytes:
    return os.pread(fd, count, position)


async def _timed(body: AsyncIterator[bytes], trace: Trace) -> AsyncIterator[bytes]:
    """A miss: the time the client waited on upstream is the time its body took."""
    started = time.monotonic()
    try:
        async for chunk in body:
            yield chunk
    finally:
        trace.upstream += time.monotonic() - started


def _brief(route: Route, commit: str, date: str | None, expand: list[str]) -> dict[str, Any]:
    """What a revision lookup asks for (`expand`, of hfget's EXPAND), as the Hub answers it: `id` always, and
    `lastModified` when upstream gave it (no listing is read)."""
    fields = {"sha": commit, "lastModified": date}
    return {"id": route.repo.repo_id, **{name: fields[name] for name in expand if fields.get(name)}}


def _info(route: Route, commit: str, listing: Listing, blobs: bool, date: str | None) -> dict[str, Any]:
    siblings = []
    for file in sorted(listing.files, key=lambda f: f.path):
        sibling: dict[str, Any] = {"rfilename": file.path}
        if blobs:
            sibling.update(size=file.size, blobId=file.blob_id)
            if file.lfs_sha256:
                sibling["lfs"] = {"sha256": file.lfs_sha256, "size": file.size, "pointerSize": 134}
        siblings.append(sibling)
    info = {"id": route.repo.repo_id, "sha": commit, "private": False, "disabled": False, "gated": False,
            "tags": [], "siblings": siblings}
    if date:
        info["lastModified"] = date
    return info


def _file_entry(file: RemoteFile) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "file", "oid": file.blob_id, "size": file.size, "path": file.path}
    if file.lfs_sha256:
        entry["lfs"] = {"oid": file.lfs_sha256, "size": file.size, "pointerSize": 134}
    return entry


def _folder_entry(path: str) -> dict[str, Any]:
    return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}


def _entry(listing: Listing, path: str) -> dict[str, Any] | None:
    if path in listing.by_path:
        return _file_entry(listing.by_path[path])
    return _folder_entry(path) if path in listing.folders else None


def _tree_entries(listing: Listing, folder: str, recursive: bool) -> list[dict[str, Any]]:
    """The tree endpoint's entries under `folder`: folders and files, in path order (hub-protocol.md §2)."""
    prefix = f"{folder}/" if folder else ""
    depth = prefix.count("/")
    folders = [_folder_entry(d) for d in listing.folders
               if d.startswith(prefix) and (recursive or d.count("/") == depth)]
    files = [_file_entry(f) for f in listing.files
             if f.path.startswith(prefix) and (recursive or f.path.count("/") == depth)]
    return sorted(folders + files, key=lambda e: str(e["path"]))


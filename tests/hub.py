"""A faithful Hugging Face Hub for tests: real HTTP on 127.0.0.1, a Hub origin and a CDN origin.

It implements the download side of ../shared/hub-protocol.md, closely enough that huggingface_hub's own
`snapshot_download` accepts it (tests/test_hub_server.py shows that):

- `GET /api/{models,datasets,spaces}/{repo}/revision/{rev}[?blobs=true]`  revision info, `sha` = the commit;
  with `expand=sha&expand=lastModified` (or `expand[]=...`) only those properties, plus `id` and `_id`
- `GET /api/{type}s/{repo}/tree/{rev}[/{path}]?recursive=..`           the tree, paginated by `page_size`
  with a `Link: <...>; rel="next"` header; `link_base` names the host in that link (hf-mirror leaves
  huggingface.co there, and a test can ask for the same)
- `GET /api/{type}s/{repo}/refs`                                        branches and tags
- `HEAD|GET /{prefix}{repo}/resolve/{rev}/{path}`                       regular files: 200 with `ETag` (git blob
  sha1), `X-Repo-Commit`, Range support (206/416); LFS files: 302 to the CDN origin with `X-Linked-Etag`
  (sha256) and `X-Linked-Size`
- the CDN origin serves LFS bodies at signed URLs, with Range support; it never needs a token
- errors as §4: EntryNotFound, RevisionNotFound, RepoNotFound (401 anonymous / 404 signed in), GatedRepo
  (401 anonymous / 403 signed in without access), invalid token 401

`Hub(..., tls=context)` serves both origins over TLS (https:// URLs) with a server context the test made.

Repos are built by the test from bytes or files on disk (`Hub.create_repo`, `Hub.commit`, `Hub.tag`,
`Hub.open_pr`); `hub2.mirror_of(hub1, repo_id)` serves one of hub1's repos, every commit, ref and date the same,
as a second origin of the same content (several mirrors of one Hub). Every request served is appended to
`Hub.log` (origin, method, path, Range, whether an Authorization header came, the peer's address and port, every
header, status, the fault applied if any, when it arrived and when it was done, and every body byte written to
the socket, faulted bodies included), so tests assert on traffic. Knobs a test may set at any time:
- `rate`: bytes/s per response body, i.e. per TCP stream (a mirror or CDN capping each connection);
- `total_rate`: bytes/s for all the bodies this Hub sends at once, both origins together (a mirror's uplink, or
  its overall cap: more connections to it stop helping past it);
- `latency`: seconds every request waits before its first byte (a round trip to a far server);
- `corrupt`: path -> number of bodies of that file still to serve with one byte flipped;
- `cdn_url_uses`: how many requests one signed CDN URL serves before it answers 403 (expired);
- `ignore_range`: answer every GET with 200 and the whole body, as some proxies do;
- `ignore_expand`: answer a revision lookup in full, whatever its `expand` parameters ask (a mirror that
  does not know them);
- `redirect_to`: answer every resolve with a 302 to this Location (`ftp://...`, `file:///...`);
- `faults`: a list of `Fault`s, each applied to the next `times` requests it matches: an error status (503,
  429 with `Retry-After` or `RateLimit`...), an answer that begins S seconds late ("slow"), a reset after N body
  bytes, a stall of S seconds after N bytes, or a chunked body without Content-Length; `chaos(seed, p)` draws
  such faults at random for a soak test.
`max_connections`: a per-origin cap on requests in flight, past which it answers 503 (a mirror's `limit_conn`).
`max_concurrent_cdn_gets` is the most CDN bodies it was sending at once; `stalling` the bodies held in a stall
right now; `release_stalls()` ends them (and `stop()` does, so a long stall never holds a test up).

Bodies go out with `os.sendfile` when no knob (and no TLS) is in the way, so the server is not the bottleneck.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import itertools
import json
import os
import random
import re
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

LFS_PATTERNS = (".bin", ".safetensors", ".gguf", ".parquet", ".pt", ".h5", ".onnx")
_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


_COMMITS_MADE = itertools.count()


def _next_date() -> str:
    """Commit dates a second apart, in the order commits are made by any Hub of the process (so that two Hubs
    serving one repo at different commits can be told apart by date, as mirrors are)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(1_767_225_600 + next(_COMMITS_MADE)))


@dataclass(frozen=True)
class Blob:
    """One file's content, stored on disk under the hub's root."""

    disk_path: Path
    size: int
    sha1: str  # git blob sha1 of the content
    sha256: str
    lfs: bool

    @property
    def pointer_oid(self) -> str:
        """The git blob sha1 of the LFS pointer file (what the tree calls `oid` for an LFS file)."""
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n"
        return git_blob_sha1(pointer.encode())

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.sha1


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    commits: dict[str, dict[str, Blob]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # branch, tag or refs/pr/N -> commit
    tags: set[str] = field(default_factory=set)
    dates: dict[str, str] = field(default_factory=dict)  # commit -> when it was made (the API's lastModified)
    private: bool = False
    gated: bool = False
    granted_tokens: set[str] = field(default_factory=set)


@dataclass
class Fault:
    """One misbehaviour, for the next `times` requests whose path contains `match` (on `origin`, if given)."""

    kind: str  # "status", "slow" (the answer begins `seconds` late), "reset", "stall" or "chunked"
    match: str = ""
    origin: str | None = None
    times: int = 1
    status: int = 503
    headers: dict = field(default_factory=dict)
    after: int = 0  # body bytes sent before a reset or a stall
    seconds: float = 0.0  # length of a stall
    skip: int = 0  # matching requests to let through untouched first

    def applies(self, origin: str, method: str, path: str, *, body: bool) -> bool:
        if self.times <= 0 or method != "GET" or self.match not in path:
            return False
        if self.origin is not None and self.origin != origin:
            return False
        return (self.kind in ("status", "slow")) != body


@dataclass(frozen=True)
class Served:
    """One request as the server saw it."""

    origin: str  # "hub" or "cdn"
    method: str
    path: str  # percent-decoded path, without the query
    range: str | None
    authorized: bool  # an Authorization header was present
    status: int
    at: float = 0.0  # time.monotonic() when the request arrived
    sent: int = 0  # body bytes written to the socket (for a chunked body, the payload, not the framing; for an
    # error status, 0: its JSON is not counted)
    fault: str | None = None  # the kind of `Fault` applied to this request, if any ("status", "reset", ...)
    done: float = 0.0  # time.monotonic() when the server was done with the request
    peer: tuple[str, int] = ("", 0)  # the client's address and port (a proxy's, when one forwards the request)
    headers: dict = field(default_factory=dict)  # the request's headers, names in lower case
    query: dict = field(default_factory=dict)  # the query's parameters, each name with its list of values
    pid: int | None = None  # the client process, when `Hub.peer_pids` is set (Linux)


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _hash_file(path: Path) -> tuple[int, str, str]:
    size = path.stat().st_size
    sha1 = hashlib.sha1(b"blob %d\0" % size)
    sha256 = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha1.update(chunk)
            sha256.update(chunk)
    return size, sha1.hexdigest(), sha256.hexdigest()


class Hub:
    """The test Hub: `start()` it, build repos, point a client at `hub.url`, read `hub.log`."""

    def __init__(self, root: Path, *, page_size: int = 1000, link_base: str | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.root = Path(root)
        self.tls = tls  # serve both origins over TLS with this server context
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        self.page_size = page_size
        self.link_base = link_base
        self.resolve_cache_redirect = False  # answer regular files with a relative 307, as huggingface.co does
        self.redirect_to: str | None = None  # answer every resolve with a 302 to this Location (a hostile mirror)
        self.rate: float | None = None  # bytes per second per response body
        self.total_rate: float | None = None  # bytes per second for all bodies at once (see `_pace`)
        self._total_next = 0.0  # when the shared budget of `total_rate` is free again
        self.latency: float = 0.0  # seconds before each response
        self.cdn_url_uses: int | None = None  # requests a signed CDN URL serves before it expires
        self._url_uses: dict[str, int] = {}
        self.ignore_range = False
        self.ignore_expand = False  # answer a revision lookup in full whatever `expand` asks (an older mirror)
        self.faults: list[Fault] = []
        self.tamper_tree = None  # a function that rewrites the tree's entries (a hostile or broken mirror)
        self._chaos: tuple[random.Random, float] | None = None
        self.max_concurrent_cdn_gets = 0
        self._cdn_gets = 0
        self.corrupt: dict[str, int] = {}  # repo path -> bodies still to corrupt
        self.tokens: set[str] = set()  # valid tokens
        self.repos: dict[tuple[str, str], Repo] = {}
        self.log: list[Served] = []
        self._lock = threading.Lock()
        self._secret = os.urandom(16)
        self._servers: list[_Server] = []
        self._active = 0
        # a mirror's per-client connection cap (nginx limit_conn): requests past it on one origin get a 503
        self.max_connections: int | None = None
        self.refused_for_cap = 0
        self._open: dict[str, int] = {}
        self.stalling = 0  # bodies held in a stall right now
        self._release = threading.Event()  # set to end the stalls under way (`release_stalls`)
        self._stopped = False
        self.peer_pids = False  # log which local process sent each request (Linux /proc; see `peer_pid`)

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> Hub:
        self._hub_server = _Server(self, "hub")
        self._cdn_server = _Server(self, "cdn")
        self._servers = [self._hub_server, self._cdn_server]
        for server in self._servers:
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped = True  # no stall waits from now on, so stopping never waits one out
        self.release_stalls()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._hub_server.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._cdn_server.server_address[1]}"

    # -- building repos ----------------------------------------------------------------------------------------

    def create_repo(
        self,
        repo_id: str,
        files: dict[str, bytes | Path],
        *,
        repo_type: str = "model",
        lfs: set[str] | None = None,
        private: bool = False,
        gated: bool = False,
    ) -> str:
        """Create a repo whose `main` holds `files`; return the commit sha."""
        repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private, gated=gated)
        self.repos[(repo_type, repo_id)] = repo
        return self.commit(repo_id, files, repo_type=repo_type, lfs=lfs, replace=True)

    def commit(
        self,
        repo_id: str,
        files: dict[str, bytes | Path | None],
        *,
        repo_type: str = "model",
        branch: str = "main",
        lfs: set[str] | None = None,
        replace: bool = False,
    ) -> str:
        """Add (or with `None`, delete) files on `branch`; return the new commit sha."""
        repo = self.repos[(repo_type, repo_id)]
        parent = repo.refs.get(branch)
        tree = {} if replace or parent is None else dict(repo.commits[parent])
        for path, content in files.items():
            if content is None:
                tree.pop(path, None)
            else:
                is_lfs = path in lfs if lfs is not None else path.endswith(LFS_PATTERNS)
                tree[path] = self._store(content, lfs=is_lfs)
        digest = hashlib.sha1(f"{parent}:{branch}:{len(repo.commits)}".encode())
        for path in sorted(tree):
            digest.update(f"{path}\0{tree[path].sha1}\0".encode())
        sha = digest.hexdigest()
        repo.commits[sha] = tree
        repo.refs[branch] = sha
        repo.dates.setdefault(sha, _next_date())
        return sha

    def mirror_of(self, other: Hub, repo_id: str, *, repo_type: str = "model") -> None:
        """Serve `other`'s repo as it is now: the same commits (shas and dates), refs, tags and bytes (the blob
        files on disk are shared, read only). Later commits on either Hub are their own."""
        source = other.repos[(repo_type, repo_id)]
        self.repos[(repo_type, repo_id)] = Repo(
            repo_type=repo_type, repo_id=repo_id, commits={sha: dict(tree) for sha, tree in source.commits.items()},
            refs=dict(source.refs), tags=set(source.tags), dates=dict(source.dates), private=source.private,
            gated=source.gated, granted_tokens=set(source.granted_tokens))
        self.tokens |= source.granted_tokens

    def tag(self, repo_id: str, name: str, sha: str, *, repo_type: str = "model") -> None:
        repo = self.repos[(repo_type, repo_id)]
        repo.refs[name] = sha
        repo.tags.add(name)

    def open_pr(self, repo_id: str, files: dict[str, bytes | Path | None], *, repo_type: str = "model") -> str:
        """Open a pull request (`refs/pr/N`) on top of main; return its ref name."""
        repo = self.repos[(repo_type, repo_id)]
        number = 1 + sum(1 for ref in repo.refs if ref.startswith("refs/pr/"))
        ref = f"refs/pr/{number}"
        repo.refs[ref] = repo.refs["main"]
        self.commit(repo_id, files, repo_type=repo_type, branch=ref)
        return ref

    def grant(self, repo_id: str, token: str, *, repo_type: str = "model") -> None:
        self.tokens.add(token)
        self.repos[(repo_type, repo_id)].granted_tokens.add(token)

    def _store(self, content: bytes | Path, *, lfs: bool) -> Blob:
        if isinstance(content, (bytes, bytearray)):
            sha256 = hashlib.sha256(content).hexdigest()
            disk_path = self.root / "blobs" / sha256
            if not disk_path.exists():
                disk_path.write_bytes(content)
            return Blob(disk_path, len(content), git_blob_sha1(content), sha256, lfs)
        size, sha1, sha256 = _hash_file(Path(content))
        return Blob(Path(content), size, sha1, sha256, lfs)

    # -- reading the log ---------------------------------------------------------------------------------------

    def requests(self, *, origin: str | None = None, method: str | None = None, contains: str = "") -> list[Served]:
        with self._lock:
            return [
                s
                for s in self.log
                if (origin is None or s.origin == origin)
                and (method is None or s.method == method)
                and contains in s.path
            ]

    def file_gets(self) -> list[Served]:
        """GETs that carry a file body: resolve on the Hub and every GET on the CDN."""
        return [s for s in self.requests(method="GET") if "/resolve/" in s.path or s.origin == "cdn"]

    @property
    def cdn_bodies_in_flight(self) -> int:
        """CDN bodies being sent right now (the count `max_concurrent_cdn_gets` is the peak of)."""
        with self._lock:
            return self._cdn_gets

    def release_stalls(self) -> None:
        """End every stall under way now: those bodies go on (a test's way to end a stall at a chosen point)."""
        with self._lock:
            release, self._release = self._release, threading.Event()
        release.set()

    @property
    def active(self) -> int:
        """Requests being served right now (a stalled body counts until its stall ends)."""
        with self._lock:
            return self._active

    def peer_pid(self, port: int, server_port: int) -> int | None:
        """The local process whose TCP socket goes from `port` to `server_port` (asked when the connection is set up,
        so it is there; the first process found that holds it: a forked child holds its parent's sockets too)."""
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as rows:
                for row in list(rows)[1:]:
                    fields = row.split()
                    ports = (int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16))
                    if ports == (port, server_port):
                        inodes.add(f"socket:[{fields[9]}]")
        for fd in Path("/proc").glob("[0-9]*/fd/*"):
            try:
                if os.readlink(fd) in inodes:
                    return int(fd.parts[2])
            except OSError:
                continue
        return None

    def wait_idle(self, timeout: float = 30) -> None:
        """Wait until no request is being served (e.g. the one a killed client left behind). The deadline is a
        safety net: a request still being served by then fails the test, rather than leaving the log short."""
        deadline = time.monotonic() + timeout
        while self.active:
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.active} request(s) still being served after {timeout:g} s")
            time.sleep(0.01)

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    # -- signing CDN urls --------------------------------------------------------------------------------------

    def sign(self, sha256: str, expires: int, nonce: str) -> str:
        return hmac.new(self._secret, f"{sha256}:{expires}:{nonce}".encode(), "sha256").hexdigest()[:32]

    def cdn_location(self, blob: Blob, repo_path: str) -> str:
        """A signed URL, distinct at every call (so its uses can be counted)."""
        expires = int(time.time()) + 3600
        nonce = os.urandom(6).hex()
        name = quote(repo_path.rsplit("/", 1)[-1])
        signature = self.sign(blob.sha256, expires, nonce)
        return f"{self.cdn_url}/lfs/{blob.sha256}?expires={expires}&n={nonce}&sig={signature}&name={name}"

    def chaos(self, seed: int, probability: float) -> None:
        """From now on, each file request misbehaves with this probability, in a way drawn from `seed`."""
        self._chaos = (random.Random(seed), probability)
        self._chaos_bodies: set[str] = set()

    def take_fault(self, origin: str, method: str, path: str, *, body: bool, size: int = 0) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.applies(origin, method, path, body=body):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    fault.times -= 1
                    return fault
            if self._chaos is None or method != "GET" or ("/resolve/" not in path and origin != "cdn"):
                return None
            rng, probability = self._chaos
            if rng.random() >= probability:
                return None
            if not body:
                status = rng.choice([500, 502, 503, 504, 429, 408])
                headers = {"Retry-After": "0"} if status == 429 else {}
                return Fault("status", status=status, headers=headers)
            if path in self._chaos_bodies:  # one misbehaving body per file: a fault, not a broken file
                return None
            self._chaos_bodies.add(path)
            kind = rng.choice(["reset", "stall", "corrupt"])
            if kind == "corrupt":
                return Fault("corrupt")
            return Fault(kind, after=rng.randint(0, max(0, size - 1)), seconds=rng.choice([0.2, 3.0]))

    def pace(self, nbytes: int) -> None:
        """Wait until `total_rate` allows `nbytes` more, shared by every body this Hub sends (a 50 ms burst at
        most, so an idle Hub does not save up)."""
        rate = self.total_rate
        if not rate:
            return
        with self._lock:
            now = time.monotonic()
            start = max(self._total_next, now - 0.05)
            self._total_next = start + nbytes / rate
            delay = self._total_next - now
        if delay > 0 and not self._stopped:
            time.sleep(delay)

    def take_corruption(self, repo_path: str) -> bool:
        with self._lock:
            left = self.corrupt.get(repo_path, 0)
            if left > 0:
                self.corrupt[repo_path] = left - 1
                return True
            return False


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, hub: Hub, origin: str) -> None:
        self.hub = hub
        self.origin = origin
        super().__init__(("127.0.0.1", 0), _Handler)
        if hub.tls is not None:
            self.socket = hub.tls.wrap_socket(self.socket, server_side=True)

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):  # clients hanging up are normal
            super().handle_error(request, client_address)


class _HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


_API = re.compile(r"^/api/(models|datasets|spaces)/(.+?)/(revision|tree|refs|paths-info)(?:/(.*))?$")
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+(?:/[^/]+)?)/resolve/([^/]+)/(.+)$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: without this, delayed ACKs
    # hold every small response back by up to 40 ms, and the server, not the client, sets the pace
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # silence the default stderr log
        pass

    def setup(self) -> None:
        """Once per connection: which process opened it, when the Hub is asked to log that."""
        super().setup()
        hub = self.server.hub
        self.peer_process = hub.peer_pid(int(self.client_address[1]), self.server.server_address[1]) \
            if hub.peer_pids else None

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    # -- dispatch ----------------------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        self.method = method
        self.status = 0
        self.sent = 0
        self.fault: str | None = None
        arrived = time.monotonic()
        parts = urlsplit(self.path)
        self.raw_path, self.query = parts.path, parse_qs(parts.query)
        hub = self.server.hub
        with hub._lock:
            hub._active += 1
            hub._open[self.server.origin] = hub._open.get(self.server.origin, 0) + 1
            over_cap = hub.max_connections is not None and hub._open[self.server.origin] > hub.max_connections
            hub.refused_for_cap += over_cap
        if hub.latency:
            time.sleep(hub.latency)
        try:
            if over_cap:
                self.fault = "cap"
                raise _HttpError(503, "Service Temporarily Unavailable (too many connections)")
            fault = hub.take_fault(self.server.origin, method, unquote(self.raw_path), body=False)
            if fault is not None and fault.kind == "slow":
                self.fault = fault.kind
                if not hub._stopped:
                    hub._release.wait(fault.seconds)
            elif fault is not None:
                self.fault = fault.kind
                raise _HttpError(fault.status, f"fault injected: {fault.status}", headers=dict(fault.headers))
            if self.server.origin == "cdn":
                self._cdn()
            elif (match := _API.match(self.raw_path)) is not None:
                self._api(*match.groups())
            elif (match := _RESOLVE.match(self.raw_path)) is not None:
                self._resolve(*match.groups())
            elif self.raw_path.startswith("/api/resolve-cache/"):
                self._resolve_cache()
            else:
                raise _HttpError(404, "Not found")
        except _HttpError as error:
            headers = {**error.headers, "X-Error-Message": error.message}
            if error.code:
                headers["X-Error-Code"] = error.code
            self._send_json(error.status, {"error": error.message}, headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            served = Served(
                origin=self.server.origin,
                method=method,
                path=unquote(self.raw_path),
                range=self.headers.get("Range"),
                authorized=self.headers.get("Authorization") is not None,
                status=self.status,
                at=arrived,
                sent=self.sent,
                fault=self.fault,
                done=time.monotonic(),
                peer=(str(self.client_address[0]), int(self.client_address[1])),
                headers={name.lower(): value for name, value in self.headers.items()},
                query=self.query,
                pid=self.peer_process,
            )
            with hub._lock:  # logged before it stops counting as active: wait_idle() then sees its entry
                hub.log.append(served)
                hub._active -= 1
                hub._open[self.server.origin] -= 1

    # -- the Hub's API -----------------------------------------------------------------------------------------

    def _repo(self, repo_type: str, repo_id: str) -> Repo:
        hub = self.server.hub
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth else None
        if token is not None and token not in hub.tokens:
            raise _HttpError(401, "Invalid credentials in Authorization header")
        repo = hub.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and token not in repo.granted_tokens):
            if token is None:
                raise _HttpError(401, "Invalid username or password.")
            raise _HttpError(404, "Repository not found", "RepoNotFound")
        if repo.gated and token not in repo.granted_tokens:
            if token is None:
                raise _HttpError(401, "Access to this repo is restricted: you must be authenticated.", "GatedRepo")
            raise _HttpError(403, "Access to this gated repo is restricted: ask for access on its page.", "GatedRepo")
        return repo

    def _commit(self, repo: Repo, revision: str) -> str:
        if revision in repo.refs:
            return repo.refs[revision]
        if revision in repo.commits:
            return revision
        raise _HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def _api(self, types: str, repo_id: str, action: str, rest: str | None) -> None:
        repo = self._repo(_TYPES[types], unquote(repo_id))
        if action == "refs":
            return self._send_json(200, self._refs(repo))
        segments = (rest or "main").split("/", 1)
        revision = unquote(segments[0])
        sub_path = unquote(segments[1]) if len(segments) > 1 else ""
        sha = self._commit(repo, revision)
        if action == "revision":
            return self._send_json(200, self._revision_info(repo, sha))
        if action == "tree":
            return self._tree(repo, types, sha, revision, sub_path)
        raise _HttpError(405, "Not implemented by the test hub")

    def _refs(self, repo: Repo) -> dict:
        def entry(name: str) -> dict:
            return {"name": name, "ref": f"refs/{'tags' if name in repo.tags else 'heads'}/{name}",
                    "targetCommit": repo.refs[name]}

        branches = [entry(n) for n in repo.refs if n not in repo.tags and not n.startswith("refs/")]
        return {"branches": branches, "tags": [entry(n) for n in sorted(repo.tags)], "converts": []}

    def _revision_info(self, repo: Repo, sha: str) -> dict:
        """As the Hub answers: everything, or with `expand` (`expand=sha&expand=lastModified` as huggingface_hub
        sends it, or `expand[]=sha`) only the properties asked for, plus `id` and `_id`."""
        blobs = self.query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for path, blob in sorted(repo.commits[sha].items()):
            sibling: dict = {"rfilename": path}
            if blobs:
                sibling.update(size=blob.size, blobId=blob.pointer_oid if blob.lfs else blob.sha1)
                if blob.lfs:
                    sibling["lfs"] = {"sha256": blob.sha256, "size": blob.size, "pointerSize": 134}
            siblings.append(sibling)
        info = {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "sha": sha,
            "private": repo.private,
            "gated": "auto" if repo.gated else False,
            "disabled": False,
            "tags": [],
            "siblings": siblings,
            "lastModified": repo.dates.get(sha, "2026-01-01T00:00:00.000Z"),
            "createdAt": "2026-01-01T00:00:00.000Z",
        }
        expand = self.query.get("expand", []) + self.query.get("expand[]", [])
        if expand and not self.server.hub.ignore_expand:
            if blobs:
                raise _HttpError(400, "expand cannot be combined with blobs")
            return {k: v for k, v in info.items() if k in ("_id", "id", *expand)}
        return info

    def _tree(self, repo: Repo, types: str, sha: str, revision: str, sub_path: str) -> None:
        recursive = self.query.get("recursive", ["false"])[0].lower() == "true"
        entries = _tree_entries(repo.commits[sha], sub_path, recursive)
        if self.server.hub.tamper_tree is not None:
            entries = self.server.hub.tamper_tree(entries)
        if sub_path and not entries and sub_path not in repo.commits[sha]:
            raise _HttpError(404, f"{sub_path} does not exist at {revision}", "EntryNotFound")
        cursor = self.query.get("cursor", [None])[0]
        start = int(base64.urlsafe_b64decode(cursor).decode()) if cursor else 0
        page = entries[start : start + self.server.hub.page_size]
        headers = {}
        if start + len(page) < len(entries):
            base = self.server.hub.link_base or self.server.hub.url
            token = base64.urlsafe_b64encode(str(start + len(page)).encode()).decode()
            path = f"/api/{types}/{repo.repo_id}/tree/{quote(revision, safe='')}"
            if sub_path:
                path += "/" + quote(sub_path, safe="")
            link = f"{base}{path}?recursive={str(recursive).lower()}&expand=false&cursor={token}"
            headers["Link"] = f'<{link}>; rel="next"'
        self._send_json(200, page, headers)

    # -- file bodies -------------------------------------------------------------------------------------------

    def _resolve(self, prefix: str | None, repo_id: str, revision: str, path: str) -> None:
        repo_type = {"datasets": "dataset", "spaces": "space", None: "model"}[prefix]
        repo = self._repo(repo_type, unquote(repo_id))
        revision, path = unquote(revision), unquote(path)
        sha = self._commit(repo, revision)
        blob = repo.commits[sha].get(path)
        commit_header = {"X-Repo-Commit": sha}
        if self.server.hub.redirect_to is not None:
            return self._send_bytes(302, b"", {**commit_header, "Location": self.server.hub.redirect_to})
        if blob is None:
            raise _HttpError(404, f"Entry not found: {path}", "EntryNotFound", commit_header)
        headers = {**commit_header, "Accept-Ranges": "bytes"}
        if blob.lfs:
            headers.update({
                "ETag": f'"{blob.sha256}"',
                "X-Linked-Etag": f'"{blob.sha256}"',
                "X-Linked-Size": str(blob.size),
                "Location": self.server.hub.cdn_location(blob, path),
            })
            return self._send_bytes(302, b"", headers)
        if self.server.hub.resolve_cache_redirect:
            headers["ETag"] = f'"{blob.sha1}"'
            headers["Location"] = f"/api/resolve-cache/{_TYPES_PLURAL[repo_type]}/{repo.repo_id}/{sha}/{quote(path)}"
            return self._send_bytes(307, b"", headers)
        headers["ETag"] = f'"{blob.sha1}"'
        self._send_blob(blob, path, headers)

    def _resolve_cache(self) -> None:
        # /api/resolve-cache/{types}/{repo_id}/{sha}/{path}; repo_id has one or two segments
        rest = unquote(self.raw_path.removeprefix("/api/resolve-cache/"))
        types, remainder = rest.split("/", 1)
        for repo_id_segments in (2, 1):
            pieces = remainder.split("/")
            repo_id = "/".join(pieces[:repo_id_segments])
            repo = self.server.hub.repos.get((_TYPES[types], repo_id))
            if repo is not None and len(pieces) > repo_id_segments + 1:
                sha, path = pieces[repo_id_segments], "/".join(pieces[repo_id_segments + 1 :])
                break
        else:
            raise _HttpError(404, "Not found")
        repo = self._repo(_TYPES[types], repo_id)
        blob = repo.commits.get(sha, {}).get(path)
        if blob is None:
            raise _HttpError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": sha})
        self._send_blob(blob, path, {"X-Repo-Commit": sha, "ETag": f'"{blob.sha1}"', "Accept-Ranges": "bytes"})

    def _cdn(self) -> None:
        match = re.fullmatch(r"/lfs/([0-9a-f]{64})", self.raw_path)
        if match is None:
            raise _HttpError(404, "Not found")
        sha256 = match.group(1)
        hub = self.server.hub
        try:
            expires = int(self.query["expires"][0])
            signature, nonce = self.query["sig"][0], self.query["n"][0]
        except (KeyError, ValueError):
            raise _HttpError(403, "Missing signature") from None
        if not hmac.compare_digest(signature, hub.sign(sha256, expires, nonce)) or expires < time.time():
            raise _HttpError(403, "Request has expired")
        if hub.cdn_url_uses is not None:
            with hub._lock:
                used = hub._url_uses[signature] = hub._url_uses.get(signature, 0) + 1
            if used > hub.cdn_url_uses:
                raise _HttpError(403, "Request has expired")
        blob = next(
            (b for repo in hub.repos.values() for tree in repo.commits.values() for b in tree.values()
             if b.sha256 == sha256),
            None,
        )
        if blob is None:
            raise _HttpError(404, "No such object")
        repo_path = unquote(self.query.get("name", [""])[0])
        paths = [p for repo in hub.repos.values() for tree in repo.commits.values()
                 for p, b in tree.items() if b.sha256 == sha256]
        self._send_blob(blob, paths[0] if paths else repo_path, {"ETag": f'"{sha256}"', "Accept-Ranges": "bytes"})

    def _send_blob(self, blob: Blob, repo_path: str, headers: dict) -> None:
        start, end, status = 0, blob.size, 200
        fault = self.server.hub.take_fault(self.server.origin, self.method, unquote(self.raw_path), body=True,
                                           size=blob.size)
        if fault is not None:
            self.fault = fault.kind
        chunked = fault is not None and fault.kind == "chunked"
        ignore_range = self.server.hub.ignore_range or chunked
        range_header = None if ignore_range else self.headers.get("Range")
        if range_header and blob.size > 0:
            match = _RANGE.match(range_header.strip())
            if match is None:
                raise _HttpError(416, "Bad range", headers={"Content-Range": f"bytes */{blob.size}"})
            first, last = match.groups()
            if first:
                start = int(first)
                end = min(int(last) + 1, blob.size) if last else blob.size
            elif last:
                start = max(blob.size - int(last), 0)
            if start >= blob.size or start >= end:
                raise _HttpError(416, "Range Not Satisfiable", headers={"Content-Range": f"bytes */{blob.size}"})
            status = 206
            headers = {**headers, "Content-Range": f"bytes {start}-{end - 1}/{blob.size}"}
        if chunked:
            headers = {**headers, "Transfer-Encoding": "chunked", "Content-Type": "application/octet-stream"}
        else:
            headers = {**headers, "Content-Length": str(end - start), "Content-Type": "application/octet-stream"}
        self._start(status, headers)
        if self.method == "HEAD":
            return
        hub = self.server.hub
        if fault is not None and fault.kind in ("reset", "stall", "chunked"):
            return self._misbehave(fault, blob, start, end)
        corrupt = hub.take_corruption(repo_path) or (fault is not None and fault.kind == "corrupt")
        counted = self.server.origin == "cdn"
        if counted:
            with hub._lock:
                hub._cdn_gets += 1
                hub.max_concurrent_cdn_gets = max(hub.max_concurrent_cdn_gets, hub._cdn_gets)
        try:
            self._send_file(blob, start, end, corrupt)
        finally:
            if counted:
                with hub._lock:
                    hub._cdn_gets -= 1

    def _misbehave(self, fault: Fault, blob: Blob, start: int, end: int) -> None:
        hub = self.server.hub
        with open(blob.disk_path, "rb") as f:
            f.seek(start)
            if fault.kind == "chunked":
                while chunk := f.read(min(1 << 16, end - f.tell())):
                    self.connection.sendall(b"%x\r\n" % len(chunk))
                    self._send_counted(chunk)
                    self.connection.sendall(b"\r\n")
                self.connection.sendall(b"0\r\n\r\n")
                return
            first = min(fault.after, end - start)
            self._send_counted(f.read(first))
            if fault.kind == "stall":
                with hub._lock:
                    hub.stalling += 1
                    release = hub._release
                try:
                    if not hub._stopped:
                        release.wait(fault.seconds)
                finally:
                    with hub._lock:
                        hub.stalling -= 1
                self._send_counted(f.read(end - start - first))
                return
        # reset: an RST, not a polite close
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _send_counted(self, data: bytes) -> None:
        """Write body bytes, counting each slice in `sent` as the socket takes it (a failure loses no count)."""
        view = memoryview(data)
        for offset in range(0, len(view), 1 << 16):
            piece = view[offset : offset + (1 << 16)]
            self.connection.sendall(piece)
            self.sent += len(piece)

    def _sendfile_counted(self, f, offset: int, count: int) -> None:
        """`os.sendfile` in a loop, adding each call's bytes to `sent` (socket.sendfile loses the count on error)."""
        out_fd, in_fd = self.connection.fileno(), f.fileno()
        while count > 0:
            n = os.sendfile(out_fd, in_fd, offset, count)
            if n == 0:
                break
            self.sent += n
            offset += n
            count -= n

    def _send_file(self, blob: Blob, start: int, end: int, corrupt: bool) -> None:
        with open(blob.disk_path, "rb") as f:
            hub = self.server.hub
            if hub.rate is None and hub.total_rate is None and not corrupt and hub.tls is None:  # no sendfile on TLS
                self.wfile.flush()
                self._sendfile_counted(f, start, end - start)
                return
            self._send_slowly(f, start, end, corrupt)

    def _send_slowly(self, f, start: int, end: int, corrupt: bool) -> None:
        hub = self.server.hub
        rate = hub.rate
        slowest = min(r for r in (rate, hub.total_rate, 1e12) if r)
        chunk_size = max(16384, int(slowest / 50)) if slowest < 1e12 else 1 << 20
        self.wfile.flush()
        position = start
        began = time.monotonic()
        while position < end:
            count = min(chunk_size, end - position)
            hub.pace(count)
            if corrupt:
                f.seek(position)
                chunk = bytearray(f.read(count))
                chunk[len(chunk) // 2] ^= 0xFF
                corrupt = False
                self._send_counted(chunk)
            elif self.server.hub.tls is not None:  # sendfile would bypass the TLS layer
                f.seek(position)
                self._send_counted(f.read(count))
            else:
                self._sendfile_counted(f, position, count)
            position += count
            if rate:
                ahead = (position - start) / rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)

    # -- writing responses -------------------------------------------------------------------------------------

    def _start(self, status: int, headers: dict) -> None:
        self.status = status
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_bytes(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self._start(status, {**(headers or {}), "Content-Length": str(len(body))})
        if self.method != "HEAD":
            self.wfile.write(body)
            if status < 300:  # an error's JSON is not counted: tests tell file bodies by `sent`
                self.sent += len(body)

    def _send_json(self, status: int, payload: object, headers: dict | None = None) -> None:
        body = json.dumps(payload).encode()
        self._send_bytes(status, body, {**(headers or {}), "Content-Type": "application/json"})


_TYPES_PLURAL = {"model": "models", "dataset": "datasets", "space": "spaces"}


def _tree_entries(tree: dict[str, Blob], sub_path: str, recursive: bool) -> list[dict]:
    """The tree endpoint's entries under `sub_path`: folders and files, in path order."""
    prefix = f"{sub_path.rstrip('/')}/" if sub_path else ""
    folders: set[str] = set()
    files = []
    for path, blob in tree.items():
        if not path.startswith(prefix):
            continue
        relative = path[len(prefix):]
        parts = relative.split("/")
        for depth in range(1, len(parts)):
            if recursive or depth == 1:
                folders.add(prefix + "/".join(parts[:depth]))
        if recursive or len(parts) == 1:
            entry = {"type": "file", "oid": blob.pointer_oid if blob.lfs else blob.sha1, "size": blob.size,
                     "path": path}
            if blob.lfs:
                entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": 134}
            files.append(entry)
    dirs = [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
            for d in folders]
    return sorted(dirs + files, key=lambda e: e["path"])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for 'endpoint unreachable' tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def most_fetched(served: list[Served]) -> int:
    """The most times any byte of any file was fetched, from each body's start (its Range) and bytes sent.

    Every body counts, faulted ones included (the hub counts each byte it writes): a reset or stalled body up to
    where it broke off, and the retry starts where the client's bytes ended.

    A connection whose range was split (another connection took its second half, starting later at a byte
    inside it) stops at that byte; what the server had pushed past it into socket buffers was never read, so
    each body is clipped at the start of any later request that began inside it. The same clip covers a stalled
    body the client gave up on: what the server pushed after the stall went to a closed socket, past the byte
    where the retry began."""
    bodies: dict[str, list[tuple[float, int, int]]] = defaultdict(list)
    for s in served:
        match = re.match(r"bytes=(\d+)-", s.range or "")
        start = int(match.group(1)) if match else 0
        key = s.path.rsplit("/", 1)[-1] if s.origin == "cdn" else s.path.split("/resolve/", 1)[-1].split("/", 1)[-1]
        bodies[key].append((s.at, start, start + s.sent))
    most = 0
    for spans in bodies.values():
        edges = Counter()
        for at, start, end in spans:
            cut = min([s for t, s, _ in spans if t > at and start < s < end], default=end)
            edges[start] += 1
            edges[cut] -= 1
        depth = 0
        for position in sorted(edges):
            depth += edges[position]
            most = max(most, depth)
    return most

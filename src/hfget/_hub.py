"""The Hub's metadata: a revision resolved to a commit, and the commit's full file listing.

Both go through huggingface_hub's `HfApi` against the endpoint in use (hub-protocol.md §2). What the official
client does not do is added around it (event hooks on its session), scoped to hfget's own calls by a context
variable:
- a tree page's `Link: <next>` that names another host (hf-mirror leaves huggingface.co there), or the endpoint's
  host without the endpoint's path prefix (`https://host/artifactory/api/huggingfaceml/repo`), is sent to the
  endpoint in use instead, prefix included, so the listing and the token stay on the mirror;
- metadata requests get a timeout (huggingface_hub's session has none): --first-byte-timeout, else
  HF_HUB_ETAG_TIMEOUT, else the default, so a silent endpoint fails instead of hanging;
- huggingface_hub's agent-registry lookup (`/api/agent-harnesses`, made while building its User-Agent) is
  refused before it leaves: it is a round trip per run that a download does not need, and it would go to
  HF_ENDPOINT or huggingface.co even when a mirror is in use. huggingface_hub treats it as unavailable;
- every answer is bounded (README, "Bounded"): asked uncompressed, read within a deadline and a size, a listing's
  pages may not repeat or run on for ever.
The proxy and the CA bundle reach huggingface_hub's session through _network.py's `use_for_metadata`.
Errors from huggingface_hub and httpx2 are translated into hfget's here, and nowhere else, narrowly: what the
network raised, and what huggingface_hub raised while parsing an answer. An error of hfget's own propagates as it
is, so a bug never looks like a bad mirror (and never triggers fail-over).

`Metadata` asks the endpoint in use (see _mirrors.py) and moves to the next mirror when one cannot answer.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import httpx2

from ._errors import HfgetError, NetworkError
from ._events import MetadataRetried, Sink
from ._hub_errors import HubStatusError, NotSent, Refused, status_of, translate_error
from ._listing import check_listing, remote_file
from ._mirrors import Mirrors
from ._models import RemoteFile
from ._network import Network, untrusted_certificate, use_for_metadata
from ._repo import Repo
from ._retry import RetryPolicy, is_transient_status
from ._version import __version__

T = TypeVar("T")

MAX_PAGES = 10_000  # of one listing: 10 million files at the Hub's 1,000 a page
MAX_ANSWER = 256 << 20  # bytes of one metadata answer, decoded
EXPAND = ("sha", "lastModified")  # what a revision lookup asks for: the commit, and its date to compare mirrors


@dataclass
class _Scope:
    endpoint: httpx2.URL
    timeout: float
    deadline: float  # seconds for one whole answer, however slowly it trickles in
    pages: set[str] = field(default_factory=set)


_SCOPE: ContextVar[_Scope | None] = ContextVar("hfget_hub_scope", default=None)


def _scoped_request_hook(request: httpx2.Request) -> None:
    scope = _SCOPE.get()
    if scope is None:
        return
    request.headers["Accept-Encoding"] = "identity"
    target = scope.endpoint
    prefix = target.raw_path.rstrip(b"/")
    if request.url.raw_path.removeprefix(prefix).startswith(b"/api/agent-harnesses"):
        raise NotSent("hfget does not fetch the agent registry")
    here = (request.url.scheme, request.url.host, request.url.port)
    if here != (target.scheme, target.host, target.port) or not _under(request.url.raw_path, prefix):
        # a next-page link naming another host (hf-mirror's name huggingface.co), or the endpoint's host without
        # its path prefix (a reverse proxy at /prefix that passes the Hub's links on): the endpoint in use, whole
        raw_path = request.url.raw_path
        request.url = request.url.copy_with(scheme=target.scheme, host=target.host, port=target.port,
                                            raw_path=raw_path if _under(raw_path, prefix) else prefix + raw_path)
        request.headers["Host"] = request.url.netloc.decode("ascii")
    timeout = request.extensions.get("timeout") or {}
    if timeout.get("connect") is None:
        t = scope.timeout
        request.extensions["timeout"] = {"connect": t, "read": t, "write": t, "pool": t}


def _count_page(scope: _Scope, response: httpx2.Response) -> None:
    """A page of a listing was answered: its `next` link must lead to a page not seen yet, and not too many.
    (A page asked again after a failure is not a repeat: only answered pages count.)"""
    scope.pages.add(response.url.raw_path.decode("ascii", "replace"))
    following = response.links.get("next", {}).get("url")
    if following and httpx2.URL(following).raw_path.decode("ascii", "replace") in scope.pages:
        raise Refused("sent a file list whose pages repeat")
    if len(scope.pages) >= MAX_PAGES and following:
        raise Refused(f"sent a file list of more than {MAX_PAGES} pages")


def _scoped_response_hook(response: httpx2.Response) -> None:
    """Every metadata answer is read within the scope's deadline and size; a compressed one is decoded in bounds."""
    scope = _SCOPE.get()
    if scope is None:
        return
    import zlib

    if "/tree/" in response.url.path and response.status_code == 200:
        _count_page(scope, response)
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "deflate"):
        raise Refused(f"answered with Content-Encoding {encoding!r} (hfget asked for identity)")
    decoder = None
    if encoding in ("gzip", "deflate"):
        decoder = zlib.decompressobj(47 if encoding == "gzip" else zlib.MAX_WBITS)
        del response.headers["Content-Encoding"]
    response.stream = _BoundedAnswer(response.stream, scope.deadline, decoder)


def _under(raw_path: bytes, prefix: bytes) -> bool:
    return not prefix or raw_path == prefix or raw_path.startswith(prefix + b"/")


@contextlib.contextmanager
def _scoped(endpoint: str, timeout: float, deadline: float = 120.0) -> Iterator[None]:
    """huggingface_hub's session, for the calls made in this block: the hooks above, in this scope."""
    from huggingface_hub import get_session

    session = get_session()
    hooks = session.event_hooks
    if _scoped_request_hook not in hooks["request"]:
        session.event_hooks = {**hooks, "request": [*hooks["request"], _scoped_request_hook],
                               "response": [*hooks["response"], _scoped_response_hook]}
    with _scope(endpoint, timeout, deadline):
        yield


@contextlib.contextmanager
def _scope(endpoint: str, timeout: float, deadline: float) -> Iterator[None]:
    token = _SCOPE.set(_Scope(httpx2.URL(endpoint), timeout, deadline))
    try:
        yield
    finally:
        _SCOPE.reset(token)


_clients: dict[Network, httpx2.Client] = {}
_clients_lock = threading.Lock()


def _client(network: Network) -> httpx2.Client:
    """hfget's own client for the revision lookup, one per network for the process (as huggingface_hub keeps one
    session): the hooks above, redirects followed (20 at most), a TLS context only once an https:// URL needs it."""
    with _clients_lock:
        if network not in _clients:
            arguments = network.client_arguments(lazy_tls=True)
            _clients[network] = httpx2.Client(
                event_hooks={"request": [_scoped_request_hook], "response": [_scoped_response_hook]},
                follow_redirects=True, max_redirects=20, timeout=None, **arguments)
        return _clients[network]


def _utc(value: Any) -> str:
    """A date as huggingface_hub's ModelInfo gives it (ISO 8601 in UTC), so the answers of mirrors compare."""
    from datetime import datetime, timezone

    if not isinstance(value, str) or not value:
        return ""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).isoformat()
    except ValueError:
        return ""


@dataclass(frozen=True)
class Served:
    """The commit an endpoint serves for a revision, and its date (ISO 8601, UTC; empty if not given)."""

    endpoint: str
    commit: str
    date: str


class Metadata:
    """Revision lookups and listings on the endpoint in use, failing over to the next mirror."""

    def __init__(self, mirrors: Mirrors, token: str | None, *, policy: RetryPolicy, sink: Sink,
                 timeout: float = 300.0, network: Network | None = None, deadline: float = 120.0) -> None:
        self.deadline = deadline
        self.mirrors = mirrors
        self.token = token
        self.policy = policy
        self.sink = sink
        self.timeout = timeout  # for the answer to begin (and for each read of it)
        self.network = network or Network()
        self._apis: dict[str, Any] = {}
        self._served: list[Served] = []
        self.unreachable: dict[str, str] = {}  # endpoint -> why, from the last resolve_everywhere

    def resolve_commit(self, repo: Repo, revision: str) -> str:
        """The commit a branch, tag or `refs/pr/N` points at now (one request)."""
        return self._on_mirrors(lambda: self._resolve(repo, revision))

    def list_files(self, repo: Repo, commit: str) -> list[RemoteFile]:
        """Every file at `commit`, following every page of the recursive tree."""
        return self._on_mirrors(lambda: self._list(repo, commit))

    def _on_mirrors(self, call: Callable[[], T]) -> T:
        while True:
            try:
                return call()
            except NetworkError as error:
                if not self.mirrors.fail_over(error.message):
                    raise

    def resolve_everywhere(self, repo: Repo, revision: str) -> tuple[Served, list[Served]]:
        """The revision on every mirror at once: the newest commit (by the date the API gives it) and where it
        is served, and the mirrors that serve an older one. Mirrors that cannot answer are left out."""
        from concurrent.futures import ThreadPoolExecutor

        endpoints = self.mirrors.remaining
        pool = ThreadPoolExecutor(len(endpoints))
        try:
            answers = list(pool.map(lambda e: self._try_lookup(repo, revision, e), endpoints))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C must not wait for a hung mirror
        served = [a for a in answers if isinstance(a, Served)]
        self._served = served
        self.unreachable = {e: a.message for e, a in zip(endpoints, answers, strict=True) if isinstance(a, HfgetError)}
        if not served:
            errors = [a for a in answers if isinstance(a, HfgetError)]
            raise next((e for e in errors if not isinstance(e, NetworkError)), errors[0])
        newest = max(served, key=lambda s: s.date)
        return newest, [s for s in served if s.commit != newest.commit and s.date < newest.date]

    def serving(self, commit: str) -> list[str]:
        """The endpoints whose last answer (resolve_everywhere) was `commit`."""
        return [s.endpoint for s in self._served if s.commit == commit]

    def _try_lookup(self, repo: Repo, revision: str, endpoint: str) -> Served | HfgetError:
        try:
            return self.lookup(repo, revision, endpoint)
        except HfgetError as error:
            return error

    def _hf_api(self, endpoint: str | None = None) -> Any:
        endpoint = endpoint or self.mirrors.current
        if endpoint not in self._apis:
            from huggingface_hub import HfApi

            use_for_metadata(self.network)

            self._apis[endpoint] = HfApi(endpoint=endpoint, token=self.token or False, library_name="hfget",
                                         library_version=__version__)
        return self._apis[endpoint]

    def _resolve(self, repo: Repo, revision: str) -> str:
        return self.lookup(repo, revision, self.mirrors.current).commit

    def lookup(self, repo: Repo, revision: str, endpoint: str) -> Served:
        """What `endpoint` serves for the revision: its commit and that commit's date (one request). It asks for
        those two only (`expand`); the full answer lists every file. An endpoint that ignores `expand` sends
        everything, which is read the same way."""
        url = f"{endpoint}/api/{repo.api_kind}/{repo.repo_id}/revision/{quote(revision, safe='')}"
        with _translated(repo, revision, endpoint, self.network.proxy), \
                _scope(endpoint, self.timeout, self.deadline):
            info = self._retrying(f"the revision lookup of {repo}@{revision}", lambda: self._get_json(url))
        sha = info.get("sha") if isinstance(info, dict) else None
        if not sha:
            raise NetworkError(f"{endpoint} gave no commit for {repo}@{revision}.")
        return Served(endpoint, str(sha), _utc(info.get("lastModified")))

    def _get_json(self, url: str) -> Any:
        headers = {"User-Agent": f"hfget/{__version__}"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        response = _client(self.network).get(url, params={"expand": list(EXPAND)}, headers=headers)
        if response.status_code >= 400:
            raise HubStatusError(response)
        return json.loads(response.content)

    def _list(self, repo: Repo, commit: str) -> list[RemoteFile]:
        from huggingface_hub.hf_api import RepoFile

        api, endpoint = self._hf_api(), self.mirrors.current
        with _translated(repo, commit, endpoint, self.network.proxy), _scoped(endpoint, self.timeout, self.deadline):
            entries = self._retrying(f"the file list of {repo}", lambda: list(api.list_repo_tree(
                repo.repo_id, recursive=True, revision=commit, repo_type=repo.repo_type)))
        files = [remote_file(e, repo) for e in entries if isinstance(e, RepoFile)]
        return check_listing(files, repo)

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """Send again on connect errors, timeouts, 408, 429 and 5xx (huggingface_hub does not retry a revision
        lookup); a refused connection gets 3 attempts, the rest the policy's budget."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except Exception as error:
                if not _http_failure(error) or untrusted_certificate(error) is not None:
                    raise
                status = status_of(error)
                refused = isinstance(error, httpx2.ConnectError)
                transient = is_transient_status(status) or (status is None and isinstance(error, httpx2.TransportError))
                limit = min(3, self.policy.retries + 1) if refused else self.policy.retries + 1
                if not transient or attempt >= limit or not self.policy.spend():
                    raise
                delay = self.policy.delay(attempt, getattr(getattr(error, "response", None), "headers", None))
                self.sink.handle(MetadataRetried(what, f"{status or type(error).__name__}", delay))
                time.sleep(delay)


def _http_failure(error: Exception) -> bool:
    """A failure to reach the endpoint, or an error status (huggingface_hub's HfHubHTTPError, or hfget's own)."""
    if isinstance(error, (httpx2.TransportError, HubStatusError)):
        return True
    return type(error).__module__.startswith("huggingface_hub") and status_of(error) is not None


@contextlib.contextmanager
def _translated(repo: Repo, revision: str, endpoint: str, proxy: str | None) -> Iterator[None]:
    try:
        yield
    except HfgetError:
        raise
    except Exception as error:
        translated = translate_error(error, repo=repo, revision=revision, endpoint=endpoint, proxy=proxy)
        if translated is None:
            raise
        raise translated from error


class _BoundedAnswer(httpx2.SyncByteStream):
    """A metadata answer's body, cut off past MAX_ANSWER bytes (decoded) or its deadline."""

    def __init__(self, stream: httpx2.SyncByteStream | httpx2.AsyncByteStream, deadline: float,
                 decoder: Any) -> None:
        assert isinstance(stream, httpx2.SyncByteStream)
        self._stream, self._decoder = stream, decoder
        self._until = time.monotonic() + deadline
        self._deadline = deadline
        self._size = 0

    def __iter__(self) -> Iterator[bytes]:
        for raw in self._stream:
            chunk = self._decoder.decompress(raw, MAX_ANSWER + 1 - self._size) if self._decoder else raw
            self._size += len(chunk)
            if self._size > MAX_ANSWER:
                raise Refused(f"sent an answer of more than {MAX_ANSWER >> 20} MiB")
            if time.monotonic() > self._until:
                raise Refused(f"took more than {self._deadline:g} s to send one answer")
            yield chunk

    def close(self) -> None:
        self._stream.close()

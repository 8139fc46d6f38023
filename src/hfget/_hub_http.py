"""The httpx2 side of metadata requests: hooks scoped to hfget's own calls, bounded answers, the lookup's client.

Imported when the first metadata request is sent (see _hub.py for what the hooks do and why), so `--help` and
offline runs never load httpx2. Every metadata request goes over httpx2, as every file body does: one HTTP stack.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx2

from ._hub_errors import NotSent, Refused
from ._network import Network, environment_proxies, tls_context

MAX_ANSWER = 256 << 20  # bytes of one metadata answer, decoded (README, "Bounded")
MAX_PAGES = 10_000  # of one listing: 10 million files at the Hub's 1,000 a page


@dataclass
class _Scope:
    endpoint: httpx2.URL
    timeout: float
    deadline: float  # seconds for one whole answer, however slowly it trickles in
    token: str | None = field(default=None, repr=False)  # added by the request hook, once the URL is the endpoint's
    # (the one place a metadata request gets the token: the lookup's and the listing's alike)
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
    if scope.token:
        request.headers["Authorization"] = f"Bearer {scope.token}"
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


def scoped_hooks() -> dict[str, list[Any]]:
    """The hooks above, for a client that hfget's calls share with others (they act only within a scope)."""
    return {"request": [_scoped_request_hook], "response": [_scoped_response_hook]}


@contextlib.contextmanager
def session_scope(endpoint: str, timeout: float, deadline: float = 120.0, token: str | None = None) -> Iterator[None]:
    """huggingface_hub's session, for the calls made in this block: the hooks above, in this scope. The `token`
    is not given to huggingface_hub's calls: the request hook adds it, after it has put the request on the
    endpoint. A session huggingface_hub builds anew in the block (after a connect error) lacks the hooks unless
    hfget's client factory made it (_network.use_for_metadata); its requests then carry no token at all."""
    from huggingface_hub import get_session

    session = get_session()
    hooks = session.event_hooks
    if _scoped_request_hook not in hooks["request"]:
        session.event_hooks = {**hooks, "request": [*hooks["request"], _scoped_request_hook],
                               "response": [*hooks["response"], _scoped_response_hook]}
    with request_scope(endpoint, timeout, deadline, token):
        yield


@contextlib.contextmanager
def request_scope(endpoint: str, timeout: float, deadline: float, token: str | None = None) -> Iterator[None]:
    context = _SCOPE.set(_Scope(httpx2.URL(endpoint), timeout, deadline, token))
    try:
        yield
    finally:
        _SCOPE.reset(context)


class _LazyTLS(httpx2.BaseTransport):
    """http:// on a transport without certificates, https:// on one built at its first request with the network's
    TLS context (_network.tls_context): loading the CA store costs tens of milliseconds that a plain-http endpoint
    never needs."""

    def __init__(self, network: Network) -> None:
        self._network = network
        self._transports: dict[bool, httpx2.BaseTransport] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return self._for(request.url.scheme).handle_request(request)

    def _for(self, scheme: str) -> httpx2.BaseTransport:
        tls = scheme != "http"
        with self._lock:
            if tls not in self._transports:  # an http:// transport never makes a TLS connection: no trust needed
                self._transports[tls] = httpx2.HTTPTransport(verify=tls_context(self._network) if tls else False)
            return self._transports[tls]

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()


class _Lent(httpx2.BaseTransport):
    """A transport lent to another client: requests go through it, and closing that client leaves it open
    (huggingface_hub closes its session when its client factory is replaced)."""

    def __init__(self, transport: httpx2.BaseTransport) -> None:
        self._transport = transport

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return self._transport.handle_request(request)


_clients: dict[Network, httpx2.Client] = {}
_direct: dict[Network, _LazyTLS] = {}  # the transports of the clients that go direct, by network
_clients_lock = threading.Lock()


def client(network: Network) -> httpx2.Client:
    """hfget's own client for the revision lookup, one per network for the process (as huggingface_hub keeps one
    session): the hooks above, redirects followed (20 at most), a TLS context only once an https:// URL needs it."""
    with _clients_lock:
        if network not in _clients:
            arguments: dict[str, Any]
            if _goes_direct(network):
                _direct[network] = _LazyTLS(network)
                arguments = {"transport": _direct[network], "trust_env": True}
            else:
                arguments = network.client_arguments()
            _clients[network] = httpx2.Client(event_hooks=scoped_hooks(), follow_redirects=True, max_redirects=20,
                                              timeout=None, **arguments)
        return _clients[network]


def _goes_direct(network: Network) -> bool:
    """No proxy is set for `network` and none comes from the environment: hfget's own transport carries it."""
    return network.proxy is None and not environment_proxies()


def lend(network: Network) -> httpx2.BaseTransport | None:
    """The connections of hfget's metadata client for `network`, for huggingface_hub's session (_network.py's
    `use_for_metadata`), if that client goes direct; None if it goes through a proxy (httpx2 builds those routes
    inside the client). Called while huggingface_hub holds its session's lock: a proxied client, whose CA bundle
    is loaded under _network's lock (which `use_for_metadata` holds while it waits for huggingface_hub's), is not
    built here."""
    if not _goes_direct(network):
        return None
    client(network)
    transport = _direct.get(network)
    return None if transport is None else _Lent(transport)


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

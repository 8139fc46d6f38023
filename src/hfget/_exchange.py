"""One HTTP exchange for a file body: the client, redirects with the token policy, replies checked, errors sorted.

    Exchange.open(file, link, range)  ->  a streaming response whose status and Content-Range fit what was asked

- Redirects are followed by hand (at most `MAX_REDIRECTS`): the token goes to the endpoint's origin only, never to
  the CDN a download is sent to (hub-protocol.md §3). The CDN location is kept in the file's `Link` and reused for
  its other ranges; it belongs to the mirror that gave it, so after a fail-over it is resolved again.
- Statuses are sorted once, here: transient (`Transient`, retried from the bytes on disk by the caller; its
  `blame` is the evidence it adds against the endpoint, see _mirrors.py), a refusal by the endpoint (`AuthError`,
  the run stops), or final for this file (`FileDownloadError`).
- Only http(s) redirects are followed (a `file:` or `ftp:` Location fails the file at once), and on the endpoint's
  origin they stay under its path prefix. No `Referer` is sent (httpx2 sends none).
- Two limits on waiting: the answer must begin within the first-byte timeout (a caching proxy may fetch the whole
  file first; a wait past a few seconds is reported as `FirstByteAwaited`), then each read of the body within the
  stall timeout.
- A host that caps connections per client is kept to what it accepts (_hosts.py): a refusal that comes while
  the run holds other connections to it is `Transient` with `capped`, retried at no cost to the file.
- Each worker thread has its own `httpx2.Client` (`ThreadClients`), all sharing one TLS context: with one client
  shared by 32 threads, httpcore2's pool lock and its scan of every request against every connection were the top
  frames of the many-small-files profile (measured: ~12% less CPU for 2,000 files of 8 KiB). A worker sends one
  request at a time, so its pool stays small; idle keep-alive connections are not what hosts cap (nginx counts
  connections with a request in progress).
- Replies are checked before a byte is written (house style, habit 4): a 206 must start where asked and end
  within the range, a 200 must carry the listed size. httpx2's transport errors become `Transient` here.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import httpx2

from ._compat import fast_transport
from ._errors import AuthError, FileDownloadError
from ._events import HostLimited, Sink
from ._hosts import HostSlots, SlotStream
from ._mirrors import Mirrors
from ._models import RemoteFile
from ._network import HEADERS, Network, certificate_error, environment_proxies, tls_context, untrusted_certificate
from ._repo import keep_prefix
from ._retry import is_transient_status
from ._waiting import FirstByteWatch

if TYPE_CHECKING:
    from ._options import Options

MAX_REDIRECTS = 10
CONNECT_TIMEOUT = 10.0
WAITING_REPORTED_AFTER = 5.0  # seconds without an answer (or the stall timeout, if shorter) before it is reported


class Transient(Exception):
    """Worth another attempt from the bytes on disk (reset, truncated body, 5xx, 429, stall, expired link).

    `blame`: evidence against the endpoint asked (`endpoint`; see _mirrors.py); `missing`: a 404 for a listed file,
    final unless another mirror has it; `capped`: a host's connection cap (see _hosts.py), retried at no cost."""

    def __init__(self, message: str, *, received: int = 0, status: int | None = None,
                 headers: Mapping[str, str] | None = None, blame: int = 0, missing: bool = False,
                 capped: bool = False, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint  # the endpoint asked when it happened (its evidence is not another's)
        self.capped = capped  # the host limits connections: wait for a slot, at no cost to the file
        self.received = received
        self.status = status
        self.headers = headers
        self.blame = blame
        self.missing = missing


@dataclass
class Link:
    """Where a file's body was last found: the CDN URL its resolve URL redirected to, and whose answer that was."""

    location: str | None = None
    endpoint: str | None = None

    def forget(self) -> None:
        self.location = self.endpoint = None


def make_client(*, connections: int, stall_timeout: float, network: Network,
                tls: ssl.SSLContext | None = None) -> httpx2.Client:
    limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
    arguments = network.client_arguments()
    if tls is not None:
        arguments["verify"] = tls
    if arguments.get("proxy") is None and not environment_proxies():  # direct: 1 MiB reads (_reads.py)
        arguments["transport"] = fast_transport(verify=arguments.get("verify", True), limits=limits)
    return httpx2.Client(
        limits=limits,
        # read: the stall watchdog, the longest wait for the next byte of a body (the wait for the answer to
        # begin has its own limit, set per request: Exchange._send)
        timeout=httpx2.Timeout(connect=CONNECT_TIMEOUT, read=stall_timeout, write=stall_timeout, pool=None),
        follow_redirects=False,
        headers=HEADERS,
        **arguments,
    )


class ThreadClients:
    """One client per thread, made on the thread's first request (see the module docstring); `close` closes all."""

    def __init__(self, make: Callable[[], httpx2.Client]) -> None:
        self._make = make
        self._local = threading.local()
        self._made: list[httpx2.Client] = []
        self._lock = threading.Lock()

    @classmethod
    def for_run(cls, options: Options, network: Network) -> ThreadClients:
        return cls(lambda: make_client(connections=4, stall_timeout=options.stall_timeout, network=network,
                                       tls=tls_context(network)))  # one TLS context for all (_network.py)

    def current(self) -> httpx2.Client:
        client: httpx2.Client | None = getattr(self._local, "client", None)
        if client is None:
            with self._lock:
                client = self._local.client = self._make()
                self._made.append(client)
        return client

    def close(self) -> None:
        with self._lock:
            made, self._made = self._made, []
        for client in made:
            client.close()


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)


class Exchange:
    def __init__(self, clients: ThreadClients, mirrors: Mirrors, token: str | None,
                 resolve_url: Callable[[RemoteFile, str], str], *, first_byte_timeout: float = 300.0,
                 watch: FirstByteWatch | None = None, slots: HostSlots | None = None) -> None:
        self.slots = slots
        self.clients = clients
        self.mirrors = mirrors
        self.token = token
        self.resolve_url = resolve_url
        self.first_byte_timeout = first_byte_timeout
        self.watch = watch or FirstByteWatch(None, after=float("inf"))

    @classmethod
    def start(cls, options: Options, mirrors: Mirrors, token: str | None,
              resolve_url: Callable[[RemoteFile, str], str], sink: Sink) -> Exchange:
        """The exchange of a run: its client (with the run's proxy and trust) and its first-byte watch."""
        network = Network.from_options(options)
        clients = ThreadClients.for_run(options, network)
        watch = FirstByteWatch(sink, after=min(options.stall_timeout, WAITING_REPORTED_AFTER))
        slots = HostSlots(options.max_connections, on_capped=lambda host, n: sink.handle(HostLimited(host, n)))
        return cls(clients, mirrors, token, resolve_url, first_byte_timeout=options.first_byte_wait("file"),
                   watch=watch, slots=slots)

    def close(self) -> None:
        self.watch.close()
        self.clients.close()

    def open(self, file: RemoteFile, link: Link, range_header: str | None, endpoint: str | None = None
             ) -> httpx2.Response:
        """GET the file (with Range) from `endpoint` (default: the one in use), following redirects; raise unless
        the answer is a 200 or a 206."""
        endpoint = endpoint or self.mirrors.current
        asked_at = time.monotonic()
        home = origin(endpoint)
        url = link.location if link.location and link.endpoint == endpoint else self.resolve_url(file, endpoint)
        try:
            for _ in range(MAX_REDIRECTS):
                at_home = url.startswith(f"{endpoint.rstrip('/')}/") or origin(url) == home  # the first: no parse
                response = self._send(file, url, range_header, with_token=at_home)
                if response.status_code >= 400:
                    self._release_refused(response)  # a cap raises here; other errors are sorted below
                location = response.headers.get("Location")
                if response.is_redirect and location:
                    response.close()
                    url = _follow(file, url, location, endpoint)
                    if origin(url) != home:
                        link.location, link.endpoint = url, endpoint  # the CDN: reused for the other ranges
                    continue
                if response.status_code >= 400:
                    raise _status_error(response, file, link, on_endpoint=at_home)
                self.mirrors.answered(endpoint, asked_at)
                return response
        except httpx2.TransportError as error:
            failure = untrusted_certificate(error)
            if failure is not None:
                raise certificate_error(failure, urlsplit(url).hostname or url) from None
            raise sent_by(endpoint, from_transport(error, 0)) from None
        except (ValueError, httpx2.InvalidURL) as error:  # a Location that is not a URL
            raise sent_by(endpoint, Transient(f"a redirect to an unusable address ({error})", blame=1)) from None
        except Transient as error:
            raise sent_by(endpoint, error) from None
        raise FileDownloadError(file.path, f"{file.path}: too many redirects (more than {MAX_REDIRECTS}).")

    def _send(self, file: RemoteFile, url: str, range_header: str | None, *, with_token: bool) -> httpx2.Response:
        """Send when the host has a connection slot for it (held until the response is closed), waiting at most
        the first-byte timeout for the answer to begin."""
        headers = {**HEADERS, "Range": range_header} if range_header else dict(HEADERS)
        if with_token and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        client = self.clients.current()
        # built here, not by client.build_request: no base URL, cookies or per-request overrides to merge, and
        # merging them cost an eighth of a small file's CPU (profiled)
        timeouts = client.timeout.as_dict()
        request = httpx2.Request("GET", url, headers=headers, extensions={"timeout": timeouts})
        stall, timeouts["read"] = timeouts["read"], self.first_byte_timeout
        host, slot = request.url.host, request.url.netloc.decode("ascii")
        if self.slots is not None and not self.slots.acquire(slot):
            raise Transient(f"{slot} allows no more connections now", capped=True)
        with self.watch.waiting(file.path, host):
            try:
                response = client.send(request, stream=True)
            except httpx2.TransportError as error:
                self._refused(slot, error)
                if isinstance(error, httpx2.ReadTimeout):
                    raise Transient(f"no answer from {host} within the --first-byte-timeout "
                                    f"({self.first_byte_timeout:g} s)", blame=2) from None
                raise
        if self.slots is not None:
            slots, answered = self.slots, response.status_code < 400
            if answered:
                slots.answered(slot)
            response.stream = SlotStream(response.stream, lambda: slots.release(slot, answered=answered))
        # The body's reads wait at most the stall timeout: httpcore2 reads this same `timeout` extension when the
        # body is first read, after the headers came (test_network.py's slow-first-byte test shows both limits).
        timeouts["read"] = stall
        return response


    def _refused(self, slot: str, error: httpx2.TransportError) -> None:
        """A connection refused or reset while the run held others to the host: a cap (raises), else nothing."""
        if self.slots is None:
            return
        capped = self.slots.refused(slot) and not isinstance(error, httpx2.TimeoutException)
        self.slots.release(slot)
        if capped:
            raise Transient(f"{slot} refused a connection ({type(error).__name__})", capped=True) from None

    def _release_refused(self, response: httpx2.Response) -> None:
        """A 503 or 429 that came while this run held other connections to the host: a cap, not a failure."""
        if self.slots is None or response.status_code not in (429, 503):
            return
        if self.slots.refused(response.url.netloc.decode("ascii")):
            response.close()
            raise Transient(f"HTTP {response.status_code} from {response.url.host} (connection limit)",
                            status=response.status_code, capped=True)


def sent_by(endpoint: str, error: Transient) -> Transient:
    """The failure counts against `endpoint` (the mirror asked, or the one that sent a body cut mid-way), unless
    it already names one."""
    if error.endpoint is None:
        error.endpoint = endpoint
    return error


def _follow(file: RemoteFile, url: str, location: str, endpoint: str) -> str:
    """Where a redirect sends the request: http(s) only (never `file:`, `ftp:` and the like), and on the endpoint's
    own origin kept under its path prefix (a reverse proxy at /prefix that passes `Location: /api/...` on)."""
    target = urljoin(url, location)
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https"):
        shown = f"{parts.scheme}://{parts.netloc}{parts.path}"
        raise FileDownloadError(file.path, f"{file.path}: {urlsplit(url).hostname} redirected it to {shown}, "
                                "which is not http(s); not followed.")
    return keep_prefix(endpoint, target)


def _status_error(response: httpx2.Response, file: RemoteFile, link: Link, *, on_endpoint: bool) -> Exception:
    status, host, path = response.status_code, response.url.host, file.path
    headers = response.headers  # case-insensitive, still readable once closed
    response.close()
    if is_transient_status(status):
        return Transient(f"HTTP {status} from {host}", status=status, headers=headers, blame=1 if status >= 500 else 0)
    if status in (401, 403) and on_endpoint:
        return AuthError(f"{path}: the endpoint refused access ({status}).",
                         hint="Pass a token with --token or HF_TOKEN that may read this repo.")
    if status in (401, 403, 410):  # a signed CDN URL that expired: resolve again
        link.forget()
        return Transient(f"HTTP {status} from {host} (expired link, resolving again)", status=status)
    if status == 404 and on_endpoint:
        return Transient(f"HTTP 404 from {host}", status=status, blame=3, missing=True)
    if status == 404:  # the CDN lost it: the Hub may point elsewhere next time
        link.forget()
        return Transient(f"HTTP 404 from {host}", status=status, blame=1)
    if status == 416:
        return FileDownloadError(path, f"{path}: the server has fewer bytes than the {file.size} listed.")
    return FileDownloadError(path, f"{path}: HTTP {status} from {host}.")


def check_reply(response: httpx2.Response, file: RemoteFile, offset: int, end: int | None) -> int:
    """Where the body starts in the file (0 for a 200: the server ignored Range); raise if it does not fit."""
    if response.status_code == 206:
        content_range = response.headers.get("Content-Range", "")
        if not _fits(content_range, file.size, offset, end):
            response.close()
            asked = f"{offset}-{'' if end is None else end - 1}"
            raise FileDownloadError(file.path, f"{file.path}: asked for bytes {asked}, "
                                    f"the server answered {content_range!r}.")
        return offset
    if response.status_code == 200:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) != file.size:
            response.close()
            raise FileDownloadError(file.path, f"{file.path}: the server sends {length} bytes, "
                                    f"the listing says {file.size}.")
        return 0
    response.close()
    raise FileDownloadError(file.path, f"{file.path}: unexpected HTTP {response.status_code}.")


def _fits(content_range: str, size: int, offset: int, end: int | None) -> bool:
    """`bytes first-last/total` (RFC 9110 §14.4) starting at `offset`, ending before `end`, of the listed size."""
    unit, _, rest = content_range.partition(" ")
    span, _, total = rest.partition("/")
    first, _, last = span.partition("-")
    return (unit == "bytes" and first.isdigit() and int(first) == offset and total in ("*", str(size))
            and (end is None or (last.isdigit() and int(last) < end)))


def from_transport(error: Exception, received: int) -> Transient:
    """httpx2's transport errors, weighed as evidence against the endpoint (connect and stall weigh most)."""
    name = type(error).__name__
    if isinstance(error, (httpx2.ConnectError, httpx2.ConnectTimeout)):
        return Transient(f"cannot connect ({name}: {error})", received=received, blame=2)
    if isinstance(error, httpx2.ReadTimeout):
        return Transient("stalled: no byte for the --stall-timeout", received=received, blame=2)
    return Transient(f"{name}: {error or 'connection lost'}", received=received)


def chunks(response: httpx2.Response) -> Iterator[bytes]:
    """The body as it arrives; a transport error mid-way becomes `Transient` (the caller adds what it received)."""
    try:
        yield from response.iter_raw()
    except httpx2.TransportError as error:
        raise from_transport(error, 0) from None

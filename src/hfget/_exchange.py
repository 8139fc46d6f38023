"""One HTTP exchange for a file body: the client, redirects with the token policy, replies checked, errors sorted.

    Exchange.open(file, link, range)  ->  a streaming response whose status and Content-Range fit what was asked

- Redirects are followed by hand (at most `MAX_REDIRECTS`): the token goes to the endpoint's origin only, never to
  the CDN a download is sent to (hub-protocol.md §3). The CDN location is kept in the file's `Link` and reused for
  its other ranges; it belongs to the mirror that gave it, so after a fail-over it is resolved again.
- Statuses are sorted once, here: transient (`Transient`, retried from the bytes on disk by the caller; its
  `blame` is the evidence it adds against the endpoint, see _mirrors.py), a refusal by the endpoint (`AuthError`,
  the run stops), or final for this file (`FileDownloadError`).
- Replies are checked before a byte is written (house style, habit 4): a 206 must start where asked and end
  within the range, a 200 must carry the listed size. httpx2's transport errors become `Transient` here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx2

from ._errors import AuthError, FileDownloadError
from ._hosts import HostSlots
from ._mirrors import Mirrors
from ._models import RemoteFile
from ._retry import is_transient_status
from ._version import __version__

MAX_REDIRECTS = 10
CONNECT_TIMEOUT = 10.0


class Transient(Exception):
    """Worth another attempt from the bytes on disk (reset, truncated body, 5xx, 429, stall, expired link).

    `blame`: evidence against the endpoint in use (see _mirrors.py); `missing`: a 404 for a listed file, final
    unless another mirror has it."""

    def __init__(self, message: str, *, received: int = 0, status: int | None = None,
                 headers: Mapping[str, str] | None = None, blame: int = 0, missing: bool = False,
                 capped: bool = False, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint  # the endpoint in use when it happened (its evidence is not another's)
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


def make_client(*, connections: int, stall_timeout: float) -> httpx2.Client:
    return httpx2.Client(
        limits=httpx2.Limits(max_connections=connections, max_keepalive_connections=connections),
        # read: the stall watchdog, the longest wait for the next byte of a body
        timeout=httpx2.Timeout(connect=CONNECT_TIMEOUT, read=stall_timeout, write=stall_timeout, pool=None),
        follow_redirects=False,
        headers={"User-Agent": f"hfget/{__version__}", "Accept-Encoding": "identity"},
    )


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)


class Exchange:
    def __init__(self, client: httpx2.Client, mirrors: Mirrors, token: str | None,
                 resolve_url: Callable[[RemoteFile, str], str], slots: HostSlots | None = None) -> None:
        self.slots = slots
        self.client = client
        self.mirrors = mirrors
        self.token = token
        self.resolve_url = resolve_url

    def open(self, file: RemoteFile, link: Link, range_header: str | None) -> httpx2.Response:
        """GET the file (with Range), following redirects; raise unless the answer is a 200 or a 206."""
        endpoint = self.mirrors.current
        home = origin(endpoint)
        url = link.location if link.location and link.endpoint == endpoint else self.resolve_url(file, endpoint)
        try:
            for _ in range(MAX_REDIRECTS):
                response = self._send(url, range_header, with_token=origin(url) == home)
                if response.status_code >= 400:
                    self._release_refused(response)  # a cap raises here; other errors are sorted below
                location = response.headers.get("Location")
                if response.is_redirect and location:
                    response.close()
                    url = urljoin(url, location)
                    if origin(url) != home:
                        link.location, link.endpoint = url, endpoint  # the CDN: reused for the other ranges
                    continue
                if response.status_code >= 400:
                    raise _status_error(response, file, link, on_endpoint=origin(url) == home)
                self.mirrors.answered()
                return response
        except httpx2.TransportError as error:
            raise _from(endpoint, from_transport(error, 0)) from None
        except (ValueError, httpx2.InvalidURL) as error:  # a Location that is not a URL
            raise _from(endpoint, Transient(f"a redirect to an unusable address ({error})", blame=1)) from None
        except Transient as error:
            raise _from(endpoint, error) from None
        raise FileDownloadError(file.path, f"{file.path}: too many redirects (more than {MAX_REDIRECTS}).")

    def _send(self, url: str, range_header: str | None, *, with_token: bool) -> httpx2.Response:
        """Send when the host has a connection slot for it; the slot is held until the response is closed."""
        headers = {"Range": range_header} if range_header else {}
        if with_token and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        host = urlsplit(url).netloc
        if self.slots is not None and not self.slots.acquire(host):
            raise Transient(f"{host} allows no more connections now", capped=True)
        try:
            response = self.client.send(self.client.build_request("GET", url, headers=headers), stream=True)
        except httpx2.TransportError as error:
            if self.slots is not None:
                capped = self.slots.refused(host) and not isinstance(error, httpx2.TimeoutException)
                self.slots.release(host)
                if capped:
                    raise Transient(f"{host} refused a connection ({type(error).__name__})", capped=True) from None
            raise
        if self.slots is not None:
            slots, answered = self.slots, response.status_code < 400
            if answered:
                slots.answered(host)
            response.stream = _SlotStream(response.stream, lambda: slots.release(host, answered=answered))
        return response

    def _release_refused(self, response: httpx2.Response) -> None:
        """A 503 or 429 that came while this run held other connections to the host: a cap, not a failure."""
        if self.slots is None or response.status_code not in (429, 503):
            return
        if self.slots.refused(urlsplit(str(response.url)).netloc):
            response.close()
            raise Transient(f"HTTP {response.status_code} from {response.url.host} (connection limit)",
                            status=response.status_code, capped=True)


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


def _from(endpoint: str, error: Transient) -> Transient:
    if error.endpoint is None:
        error.endpoint = endpoint
    return error


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


class _SlotStream(httpx2.SyncByteStream):
    """A response body that gives its host's connection slot back when it is closed (once)."""

    def __init__(self, stream: httpx2.SyncByteStream | httpx2.AsyncByteStream, release: Callable[[], None]) -> None:
        assert isinstance(stream, httpx2.SyncByteStream)
        self._stream = stream
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()

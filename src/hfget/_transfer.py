"""File bodies over HTTP: the only module that moves file bytes. One shared `httpx2.Client`, worker threads.

For one file (`Transfer.fetch`):
1. Bytes already in the partial file (a previous run, killed at any point) are hashed from disk and kept.
2. GET the resolve URL with `Range: bytes=<on disk>-`, following redirects by hand: the token goes to the
   endpoint's origin only, never to the CDN a 302 points at (hub-protocol.md §3).
3. The reply is checked before a byte is written (house style, habit 4): a 206 must start where we asked and
   name the listed size; a 200 to a ranged request means the server ignored Range, so the partial restarts.
4. Bytes are appended and hashed as they arrive; a body longer than listed is an error, never a truncation.
5. At the end the size and hash must match the listing; a mismatch discards the partial and fetches once more,
   a second one fails the file. Transient network errors retry a few times, resuming from what is on disk.

Ranges are half-open in the code; the inclusive HTTP form is produced only in `_range_header`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from ._errors import AuthError, FileDownloadError, InterruptedError_, VerificationError
from ._events import FileRetried, Sink
from ._hub import RemoteFile
from ._verify import ContentHash
from ._version import __version__

if TYPE_CHECKING:
    import httpx2

_MAX_REDIRECTS = 10
_TRANSIENT_ATTEMPTS = 4
_RETRY_STATUSES = {408, 429, 500, 502, 503, 504}


class _Transient(Exception):
    """A failure worth another attempt from the bytes on disk (reset, truncated body, 5xx)."""


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _range_header(start: int) -> str:
    return f"bytes={start}-"


def make_client(*, connections: int, timeout: float) -> "httpx2.Client":
    import httpx2

    return httpx2.Client(
        limits=httpx2.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=httpx2.Timeout(timeout, pool=None),
        follow_redirects=False,
        headers={"User-Agent": f"hfget/{__version__}", "Accept-Encoding": "identity"},
    )


class Transfer:
    def __init__(
        self,
        client: "httpx2.Client",
        *,
        endpoint: str,
        token: str | None,
        sink: Sink,
        cancel: threading.Event,
    ) -> None:
        self.client = client
        self.endpoint_origin = _origin(endpoint)
        self.token = token
        self.sink = sink
        self.cancel = cancel

    def fetch(self, url: str, file: RemoteFile, partial: Path) -> int:
        """Bring `partial` to the complete, verified content of `file`; return the bytes received."""
        received = 0
        for attempt in (1, 2):
            try:
                return received + self._fetch_with_retries(url, file, partial)
            except VerificationError as error:
                size = partial.stat().st_size if partial.exists() else 0
                partial.unlink(missing_ok=True)
                received += size
                if attempt == 2:
                    raise VerificationError(file.path, f"{file.path}: {error.message}; fetched twice, discarded.",
                                            hint="The endpoint serves wrong bytes: try another --mirror.") from None
                self.sink.handle(FileRetried(file.path, error.message, discarded=size))
        raise AssertionError("unreachable")

    def _fetch_with_retries(self, url: str, file: RemoteFile, partial: Path) -> int:
        received = 0
        for attempt in range(1, _TRANSIENT_ATTEMPTS + 1):
            try:
                return received + self._fetch_once(url, file, partial)
            except _Transient as error:
                received += getattr(error, "received", 0)
                if attempt == _TRANSIENT_ATTEMPTS:
                    raise FileDownloadError(file.path, f"{file.path}: {error}",
                                            hint="Run the command again to resume from the bytes on disk.") from None
                self.sink.handle(FileRetried(file.path, str(error)))
                self._sleep(0.5 * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _sleep(self, seconds: float) -> None:
        if self.cancel.wait(seconds):
            raise InterruptedError_()

    def _fetch_once(self, url: str, file: RemoteFile, partial: Path) -> int:
        import httpx2

        content = ContentHash(file)
        offset = _usable_prefix(partial, file)
        if offset:
            content.update_from_file(partial, offset)
        if offset == file.size:
            return self._verified(content, 0)
        try:
            response = self._open(url, file, offset)
            try:
                offset = self._check_reply(response, file, offset)
                if offset == 0:
                    content = ContentHash(file)
                received = self._write_body(response, file, partial, offset, content)
            finally:
                response.close()
        except httpx2.TransportError as error:
            raise _transient(f"{type(error).__name__}: {error or 'connection lost'}", content.length - offset) from None
        if content.length < file.size:
            raise _transient(f"connection closed at {content.length} of {file.size} bytes", received)
        return self._verified(content, received)

    def _write_body(self, response, file: RemoteFile, partial: Path, offset: int, content: ContentHash) -> int:
        received = 0
        with open(partial, "r+b" if partial.exists() else "wb", buffering=0) as out:
            out.truncate(offset)
            out.seek(offset)
            for chunk in response.iter_bytes():
                if self.cancel.is_set():
                    raise InterruptedError_()
                if content.length + len(chunk) > file.size:
                    raise FileDownloadError(file.path, f"{file.path}: the server sent more than the "
                                            f"{file.size} bytes listed; discarded.")
                out.write(chunk)
                content.update(chunk)
                received += len(chunk)
                self.sink.advance(file.path, len(chunk))
        return received

    def _verified(self, content: ContentHash, received: int) -> int:
        if not content.matches():
            raise VerificationError(
                content.file.path,
                f"{content.algorithm} {content.hexdigest()[:12]}… does not match the listing's {content.expected[:12]}…",
            )
        return received

    def _open(self, url: str, file: RemoteFile, offset: int) -> "httpx2.Response":
        """GET with Range, following redirects; the token only ever goes to the endpoint's origin."""
        for _ in range(_MAX_REDIRECTS):
            headers = {"Range": _range_header(offset)} if offset else {}
            if self.token and _origin(url) == self.endpoint_origin:
                headers["Authorization"] = f"Bearer {self.token}"
            request = self.client.build_request("GET", url, headers=headers)
            response = self.client.send(request, stream=True)
            location = response.headers.get("Location")
            if response.is_redirect and location:
                response.close()
                url = urljoin(url, location)
                continue
            if response.status_code >= 400:
                self._raise_for_status(response, file)
            return response
        raise FileDownloadError(file.path, f"{file.path}: too many redirects.")

    def _raise_for_status(self, response: "httpx2.Response", file: RemoteFile) -> None:
        status = response.status_code
        response.close()
        if status in _RETRY_STATUSES:
            raise _transient(f"HTTP {status} from {response.url.host}", 0)
        if status in (401, 403) and _origin(str(response.url)) == self.endpoint_origin:
            raise AuthError(f"{file.path}: the endpoint refused access ({status}).",
                            hint="Pass a token with --token or HF_TOKEN that may read this repo.")
        if status in (401, 403, 410):  # a signed CDN URL that expired: resolve again
            raise _transient(f"HTTP {status} from {response.url.host}", 0)
        if status == 404:
            raise FileDownloadError(file.path, f"{file.path}: listed, but the endpoint answers 404 for it.",
                                    hint="The mirror may be out of date: try again later or use another --mirror.")
        if status == 416:
            raise FileDownloadError(file.path, f"{file.path}: the server has fewer bytes than the {file.size} listed.")
        raise FileDownloadError(file.path, f"{file.path}: HTTP {status} from {response.url.host}.")

    def _check_reply(self, response: "httpx2.Response", file: RemoteFile, offset: int) -> int:
        """The offset the body starts at; raise if the reply does not fit what was asked (house style, 4)."""
        if response.status_code == 206:
            content_range = response.headers.get("Content-Range", "")
            try:
                unit, _, rest = content_range.partition(" ")
                span, _, total = rest.partition("/")
                start = int(span.split("-")[0])
            except ValueError:
                start, unit, total = -1, "", ""
            if unit != "bytes" or start != offset or (total not in ("*", str(file.size))):
                response.close()
                raise FileDownloadError(file.path, f"{file.path}: asked for bytes from {offset}, "
                                        f"the server answered {content_range!r}.")
            return offset
        if response.status_code == 200:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) != file.size:
                response.close()
                raise FileDownloadError(file.path, f"{file.path}: the server sends {length} bytes, "
                                        f"the listing says {file.size}.")
            return 0  # the whole body: a server that ignores Range restarts the file
        response.close()
        raise FileDownloadError(file.path, f"{file.path}: unexpected HTTP {response.status_code}.")


def _transient(message: str, received: int) -> _Transient:
    error = _Transient(message)
    error.received = received  # type: ignore[attr-defined]
    return error


def _usable_prefix(partial: Path, file: RemoteFile) -> int:
    """Bytes of a partial file that can be kept: all of them, unless it is longer than the file."""
    try:
        size = partial.stat().st_size
    except FileNotFoundError:
        return 0
    if size > file.size:
        partial.unlink()
        return 0
    return size

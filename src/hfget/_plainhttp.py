"""One metadata GET over a plain socket, for a plain-http endpoint reached without a proxy.

A re-run with everything cached asks one question (the revision's commit); importing httpx2 and httpcore2 for it
(or http.client, with ssl and email) costs more than the rest of the run. An endpoint on `http://` (`hfget serve`
on the LAN, a local mirror) with no proxy in the way (no --proxy, no *_PROXY variable) is asked here, in the
plainest HTTP/1.1: one request, `Connection: close`. Only a plain answer is taken: a well-formed status line and
at most 100 header lines of at most 64 KiB, not a redirect, a `Content-Length`, no `Content-Encoding` nor
`Transfer-Encoding`, the body within the size and the deadline of any metadata answer (README, "Bounded").
Anything else is left to httpx2's client (None: the caller asks again there, where redirects are kept on the
endpoint and encodings decoded in bounds). Failures to connect or to read are raised as the httpx2 exceptions
they would have been, so retries and messages are the same whichever client asked.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, NoReturn
from urllib.parse import urlencode, urlsplit

from ._hub_errors import Refused
from ._network import Network, environment_proxies

MAX_ANSWER = 256 << 20  # bytes of one metadata answer, decoded (over httpx2 too: _hub_http.py)
MAX_LINE = 65536
MAX_FIELDS = 100
_STATUS = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])(?: [^\r\n]*)?\r?\n")


@dataclass(frozen=True)
class PlainAnswer:
    status_code: int
    content: bytes


class _Truncated(ConnectionError):
    """The answer ended before its Content-Length."""


def usable(url: str, network: Network) -> bool:
    return url.startswith("http://") and network.proxy is None and not environment_proxies()


def get(url: str, params: Mapping[str, list[str]], headers: Mapping[str, str], *, timeout: float,
        deadline: float) -> PlainAnswer | None:
    """The answer to a GET of `url` (None when httpx2 must ask); an error status is raised as hfget's
    HubStatusError, as from httpx2."""
    parts = urlsplit(f"{url}?{urlencode(params, doseq=True)}")
    fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    broken = any("\r" in text or "\n" in text for text in (*headers, *headers.values()))
    if not parts.hostname or "@" in parts.netloc or not fields.isascii() or broken:
        return None  # httpx2 refuses such a header itself
    request = f"GET {parts.path or '/'}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n{fields}" \
              "Connection: close\r\n\r\n"
    try:
        sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
    except OSError as error:
        _as_httpx2(error, url, connecting=True)
    with sock, sock.makefile("rb") as reader:
        try:
            sock.sendall(request.encode("ascii"))
            answer = _answer(reader, deadline)
        except OSError as error:
            _as_httpx2(error, url, connecting=False)
    if answer is None:
        return None
    status, received, body = answer
    if status >= 400:
        _status_error(url, status, received, body)
    return PlainAnswer(status, body)


def _answer(reader: BinaryIO, deadline: float) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """(status, header fields, body) of a plain answer; None for anything else."""
    status = _STATUS.fullmatch(reader.readline(MAX_LINE + 1))
    if status is None:
        return None
    received: list[tuple[str, str]] = []
    while (line := reader.readline(MAX_LINE + 1)) not in (b"\r\n", b"\n"):
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not line.endswith(b"\n") or len(received) >= MAX_FIELDS:
            return None  # cut short, too long, too many: httpx2 says what is wrong
        received.append((name.strip(), value.strip()))
    found = {name.lower(): value for name, value in received}
    code, length = int(status.group(1)), found.get("content-length", "")
    encoding = found.get("content-encoding", "identity").lower()
    if code < 200 or 300 <= code < 400 or encoding not in ("identity", "") or "transfer-encoding" in found \
            or not length.isdigit():
        return None
    return code, received, _read(reader, int(length), deadline)


def _read(reader: Any, length: int, deadline: float) -> bytes:
    if length > MAX_ANSWER:
        raise Refused(f"sent an answer of more than {MAX_ANSWER >> 20} MiB")
    until = time.monotonic() + deadline
    chunks, size = [], 0
    while size < length:
        chunk = reader.read1(min(1 << 16, length - size))  # what one read of the socket brings: a trickle is timed
        if not chunk:
            raise _Truncated(f"the answer ended after {size} of its {length} bytes")
        size += len(chunk)
        if time.monotonic() > until:
            raise Refused(f"took more than {deadline:g} s to send one answer")
        chunks.append(chunk)
    return b"".join(chunks)


def _status_error(url: str, status: int, headers: list[tuple[str, str]], body: bytes) -> NoReturn:
    import httpx2

    from ._hub_errors import HubStatusError

    raise HubStatusError(httpx2.Response(status, headers=headers, content=body, request=httpx2.Request("GET", url)))


def _as_httpx2(error: Exception, url: str, *, connecting: bool) -> NoReturn:
    """The httpx2 exception this failure would have been (its message kept)."""
    import httpx2

    kind: type[httpx2.TransportError]
    if isinstance(error, (TimeoutError, socket.timeout)):
        kind = httpx2.ConnectTimeout if connecting else httpx2.ReadTimeout
    elif connecting:
        kind = httpx2.ConnectError
    else:
        kind = httpx2.RemoteProtocolError if isinstance(error, _Truncated) else httpx2.ReadError
    raise kind(str(error) or type(error).__name__, request=httpx2.Request("GET", url)) from error

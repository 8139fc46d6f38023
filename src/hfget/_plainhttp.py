"""One metadata GET over the standard library, for a plain-http endpoint reached without a proxy.

A re-run with everything cached asks one question (the revision's commit); importing httpx2 and httpcore2 for it
costs more than the rest of the run. An endpoint on `http://` (`hfget serve` on the LAN, a local mirror) with no
proxy in the way (no --proxy, no *_PROXY variable) is asked with `http.client` instead. The answer must be the
plain kind: a status that is not a redirect, no Content-Encoding, within the size and the deadline of any
metadata answer (README, "Bounded"). A redirect or an encoded answer is left to httpx2's client (None: the caller
asks again there, with the hooks that keep a redirect on the endpoint). Failures are raised as the httpx2
exceptions they would have been, so retries and messages are the same whichever client asked.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlencode, urlsplit

from ._hub_errors import Refused
from ._network import Network, environment_proxies

MAX_ANSWER = 256 << 20  # bytes of one metadata answer (the same bound as httpx2's, _hub_http.py)


@dataclass(frozen=True)
class PlainAnswer:
    status_code: int
    content: bytes


def usable(url: str, network: Network) -> bool:
    return url.startswith("http://") and network.proxy is None and not environment_proxies()


def get(url: str, params: Mapping[str, list[str]], headers: Mapping[str, str], *, timeout: float,
        deadline: float) -> PlainAnswer | None:
    """The answer to a GET of `url` (None when httpx2 must ask: a redirect, an encoded body); an error status is
    raised as hfget's HubStatusError, as from httpx2."""
    import http.client

    parts = urlsplit(f"{url}?{urlencode(params, doseq=True)}")
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
    try:
        try:
            connection.connect()
        except OSError as error:
            _as_httpx2(error, url, connecting=True)
        try:
            connection.request("GET", f"{parts.path}?{parts.query}", headers=dict(headers))
            response = connection.getresponse()
            encoding = response.getheader("Content-Encoding", "identity").strip().lower()
            if 300 <= response.status < 400 or encoding not in ("identity", ""):
                return None
            body = _read(response, time.monotonic() + deadline, deadline)
        except (OSError, http.client.HTTPException) as error:
            _as_httpx2(error, url, connecting=False)
        if response.status >= 400:
            _status_error(url, response.status, response.getheaders(), body)
        return PlainAnswer(response.status, body)
    finally:
        connection.close()


def _read(response: Any, until: float, deadline: float) -> bytes:
    chunks, size = [], 0
    while chunk := response.read1(1 << 16):  # what one read of the socket brings: a trickle is timed
        size += len(chunk)
        if size > MAX_ANSWER:
            raise Refused(f"sent an answer of more than {MAX_ANSWER >> 20} MiB")
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
    import http.client

    import httpx2

    kind: type[httpx2.TransportError]
    if isinstance(error, (TimeoutError, socket.timeout)):
        kind = httpx2.ConnectTimeout if connecting else httpx2.ReadTimeout
    elif connecting:
        kind = httpx2.ConnectError
    else:
        kind = httpx2.RemoteProtocolError if isinstance(error, http.client.HTTPException) else httpx2.ReadError
    raise kind(str(error) or type(error).__name__, request=httpx2.Request("GET", url)) from error

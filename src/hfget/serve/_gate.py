"""What every request passes through: the token check (`--token-file`) and the log line, as ASGI middleware.

One line per request on stderr: method, path, status, body bytes sent, whether the file was in the cache
(hit/miss, `-` for metadata) and the seconds spent waiting on upstream. The Authorization header is checked here
and goes no further: nothing downstream reads it, so a client's token can never reach upstream; it is never logged.
"""

from __future__ import annotations

import hmac
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, TextIO

from ._source import Trace

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class Totals:
    """What the server did, for the summary at shutdown."""

    requests: int = 0
    hits: int = 0
    misses: int = 0
    bytes_sent: int = 0
    refused: int = 0  # 401: no or a wrong token


class Gate:
    """Checks the token (when `tokens` is not empty), counts the body bytes sent, writes the log line."""

    def __init__(self, app: ASGIApp, tokens: frozenset[str], *, out: TextIO | None = None) -> None:
        self.app = app
        self.tokens = tokens
        self.out = out or sys.stderr
        self.totals = Totals()
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        trace = scope["hfget.trace"] = Trace()
        status, sent = 0, 0

        async def counted(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            if self.tokens and not self._authorized(scope):
                await _refuse(counted)
            else:
                await self.app(scope, receive, counted)
        finally:
            self._record(scope, status, sent, trace, time.monotonic() - started)

    def _authorized(self, scope: Scope) -> bool:
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        given = token.strip().encode()
        # every token compared, in constant time: the answer's timing tells nothing about the tokens
        return any([hmac.compare_digest(given, known.encode()) for known in self.tokens])

    def _record(self, scope: Scope, status: int, sent: int, trace: Trace, seconds: float) -> None:
        with self._lock:
            totals = self.totals
            totals.requests += 1
            totals.bytes_sent += sent
            totals.hits += trace.cache == "hit"
            totals.misses += trace.cache == "miss"
            totals.refused += status == 401
        path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
        print(f"hfget serve: {scope['method']} {path} {status or '-'} {sent} B {trace.cache} "
              f"upstream {trace.upstream:.3f}s total {seconds:.3f}s", file=self.out, flush=True)


async def _refuse(send: Send) -> None:
    message = b'{"error": "Invalid credentials in Authorization header"}'
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(message)).encode()),
        (b"x-error-message", b"Invalid credentials in Authorization header"),
        (b"www-authenticate", b'Bearer realm="hfget serve"')]})
    await send({"type": "http.response.body", "body": message})

"""Binding, running and stopping `hfget serve`: the socket, uvicorn, the summary on SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import UsageError
from .._options import Options

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class ServeConfig:
    cache_dir: Path
    options: Options  # upstream: mirrors, endpoint, token, transfer settings (hfget's own)
    host: str = "127.0.0.1"
    port: int = 8080
    offline: bool = False
    tokens: frozenset[str] = field(default=frozenset(), repr=False)


def read_tokens(path: Path) -> frozenset[str]:
    """The tokens clients may present: one a line; blank lines and `#` comments skipped."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"Cannot read the token file {path}: {type(error).__name__}.") from None
    tokens = frozenset(t for line in lines if (t := line.strip()) and not t.startswith("#"))
    if not tokens:
        raise UsageError(f"The token file {path} holds no token.", hint="Write one token a line.")
    return tokens


def serve(config: ServeConfig) -> None:
    """Serve until SIGINT or SIGTERM; then print a summary."""
    import uvicorn

    from ._app import HubApp
    from ._gate import Gate
    from ._source import Source

    source = Source(config.cache_dir, config.options, offline=config.offline)
    hub = HubApp(source)
    gate = Gate(hub.starlette(), config.tokens)
    sock = _bind(config.host, config.port)
    port = sock.getsockname()[1]
    _announce(config, port)
    server = uvicorn.Server(uvicorn.Config(gate, log_level="warning", access_log=False, lifespan="off",
                                           timeout_graceful_shutdown=5))
    logging.getLogger("uvicorn.error").addFilter(_cut_in_one_line)  # after the Config: it sets up the logging
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the signal it stopped on, once it has stopped
    finally:
        fetcher = hub._fetcher
        totals = gate.totals
        fetched = f", {fetcher.fetches} fetched ({fetcher.fetched_bytes} B from upstream)" if fetcher else ""
        print(f"hfget serve: stopped. {totals.requests} requests, {totals.bytes_sent} B sent, {totals.hits} hits, "
              f"{totals.misses} misses{fetched}, {totals.refused} refused.", file=sys.stderr, flush=True)


def _cut_in_one_line(record: logging.LogRecord) -> bool:
    """uvicorn logs an exception that ends a response with its traceback. A response serve cuts on purpose (the
    upstream fetch failed after the body began: StreamBroken, so the client retries) is one line instead."""
    from ._fetch import StreamBroken

    error: object = record.exc_info[1] if record.exc_info else None
    inner: Sequence[object] = getattr(error, "exceptions", ())
    while len(inner) == 1:  # an exception group of one (anyio's task group)
        error, inner = inner[0], getattr(inner[0], "exceptions", ())
    if isinstance(error, StreamBroken):
        record.msg, record.args = "hfget serve: a response was cut before its end: %s", (error,)
        record.exc_info = record.exc_text = None
    return True


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise UsageError(f"Cannot listen on {host}:{port}: {error.strerror}.",
                         hint="Choose another --port (0 picks a free one) or --host.") from None
    sock.listen(2048)  # clients may connect as soon as the address is printed: they wait in the backlog
    return sock


def _announce(config: ServeConfig, port: int) -> None:
    shown = f"[{config.host}]" if ":" in config.host else config.host
    mode = "offline" if config.offline else "upstream " + ", ".join(_endpoints(config.options))
    print(f"hfget serve: serving {config.cache_dir} at http://{shown}:{port} ({mode})", file=sys.stderr, flush=True)
    if config.host not in LOOPBACK:
        guard = "clients need a token from --token-file" if config.tokens else "anyone who can reach it can read it"
        print(f"hfget serve: listening on {config.host}, not only on this machine: {guard}.", file=sys.stderr,
              flush=True)


def _endpoints(options: Options) -> tuple[str, ...]:
    from .._repo import Repo, RepoSpec
    from .._target import choose_endpoints

    return choose_endpoints(RepoSpec(Repo("serve")), options)

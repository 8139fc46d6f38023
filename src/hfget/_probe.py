"""`hfget mirrors`: how each mirror answers, how fast, and which commit it serves. How a user picks a mirror.

Each check is the code a download runs: the revision lookup of _hub.py (its time is the latency; without a repo,
one plain request to the endpoint), and a ranged GET through _exchange.py of the first `SAMPLE` bytes of the
repo's largest file (bytes per second over it is the throughput). Mirrors are probed at the same time and
ordered best first: those that answer, then those serving the newest commit, then the fastest, then the nearest.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ._errors import HfgetError
from ._events import NullSink
from ._hub import Metadata
from ._mirrors import Mirrors
from ._models import RemoteFile
from ._network import Network
from ._repo import Repo, resolve_url
from ._retry import RetryPolicy

if TYPE_CHECKING:
    from ._options import Options

SAMPLE = 4 << 20


@dataclass(frozen=True)
class MirrorReport:
    endpoint: str
    answers: bool
    latency: float | None = None  # seconds
    throughput: float | None = None  # bytes per second
    commit: str | None = None
    date: str | None = None
    newest: bool = False  # serves the newest commit among the mirrors
    error: str | None = None


def probe(endpoints: list[str], repo: Repo | None, revision: str, options: Options,
          token: str | None) -> list[MirrorReport]:
    pool = ThreadPoolExecutor(max(1, len(endpoints)))
    try:
        reports = list(pool.map(lambda e: _probe_one(e, repo, revision, options, token), endpoints))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C must not wait for a hung mirror
    newest = max((r.date or "" for r in reports if r.commit), default="")
    reports = [replace(r, newest=bool(r.commit) and (r.date or "") == newest) for r in reports]
    return sorted(reports, key=lambda r: (not r.answers, not r.newest, -(r.throughput or 0), r.latency or 1e9))


def _probe_one(endpoint: str, repo: Repo | None, revision: str, options: Options,
               token: str | None) -> MirrorReport:
    try:
        if repo is None:
            return MirrorReport(endpoint, True, latency=_ping(endpoint, options))
        return _probe_repo(endpoint, repo, revision, options, token)
    except HfgetError as error:
        return MirrorReport(endpoint, False, error=error.message)


def _ping(endpoint: str, options: Options) -> float:
    """The time to an answer (any HTTP status) from the endpoint."""
    import httpx2

    from ._exchange import make_client
    from ._hub_errors import translate_error

    with make_client(connections=1, stall_timeout=options.stall_timeout,
                     network=Network.from_options(options)) as client:
        started = time.monotonic()
        try:
            client.get(endpoint + "/").close()
        except httpx2.TransportError as error:
            translated = translate_error(error, repo=Repo("-"), revision="-", endpoint=endpoint)
            raise translated or error from None
        return time.monotonic() - started


def _probe_repo(endpoint: str, repo: Repo, revision: str, options: Options, token: str | None) -> MirrorReport:
    mirrors = Mirrors([endpoint], on_switch=lambda *_: None)
    metadata = Metadata(mirrors, token, policy=RetryPolicy(0), sink=NullSink(),
                        timeout=options.first_byte_wait("metadata"), network=Network.from_options(options),
                        deadline=options.metadata_deadline)
    started = time.monotonic()
    served = metadata.lookup(repo, revision, endpoint)
    latency = time.monotonic() - started
    files = metadata.list_files(repo, served.commit)
    throughput = _sample(endpoint, repo, served.commit, files, mirrors, options, token) if files else None
    return MirrorReport(endpoint, True, latency, throughput, served.commit, served.date)


def _sample(endpoint: str, repo: Repo, commit: str, files: list[RemoteFile], mirrors: Mirrors,
            options: Options, token: str | None) -> float | None:
    from ._exchange import Exchange, Link, ThreadClients, Transient, chunks, make_client

    largest = max(files, key=lambda f: f.size)
    if largest.size == 0:
        return None
    with make_client(connections=1, stall_timeout=options.stall_timeout,
                     network=Network.from_options(options)) as client:
        exchange = Exchange(ThreadClients(lambda: client), mirrors, token,
                            lambda f, e: resolve_url(e, repo, commit, f.path))
        started, received = time.monotonic(), 0
        try:
            response = exchange.open(largest, Link(), f"bytes=0-{min(SAMPLE, largest.size) - 1}")
            try:
                for chunk in chunks(response):
                    received += len(chunk)
                    if received >= SAMPLE:
                        break  # a mirror that ignores Range sends the whole file: a sample is enough
            finally:
                response.close()
        except Transient:
            return None
        elapsed = time.monotonic() - started
    return received / elapsed if elapsed > 0 else None

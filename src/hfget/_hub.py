"""The Hub's metadata: a revision resolved to a commit, and the commit's full file listing.

The revision lookup is one GET that hfget sends itself (hub-protocol.md §2), asking only for the commit and its
date (`expand=sha&expand=lastModified`; the full answer lists every file), on hfget's httpx2 client for metadata
(_hub_http.py).
The listing is the request `HfApi.list_repo_tree` sends (`tree/<commit>?recursive=true&expand=false`), every page
through huggingface_hub's own `paginate` (the `Link: next` pages, its status errors, its backoff) on its shared
session, with the lookup's headers; hfget reads the entries itself (_listing.tree_files), as `RepoFile` does: the
module of `HfApi` costs about 0.2 s of CPU and 8 MB of memory to import, on every first download, for that one
request. What the official client does not do is added around both (event hooks, in _hub_http.py; on
huggingface_hub's session for the listing), scoped to hfget's own calls by a context variable:
- a tree page's `Link: <next>` or a redirect that names another host (hf-mirror leaves huggingface.co there), or
  the endpoint's host without the endpoint's path prefix (`https://host/artifactory/api/huggingfaceml/repo`), is
  sent to the endpoint in use instead, prefix included, so the listing and the token stay on the mirror;
- metadata requests get a timeout (huggingface_hub's session has none): --first-byte-timeout, else
  HF_HUB_ETAG_TIMEOUT, else the default, so a silent endpoint fails instead of hanging;
- huggingface_hub's agent-registry lookup (`/api/agent-harnesses`, made while building its User-Agent) is
  refused before it leaves: it is a round trip per run that a download does not need, and it would go to
  HF_ENDPOINT or huggingface.co even when a mirror is in use. huggingface_hub treats it as unavailable;
- every answer is bounded (README, "Bounded"): asked uncompressed, read within a deadline and a size, a listing's
  pages may not repeat or run on for ever.
The proxy and the CA bundle reach huggingface_hub's session through _network.py's `use_for_metadata`.
Errors are translated into hfget's in _hub_errors.py, and nowhere else, narrowly: what the network raised, what an
endpoint answered, and what huggingface_hub raised while parsing an answer. An error of hfget's own propagates as
it is, so a bug never looks like a bad mirror (and never triggers fail-over).

`Metadata` asks the endpoint in use (see _mirrors.py) and moves to the next mirror when one cannot answer.
"""
from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from ._errors import HfgetError, NetworkError, NotFoundError, RevisionNotFoundError
from ._events import MetadataRetried, Sink
from ._hub_errors import HubStatusError, status_of, translate_error
from ._listing import check_listing, tree_files
from ._mirrors import Mirrors
from ._models import RemoteFile
from ._network import HEADERS, Network, untrusted_certificate, use_for_metadata
from ._repo import Repo
from ._retry import RetryPolicy, is_transient_status

T = TypeVar("T")

EXPAND = ("sha", "lastModified")  # what a revision lookup asks for: the commit, and its date to compare mirrors


def _utc(value: Any) -> str:
    """A date as huggingface_hub's ModelInfo gives it (ISO 8601 in UTC), so the answers of mirrors compare."""
    from datetime import datetime, timezone

    if not isinstance(value, str) or not value:
        return ""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).isoformat()
    except ValueError:
        return ""


def hub_date(date: str) -> str:
    """A date `_utc` gave, as the Hub writes it (`2024-05-01T12:00:00.000Z`: what huggingface_hub parses)."""
    from datetime import datetime, timezone

    moment = datetime.fromisoformat(date).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


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
        self._served: list[Served] = []
        self.dates: dict[str, str] = {}  # commit -> its date, from the lookups' answers that gave one
        self.unreachable: dict[str, str] = {}  # endpoint -> why, from the last resolve_everywhere

    def resolve_commit(self, repo: Repo, revision: str) -> str:
        """The commit a branch, tag or `refs/pr/N` points at now (one request)."""
        return self._on_mirrors(lambda: self._resolve(repo, revision))

    def list_files(self, repo: Repo, commit: str) -> list[RemoteFile]:
        """Every file at `commit`, following every page of the recursive tree, from the first mirror that has it:
        one a commit behind (a pinned commit, `hfget serve`'s, a mirror that lost it) answers 404 and is dropped for
        the run while another is left to ask; when none has it, the error names them all."""
        tried: list[str] = []
        while True:
            tried.append(self.mirrors.current)
            try:
                return self._on_mirrors(lambda: self._list(repo, commit))
            except NotFoundError as error:
                if not lacks_commit(error):
                    raise  # no such repo: no mirror will have it
                if self.mirrors.fail_over(f"it does not have commit {commit[:12]}"):
                    continue
                if len(tried) < 2:
                    raise
                raise RevisionNotFoundError(f"Commit {commit} of {repo} is on none of the mirrors: {', '.join(tried)}.",
                                            hint="Check the commit; a mirror may not have synced it yet.") from error

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
            answers = list(pool.map(lambda e: self.try_lookup(repo, revision, e), endpoints))
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

    def try_lookup(self, repo: Repo, revision: str, endpoint: str) -> Served | HfgetError:
        try:
            return self.lookup(repo, revision, endpoint)
        except HfgetError as error:
            return error

    def _resolve(self, repo: Repo, revision: str) -> str:
        return self.lookup(repo, revision, self.mirrors.current).commit

    def lookup(self, repo: Repo, revision: str, endpoint: str) -> Served:
        """What `endpoint` serves for the revision: its commit and that commit's date (one request). It asks for
        those two only (`expand`); the full answer lists every file. An endpoint that ignores `expand` sends
        everything, which is read the same way."""
        url = f"{endpoint}/api/{repo.api_kind}/{repo.repo_id}/revision/{quote(revision, safe='')}"
        with _translated(repo, revision, endpoint, self.network.proxy):
            info = self._retrying(f"the revision lookup of {repo}@{revision}", lambda: self._get_json(url, endpoint))
        sha = info.get("sha") if isinstance(info, dict) else None
        if not sha:
            raise NetworkError(f"{endpoint} gave no commit for {repo}@{revision}.")
        served = Served(endpoint, str(sha), _utc(info.get("lastModified")))
        if served.date:
            self.dates[served.commit] = served.date
        return served

    def _get_json(self, url: str, endpoint: str) -> Any:
        """One GET of a metadata answer, decoded, on hfget's httpx2 client for metadata (_hub_http.py)."""
        params = {"expand": list(EXPAND)}
        from . import _hub_http

        with _hub_http.request_scope(endpoint, self.timeout, self.deadline, self.token):
            answer = _hub_http.client(self.network).get(url, params=params, headers=HEADERS)
        if answer.status_code >= 400:
            raise HubStatusError(answer)
        return json.loads(answer.content)

    def _list(self, repo: Repo, commit: str) -> list[RemoteFile]:
        from . import _hub_http
        from ._compat import hub_paginate

        endpoint = self.mirrors.current
        url = f"{endpoint}/api/{repo.api_kind}/{repo.repo_id}/tree/{quote(commit, safe='')}"
        use_for_metadata(self.network)
        with _translated(repo, commit, endpoint, self.network.proxy), \
                _hub_http.session_scope(endpoint, self.timeout, self.deadline, self.token):
            entries = self._retrying(f"the file list of {repo}", lambda: list(hub_paginate()(
                url, params={"recursive": True, "expand": False}, headers=dict(HEADERS))))
        return check_listing(tree_files(entries, repo, endpoint), repo)

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
                import httpx2

                status = status_of(error)
                refused = isinstance(error, httpx2.ConnectError)
                transient = is_transient_status(status) or (status is None and isinstance(error, httpx2.TransportError))
                limit = min(3, self.policy.retries + 1) if refused else self.policy.retries + 1
                if not transient or attempt >= limit or not self.policy.spend():
                    raise
                delay = self.policy.delay(attempt, getattr(getattr(error, "response", None), "headers", None))
                self.sink.handle(MetadataRetried(what, f"{status or type(error).__name__}", delay))
                time.sleep(delay)


def lacks_commit(answer: object) -> bool:
    """An endpoint's answer saying it does not have the commit asked for: the Hub's RevisionNotFound, or the bare
    404 of nginx and proxies (not RepoNotFound: no mirror of that repo will do better)."""
    return type(answer) in (NotFoundError, RevisionNotFoundError)


def _http_failure(error: Exception) -> bool:
    """A failure to reach the endpoint (httpx2's TransportError), or an error status (huggingface_hub's
    HfHubHTTPError, or hfget's own HubStatusError)."""
    import httpx2  # loaded by then: every metadata request goes through it

    if isinstance(error, (HubStatusError, httpx2.TransportError)):
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

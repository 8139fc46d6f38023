"""The Hub's metadata: a revision resolved to a commit, and the commit's full file listing.

Both go through huggingface_hub's `HfApi` against the endpoint in use (hub-protocol.md §2). What the official
client does not do is added around it, scoped to hfget's own calls by a context variable:
- a tree page's `Link: <next>` that names another host (hf-mirror leaves huggingface.co there), or the endpoint's
  host without the endpoint's path prefix (`https://host/artifactory/api/huggingfaceml/repo`), is sent to the
  endpoint in use instead, prefix included, so the listing and the token stay on the mirror;
- metadata requests get a timeout (huggingface_hub's session has none): --first-byte-timeout, else
  HF_HUB_ETAG_TIMEOUT, else the default, so a silent endpoint fails instead of hanging;
- huggingface_hub's agent-registry lookup (`/api/agent-harnesses`, made while building its User-Agent) is
  refused before it leaves: it is a round trip per run that a download does not need, and it would go to
  HF_ENDPOINT or huggingface.co even when a mirror is in use. huggingface_hub treats it as unavailable.
The proxy and the CA bundle reach huggingface_hub's session through _network.py's `use_for_metadata`.
Errors from huggingface_hub and httpx2 are translated into hfget's here, and nowhere else, narrowly: what the
network raised, and what huggingface_hub raised while parsing an answer. An error of hfget's own propagates as it
is, so a bug never looks like a bad mirror (and never triggers fail-over).

`Metadata` asks the endpoint in use (see _mirrors.py) and moves to the next mirror when one cannot answer.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from ._errors import (
    AuthError,
    GatedRepoError,
    HfgetError,
    NetworkError,
    NotFoundError,
    RepoNotFoundError,
    RevisionNotFoundError,
)
from ._events import MetadataRetried, Sink
from ._mirrors import Mirrors
from ._models import RemoteFile
from ._network import Network, certificate_error, untrusted_certificate, use_for_metadata
from ._options import mask_url
from ._repo import Repo
from ._retry import RetryPolicy, is_transient_status
from ._version import __version__

if TYPE_CHECKING:
    import httpx2

T = TypeVar("T")

_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class _Scope:
    endpoint: httpx2.URL
    timeout: float


class _NotSent(Exception):
    pass


_SCOPE: ContextVar[_Scope | None] = ContextVar("hfget_hub_scope", default=None)


def _scoped_request_hook(request: httpx2.Request) -> None:
    scope = _SCOPE.get()
    if scope is None:
        return
    target = scope.endpoint
    prefix = target.raw_path.rstrip(b"/")
    if request.url.raw_path.removeprefix(prefix).startswith(b"/api/agent-harnesses"):
        raise _NotSent("hfget does not fetch the agent registry")
    here = (request.url.scheme, request.url.host, request.url.port)
    if here != (target.scheme, target.host, target.port) or not _under(request.url.raw_path, prefix):
        # a next-page link naming another host (hf-mirror's name huggingface.co), or the endpoint's host without
        # its path prefix (a reverse proxy at /prefix that passes the Hub's links on): the endpoint in use, whole
        raw_path = request.url.raw_path
        request.url = request.url.copy_with(scheme=target.scheme, host=target.host, port=target.port,
                                            raw_path=raw_path if _under(raw_path, prefix) else prefix + raw_path)
        request.headers["Host"] = request.url.netloc.decode("ascii")
    timeout = request.extensions.get("timeout") or {}
    if timeout.get("connect") is None:
        t = scope.timeout
        request.extensions["timeout"] = {"connect": t, "read": t, "write": t, "pool": t}


def _under(raw_path: bytes, prefix: bytes) -> bool:
    return not prefix or raw_path == prefix or raw_path.startswith(prefix + b"/")


@contextlib.contextmanager
def _scoped(endpoint: str, timeout: float) -> Iterator[None]:
    import httpx2
    from huggingface_hub import get_session

    session = get_session()
    hooks = session.event_hooks
    if _scoped_request_hook not in hooks["request"]:
        session.event_hooks = {**hooks, "request": [*hooks["request"], _scoped_request_hook]}
    token = _SCOPE.set(_Scope(httpx2.URL(endpoint), timeout))
    try:
        yield
    finally:
        _SCOPE.reset(token)


class Metadata:
    """Revision lookups and listings on the endpoint in use, failing over to the next mirror."""

    def __init__(self, mirrors: Mirrors, token: str | None, *, policy: RetryPolicy, sink: Sink,
                 timeout: float = 300.0, network: Network | None = None) -> None:
        self.mirrors = mirrors
        self.token = token
        self.policy = policy
        self.sink = sink
        self.timeout = timeout  # for the answer to begin (and for each read of it)
        self.network = network or Network()
        self._api: Any = None
        self._api_endpoint = ""

    def resolve_commit(self, repo: Repo, revision: str) -> str:
        """The commit a branch, tag or `refs/pr/N` points at now (one request)."""
        return self._on_mirrors(lambda: self._resolve(repo, revision))

    def list_files(self, repo: Repo, commit: str) -> list[RemoteFile]:
        """Every file at `commit`, following every page of the recursive tree."""
        return self._on_mirrors(lambda: self._list(repo, commit))

    def _on_mirrors(self, call: Callable[[], T]) -> T:
        while True:
            try:
                return call()
            except NetworkError as error:
                if not self.mirrors.fail_over(error.message):
                    raise

    def _hf_api(self) -> Any:
        endpoint = self.mirrors.current
        if self._api is None or self._api_endpoint != endpoint:
            from huggingface_hub import HfApi

            use_for_metadata(self.network)

            self._api = HfApi(endpoint=endpoint, token=self.token or False, library_name="hfget",
                              library_version=__version__)
            self._api_endpoint = endpoint
        return self._api

    def _resolve(self, repo: Repo, revision: str) -> str:
        api, endpoint = self._hf_api(), self.mirrors.current
        with _translated(repo, revision, endpoint, self.network.proxy), _scoped(endpoint, self.timeout):
            info = self._retrying(f"the revision lookup of {repo}@{revision}", lambda: api.repo_info(
                repo.repo_id, repo_type=repo.repo_type, revision=revision, timeout=self.timeout))
        if not info.sha:
            raise NetworkError(f"{endpoint} gave no commit for {repo}@{revision}.")
        return str(info.sha)

    def _list(self, repo: Repo, commit: str) -> list[RemoteFile]:
        from huggingface_hub.hf_api import RepoFile

        api, endpoint = self._hf_api(), self.mirrors.current
        with _translated(repo, commit, endpoint, self.network.proxy), _scoped(endpoint, self.timeout):
            entries = self._retrying(f"the file list of {repo}", lambda: list(api.list_repo_tree(
                repo.repo_id, recursive=True, revision=commit, repo_type=repo.repo_type)))
        files = [_remote_file(e, repo) for e in entries if isinstance(e, RepoFile)]
        return check_listing(files, repo)

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """Send again on connect errors, timeouts, 408, 429 and 5xx (huggingface_hub does not retry a revision
        lookup); a refused connection gets 3 attempts, the rest the policy's budget."""
        import httpx2
        from huggingface_hub.errors import HfHubHTTPError

        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except (httpx2.TransportError, HfHubHTTPError) as error:
                if untrusted_certificate(error) is not None:
                    raise
                status = _status(error)
                refused = isinstance(error, httpx2.ConnectError)
                transient = is_transient_status(status) or (status is None and isinstance(error, httpx2.TransportError))
                limit = min(3, self.policy.retries + 1) if refused else self.policy.retries + 1
                if not transient or attempt >= limit or not self.policy.spend():
                    raise
                delay = self.policy.delay(attempt, getattr(getattr(error, "response", None), "headers", None))
                self.sink.handle(MetadataRetried(what, f"{status or type(error).__name__}", delay))
                time.sleep(delay)


def _remote_file(entry: Any, repo: Repo) -> RemoteFile:
    if not isinstance(entry.size, int) or not isinstance(entry.blob_id, str):
        raise NetworkError(f"The listing of {repo} gives {entry.path!r} no usable size or blob id.",
                           hint="The endpoint may be broken: use another --mirror.")
    return RemoteFile(path=entry.path, size=entry.size, blob_id=entry.blob_id,
                      lfs_sha256=entry.lfs.sha256 if entry.lfs is not None else None,
                      xet_hash=getattr(entry, "xet_hash", None))


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


def translate_error(error: Exception, *, repo: Repo, revision: str, endpoint: str,
                    proxy: str | None = None) -> HfgetError | None:
    """huggingface_hub's and httpx2's errors as hfget's; None for anything else (a bug of ours stays a bug)."""
    import httpx2
    from huggingface_hub import errors as hf_errors

    if proxy is not None and (_status(error) == 407 or isinstance(error, httpx2.TransportError)):
        return _proxy_error(error, endpoint, mask_url(proxy))
    if isinstance(error, hf_errors.HfHubHTTPError):
        return _http_error(error, repo=repo, revision=revision, endpoint=endpoint)
    if isinstance(error, hf_errors.OfflineModeIsEnabled):
        return NetworkError(f"HF_HUB_OFFLINE is set and {repo}@{revision} is not in the cache.",
                            hint="Unset HF_HUB_OFFLINE to download it.")
    if (failure := untrusted_certificate(error)) is not None:
        return certificate_error(failure, urlsplit(endpoint).hostname or endpoint)
    if isinstance(error, httpx2.TimeoutException):
        return NetworkError(f"{endpoint} did not answer in time ({type(error).__name__}).",
                            hint="Try again, or use another --mirror.")
    if isinstance(error, (httpx2.TransportError, _NotSent)):
        return NetworkError(f"Cannot reach {endpoint}: {_reason(error)}.",
                            hint="Check the address and your connection, or use another --mirror.")
    if isinstance(error, (ValueError, KeyError, TypeError)) and _raised_in_huggingface_hub(error):
        return NetworkError(f"{endpoint} sent an answer hfget cannot read for {repo}@{revision}: {error}.",
                            hint="The endpoint may be broken: use another --mirror.")
    return None


def _proxy_error(error: Exception, endpoint: str, proxy: str) -> HfgetError:
    """A failure on the way through the proxy: named as the proxy's (its credentials never shown)."""
    if (failure := untrusted_certificate(error)) is not None:
        return certificate_error(failure, urlsplit(endpoint).hostname or endpoint)
    if _status(error) == 407 or "username/password" in str(error).lower():
        return NetworkError(f"The proxy {proxy} refused the credentials (or asked for some) on the way to {endpoint}.",
                            hint="Give them in --proxy as scheme://user:password@host:port.")
    return NetworkError(f"Cannot reach {endpoint} through the proxy {proxy}: {_reason(error)}.",
                        hint="Check --proxy (or HFGET_PROXY, the proxy setting), and that the proxy is up.")


def _http_error(error: Exception, *, repo: Repo, revision: str, endpoint: str) -> HfgetError:
    from huggingface_hub import errors as hf_errors

    status = _status(error)
    if isinstance(error, hf_errors.GatedRepoError):
        if status == 401:
            hint = "Accept its conditions on the repo's page, then pass that account's token (--token or HF_TOKEN)."
        else:
            hint = ("The token's account has no access yet: accept the conditions on the repo's page, "
                    "or use another token.")
        return GatedRepoError(f"{repo} is gated: {endpoint} refused access ({status}).", hint=hint)
    if isinstance(error, hf_errors.RevisionNotFoundError):
        return RevisionNotFoundError(
            f"Revision {revision!r} not found in {repo} on {endpoint}.",
            hint="Check the branch, tag or commit name (use `main` for the default branch).",
        )
    if isinstance(error, hf_errors.RepositoryNotFoundError) or status == 401:
        if "Invalid credentials" in (getattr(error, "server_message", None) or ""):
            return AuthError(f"{endpoint} rejected the token while looking up {repo}.",
                             hint="The token is invalid or expired: pass another with --token or HF_TOKEN.")
        return RepoNotFoundError(
            f"Repository {repo} not found on {endpoint} (or it is private).",
            hint="Check the name and --repo-type; for a private repo pass a token with --token or HF_TOKEN.",
        )
    if status == 403:
        return AuthError(f"{endpoint} refused access to {repo} (403).", hint="Check that the token may read it.")
    if status == 404:  # no X-Error-Code (nginx, many mirrors and proxies): the repo or the revision is unknown there
        return NotFoundError(f"Not found on {endpoint}: {repo}@{revision} (HTTP 404: no such repo or revision).",
                             hint="Check the repo name, --repo-type and the revision.")
    return NetworkError(f"{endpoint} answered {status} while looking up {repo}@{revision}.",
                        hint="The endpoint may be having trouble: try again later or use another --mirror.")


def _raised_in_huggingface_hub(error: BaseException) -> bool:
    """Whether the error comes from huggingface_hub parsing an answer (its innermost frame is in that package)."""
    import json
    import traceback

    if isinstance(error, json.JSONDecodeError):
        return True
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and "huggingface_hub" in frames[-1].filename.replace("\\", "/").split("/")


def _status(error: Exception) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _reason(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0]


def check_listing(files: list[RemoteFile], repo: Repo) -> list[RemoteFile]:
    """Refuse listings that would write outside the target or twice to one place (a mirror is a third party)."""
    seen: set[str] = set()
    for file in files:
        if not is_safe_path(file.path):
            raise NetworkError(f"The listing of {repo} names an unsafe path: {file.path!r}; nothing was written.",
                               hint="The endpoint may be compromised or broken: use another --mirror.")
        if file.path in seen:
            raise NetworkError(f"The listing of {repo} names {file.path!r} twice; nothing was written.",
                               hint="The endpoint may be broken: use another --mirror.")
        if file.size < 0:
            raise NetworkError(f"The listing of {repo} gives {file.path!r} a negative size.")
        seen.add(file.path)
    return files


def is_safe_path(path: str) -> bool:
    if not path or path.startswith("/") or "\\" in path or "\0" in path or _DRIVE.match(path):
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))

"""The Hub's metadata: a revision resolved to a commit, and the commit's full file listing.

Both go through huggingface_hub's `HfApi` against the endpoint in use (hub-protocol.md §2). Two things the
official client does not do are added around it, scoped to hfget's own calls by a context variable:
- a tree page's `Link: <next>` that names another host (hf-mirror leaves huggingface.co there) is sent to the
  endpoint in use instead, so the listing and the token stay on the mirror;
- metadata requests get a timeout (huggingface_hub's session has none), so a silent endpoint fails instead of
  hanging;
- huggingface_hub's agent-registry lookup (`/api/agent-harnesses`, made while building its User-Agent) is
  refused before it leaves: it is a round trip per run that a download does not need, and it would go to
  HF_ENDPOINT or huggingface.co even when a mirror is in use. huggingface_hub treats it as unavailable.
Errors from huggingface_hub and httpx2 are translated into hfget's here, and nowhere else.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._errors import (
    AuthError,
    GatedRepoError,
    HfgetError,
    NetworkError,
    RepoNotFoundError,
    RevisionNotFoundError,
)
from ._repo import Repo
from ._version import __version__

if TYPE_CHECKING:
    import httpx2

_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """A file of the listing: what identifies its content and what it must hash to."""

    path: str
    size: int
    blob_id: str  # git blob sha1; of the LFS pointer for an LFS file
    lfs_sha256: str | None = None
    xet_hash: str | None = None

    @property
    def etag(self) -> str:
        """The name of its blob in the cache: sha256 for LFS files, git blob sha1 otherwise (§5)."""
        return self.lfs_sha256 or self.blob_id


@dataclass(frozen=True)
class _Scope:
    endpoint: "httpx2.URL"
    timeout: float


class _NotSent(Exception):
    pass


_SCOPE: ContextVar[_Scope | None] = ContextVar("hfget_hub_scope", default=None)


def _scoped_request_hook(request: "httpx2.Request") -> None:
    scope = _SCOPE.get()
    if scope is None:
        return
    if request.url.path == "/api/agent-harnesses":
        raise _NotSent("hfget does not fetch the agent registry")
    target = scope.endpoint
    if (request.url.scheme, request.url.host, request.url.port) != (target.scheme, target.host, target.port):
        request.url = request.url.copy_with(scheme=target.scheme, host=target.host, port=target.port)
        request.headers["Host"] = request.url.netloc.decode("ascii")
    timeout = request.extensions.get("timeout") or {}
    if timeout.get("connect") is None:
        t = scope.timeout
        request.extensions["timeout"] = {"connect": t, "read": t, "write": t, "pool": t}


@contextlib.contextmanager
def _scoped(endpoint: str, timeout: float) -> Iterator[None]:
    import httpx2
    from huggingface_hub.utils import get_session

    session = get_session()
    hooks = session.event_hooks
    if _scoped_request_hook not in hooks["request"]:
        session.event_hooks = {**hooks, "request": [*hooks["request"], _scoped_request_hook]}
    token = _SCOPE.set(_Scope(httpx2.URL(endpoint), timeout))
    try:
        yield
    finally:
        _SCOPE.reset(token)


class HubMetadata:
    """Revision lookups and listings against one endpoint, with one token (or none)."""

    def __init__(self, endpoint: str, token: str | None, *, timeout: float = 30.0, policy=None,
                 on_retry=None) -> None:
        from huggingface_hub import HfApi

        from ._retry import RetryPolicy

        self.endpoint = endpoint
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self.on_retry = on_retry
        self._api = HfApi(
            endpoint=endpoint, token=token or False, library_name="hfget", library_version=__version__
        )

    def resolve_commit(self, repo: Repo, revision: str) -> str:
        """The commit a branch, tag or `refs/pr/N` points at now (one request)."""
        with self._translated(repo, revision), _scoped(self.endpoint, self.timeout):
            info = self._retrying(f"the revision lookup of {repo}@{revision}", lambda: self._api.repo_info(
                repo.repo_id, repo_type=repo.repo_type, revision=revision, timeout=self.timeout
            ))
        if not info.sha:
            raise NetworkError(f"{self.endpoint} gave no commit for {repo}@{revision}.")
        return info.sha

    def list_files(self, repo: Repo, commit: str) -> list[RemoteFile]:
        """Every file at `commit`, following every page of the recursive tree."""
        from huggingface_hub.hf_api import RepoFile

        with self._translated(repo, commit), _scoped(self.endpoint, self.timeout):
            entries = self._retrying(f"the file list of {repo}", lambda: [
                entry
                for entry in self._api.list_repo_tree(
                    repo.repo_id, recursive=True, revision=commit, repo_type=repo.repo_type
                )
                if isinstance(entry, RepoFile)
            ])
        files = [
            RemoteFile(
                path=e.path,
                size=e.size,
                blob_id=e.blob_id,
                lfs_sha256=e.lfs.sha256 if e.lfs is not None else None,
                xet_hash=getattr(e, "xet_hash", None),
            )
            for e in entries
        ]
        return check_listing(files, repo)

    def _retrying(self, what: str, call):
        """Send again on connect errors, timeouts, 408, 429 and 5xx (huggingface_hub does not retry a revision
        lookup); a refused connection gets 3 attempts, the rest the policy's budget."""
        import time

        import httpx2
        from huggingface_hub.errors import HfHubHTTPError

        from ._retry import RETRY_STATUSES

        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except (httpx2.TransportError, HfHubHTTPError) as error:
                status = _status(error)
                refused = isinstance(error, httpx2.ConnectError)
                transient = status in RETRY_STATUSES or (status is None and isinstance(error, httpx2.TransportError))
                limit = min(3, self.policy.retries + 1) if refused else self.policy.retries + 1
                if not transient or attempt >= limit or not self.policy.spend():
                    raise
                headers = getattr(getattr(error, "response", None), "headers", None)
                delay = self.policy.delay(attempt, headers)
                if self.on_retry is not None:
                    self.on_retry(what, f"{_status(error) or type(error).__name__}", delay)
                time.sleep(delay)

    @contextlib.contextmanager
    def _translated(self, repo: Repo, revision: str) -> Iterator[None]:
        try:
            yield
        except HfgetError:
            raise
        except Exception as error:  # huggingface_hub and httpx2 errors, translated in one place
            raise translate_error(error, repo=repo, revision=revision, endpoint=self.endpoint) from error


def translate_error(error: Exception, *, repo: Repo, revision: str, endpoint: str) -> HfgetError:
    import httpx2
    from huggingface_hub import errors as hf_errors

    if isinstance(error, hf_errors.GatedRepoError):
        if _status(error) == 401:
            hint = "Accept its conditions on the repo's page, then pass that account's token (--token or HF_TOKEN)."
        else:
            hint = "The token's account has no access yet: accept the conditions on the repo's page, or use another token."
        return GatedRepoError(f"{repo} is gated: {endpoint} refused access ({_status(error)}).", hint=hint)
    if isinstance(error, hf_errors.RevisionNotFoundError):
        return RevisionNotFoundError(
            f"Revision {revision!r} not found in {repo} on {endpoint}.",
            hint="Check the branch, tag or commit name (use `main` for the default branch).",
        )
    if isinstance(error, hf_errors.RepositoryNotFoundError) or _status(error) == 401:
        message = getattr(error, "server_message", None) or ""
        if "Invalid credentials" in message:
            return AuthError(
                f"{endpoint} rejected the token while looking up {repo}.",
                hint="The token is invalid or expired: pass another with --token or HF_TOKEN.",
            )
        return RepoNotFoundError(
            f"Repository {repo} not found on {endpoint} (or it is private).",
            hint="Check the name and --repo-type; for a private repo pass a token with --token or HF_TOKEN.",
        )
    if _status(error) == 403:
        return AuthError(f"{endpoint} refused access to {repo} (403).", hint="Check that the token may read it.")
    if isinstance(error, hf_errors.OfflineModeIsEnabled):
        return NetworkError(
            f"HF_HUB_OFFLINE is set and {repo}@{revision} is not in the cache.",
            hint="Unset HF_HUB_OFFLINE to download it.",
        )
    if isinstance(error, httpx2.TimeoutException):
        return NetworkError(f"{endpoint} did not answer in time ({type(error).__name__}).",
                            hint="Try again, or use another --mirror.")
    if isinstance(error, (httpx2.TransportError, OSError)) and not isinstance(error, hf_errors.HfHubHTTPError):
        return NetworkError(f"Cannot reach {endpoint}: {_reason(error)}.",
                            hint="Check the address and your connection, or use another --mirror.")
    if isinstance(error, hf_errors.HfHubHTTPError):
        return NetworkError(f"{endpoint} answered {_status(error)} while looking up {repo}@{revision}.",
                            hint="The endpoint may be having trouble: try again later or use another --mirror.")
    if isinstance(error, (ValueError, KeyError, TypeError)):
        return NetworkError(f"{endpoint} sent a listing hfget cannot read for {repo}: {error}.")
    raise error


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

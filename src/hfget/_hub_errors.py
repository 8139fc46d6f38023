"""Metadata errors as hfget's: what the network raised, what an endpoint answered, what huggingface_hub raised.

Translated here and nowhere else, narrowly: an error of hfget's own propagates as it is, so a bug never looks like a
bad mirror (and never triggers fail-over). An answer with an error status is read the way huggingface_hub reads it
(hub-protocol.md §4): the `X-Error-Code` header first (RepoNotFound, RevisionNotFound, GatedRepo), then the status;
the revision lookup, which hfget sends itself, raises `HubStatusError`, the listing huggingface_hub's errors.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
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
from ._network import certificate_error, untrusted_certificate
from ._options import mask_url
from ._repo import Repo

if TYPE_CHECKING:
    import httpx2

_CODES = {"GatedRepo": "gated", "RevisionNotFound": "revision", "RepoNotFound": "repo"}


class NotSent(Exception):
    pass


class Refused(Exception):
    """An answer hfget will not take (pages that repeat or never end, too big, too slow, odd encoding)."""


class HubStatusError(Exception):
    """An endpoint answered hfget's own metadata request with an error status."""

    def __init__(self, response: httpx2.Response) -> None:
        self.response = response
        self.code = response.headers.get("X-Error-Code")
        messages = [response.headers.get("X-Error-Message") or ""]
        try:
            body = json.loads(response.content)
            messages.append(str(body.get("error") or "") if isinstance(body, dict) else "")
        except ValueError:
            pass
        self.server_message = "\n".join(m for m in messages if m)
        super().__init__(f"{response.status_code} {self.code or ''} {self.server_message}".strip())


def translate_error(error: Exception, *, repo: Repo, revision: str, endpoint: str,
                    proxy: str | None = None) -> HfgetError | None:
    """huggingface_hub's and httpx2's errors as hfget's; None for anything else (a bug of ours stays a bug)."""
    import httpx2

    if proxy is not None and (status_of(error) == 407 or isinstance(error, httpx2.TransportError)):
        return _proxy_error(error, endpoint, mask_url(proxy))
    if isinstance(error, HubStatusError):
        return _http_error(_CODES.get(error.code or ""), status_of(error), error.server_message, repo=repo,
                           revision=revision, endpoint=endpoint)
    translated = _transport_error(error, repo=repo, revision=revision, endpoint=endpoint)
    if translated is not None or not _raised_in_huggingface_hub(error):
        return translated
    from huggingface_hub import errors as hf_errors

    if isinstance(error, hf_errors.HfHubHTTPError):
        kind = ("gated" if isinstance(error, hf_errors.GatedRepoError)
                else "revision" if isinstance(error, hf_errors.RevisionNotFoundError)
                else "repo" if isinstance(error, hf_errors.RepositoryNotFoundError) else None)
        return _http_error(kind, status_of(error), getattr(error, "server_message", None) or "", repo=repo,
                           revision=revision, endpoint=endpoint)
    if isinstance(error, hf_errors.OfflineModeIsEnabled):
        return NetworkError(f"HF_HUB_OFFLINE is set and {repo}@{revision} is not in the cache.",
                            hint="Unset HF_HUB_OFFLINE to download it.")
    if isinstance(error, (ValueError, KeyError, TypeError)):
        return NetworkError(f"{endpoint} sent an answer hfget cannot read for {repo}@{revision}: {error}.",
                            hint="The endpoint may be broken: use another --mirror.")
    return None


def _transport_error(error: Exception, *, repo: Repo, revision: str, endpoint: str) -> HfgetError | None:
    import httpx2

    if (failure := untrusted_certificate(error)) is not None:
        return certificate_error(failure, urlsplit(endpoint).hostname or endpoint)
    if isinstance(error, httpx2.TimeoutException):
        return NetworkError(f"{endpoint} did not answer in time ({type(error).__name__}).",
                            hint="Try again, or use another --mirror.")
    if isinstance(error, Refused):
        return NetworkError(f"{endpoint} {error} for {repo}@{revision}.",
                            hint="The endpoint is broken or hostile: use another --mirror.")
    if isinstance(error, httpx2.RemoteProtocolError):
        return NetworkError(f"{endpoint} sent a malformed answer for {repo}@{revision}: {_reason(error)}.",
                            hint="The endpoint is broken or hostile: use another --mirror.")
    if isinstance(error, httpx2.TooManyRedirects):
        return NetworkError(f"{endpoint} redirected {repo}@{revision} in a loop.",
                            hint="The endpoint is misconfigured: use another --mirror.")
    if isinstance(error, (httpx2.TransportError, NotSent)):
        return NetworkError(f"Cannot reach {endpoint}: {_reason(error)}.",
                            hint="Check the address and your connection, or use another --mirror.")
    return None


def _proxy_error(error: Exception, endpoint: str, proxy: str) -> HfgetError:
    """A failure on the way through the proxy: named as the proxy's (its credentials never shown)."""
    if (failure := untrusted_certificate(error)) is not None:
        return certificate_error(failure, urlsplit(endpoint).hostname or endpoint)
    if status_of(error) == 407 or "username/password" in str(error).lower():
        return NetworkError(f"The proxy {proxy} refused the credentials (or asked for some) on the way to {endpoint}.",
                            hint="Give them in --proxy as scheme://user:password@host:port.")
    return NetworkError(f"Cannot reach {endpoint} through the proxy {proxy}: {_reason(error)}.",
                        hint="Check --proxy (or HFGET_PROXY, the proxy setting), and that the proxy is up.")


def _http_error(kind: str | None, status: int | None, server_message: str, *, repo: Repo, revision: str,
                endpoint: str) -> HfgetError:
    """`kind`: what the answer's error code said (gated, revision, repo), else None."""
    if kind == "gated":
        if status == 401:
            hint = "Accept its conditions on the repo's page, then pass that account's token (--token or HF_TOKEN)."
        else:
            hint = ("The token's account has no access yet: accept the conditions on the repo's page, "
                    "or use another token.")
        return GatedRepoError(f"{repo} is gated: {endpoint} refused access ({status}).", hint=hint)
    if kind == "revision":
        return RevisionNotFoundError(
            f"Revision {revision!r} not found in {repo} on {endpoint}.",
            hint="Check the branch, tag or commit name (use `main` for the default branch).",
        )
    if kind == "repo" or status == 401:
        if "Invalid credentials" in server_message:
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
    """Whether the error comes from huggingface_hub (parsing an answer, or its HTTP errors): its innermost frame
    is in that package, or its class is one of huggingface_hub's."""
    import traceback

    if isinstance(error, json.JSONDecodeError) or type(error).__module__.startswith("huggingface_hub"):
        return True
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and "huggingface_hub" in frames[-1].filename.replace("\\", "/").split("/")


def status_of(error: Exception) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _reason(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0]

"""What to download from where: the repo argument, the repo type and the endpoint, parsed without I/O.

A repo argument is one of (hub-protocol.md §1):
    org/name  |  name (legacy)  |  datasets/org/name  |  spaces/org/name  |  hf://[type/]org/name[@rev]
    https://host/[datasets/|spaces/]org/name[/tree|blob|resolve/REV[/path]]   (the endpoint is taken from it)
Web URLs and hf:// URIs are parsed by huggingface_hub's own parser; the plain forms here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from ._errors import UsageError

DEFAULT_ENDPOINT = "https://huggingface.co"
REPO_TYPES = ("model", "dataset", "space")
_TYPE_PREFIXES = {"datasets": "dataset", "spaces": "space", "models": "model"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_REPO_ID = re.compile(r"^(?:[\w\-.]+/)?[\w\-.]+$")


@dataclass(frozen=True)
class Repo:
    repo_id: str
    repo_type: str = "model"

    @property
    def api_kind(self) -> str:
        """The plural used in API routes: models, datasets, spaces."""
        return f"{self.repo_type}s"

    @property
    def url_prefix(self) -> str:
        return _URL_PREFIX[self.repo_type]

    def __str__(self) -> str:
        return f"{self.url_prefix}{self.repo_id}"


@dataclass(frozen=True)
class RepoSpec:
    """A parsed repo argument: the repo, and what the argument itself said of endpoint, revision and path."""

    repo: Repo
    endpoint: str | None = None
    revision: str | None = None
    path: str | None = None


def is_commit(revision: str) -> bool:
    return _COMMIT.match(revision) is not None


def normalize_endpoint(value: str) -> str:
    """`hf-mirror.com` -> `https://hf-mirror.com`; a URL keeps its scheme; trailing `/` dropped."""
    value = value.strip().rstrip("/")
    if not value:
        raise UsageError("The endpoint is empty.", hint="Pass a host such as hf-mirror.com or a URL.")
    if "://" not in value:
        value = f"https://{value}"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"Not an endpoint URL: {value!r}.", hint="Use a host (hf-mirror.com) or http(s)://host.")
    return value


def parse_repo(argument: str, *, repo_type: str | None = None) -> RepoSpec:
    """Parse a repo argument; `repo_type` (from --repo-type) wins over a type prefix in the argument."""
    if repo_type is not None and repo_type not in REPO_TYPES:
        raise UsageError(f"Unknown repo type {repo_type!r}.", hint=f"Use one of: {', '.join(REPO_TYPES)}.")
    text = argument.strip()
    spec = _parse_uri(text) if "://" in text else _parse_plain(text.strip("/"))
    if repo_type is not None and repo_type != spec.repo.repo_type:
        spec = RepoSpec(Repo(spec.repo.repo_id, repo_type), spec.endpoint, spec.revision, spec.path)
    return spec


def _parse_plain(text: str) -> RepoSpec:
    segments = text.split("/")
    repo_type = "model"
    if len(segments) == 3 and segments[0] in _TYPE_PREFIXES:
        repo_type = _TYPE_PREFIXES[segments[0]]
        segments = segments[1:]
    repo_id = "/".join(segments)
    if len(segments) > 2 or not _REPO_ID.match(repo_id) or ".." in repo_id or repo_id.endswith("."):
        raise UsageError(
            f"Not a repo id: {text!r}.",
            hint="Use org/name, datasets/org/name, spaces/org/name or a page URL such as https://hf-mirror.com/org/name.",
        )
    return RepoSpec(Repo(repo_id, repo_type))


def _parse_uri(text: str) -> RepoSpec:
    from huggingface_hub import parse_hf_uri
    from huggingface_hub.errors import HfUriError

    endpoint = None
    if not text.startswith("hf://"):
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"Not a repo URL: {text!r}.", hint="Use https://host/org/name.")
        endpoint = f"{parts.scheme}://{parts.netloc}"
        if parts.path.strip("/").count("/") == 0:  # a legacy single-segment repo on some host
            return RepoSpec(_parse_plain(parts.path.strip("/")).repo, endpoint)
    try:
        uri = parse_hf_uri(text, endpoint=endpoint)
    except HfUriError as error:
        raise UsageError(f"Not a repo URL: {text!r} ({error}).", hint="Use https://host/org/name.") from None
    if uri.type not in REPO_TYPES:
        raise UsageError(f"hfget downloads models, datasets and spaces, not {uri.type}s: {text!r}.")
    return RepoSpec(Repo(uri.id, uri.type), endpoint, uri.revision or None, uri.path_in_repo or None)


def resolve_url(endpoint: str, repo: Repo, revision: str, path: str) -> str:
    """The resolve URL of a file (hub-protocol.md §1): revision quoted whole, path keeps its `/`."""
    return f"{endpoint}/{repo.url_prefix}{repo.repo_id}/resolve/{quote(revision, safe='')}/{quote(path)}"


def keep_prefix(endpoint: str, url: str) -> str:
    """`url` on the endpoint's origin but outside its path prefix (`https://host/prefix`), moved under it:
    `https://host/api/x` -> `https://host/prefix/api/x`. Anything else is returned as it is."""
    base, target = urlsplit(endpoint), urlsplit(url)
    prefix = base.path.rstrip("/")
    same_origin = (base.scheme, base.netloc.lower()) == (target.scheme, target.netloc.lower())
    if not prefix or not same_origin or target.path == prefix or target.path.startswith(prefix + "/"):
        return url
    return target._replace(path=prefix + target.path).geturl()

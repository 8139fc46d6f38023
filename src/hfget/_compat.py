"""The private parts of huggingface_hub that hfget relies on, gathered in one place.

huggingface_hub has no public API for its tree cache (`trees/<commit>.json`), for the `CACHEDIR.TAG` it writes,
or for the `.cache/huggingface/` bookkeeping of a local dir; hfget must read and write exactly those files for
`snapshot_download(local_files_only=True)` and `hf download --local-dir` to trust what hfget fetched. Its public
`set_client_factory` takes a whole client, so a client with a proxy is built from its default one's parts. The
listing's pagination is `HfApi.list_repo_tree`'s own (`paginate`, which huggingface_hub.utils exports lazily, so a
type checker does not see it there), taken from its module without importing `HfApi`'s. They are
imported here and nowhere else; pyproject.toml bounds huggingface_hub below 3, and the contract tests
(test_download.py: layouts compared with huggingface_hub's own output) fail if a release changes them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._models import RemoteFile

if TYPE_CHECKING:
    import httpx2


# the modules the writers below import, named for a thread that loads them ahead (_meanwhile.py)
TREE_MODULE = "huggingface_hub._tree_cache"  # write_tree (and read_tree, for a file its own reader cannot read)
LOCAL_FOLDER_MODULE = "huggingface_hub._local_folder"  # create_cachedir_tag, write_local_metadata


def read_tree(folder: Path, commit: str) -> list[RemoteFile] | None:
    """The listing huggingface_hub cached for `commit` under `folder` (None when it has none).

    A re-run reads it on every start, and huggingface_hub's reader imports most of huggingface_hub (a tenth of a
    second), so a file of the format this reader knows (format_version 1, every entry well-formed) is read here;
    anything else (another version, a damaged file) goes to huggingface_hub's own reader, which decides."""
    path = folder / "trees" / f"{commit}.json"
    fast = _read_tree_v1(path)
    if fast is not None:
        return fast
    if os.name != "nt" and not path.exists():  # nothing cached: no reader to import (20 ms) to be told so (on
        return None  # Windows huggingface_hub reads a long path in its extended form, which exists() would miss)
    from huggingface_hub._tree_cache import read_tree_cache

    listing = read_tree_cache(str(folder), commit)
    if listing is None:
        return None
    return [RemoteFile(path=path, size=e.size, blob_id=e.blob_id, lfs_sha256=e.lfs_sha256, xet_hash=e.xet_hash)
            for path, e in listing.items()]


def _read_tree_v1(path: Path) -> list[RemoteFile] | None:
    import json
    import re

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        files = data["files"] if data.get("format_version") == 1 else None
        listing = [RemoteFile(path=p, size=e["size"], blob_id=e["blob_id"], lfs_sha256=e.get("lfs_sha256"),
                              xet_hash=e.get("xet_hash")) for p, e in files.items()] if isinstance(files, dict) else []
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    hashes = [f.xet_hash for f in listing if f.xet_hash is not None]
    if not listing or not all(isinstance(h, str) and re.fullmatch(r"[0-9a-fA-F]{64}", h) for h in hashes):
        return None
    return listing


def repo_folder_name(repo_id: str, repo_type: str) -> str:
    """The repo's folder in the cache, `models--org--name` (huggingface_hub's `repo_folder_name`)."""
    return "--".join([f"{repo_type}s", *repo_id.split("/")])


def get_token() -> str | None:
    """The token as huggingface_hub's `get_token` finds it. Its module imports most of huggingface_hub, so the two
    plain cases are answered here: HF_TOKEN (or HUGGING_FACE_HUB_TOKEN) when no OIDC exchange is asked for, and
    no token at all when none of its other sources (the token file, Google Colab) can give one."""
    import os
    import sys

    from huggingface_hub import constants

    if not os.environ.get("HF_OIDC_RESOURCE"):
        token = (os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or "")
        token = token.replace("\r", "").replace("\n", "").strip()
        if token:
            return token
        if not os.path.exists(constants.HF_TOKEN_PATH) and "google.colab" not in sys.modules:
            return None
    from huggingface_hub import get_token as hub_get_token

    return hub_get_token()


def write_tree(folder: Path, commit: str, files: list[RemoteFile]) -> None:
    from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache

    entries = {
        f.path: TreeCacheEntry(size=f.size, blob_id=f.blob_id, lfs_sha256=f.lfs_sha256,
                               lfs_size=f.size if f.lfs_sha256 else None, xet_hash=f.xet_hash)
        for f in files
    }
    write_tree_cache(str(folder), commit, entries)


def create_cachedir_tag(cache_dir: Path) -> None:
    """huggingface_hub's CACHEDIR.TAG in the cache, if it has none. Its module imports filelock and more (about 60
    ms), which every download into a cache that has its tag paid for nothing."""
    if (cache_dir / "CACHEDIR.TAG").exists():
        return
    from huggingface_hub._local_folder import _create_cachedir_tag

    _create_cachedir_tag(cache_dir)


def local_metadata_path(local_dir: Path, path: str) -> Path:
    """Where huggingface_hub keeps a local-dir file's record, computed without creating anything (its own
    `get_local_download_paths` creates folders, and a plan must write nothing)."""
    return local_dir / ".cache" / "huggingface" / "download" / f"{path}.metadata"


def read_local_metadata(local_dir: Path, path: str) -> tuple[str, str] | None:
    """(commit, etag) recorded for a local-dir file, if the file is not newer than the record (huggingface_hub's
    rule, `read_download_metadata`, which takes a lock file and so writes; this reads only)."""
    record = local_metadata_path(local_dir, path)
    try:
        commit, etag, timestamp = record.read_text().splitlines()[:3]
        if (local_dir / path).stat().st_mtime - 1 <= float(timestamp):
            return commit.strip(), etag.strip()
    except (OSError, ValueError):
        return None
    return None


def recorded_commits(local_dir: Path) -> list[str]:
    """The commit of every file record under `local_dir/.cache/huggingface/download/` (first line of each)."""
    commits = []
    for record in (local_dir / ".cache" / "huggingface" / "download").rglob("*.metadata"):
        try:
            with open(record) as f:
                commits.append(f.readline().strip())
        except OSError:
            continue
    return commits


def write_local_metadata(local_dir: Path, path: str, commit: str, etag: str) -> None:
    from huggingface_hub._local_folder import write_download_metadata

    write_download_metadata(local_dir, path, commit, etag)


def hub_paginate() -> Callable[..., Iterable[Any]]:
    """huggingface_hub's pagination of a listing: `paginate(url, params, headers)` yields every entry of every page,
    following `Link: next`, raising its HTTP errors, with its backoff (what `HfApi.list_repo_tree` iterates)."""
    from huggingface_hub.utils._pagination import paginate

    return paginate


def hub_default_client_factory() -> Callable[[], httpx2.Client]:
    """huggingface_hub's own factory of its shared session (to put back what `set_client_factory` replaced)."""
    from huggingface_hub.utils._http import default_client_factory

    return default_client_factory


def hub_request_event_hook() -> Callable[[httpx2.Request], Any]:
    """The request hook huggingface_hub's default client carries (offline mode, request ids)."""
    from huggingface_hub.utils._http import hf_request_event_hook

    return hf_request_event_hook


# -- larger reads for file bodies ----------------------------------------------------------------------------------
#
# The network backend of _reads.py (httpcore2's documented extension point) reads file bodies in larger blocks. It
# is used for hfget's own file transfers only, and only where no proxy is in the way (proxied routes use httpx2's own
# transports); nothing of httpx2's or httpcore2's is patched. The transport keeps httpx2's own request/response
# mapping and only builds its connection pool with this backend: `_pool` is HTTPTransport's private attribute (httpx2
# bounded below 3).


def fast_transport(*, verify: Any, limits: Any) -> Any:
    import httpcore2
    import httpx2

    from ._reads import Backend

    transport = httpx2.HTTPTransport(verify=verify, limits=limits)
    transport._pool = httpcore2.ConnectionPool(
        ssl_context=httpx2.create_ssl_context(verify=verify, trust_env=True), max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
        network_backend=Backend(),
    )
    return transport

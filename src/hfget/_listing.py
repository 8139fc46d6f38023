"""What a listing must be before hfget trusts it: a mirror is a third party, and its answer names files on disk.

Every path must stay inside the target (no absolute paths, `..`, backslashes, drive letters, NUL, empty parts),
no path may come twice, sizes must be whole numbers, and the ids that name blobs and partial files in the cache
must be hashes (40 hex digits, or 64 for an LFS sha256), so no answer can write outside the cache.
"""

from __future__ import annotations

import re
from typing import Any

from ._errors import NetworkError
from ._models import RemoteFile
from ._repo import Repo

_DRIVE = re.compile(r"^[A-Za-z]:")
_HEX = re.compile(r"[0-9a-fA-F]{40}")  # a git blob sha1: it names a blob and a partial file in the cache
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def tree_files(entries: list[Any], repo: Repo, endpoint: str) -> list[RemoteFile]:
    """The files of a tree listing's entries (hub-protocol.md §2: `{"type": "file", "path", "size", "oid",
    "lfs": {"oid", "size", "pointerSize"}?, "xetHash"?}`; folders are left out), read as huggingface_hub's
    `RepoFile` reads them. An entry of another shape is the endpoint's fault, said as such."""
    files = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise _unreadable(endpoint, repo, f"an entry that is not a file or folder: {str(entry)[:80]!r}")
        if entry["type"] == "file":
            files.append(_file(entry, repo, endpoint))
    return files


def _file(entry: dict[str, Any], repo: Repo, endpoint: str) -> RemoteFile:
    path, size, blob_id, lfs = entry.get("path"), entry.get("size"), entry.get("oid"), entry.get("lfs")
    if not isinstance(path, str):
        raise _unreadable(endpoint, repo, f"a file without a path: {str(entry)[:80]!r}")
    if not isinstance(size, int) or isinstance(size, bool) or not isinstance(blob_id, str):
        raise _unreadable(endpoint, repo, f"{path!r} has no usable size or blob id")
    if lfs is not None and (not isinstance(lfs, dict) or not isinstance(lfs.get("oid"), str)):
        raise _unreadable(endpoint, repo, f"the LFS entry of {path!r} has no sha256")
    xet_hash = entry.get("xetHash")
    return RemoteFile(path=path, size=size, blob_id=blob_id, lfs_sha256=lfs["oid"] if lfs is not None else None,
                      xet_hash=xet_hash if isinstance(xet_hash, str) else None)


def _unreadable(endpoint: str, repo: Repo, what: str) -> NetworkError:
    return NetworkError(f"{endpoint} sent a file list hfget cannot read for {repo}: {what}.",
                        hint="The endpoint may be broken: use another --mirror.")


def check_listing(files: list[RemoteFile], repo: Repo) -> list[RemoteFile]:
    """Refuse listings that would write outside the target or twice to one place (a mirror is a third party)."""
    seen: set[str] = set()
    for file in files:
        if not _HEX.fullmatch(file.blob_id) or (file.lfs_sha256 is not None and not _SHA256.fullmatch(file.lfs_sha256)):
            raise NetworkError(f"The listing of {repo} gives {file.path!r} an id that is not a hash; nothing was "
                               "written.", hint="The endpoint may be compromised or broken: use another --mirror.")
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

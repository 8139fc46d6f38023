"""The private parts of huggingface_hub that hfget relies on, gathered in one place.

huggingface_hub has no public API for its tree cache (`trees/<commit>.json`), for the `CACHEDIR.TAG` it writes,
or for the `.cache/huggingface/` bookkeeping of a local dir; hfget must read and write exactly those files for
`snapshot_download(local_files_only=True)` and `hf download --local-dir` to trust what hfget fetched. Its public
`set_client_factory` takes a whole client, so a client with a proxy is built from its default one's parts. They are
imported here and nowhere else; pyproject.toml bounds huggingface_hub below 3, and the contract tests
(test_download.py: layouts compared with huggingface_hub's own output) fail if a release changes them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._models import RemoteFile

if TYPE_CHECKING:
    import httpx2


def read_tree(folder: Path, commit: str) -> list[RemoteFile] | None:
    """The listing huggingface_hub cached for `commit` under `folder` (None when it has none).

    A re-run reads it on every start, and huggingface_hub's reader imports most of huggingface_hub (a tenth of a
    second), so a file of the format this reader knows (format_version 1, every entry well-formed) is read here;
    anything else (another version, a damaged file) goes to huggingface_hub's own reader, which decides."""
    fast = _read_tree_v1(folder / "trees" / f"{commit}.json")
    if fast is not None:
        return fast
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
# httpcore2 asks its network stream for 64 KiB per read; on a fast link the per-read Python work in h11 and
# httpcore2 is what bounds a download (profiled: h11's receive buffer is the top frame). A network backend is
# httpcore2's documented extension point: this one hands out streams whose reads take up to 1 MiB at a time
# (measured: 64 KiB -> 256 KiB, -25% wall time on a 1 GiB localhost download; 256 KiB -> 1 MiB, the bench's
# `local` 3.2-3.4 s -> 2.3-2.4 s and `mirror` -20% CPU: each read is one recv, one pass through h11 and httpcore2,
# and GIL hand-offs among the connections, whatever its size). A connection starts at 64 KiB and doubles its reads
# while the socket fills them (halving when it does not): a 1 MiB buffer is above glibc's mmap threshold, so a
# small file's one read cost an mmap, an mremap and a munmap (strace: 3 calls a file of the 2,000 in `many`; A/B 4
# pairs, faster in each, 3% on average). Over TLS, Python's ssl hands out one record (16 KiB at most) per read:
# the records already readable (a zero-timeout select) are gathered into one read (256 MiB over https from a local
# Hub, one connection: 1.81-1.84 s -> 1.41-1.46 s, user CPU 1.4 -> 1.0 s). It is used for hfget's own
# file transfers only, and only where no proxy is in the way (proxied routes use httpx2's own transports); nothing
# of httpx2's or httpcore2's is patched. The transport keeps httpx2's own request/response mapping and only builds
# its connection pool with this backend: `_pool` is HTTPTransport's private attribute (httpx2 bounded below 3).

READ_SIZE = 1 << 20
FIRST_READ = 64 << 10  # a read asks for twice what the last one asked while the socket fills them, else half
GATHER_WAIT = 0.05  # seconds a TLS read waits for the rest of a record it is gathering (see TLSReads)


def next_read(asked: int, got: int) -> int:
    """What the next read of a connection asks for, after one that asked `asked` bytes and got `got`."""
    return min(asked * 2, READ_SIZE) if got >= asked else max(asked // 2, FIRST_READ)




def fast_transport(*, verify: Any, limits: Any) -> Any:
    import select

    import httpcore2
    import httpx2

    class BigReads(httpcore2.NetworkStream):
        def __init__(self, stream: httpcore2.NetworkStream) -> None:
            self._stream = stream
            self._size = FIRST_READ

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            data = self._stream.read(max(max_bytes, self._size), timeout)
            self._size = next_read(self._size, len(data))
            return data

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._stream.write(buffer, timeout)

        def close(self) -> None:
            self._stream.close()

        def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                      timeout: float | None = None) -> httpcore2.NetworkStream:
            return TLSReads(self._stream.start_tls(ssl_context, server_hostname, timeout))

        def get_extra_info(self, info: str) -> Any:
            return self._stream.get_extra_info(info)

    class TLSReads(BigReads):
        """Over TLS a read returns one record (16 KiB at most): the records already readable are gathered into one
        read, up to what it asks for. Gathering waits at most `GATHER_WAIT` for the rest of a record on its way (the
        stall timeout stays the next read's), and a failure while gathering waits for the next read."""

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            want = max(max_bytes, self._size)
            data = self._stream.read(want, timeout)
            if data and len(data) < want:
                data = self._gather(data, want, timeout)
            self._size = next_read(self._size, len(data))
            return data

        def _gather(self, first: bytes, want: int, timeout: float | None) -> bytes:
            sock = self._stream.get_extra_info("socket")
            parts, got = [first], len(first)
            try:
                while got < want and (sock.pending() or select.select([sock], [], [], 0)[0]):
                    more = self._stream.read(want - got, GATHER_WAIT if timeout is None else min(timeout, GATHER_WAIT))
                    if not more:
                        break
                    parts.append(more)
                    got += len(more)
            except (httpcore2.ReadError, httpcore2.ReadTimeout, OSError, ValueError):
                pass  # what came is returned; the next read meets the failure again
            return b"".join(parts) if len(parts) > 1 else first

    class Backend(httpcore2.SyncBackend):
        def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore2.NetworkStream:
            return BigReads(super().connect_tcp(*args, **kwargs))

    transport = httpx2.HTTPTransport(verify=verify, limits=limits)
    transport._pool = httpcore2.ConnectionPool(
        ssl_context=httpx2.create_ssl_context(verify=verify, trust_env=True), max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
        network_backend=Backend(),
    )
    return transport

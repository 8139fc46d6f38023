"""Where files land: huggingface_hub's cache layout, or a plain local folder. Publishing is atomic.

Cache layout (hub-protocol.md §5), per repo folder `models--org--name` under the cache dir:
    blobs/<etag>                       a verified file; `<etag>.hfget.incomplete` while it is being fetched
    snapshots/<commit>/<path>          relative symlink to ../../blobs/<etag> (hard link or copy where
                                       symlinks are not supported, or HF_HUB_DISABLE_SYMLINKS is set)
    refs/<revision>                    the commit, no newline
    trees/<commit>.json                the listing, in huggingface_hub's own format (its own writer is used)

Local-dir layout: plain files, `.cache/huggingface/download/<path>.metadata` (commit, etag, time: the entry
huggingface_hub trusts while the file is not newer than it), partial files beside the metadata.

Invariant: nothing partial or unverified appears as `blobs/<etag>`, under `snapshots/`, or at a local-dir path.
A partial file's name carries the etag, so a partial found by a later run is known to be of the same
content (size and hash from the listing) and is resumed. Partials end in `.incomplete`, so `hf cache` sees
them, but with an `.hfget` infix so huggingface_hub never resumes from one of ours.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Protocol

from ._errors import StorageError
from ._hub import RemoteFile
from ._repo import Repo

PARTIAL_SUFFIX = ".hfget.incomplete"


class Store(Protocol):
    """What the engine needs of a download target."""

    def prepare(self) -> None: ...
    def output_path(self, commit: str) -> Path: ...
    def cached_commit(self, revision: str) -> str | None: ...
    def read_listing(self, commit: str) -> list[RemoteFile] | None: ...
    def write_listing(self, commit: str, files: list[RemoteFile]) -> None: ...
    def is_present(self, commit: str, file: RemoteFile) -> bool: ...
    def partial_path(self, file: RemoteFile) -> Path: ...
    def lock_file(self) -> Path: ...
    def publish(self, commit: str, file: RemoteFile, partial: Path) -> None: ...
    def finish(self, revision: str, commit: str) -> None: ...


def _to_remote(listing: dict) -> list[RemoteFile]:
    return [
        RemoteFile(path=path, size=e.size, blob_id=e.blob_id, lfs_sha256=e.lfs_sha256, xet_hash=e.xet_hash)
        for path, e in listing.items()
    ]


def _read_tree(folder: Path, commit: str) -> list[RemoteFile] | None:
    from huggingface_hub._tree_cache import read_tree_cache

    listing = read_tree_cache(str(folder), commit)
    return None if listing is None else _to_remote(listing)


def _write_tree(folder: Path, commit: str, files: list[RemoteFile]) -> None:
    from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache

    entries = {
        f.path: TreeCacheEntry(
            size=f.size,
            blob_id=f.blob_id,
            lfs_sha256=f.lfs_sha256,
            lfs_size=f.size if f.lfs_sha256 else None,
            xet_hash=f.xet_hash,
        )
        for f in files
    }
    write_tree_cache(str(folder), commit, entries)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _storage_error(action: str, path: Path, error: OSError) -> StorageError:
    return StorageError(f"Cannot {action} {path}: {error.strerror or error}.",
                        hint="Check the permissions and free space of the target folder.")


class CacheStore:
    """The huggingface_hub cache (HF_HUB_CACHE), shared with transformers, datasets and `hf download`."""

    def __init__(self, cache_dir: Path, repo: Repo) -> None:
        from huggingface_hub.file_download import repo_folder_name

        self.cache_dir = Path(cache_dir).expanduser()
        self.storage = self.cache_dir / repo_folder_name(repo_id=repo.repo_id, repo_type=repo.repo_type)
        self._symlinks: bool | None = None if not os.environ.get("HF_HUB_DISABLE_SYMLINKS") else False
        self._made: set[Path] = set()

    def prepare(self) -> None:
        from huggingface_hub._local_folder import _create_cachedir_tag

        try:
            (self.storage / "blobs").mkdir(parents=True, exist_ok=True)
            (self.storage / "snapshots").mkdir(exist_ok=True)
        except OSError as error:
            raise _storage_error("create", self.storage, error) from None
        _create_cachedir_tag(self.cache_dir)

    def output_path(self, commit: str) -> Path:
        return self.storage / "snapshots" / commit

    def cached_commit(self, revision: str) -> str | None:
        try:
            return (self.storage / "refs" / revision).read_text().strip() or None
        except OSError:
            return None

    def read_listing(self, commit: str) -> list[RemoteFile] | None:
        return _read_tree(self.storage, commit)

    def write_listing(self, commit: str, files: list[RemoteFile]) -> None:
        _write_tree(self.storage, commit, files)

    def _blob(self, file: RemoteFile) -> Path:
        return self.storage / "blobs" / file.etag

    def is_present(self, commit: str, file: RemoteFile) -> bool:
        try:  # plain strings: this runs for every file of every re-run
            return os.stat(f"{self.storage}/snapshots/{commit}/{file.path}").st_size == file.size
        except OSError:
            return False

    def partial_path(self, file: RemoteFile) -> Path:
        return self.storage / "blobs" / f"{file.etag}{PARTIAL_SUFFIX}"

    def lock_file(self) -> Path:
        """Where hfget processes lock this repo's blobs (beside huggingface_hub's own lock files)."""
        return self.cache_dir / ".locks" / self.storage.name / "hfget.lock"

    def publish(self, commit: str, file: RemoteFile, partial: Path) -> None:
        blob = self._blob(file)
        target = self.output_path(commit) / file.path
        try:
            os.replace(partial, blob)
            self._make_parent(target)
            self._link(blob, target)
        except OSError as error:
            raise _storage_error("write", target, error) from None

    def adopt_blob(self, commit: str, file: RemoteFile) -> bool:
        """Link an already verified blob (same content under another path or commit) into the snapshot."""
        blob = self._blob(file)
        try:
            if blob.stat().st_size != file.size:
                return False
            target = self.output_path(commit) / file.path
            self._make_parent(target)
            self._link(blob, target)
        except OSError:
            return False
        return True

    def _make_parent(self, target: Path) -> None:
        parent = target.parent
        if parent not in self._made:  # thousands of files share a few folders: one mkdir each
            parent.mkdir(parents=True, exist_ok=True)
            self._made.add(parent)

    def _link(self, blob: Path, target: Path) -> None:
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        if self._symlinks is not False:
            relative = os.path.relpath(blob, target.parent)
            try:
                try:
                    os.symlink(relative, target)  # the common case: nothing there yet
                except FileExistsError:  # a stale link or file: replace it atomically
                    os.symlink(relative, tmp)
                    os.replace(tmp, target)
                self._symlinks = True
                return
            except OSError:
                if self._symlinks:  # symlinks worked before: this is a real error
                    raise
                self._symlinks = False
        try:
            os.link(blob, tmp)
        except OSError:
            shutil.copyfile(blob, tmp)
        os.replace(tmp, target)

    def finish(self, revision: str, commit: str) -> None:
        if revision != commit:
            try:
                _write_atomically(self.storage / "refs" / revision, commit)
            except OSError as error:
                raise _storage_error("write", self.storage / "refs" / revision, error) from None


class LocalDirStore:
    """A plain folder (--local-dir), with the bookkeeping huggingface_hub reads under `.cache/huggingface/`."""

    def __init__(self, local_dir: Path) -> None:
        self.root = Path(local_dir).expanduser().absolute()
        self.meta_root = self.root / ".cache" / "huggingface"

    def prepare(self) -> None:
        try:
            self.meta_root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _storage_error("create", self.root, error) from None

    def output_path(self, commit: str) -> Path:
        return self.root

    def cached_commit(self, revision: str) -> str | None:
        return None  # a local dir records no refs

    def read_listing(self, commit: str) -> list[RemoteFile] | None:
        return _read_tree(self.meta_root, commit)

    def write_listing(self, commit: str, files: list[RemoteFile]) -> None:
        _write_tree(self.meta_root, commit, files)

    def is_present(self, commit: str, file: RemoteFile) -> bool:
        from huggingface_hub._local_folder import read_download_metadata, write_download_metadata

        from ._verify import hash_file

        target = self.root / file.path
        try:
            if target.stat().st_size != file.size:
                return False
        except OSError:
            return False
        metadata = read_download_metadata(self.root, file.path)
        if metadata is not None and metadata.etag == file.etag:
            if metadata.commit_hash != commit:
                write_download_metadata(self.root, file.path, commit, file.etag)
            return True
        if metadata is None and hash_file(file, target):  # e.g. killed between publish and metadata
            write_download_metadata(self.root, file.path, commit, file.etag)
            return True
        return False

    def partial_path(self, file: RemoteFile) -> Path:
        from huggingface_hub._local_folder import get_local_download_paths

        metadata = get_local_download_paths(self.root, file.path).metadata_path
        return metadata.with_name(f"{Path(file.path).name}.{file.etag}{PARTIAL_SUFFIX}")

    def lock_file(self) -> Path:
        return self.meta_root / "hfget.lock"

    def publish(self, commit: str, file: RemoteFile, partial: Path) -> None:
        from huggingface_hub._local_folder import write_download_metadata

        target = self.root / file.path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir() and not target.is_symlink():
                raise IsADirectoryError(21, "a folder is in the way")
            os.replace(partial, target)
            write_download_metadata(self.root, file.path, commit, file.etag)
        except OSError as error:
            raise _storage_error("write", target, error) from None

    def adopt_blob(self, commit: str, file: RemoteFile) -> bool:
        return False

    def finish(self, revision: str, commit: str) -> None:
        pass

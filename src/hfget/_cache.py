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
from collections import Counter
from pathlib import Path
from typing import Protocol

from . import _compat, _ownership
from ._diskio import storage_error, write_atomically
from ._models import RemoteFile
from ._repo import Repo

PARTIAL_SUFFIX = ".hfget.incomplete"
LIST_FROM = 64  # files to look for in blobs/ from which one listing of it is cheaper than a `stat` per file


class Store(Protocol):
    """What the engine needs of a download target. The queries write nothing (a plan promises that)."""

    def output_path(self, commit: str) -> Path: ...
    def cached_commit(self, revision: str) -> str | None: ...
    def read_listing(self, commit: str) -> list[RemoteFile] | None: ...
    def is_present(self, commit: str, file: RemoteFile) -> bool: ...
    def absent(self, commit: str, files: list[RemoteFile]) -> list[RemoteFile]: ...
    def can_adopt(self, file: RemoteFile) -> bool: ...
    def may_adopt(self, files: list[RemoteFile]) -> list[RemoteFile]: ...
    def partial_path(self, file: RemoteFile) -> Path: ...
    def finished_partials(self, files: list[RemoteFile]) -> list[Path]: ...
    def lock_file(self) -> Path: ...
    # changes
    def prepare(self) -> None: ...
    def label(self) -> None: ...
    def writers(self) -> tuple[str, ...]: ...
    def write_listing(self, commit: str, files: list[RemoteFile]) -> None: ...
    def adopt(self, commit: str, file: RemoteFile) -> bool: ...
    def publish(self, commit: str, file: RemoteFile, partial: Path) -> None: ...
    def record_ref(self, revision: str, commit: str) -> None: ...


class CacheStore:
    """The huggingface_hub cache (HF_HUB_CACHE), shared with transformers, datasets and `hf download`."""

    def __init__(self, cache_dir: Path, repo: Repo) -> None:
        from huggingface_hub import constants

        self.cache_dir = Path(cache_dir).expanduser()
        self.storage = self.cache_dir / _compat.repo_folder_name(repo.repo_id, repo.repo_type)
        # read as huggingface_hub reads it (its constants): "0" or "false" keeps symlinks on
        self._symlinks: bool | None = False if constants.HF_HUB_DISABLE_SYMLINKS else None
        self._root = str(self.storage)  # the per-file paths below are plain strings: pathlib cost ~0.1 ms a file
        self._blobs = self.storage / "blobs"  # a partial's path is one join (three per file in a plan and a run)
        self._made: set[str] = set()

    def prepare(self) -> None:
        try:
            self._blobs.mkdir(parents=True, exist_ok=True)
            (self.storage / "snapshots").mkdir(exist_ok=True)
        except OSError as error:
            raise storage_error(error, self.storage, action="create") from None

    def label(self) -> None:
        """CACHEDIR.TAG at the cache's top, which backup tools skip (huggingface_hub's writer; it ignores errors)."""
        _compat.create_cachedir_tag(self.cache_dir)

    def writers(self) -> tuple[str, ...]:
        """The modules a first download's writes will import (the listing's, the tag's if the cache has none)."""
        tagged = (self.cache_dir / "CACHEDIR.TAG").exists()
        return (_compat.TREE_MODULE,) + (() if tagged else (_compat.LOCAL_FOLDER_MODULE,))

    def output_path(self, commit: str) -> Path:
        return self.storage / "snapshots" / commit

    def cached_commit(self, revision: str) -> str | None:
        try:
            return (self.storage / "refs" / revision).read_text().strip() or None
        except OSError:
            return None

    def read_listing(self, commit: str) -> list[RemoteFile] | None:
        return _compat.read_tree(self.storage, commit)

    def write_listing(self, commit: str, files: list[RemoteFile]) -> None:
        _compat.write_tree(self.storage, commit, files)

    def _blob(self, file: RemoteFile) -> str:
        return f"{self._root}/blobs/{file.etag}"

    def is_present(self, commit: str, file: RemoteFile) -> bool:
        try:  # plain strings: this runs for every file of every re-run
            return os.stat(f"{self._root}/snapshots/{commit}/{file.path}").st_size == file.size
        except OSError:
            return False

    def absent(self, commit: str, files: list[RemoteFile]) -> list[RemoteFile]:
        """The files not in the snapshot of `commit`: one `stat` for them all where the commit has no snapshot yet
        (its first download), not one each (2.4 us a file: 0.24 s for 100,000 files)."""
        if not os.path.isdir(f"{self._root}/snapshots/{commit}"):
            return list(files)
        return [f for f in files if not self.is_present(commit, f)]

    def can_adopt(self, file: RemoteFile) -> bool:
        """A verified blob of the same content is there (another path or commit): a link, no fetch."""
        try:
            return os.stat(self._blob(file)).st_size == file.size
        except OSError:
            return False

    def may_adopt(self, files: list[RemoteFile]) -> list[RemoteFile]:
        """Those of `files` whose blob may be in blobs/; `can_adopt` checks each one. Past LIST_FROM files, one
        listing of blobs/ (about 0.6 us a blob) instead of a `stat` each (6 us a file: 0.6 s for 100,000 files in a
        new cache); below, as for `hfget serve`'s one file at a time, the listing would cost more than it saves."""
        if len(files) < LIST_FROM:
            return list(files)
        try:
            names = {name.lower() for name in os.listdir(self._blobs)}  # a case-blind filesystem matches any case
        except (FileNotFoundError, NotADirectoryError):  # no blobs/ yet (a plan writes nothing)
            return []
        except OSError:  # a folder that can be searched but not read: each blob is looked for by name
            return list(files)
        return [f for f in files if f.etag.lower() in names]

    def partial_path(self, file: RemoteFile) -> Path:
        return self._blobs / f"{file.etag}{PARTIAL_SUFFIX}"

    def finished_partials(self, files: list[RemoteFile]) -> list[Path]:
        """The parked partial names of those of `files` (in place) that have a partial and their blob: one listing
        of blobs/, and nothing more when it holds no partial. Without the blob (huggingface_hub moves it into the
        snapshot where symlinks are off) a partial may still serve another commit's file of the same content."""
        listed = _ownership.partial_bases(str(self._blobs))
        if not listed:
            return []
        return [self.partial_path(f) for f in files if f.etag in listed and self.can_adopt(f)]

    def lock_file(self) -> Path:
        """Where hfget processes lock this repo's blobs (beside huggingface_hub's own lock files)."""
        return self.cache_dir / ".locks" / self.storage.name / "hfget.lock"

    def publish(self, commit: str, file: RemoteFile, partial: Path) -> None:
        blob = self._blob(file)
        target = f"{self._root}/snapshots/{commit}/{file.path}"
        try:
            os.replace(partial, blob)
            self._make_parent(target)
            self._link(blob, target, _up_to_blobs(file))
        except OSError as error:
            raise storage_error(error, Path(target)) from None

    def adopt(self, commit: str, file: RemoteFile) -> bool:
        """Link an already verified blob (same content under another path or commit) into the snapshot."""
        if not self.can_adopt(file):
            return False
        try:
            target = f"{self._root}/snapshots/{commit}/{file.path}"
            self._make_parent(target)
            self._link(self._blob(file), target, _up_to_blobs(file))
        except OSError:
            return False
        return True

    def _make_parent(self, target: str) -> None:
        parent = os.path.dirname(target)
        if parent not in self._made:  # thousands of files share a few folders: one mkdir each
            os.makedirs(parent, exist_ok=True)
            self._made.add(parent)

    def _link(self, blob: str, target: str, relative: str) -> None:
        if self._symlinks is not False and self._symlink(relative, target):
            return
        tmp = _beside(target)
        try:
            os.link(blob, tmp)
        except OSError:
            shutil.copyfile(blob, tmp)
        os.replace(tmp, target)

    def _symlink(self, relative: str, target: str) -> bool:
        """A relative symlink, replacing whatever is there atomically; False where symlinks do not work."""
        try:
            try:
                os.symlink(relative, target)  # the common case: nothing there yet
            except FileExistsError:
                tmp = _beside(target)
                os.symlink(relative, tmp)
                os.replace(tmp, target)
        except OSError:
            if self._symlinks:  # symlinks worked before: this is a real error
                raise
            self._symlinks = False
            return False
        self._symlinks = True
        return True

    def record_ref(self, revision: str, commit: str) -> None:
        """refs/<revision> = commit; nothing is written when it already says so (a read-only cache stays fine)."""
        if revision == commit or self.cached_commit(revision) == commit:
            return
        path = self.storage / "refs" / revision
        try:
            write_atomically(path, commit)
        except OSError as error:
            raise storage_error(error, path) from None


def _beside(target: str) -> str:
    """A temporary name in the target's folder, to put a link in place with one atomic rename."""
    folder, name = os.path.split(target)
    return os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.tmp")


def _up_to_blobs(file: RemoteFile) -> str:
    """The symlink from snapshots/<commit>/<path> to blobs/<etag>, as huggingface_hub writes it (relative), made
    without os.path.relpath (two getcwd calls and a normalisation per file); listed paths are checked safe."""
    return "../" * (file.path.count("/") + 2) + f"blobs/{file.etag}"


class LocalDirStore:
    """A plain folder (--local-dir), with the bookkeeping huggingface_hub reads under `.cache/huggingface/`."""

    def __init__(self, local_dir: Path) -> None:
        self.root = Path(local_dir).expanduser().absolute()
        self.meta_root = self.root / ".cache" / "huggingface"
        self._checked: dict[str, bool] = {}  # path -> whether an unrecorded file hashed right

    def prepare(self) -> None:
        try:
            self.meta_root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise storage_error(error, self.root, action="create") from None

    def label(self) -> None:
        pass  # a plain folder: nothing to tag

    def writers(self) -> tuple[str, ...]:
        return _compat.TREE_MODULE, _compat.LOCAL_FOLDER_MODULE  # the listing, each file's record

    def output_path(self, commit: str) -> Path:
        return self.root

    def cached_commit(self, revision: str) -> str | None:
        """A local dir records no refs: the commit its files were last recorded at, if a listing of it is kept."""
        listed = {p.stem for p in (self.meta_root / "trees").glob("*.json")}
        recorded = Counter(commit for commit in _compat.recorded_commits(self.root) if commit in listed)
        return recorded.most_common(1)[0][0] if recorded else (listed.pop() if len(listed) == 1 else None)

    def read_listing(self, commit: str) -> list[RemoteFile] | None:
        return _compat.read_tree(self.meta_root, commit)

    def write_listing(self, commit: str, files: list[RemoteFile]) -> None:
        _compat.write_tree(self.meta_root, commit, files)

    def _size_matches(self, file: RemoteFile) -> bool:
        try:
            return (self.root / file.path).stat().st_size == file.size
        except OSError:
            return False

    def is_present(self, commit: str, file: RemoteFile) -> bool:
        """The file is there and recorded for this commit and content."""
        if not self._size_matches(file):
            return False
        return _compat.read_local_metadata(self.root, file.path) == (commit, file.etag)

    def absent(self, commit: str, files: list[RemoteFile]) -> list[RemoteFile]:
        return [f for f in files if not self.is_present(commit, f)]

    def may_adopt(self, files: list[RemoteFile]) -> list[RemoteFile]:
        return list(files)  # any of them may be in place already, unrecorded: each is looked at

    def can_adopt(self, file: RemoteFile) -> bool:
        """The file is there with the right content, recorded for another commit or not recorded at all (e.g. a
        run killed between publishing and recording): a record to write, no fetch."""
        if not self._size_matches(file):
            return False
        recorded = _compat.read_local_metadata(self.root, file.path)
        if recorded is not None:
            return recorded[1] == file.etag
        if file.path not in self._checked:
            from ._verify import check_file

            self._checked[file.path] = check_file(file, self.root / file.path) is None
        return self._checked[file.path]

    def adopt(self, commit: str, file: RemoteFile) -> bool:
        if not self.can_adopt(file):
            return False
        _compat.write_local_metadata(self.root, file.path, commit, file.etag)
        return True

    def partial_path(self, file: RemoteFile) -> Path:
        metadata = _compat.local_metadata_path(self.root, file.path)
        return metadata.with_name(f"{Path(file.path).name}.{file.etag}{PARTIAL_SUFFIX}")

    def finished_partials(self, files: list[RemoteFile]) -> list[Path]:
        """The parked partial names of those of `files` (in place) that have a partial beside their record: one
        listing per folder, plain strings for the rest (a re-run looks at every file)."""
        download, found = f"{self.meta_root}/download", []
        for file in files:
            folder, _, name = file.path.rpartition("/")
            if f"{name}.{file.etag}" in _ownership.partial_bases(f"{download}/{folder}" if folder else download):
                found.append(self.partial_path(file))
        return found

    def lock_file(self) -> Path:
        return self.meta_root / "hfget.lock"

    def publish(self, commit: str, file: RemoteFile, partial: Path) -> None:
        target = self.root / file.path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir() and not target.is_symlink():
                raise IsADirectoryError(21, "a folder is in the way")
            os.replace(partial, target)
            _compat.write_local_metadata(self.root, file.path, commit, file.etag)
        except OSError as error:
            raise storage_error(error, target) from None

    def record_ref(self, revision: str, commit: str) -> None:
        pass

"""Content hashes the listing promises: sha256 for LFS files, git blob sha1 for the others (§2).

A `ContentHash` is fed bytes in order, as they are written, so verification costs no second read of the
file; on resume the bytes already on disk are fed first (`update_from_file`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ._hub import RemoteFile

_READ_SIZE = 1 << 20


class ContentHash:
    def __init__(self, file: RemoteFile) -> None:
        self.file = file
        if file.lfs_sha256:
            self.expected = file.lfs_sha256.lower()
            self._hash = hashlib.sha256()
        else:
            self.expected = file.blob_id.lower()
            self._hash = hashlib.sha1(b"blob %d\0" % file.size)
        self.length = 0

    @property
    def algorithm(self) -> str:
        return self._hash.name

    def update(self, data: bytes | memoryview) -> None:
        self._hash.update(data)
        self.length += len(data)

    def update_from_file(self, path: Path, length: int) -> None:
        """Feed the first `length` bytes of `path` (a partial file being resumed)."""
        with open(path, "rb") as f:
            remaining = length
            while remaining:
                chunk = f.read(min(_READ_SIZE, remaining))
                if not chunk:
                    raise OSError(f"{path} is shorter than {length} bytes")
                self.update(chunk)
                remaining -= len(chunk)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def matches(self) -> bool:
        return self.length == self.file.size and self.hexdigest() == self.expected


def hash_file(file: RemoteFile, path: Path) -> bool:
    """Whether the file at `path` has exactly the listed size and hash."""
    content = ContentHash(file)
    try:
        if path.stat().st_size != file.size:
            return False
        content.update_from_file(path, file.size)
    except OSError:
        return False
    return content.matches()

"""The records every layer shares: a file of the listing. Pure data, no I/O, no imports of other hfget modules."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """A file of the listing: what identifies its content and what it must hash to (hub-protocol.md §2)."""

    path: str
    size: int
    blob_id: str  # git blob sha1; of the LFS pointer for an LFS file
    lfs_sha256: str | None = None
    xet_hash: str | None = None

    @property
    def etag(self) -> str:
        """The name of its blob in the cache: sha256 for LFS files, git blob sha1 otherwise (§5)."""
        return self.lfs_sha256 or self.blob_id

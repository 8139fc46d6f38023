"""hfget: fast, resumable, verified downloads of Hugging Face Hub repos, through mirrors, into the HF cache.

    >>> import hfget
    >>> path = hfget.download("org/name", mirrors=["hf-mirror.com"], include=["*.safetensors"])
"""

from ._api import download, plan
from ._errors import (
    AuthError,
    EntryNotFoundError,
    ExitCode,
    FileDownloadError,
    GatedRepoError,
    HfgetError,
    IncompleteDownloadError,
    InterruptedError_,
    NetworkError,
    NotFoundError,
    RepoNotFoundError,
    RevisionNotFoundError,
    StorageError,
    UsageError,
    VerificationError,
)
from ._events import (
    DownloadFinished,
    DownloadPlanned,
    Event,
    FileDone,
    FileFailed,
    FileRetried,
    FileStarted,
    MetadataRetried,
    MirrorSwitched,
    NullSink,
    PlannedFile,
    RevisionResolved,
    Sink,
)
from ._version import __version__

__all__ = [
    "AuthError",
    "DownloadFinished",
    "DownloadPlanned",
    "EntryNotFoundError",
    "Event",
    "ExitCode",
    "FileDone",
    "FileDownloadError",
    "FileFailed",
    "FileRetried",
    "FileStarted",
    "GatedRepoError",
    "HfgetError",
    "IncompleteDownloadError",
    "InterruptedError_",
    "MetadataRetried",
    "MirrorSwitched",
    "NetworkError",
    "NotFoundError",
    "NullSink",
    "PlannedFile",
    "RepoNotFoundError",
    "RevisionNotFoundError",
    "RevisionResolved",
    "Sink",
    "StorageError",
    "UsageError",
    "VerificationError",
    "__version__",
    "download",
    "plan",
]

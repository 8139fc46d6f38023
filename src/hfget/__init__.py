"""hfget: fast, resumable, verified downloads of Hugging Face Hub repos, through mirrors, into the HF cache.

    >>> import hfget
    >>> path = hfget.download("org/name", mirrors=["hf-mirror.com"], include=["*.safetensors"])
"""

from typing import TYPE_CHECKING, Any

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
from ._version import __version__

if TYPE_CHECKING:
    from ._api import download, plan
    from ._events import (
        DownloadFinished,
        DownloadPlanned,
        Event,
        FileDone,
        FileFailed,
        FileRetried,
        FileStarted,
        HostLimited,
        MetadataRetried,
        MirrorStale,
        MirrorSwitched,
        NullSink,
        PlannedFile,
        RevisionResolved,
        Sink,
    )

def __getattr__(name: str) -> Any:
    """`download` and `plan` load the engine on first use, and the events their module, so `import hfget` (and
    `hfget --help`) stays quick."""
    if name in ("download", "plan"):
        from . import _api

        return getattr(_api, name)
    if name in __all__:  # the public names not defined here: the events
        from . import _events

        return getattr(_events, name)
    raise AttributeError(f"module 'hfget' has no attribute {name!r}")

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
    "HostLimited",
    "IncompleteDownloadError",
    "InterruptedError_",
    "MetadataRetried",
    "MirrorStale",
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

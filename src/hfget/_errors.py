"""Every error hfget raises, organised by what the user can do about it, and the exit code of each.

    HfgetError                      (exit 1)  base: a message, a hint, an exit code
    ├── UsageError                  (exit 2)  fix the command line: bad repo id, conflicting options
    ├── NotFoundError               (exit 3)  check the name: repo, revision or file does not exist
    │   ├── RepoNotFoundError
    │   ├── RevisionNotFoundError
    │   └── EntryNotFoundError
    ├── AuthError                   (exit 4)  supply or fix a token, or request access
    │   └── GatedRepoError
    ├── NetworkError                (exit 5)  the endpoint cannot be reached or answers garbage: retry later,
    │                                         or try another mirror
    ├── StorageError                (exit 6)  the target folder cannot be written
    ├── FileDownloadError           (exit 1)  one file failed (transfer or verification); others may be fine
    │   └── VerificationError
    ├── IncompleteDownloadError     (exit 1)  the run ended with some files failed; carries each failure
    └── InterruptedError_           (exit 130) Ctrl-C or SIGTERM; partial files are kept for resume

The engine raises only these; the CLI turns each into one line on stderr (message, then hint) and its exit
code, in one place (cli/_app.py). Messages never contain a token.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes; documented in README and `hfget --help`."""

    OK = 0
    FAILED = 1  # some files could not be downloaded or verified
    USAGE = 2
    NOT_FOUND = 3
    AUTH = 4
    NETWORK = 5
    STORAGE = 6
    INTERRUPTED = 130


class HfgetError(Exception):
    exit_code = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(HfgetError):
    exit_code = ExitCode.USAGE


class NotFoundError(HfgetError):
    exit_code = ExitCode.NOT_FOUND


class RepoNotFoundError(NotFoundError):
    pass


class RevisionNotFoundError(NotFoundError):
    pass


class EntryNotFoundError(NotFoundError):
    pass


class AuthError(HfgetError):
    exit_code = ExitCode.AUTH


class GatedRepoError(AuthError):
    pass


class NetworkError(HfgetError):
    exit_code = ExitCode.NETWORK


class StorageError(HfgetError):
    exit_code = ExitCode.STORAGE


class FileDownloadError(HfgetError):
    """One file could not be fetched; `path` is its path in the repo."""

    def __init__(self, path: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path


class VerificationError(FileDownloadError):
    pass


class IncompleteDownloadError(HfgetError):
    def __init__(self, failures: list[FileDownloadError], *, total: int) -> None:
        first = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        super().__init__(
            f"{len(failures)} of {total} files failed: {first.message}{more}",
            hint="Run the same command again: files already fetched are kept and partial files resume.",
        )
        self.failures = failures


class InterruptedError_(HfgetError):
    exit_code = ExitCode.INTERRUPTED

    def __init__(self) -> None:
        super().__init__("Interrupted.", hint="Partial files are kept: run the same command again to resume.")

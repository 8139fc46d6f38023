"""The JSON that `hfget --json` prints: one pydantic model per event, a stable, documented schema.

Each line of `hfget REPO --json` is one object whose `event` field names its model:

    plan            what will be fetched (also the whole output of `--dry-run --json` and `ls --json`)
    file_started    a file's first request is going out; `resumed_from` bytes were already on disk
    file_done       a file is verified and in place; `fetched` bytes came over the network for it
    retry           a transient failure; hfget tries again (`path` is null for metadata requests)
    waiting         a file's request has had no answer for a while (a caching proxy may be fetching it first)
    mirror_switched a mirror was dropped for the rest of the run (it failed or lagged); the others carry on
    mirror_stale    a mirror serves an older commit of the revision than another: not used for this run
    error           a file failed (`path` set), or the run stopped (`path` null, `exit_code` set)
    summary         the last line: the output folder, the commit, totals and every file's result
    verify          the whole output of `hfget verify --json`: every file checked, and what was repaired

Fields are only ever added, never renamed or removed; `schema_version` changes if that promise breaks.
`python -c "import hfget._schema as s; print(s.json_schema())"` prints the JSON Schema of every model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

SCHEMA_VERSION = 1

Text = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, Path) else v)]


class _Model(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built straight from the engine's event dataclasses


class _Event(_Model):
    schema_version: int = Field(SCHEMA_VERSION, description="Changes only if a field is renamed or removed.")


class PlanFile(_Model):
    path: str = Field(description="Path in the repo.")
    size: int = Field(description="Size in bytes, as listed.")
    present: bool = Field(description="Already in the target (verified when it was put there).")
    partial_bytes: int = Field(0, description="Bytes a partial file from an earlier run already holds.")
    on_disk: int = Field(0, description="Deprecated: the same as partial_bytes.")


class PlanEvent(_Event):
    event: Literal["plan"] = "plan"
    repo: str = Field(description="The repo, e.g. org/name or datasets/org/name.")
    revision: str = Field(description="The revision asked for.")
    commit: str = Field(description="The commit it resolved to; every file comes from it.")
    endpoint: str | None = Field(description="The endpoint the files come from.")
    path: Text = Field(description="The snapshot folder or local dir the files go to.")
    dry_run: bool = Field(False, description="A plan only (--dry-run, ls): nothing is fetched.")
    files_total: int = Field(description="Files selected.")
    bytes_total: int = Field(description="Their bytes.")
    files_to_fetch: int = Field(description="Files not yet in the target.")
    bytes_to_fetch: int = Field(description="Bytes still to download (partial files counted as far as they go).")
    bytes_on_disk: int = Field(description="Bytes of the files to fetch already in partial files.")
    free_bytes: int | None = Field(description="Free space at the target.")
    files: list[PlanFile]


class FileStartedEvent(_Event):
    event: Literal["file_started"] = "file_started"
    path: str = Field(description="Path in the repo.")
    size: int = Field(description="Size in bytes.")
    resumed_from: int = Field(description="Bytes already on disk, not fetched again.")


class FileDoneEvent(_Event):
    event: Literal["file_done"] = "file_done"
    path: str = Field(description="Path in the repo.")
    size: int = Field(description="Size in bytes.")
    fetched: int = Field(description="Bytes received for it in this run.")


class RetryEvent(_Event):
    event: Literal["retry"] = "retry"
    path: str | None = Field(description="The file, or null for a metadata request.")
    reason: str = Field(description="What failed and when hfget tries again.")


class WaitingEvent(_Event):
    event: Literal["waiting"] = "waiting"
    path: str = Field(description="The file whose answer has not begun.")
    host: str = Field(description="The host asked.")
    seconds: float = Field(description="How long it has waited so far (reported once per request).")


class MirrorSwitchedEvent(_Event):
    event: Literal["mirror_switched"] = "mirror_switched"
    previous: str = Field(description="The endpoint dropped.")
    endpoint: str = Field(description="The endpoint in use now (metadata, small files; the ranges of large files "
                                      "also go to the other mirrors left that serve the commit).")
    reason: str = Field(description="Why.")


class MirrorStaleEvent(_Event):
    event: Literal["mirror_stale"] = "mirror_stale"
    endpoint: str = Field(description="The mirror left out of this run.")
    revision: str
    commit: str = Field(description="The older commit it serves for the revision.")
    date: str = Field(description="That commit's date, as the mirror's API gives it.")
    newest_endpoint: str = Field(description="A mirror that serves the newest commit.")
    newest_commit: str
    newest_date: str


class ErrorEvent(_Event):
    event: Literal["error"] = "error"
    path: str | None = Field(description="The file that failed, or null when the run stopped.")
    message: str
    hint: str | None = None
    exit_code: int | None = Field(None, description="Set when the run stopped: the process's exit code.")


class FileResult(_Model):
    path: str
    size: int
    status: Literal["present", "fetched", "failed"]
    fetched: int = 0
    message: str | None = None


class SummaryEvent(_Event):
    event: Literal["summary"] = "summary"
    path: Text = Field(description="The snapshot folder or local dir.")
    commit: str
    files_fetched: int = Field(description="Files written in this run.")
    bytes_fetched: int = Field(description="Bytes received in this run.")
    seconds: float
    failed: int = Field(description="Files that failed.")
    files: list[FileResult] = Field(description="Every selected file's result.")


class FileCheckResult(_Model):
    path: str
    size: int
    status: Literal["ok", "bad", "missing"]
    problem: str | None = Field(None, description="For a bad file: whether the size or the hash differs.")


class VerifyEvent(_Event):
    event: Literal["verify"] = "verify"
    repo: str
    revision: str
    commit: str = Field(description="The commit checked: the one the target holds for the revision.")
    upstream_commit: str | None = Field(None, description="The revision's commit upstream, if it has moved.")
    path: Text
    ok: bool = Field(description="Every file is present with the listed size and hash.")
    repaired: list[str] = Field(description="Files fetched again by --repair.")
    files: list[FileCheckResult]


MODELS: tuple[type[_Event], ...] = (PlanEvent, FileStartedEvent, FileDoneEvent, RetryEvent, WaitingEvent,
                                    MirrorSwitchedEvent, MirrorStaleEvent, ErrorEvent, SummaryEvent, VerifyEvent)


def json_schema() -> dict[str, Any]:
    return {model.model_fields["event"].default: model.model_json_schema() for model in MODELS}

"""The JSON that `hfget --json` prints: one pydantic model per event, a stable, documented schema.

Each line of `hfget REPO --json` is one object whose `event` field names its model:

    plan            what will be fetched (also the whole output of `--dry-run --json` and `ls --json`)
    file_started    a file's first request is going out; `resumed_from` bytes were already on disk
    file_done       a file is verified and in place; `fetched` bytes came over the network for it
    retry           a transient failure; hfget tries again (`path` is null for metadata requests)
    mirror_switched the rest of the run moved to the next mirror
    error           a file failed (`path` set), or the run stopped (`path` null, `exit_code` set)
    summary         the last line: the output folder, the commit, totals and every file's result

Fields are only ever added, never renamed or removed; `schema_version` changes if that promise breaks.
`python -c "import hfget._schema as s; print(s.json_schema())"` prints the JSON Schema of every model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

SCHEMA_VERSION = 1


class _Event(BaseModel):
    schema_version: int = SCHEMA_VERSION


class PlanFile(BaseModel):
    path: str
    size: int
    present: bool
    on_disk: int = 0


class PlanEvent(_Event):
    event: Literal["plan"] = "plan"
    repo: str
    revision: str
    commit: str
    endpoint: str | None
    path: str
    files_total: int
    bytes_total: int
    files_to_fetch: int
    bytes_to_fetch: int
    bytes_on_disk: int
    free_bytes: int | None
    files: list[PlanFile]


class FileStartedEvent(_Event):
    event: Literal["file_started"] = "file_started"
    path: str
    size: int
    resumed_from: int


class FileDoneEvent(_Event):
    event: Literal["file_done"] = "file_done"
    path: str
    size: int
    fetched: int


class RetryEvent(_Event):
    event: Literal["retry"] = "retry"
    path: str | None
    reason: str


class MirrorSwitchedEvent(_Event):
    event: Literal["mirror_switched"] = "mirror_switched"
    previous: str
    endpoint: str
    reason: str


class ErrorEvent(_Event):
    event: Literal["error"] = "error"
    path: str | None
    message: str
    hint: str | None = None
    exit_code: int | None = None


class FileResult(BaseModel):
    path: str
    size: int
    status: Literal["present", "fetched", "failed"]
    fetched: int = 0
    message: str | None = None


class SummaryEvent(_Event):
    event: Literal["summary"] = "summary"
    path: str
    commit: str
    files_fetched: int
    bytes_fetched: int
    seconds: float
    failed: int
    files: list[FileResult]


MODELS = (PlanEvent, FileStartedEvent, FileDoneEvent, RetryEvent, MirrorSwitchedEvent, ErrorEvent, SummaryEvent)


def json_schema() -> dict:
    return {model.model_fields["event"].default: model.model_json_schema() for model in MODELS}

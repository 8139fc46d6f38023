"""Which files of the listing a run wants: FILES, then --quant, then --include/--exclude. No I/O."""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import EntryNotFoundError, NotFoundError
from ._models import RemoteFile
from ._repo import Repo


@dataclass(frozen=True)
class Wanted:
    """What a caller asks for beside the repo and FILES, as given (resolve_target turns it into a Selection)."""

    repo_type: str | None = None
    revision: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    quant: str | None = None


DEFAULT = Wanted()  # the whole repo at its default revision


@dataclass(frozen=True)
class Selection:
    repo: Repo
    revision: str = "main"
    files: tuple[str, ...] = ()  # exact paths, or folders ending in `/`
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    quant: str | None = None


def select(files: list[RemoteFile], selection: Selection) -> list[RemoteFile]:
    """The files wanted, matched as huggingface_hub matches `allow_patterns`/`ignore_patterns`."""
    from huggingface_hub.utils import filter_repo_objects  # type: ignore[attr-defined]  # public, lazily exported

    chosen = _by_quant(files, selection) if selection.quant else files
    if selection.files:
        chosen = _by_path(chosen, selection)
    chosen = list(filter_repo_objects(chosen, allow_patterns=list(selection.include) or None,
                                      ignore_patterns=list(selection.exclude) or None, key=lambda f: f.path))
    where = f"{selection.repo}@{selection.revision}"
    if not chosen and (selection.include or selection.exclude):
        raise NotFoundError(f"No file of {where} matches the include/exclude patterns.",
                            hint="Patterns are globs where * also crosses '/'; a pattern ending in '/' means a folder.")
    if not chosen and files:
        raise NotFoundError(f"Nothing to download from {where}.")
    return chosen


def _by_quant(files: list[RemoteFile], selection: Selection) -> list[RemoteFile]:
    from . import _quant

    assert selection.quant is not None
    chosen = [f for f in files if _quant.matches(f.path, selection.quant)]
    if not chosen:
        labels = _quant.available([f.path for f in files])
        raise NotFoundError(
            f"No GGUF file of {selection.repo}@{selection.revision} is quantised {selection.quant}.",
            hint=f"Available: {', '.join(labels)}." if labels else "This repo has no GGUF files.",
        )
    return chosen


def _by_path(files: list[RemoteFile], selection: Selection) -> list[RemoteFile]:
    def inside(path: str, folder: str) -> bool:
        return path.startswith(folder.rstrip("/") + "/")

    by_path = {f.path for f in files}
    missing = [p for p in selection.files if p not in by_path and not any(inside(f.path, p) for f in files)]
    if missing:
        raise EntryNotFoundError(
            f"Not in {selection.repo}@{selection.revision}: {', '.join(missing)}.",
            hint="Check the path (case matters) and the revision; a folder is written with a trailing '/'.",
        )
    wanted = set(selection.files)
    return [f for f in files if f.path in wanted or any(inside(f.path, p) for p in wanted)]

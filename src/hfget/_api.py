"""The Python API: `hfget.download` and `hfget.plan`, with explicit, documented keywords.

Both honour the same settings as the command line (HFGET_* variables and the config file, under the keywords
given here), accept a string wherever a list is expected (as huggingface_hub's `allow_patterns` does), and
raise `UsageError` naming the keyword for anything else. Ctrl-C propagates as `KeyboardInterrupt`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._engine import run_download
from ._events import DownloadPlanned, Sink
from ._options import Options, names
from ._select import Wanted

Names = str | Sequence[str]


def download(
    repo: str,
    files: Names = (),
    *,
    repo_type: str | None = None,
    revision: str | None = None,
    include: Names = (),
    exclude: Names = (),
    quant: str | None = None,
    endpoint: str | None = None,
    mirrors: Names = (),
    cache_dir: str | Path | None = None,
    local_dir: str | Path | None = None,
    token: str | None = None,
    offline: bool | None = None,
    jobs: int | None = None,
    max_connections: int | None = None,
    connections: int | None = None,
    limit_rate: float | str | None = None,
    retries: int | None = None,
    stall_timeout: float | None = None,
    first_byte_timeout: float | None = None,
    proxy: str | None = None,
    ca_bundle: str | Path | None = None,
    space_check: bool = True,
    sink: Sink | None = None,
) -> Path:
    """Download `repo` (or only `files` of it) and return the snapshot folder (or `local_dir`).

    `repo`: `org/name`, `datasets/org/name`, `spaces/org/name` or a page URL. `files`, `include`, `exclude`,
    `mirrors`: a string or a list of strings. `revision`: branch, tag, commit or `refs/pr/N`.
    `jobs`: files in flight; `max_connections`: the run's connection budget; `connections`: per large file;
    `limit_rate`: bytes per second for the whole run (a number, or text such as "20M");
    `retries`: transient failures tolerated in a row per file; `stall_timeout`: seconds without a byte before a
    connection is dropped; `first_byte_timeout`: seconds to wait for an answer to begin; `proxy`: an http(s)://
    or socks5:// proxy URL for every request; `ca_bundle`: a PEM file of CAs to trust. Settings left as None
    come from HFGET_* variables, the config file, or the defaults.
    `sink` receives the events (see `hfget.Sink`).

    Raises an `HfgetError` subclass on failure (see `hfget.ExitCode` for what each means).
    """
    arguments = dict(locals())
    path = _run(arguments, dry_run=False)
    assert isinstance(path, Path)
    return path


def plan(
    repo: str,
    files: Names = (),
    *,
    repo_type: str | None = None,
    revision: str | None = None,
    include: Names = (),
    exclude: Names = (),
    quant: str | None = None,
    endpoint: str | None = None,
    mirrors: Names = (),
    cache_dir: str | Path | None = None,
    local_dir: str | Path | None = None,
    token: str | None = None,
    offline: bool | None = None,
    proxy: str | None = None,
    ca_bundle: str | Path | None = None,
) -> DownloadPlanned:
    """What `download(repo, files, ...)` would fetch: the matching files, their sizes, which are already in the
    target, the totals and the free space. Requests metadata only; writes nothing."""
    report = _run(dict(locals()), dry_run=True)
    assert isinstance(report, DownloadPlanned)
    return report


_SETTINGS = ("jobs", "max_connections", "connections", "limit_rate", "retries", "stall_timeout", "first_byte_timeout",
             "proxy", "ca_bundle")
_RUN = ("endpoint", "token", "cache_dir", "local_dir", "offline", "space_check")


def _run(arguments: dict[str, Any], *, dry_run: bool) -> Path | DownloadPlanned:
    given = {name: arguments[name] for name in (*_SETTINGS, *_RUN) if name in arguments}
    mirrors = names(arguments.get("mirrors", ()), "mirrors=")
    options = Options.build({**given, "mirror": mirrors or None}, caller="argument")
    wanted = Wanted(repo_type=arguments["repo_type"], revision=arguments["revision"], quant=arguments["quant"],
                    include=names(arguments["include"], "include="), exclude=names(arguments["exclude"], "exclude="))
    return run_download(arguments["repo"], names(arguments["files"], "files="), options, wanted,
                        arguments.get("sink"), dry_run=dry_run)

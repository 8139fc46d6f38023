"""What `verify`, `sync` and `config` print: their results as text, or as one JSON document."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._check import VerifyReport
    from .._sync import SyncResult


def show_verify(report: VerifyReport, json_output: bool) -> None:
    from .. import _schema

    if json_output:
        print(_schema.VerifyEvent.model_validate(report).model_dump_json(indent=1))
        return
    if report.upstream_commit:
        print(f"{report.revision} moved from {report.commit[:12]} to {report.upstream_commit[:12]} upstream; "
              f"verifying {report.commit[:12]}, the cached one (`hfget {report.repo}` fetches the new one)",
              file=sys.stderr)
    for check in report.files:
        if check.status != "ok" or check.path in report.repaired:
            fixed = " (repaired)" if check.path in report.repaired and check.status == "ok" else ""
            problem = f": {check.problem}" if check.problem else ""
            print(f"{check.status:>8}  {check.path}{fixed}{problem}")
    good = sum(1 for f in report.files if f.status == "ok")
    print(f"{good} of {len(report.files)} files good in {report.path}")


def show_sync(results: list[SyncResult], *, quiet: bool) -> bool:
    """Print each repo's outcome; True when every locked file is on disk."""
    missing = [(r.entry.id, m) for r in results for m in r.missing]
    for repo_id, path in missing:
        print(f"hfget: missing {repo_id}: {path}", file=sys.stderr)
    if missing:
        print(f"hfget: {len(missing)} locked files are not on disk; run `hfget sync --frozen` to fetch them.",
              file=sys.stderr)
        return False
    for result in results:
        if not quiet:
            print(f"{result.entry.id} @ {result.commit[:12]} -> {result.path}")
    return True


def show_settings() -> None:
    from huggingface_hub import constants

    from .._options import Options, config_path, describe
    from .._repo import parse_repo
    from .._target import choose_endpoints

    options = Options.build({}, caller="flag")
    path = config_path()
    print(f"config file: {path}{'' if path.exists() else ' (absent)'}")
    for name, value, origin in describe(options):
        print(f"{name} = {value}  ({origin})")
    for name, shown in (("HF_ENDPOINT", constants.ENDPOINT), ("HF_HUB_CACHE", constants.HF_HUB_CACHE),
                        ("HF_HUB_OFFLINE", str(constants.is_offline_mode()).lower())):
        print(f"{name} = {shown}  ({'environment' if name in os.environ else 'default'})")
    endpoints = choose_endpoints(parse_repo("org/name"), options)
    print(f"endpoint in use = {', then '.join(endpoints)}")
    token_origin = ("HF_TOKEN" if os.environ.get("HF_TOKEN") else
                    "saved login" if os.path.exists(constants.HF_TOKEN_PATH) else None)
    print(f"token = {'*** (' + token_origin + ')' if token_origin else '(none)'}")


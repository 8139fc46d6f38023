"""`hfget mirrors [REPO]`: probe each configured or given mirror and show them best first."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from .._probe import MirrorReport

from ._app import DebugOpt, MirrorOpt, RevisionOpt, TokenOpt, _errors_to_exit_codes, app


@app.command("mirrors", epilog="Examples:\n\n  hfget mirrors\n\n  hfget mirrors org/name -m hf-mirror.com "
             "-m my-mirror.example --json")
def probe_mirrors(
    repo: Annotated[Optional[str], typer.Argument(metavar="[REPO]", help="Also ask each mirror for this repo: "
                                                  "its commit, and a throughput sample of its largest file.")]
    = None,
    mirror: MirrorOpt = None,
    revision: RevisionOpt = None,
    token: TokenOpt = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON document: a list, best mirror first.")]
    = False,
    debug: DebugOpt = False,
) -> None:
    """Latency, throughput and the commit each mirror serves, best first: how to pick a mirror."""
    from huggingface_hub import get_token

    from .. import _probe
    from .._errors import UsageError
    from .._options import Options
    from .._repo import normalize_endpoint, parse_repo
    from .._target import choose_endpoints
    from ._render import QuietSink

    with _errors_to_exit_codes(debug, QuietSink()):
        options = Options.build({"mirror": mirror or None, "token": token}, caller="flag")
        spec = parse_repo(repo) if repo else None
        endpoints = [normalize_endpoint(m) for m in options.mirror] or list(
            choose_endpoints(spec or parse_repo("org/name"), options))
        if not endpoints:
            raise UsageError("No mirror to probe.", hint="Pass --mirror HOST (repeatable) or configure mirrors.")
        reports = _probe.probe(endpoints, spec.repo if spec else None, revision or (spec and spec.revision) or "main",
                               options, options.token or get_token())
    if json_output:
        print(json.dumps([vars(r) for r in reports], indent=1))
    else:
        _table(reports)
    if not any(r.answers for r in reports):
        raise typer.Exit(5)


def _table(reports: list[MirrorReport]) -> None:
    from ._render import human_bytes

    print(f"{'mirror':40} {'answers':>7} {'latency':>9} {'throughput':>12}  commit")
    for r in reports:
        latency = f"{r.latency * 1000:.0f} ms" if r.latency is not None else "-"
        speed = f"{human_bytes(r.throughput)}/s" if r.throughput else "-"
        commit = f"{r.commit[:12]} {r.date[:10] if r.date else ''}{' (newest)' if r.newest else ''}" if r.commit \
            else (r.error or "")
        print(f"{r.endpoint:40} {'yes' if r.answers else 'no':>7} {latency:>9} {speed:>12}  {commit}")

"""The Typer app: `hfget REPO [FILES...]` (the `download` command, also the default), errors mapped to exit codes.

Errors are turned into one stderr line and an exit code here and nowhere else; `--debug` shows the traceback.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from .._errors import ExitCode, HfgetError, InterruptedError_
from .._version import version_line

if TYPE_CHECKING:
    from .._events import DownloadPlanned, Sink
    from .._options import Options
    from .._select import Wanted

EPILOG = """\
Examples:

  hfget Duffy/Llama-820m --mirror hf-mirror.com

  hfget datasets/org/name -I '*.parquet' --local-dir ./data

  MODEL=$(hfget org/name -q -r v1.0)

Exit codes: 0 ok, 1 some files failed, 2 usage, 3 not found, 4 authentication, 5 network, 6 storage,
130 interrupted.
"""


RepoArg = Annotated[str, typer.Argument(
    metavar="REPO", help="org/name, datasets/org/name, spaces/org/name, or a page URL.")]
FilesArg = Annotated[Optional[list[str]], typer.Argument(
    metavar="[FILES]...", help="Only these paths (a folder ends with /).")]
RepoTypeOpt = Annotated[Optional[str], typer.Option("--repo-type", metavar="TYPE", help="model, dataset or space.")]
RevisionOpt = Annotated[Optional[str], typer.Option(
    "--revision", "-r", metavar="REV", help="Branch, tag, commit or refs/pr/N [default: main].")]
IncludeOpt = Annotated[Optional[list[str]], typer.Option(
    "--include", "-I", metavar="GLOB", help="Only files matching this glob (repeatable).")]
ExcludeOpt = Annotated[Optional[list[str]], typer.Option(
    "--exclude", "-X", metavar="GLOB", help="Leave out files matching this glob (repeatable).")]
MirrorOpt = Annotated[Optional[list[str]], typer.Option(
    "--mirror", "-m", metavar="HOST", help="Mirror host or URL, e.g. hf-mirror.com; repeat it to fail over.")]
EndpointOpt = Annotated[Optional[str], typer.Option(
    "--endpoint", metavar="URL", help="Hub URL [default: HF_ENDPOINT, else https://huggingface.co].")]
CacheDirOpt = Annotated[Optional[Path], typer.Option(
    "--cache-dir", metavar="DIR", help="HF cache folder [default: HF_HUB_CACHE, else $HF_HOME/hub].")]
LocalDirOpt = Annotated[Optional[Path], typer.Option(
    "--local-dir", metavar="DIR", help="Plain files in this folder instead of the cache.")]
TokenOpt = Annotated[Optional[str], typer.Option(
    "--token", metavar="TOKEN", help="Hub token [default: HF_TOKEN, else the saved login]. Sent to the endpoint only.",
    show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Newline-delimited JSON events on stdout (see hfget._schema).")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
ProxyOpt = Annotated[Optional[str], typer.Option(
    "--proxy", metavar="URL", help="http://, https://, socks5:// or socks5h:// proxy (user:password@ allowed) for "
    "every request [default: HTTPS_PROXY, HTTP_PROXY, ALL_PROXY with NO_PROXY].", show_default=False)]
CaBundleOpt = Annotated[Optional[Path], typer.Option(
    "--ca-bundle", metavar="FILE", help="Trust the CAs in this PEM file [default: SSL_CERT_FILE, REQUESTS_CA_BUNDLE, "
    "CURL_CA_BUNDLE, else the system's].", show_default=False)]
QuantOpt = Annotated[Optional[str], typer.Option(
    "--quant", metavar="LABEL", help="Only the GGUF files of this quantisation, e.g. Q4_K_M (shards included).")]


@dataclass(frozen=True)
class Selection:
    """What to fetch and from where: the options `download`, `ls` and `verify` share, declared once."""

    repo: str
    files: tuple[str, ...] = ()
    repo_type: str | None = None
    revision: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    mirror: tuple[str, ...] = ()
    endpoint: str | None = None
    cache_dir: Path | None = None
    local_dir: Path | None = None
    token: str | None = field(default=None, repr=False)
    quant: str | None = None
    proxy: str | None = field(default=None, repr=False)
    ca_bundle: Path | None = None

    def options(self, **flags: Any) -> Options:
        """The run's options: these flags and `flags` over HFGET_*, the config file and the defaults."""
        from .._options import Options

        return Options.build({"mirror": self.mirror or None, "endpoint": self.endpoint, "cache_dir": self.cache_dir,
                              "local_dir": self.local_dir, "token": self.token, "proxy": self.proxy,
                              "ca_bundle": self.ca_bundle, **flags}, caller="flag")

    def wanted(self) -> Wanted:
        from .._select import Wanted

        return Wanted(repo_type=self.repo_type, revision=self.revision, include=self.include, exclude=self.exclude,
                      quant=self.quant)


_SELECTION_PARAMETERS = [
    inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation, default=default)
    for name, annotation, default in [
        ("repo", RepoArg, inspect.Parameter.empty), ("files", FilesArg, None), ("repo_type", RepoTypeOpt, None),
        ("revision", RevisionOpt, None), ("include", IncludeOpt, None), ("exclude", ExcludeOpt, None),
        ("mirror", MirrorOpt, None), ("endpoint", EndpointOpt, None), ("cache_dir", CacheDirOpt, None),
        ("local_dir", LocalDirOpt, None), ("token", TokenOpt, None), ("quant", QuantOpt, None),
        ("proxy", ProxyOpt, None), ("ca_bundle", CaBundleOpt, None),
    ]
]


def with_selection(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command the shared options above; it receives them as its first argument, one `Selection`.
    Typer reads the parameters from `__signature__`, so they are declared once for every command."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "selection"]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        given = {p.name: kwargs.pop(p.name) for p in _SELECTION_PARAMETERS}
        sequences = {k: tuple(v or ()) for k, v in given.items() if k in ("files", "include", "exclude", "mirror")}
        command(Selection(**{**given, **sequences}), **kwargs)

    signature = inspect.Signature(_SELECTION_PARAMETERS + own)
    wrapper.__signature__ = signature  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    return wrapper


class _DownloadByDefault(TyperGroup):
    """`hfget REPO ...` means `hfget download REPO ...`; other words name commands."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # a Context of Typer's own click
        try:
            from ._convert import install
        except ImportError:  # a Typer without typer._coercion (before its pydantic conversion): nothing to spare
            pass
        else:
            install(self, ctx)  # plain values converted without pydantic (see _convert.py)
        first = args[0] if args else ""
        if first and first not in self.commands and first not in ("--help", "-h", "--version") \
                and not first.startswith(("--install-completion", "--show-completion")):
            args = ["download", *args]
        return super().parse_args(ctx, args)


_APP: dict[str, Any] = {
    "cls": _DownloadByDefault,
    "name": "hfget",
    "help": "Download Hugging Face Hub repos fast, through mirrors, resumable and verified. "
    "`hfget REPO [FILES...]` is short for `hfget download REPO [FILES...]`.",
    "epilog": EPILOG,
    "context_settings": {"help_option_names": ["-h", "--help"]},
    "rich_markup_mode": None,
    "pretty_exceptions_enable": False,
    "no_args_is_help": True,
}
app = typer.Typer(**_APP)


def _version(value: bool) -> None:
    if value:
        print(version_line())
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    pass


@app.command(epilog=EPILOG, no_args_is_help=True)
@with_selection
def download(
    selection: Selection,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", metavar="N", show_default=False,
                                                help="Files in flight at once [default: 64].")] = None,
    max_connections: Annotated[Optional[int], typer.Option("--max-connections", metavar="N", show_default=False,
                                                           help="Connections for the whole run [default: 64].")] = None,
    connections: Annotated[Optional[int], typer.Option("--connections", "-c", metavar="N", show_default=False,
                                                       help="Connections for one large file [default: 12].")] = None,
    limit_rate: Annotated[Optional[str], typer.Option("--limit-rate", metavar="RATE",
                                                      help="Cap the run's bandwidth, e.g. 20M or 500K "
                                                      "(bytes per second).")] = None,
    retries: Annotated[Optional[int], typer.Option("--retries", metavar="N", show_default=False,
                                                   help="Transient failures tolerated in a row per file "
                                                   "[default: 5].")] = None,
    stall_timeout: Annotated[Optional[float], typer.Option("--stall-timeout", metavar="SECONDS",
                                                           help="Drop and retry a connection that sends no byte "
                                                           "for this long [default: 30].")] = None,
    first_byte_timeout: Annotated[Optional[float], typer.Option(
        "--first-byte-timeout", metavar="SECONDS", help="Wait this long for an answer to begin (a caching proxy may "
        "fetch the file first) [default: 300, or HF_HUB_DOWNLOAD_TIMEOUT / HF_HUB_ETAG_TIMEOUT].")] = None,
    no_space_check: Annotated[bool, typer.Option("--no-space-check",
                                                  help="Start even if the free space looks too small.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be fetched; fetch nothing.")] = False,
    json_output: JsonOpt = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar or periodic lines.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the output path.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Download a repo (or some of its files) into the HF cache or a folder; print where it is."""
    from .._engine import run_download

    sink = _make_sink(quiet, json_output, no_progress)
    with _errors_to_exit_codes(debug, sink):
        options = selection.options(jobs=jobs, max_connections=max_connections, connections=connections,
                                    limit_rate=limit_rate, retries=retries, stall_timeout=stall_timeout,
                                    first_byte_timeout=first_byte_timeout,
                                    space_check=not no_space_check)
        result = run_download(selection.repo, selection.files, options, selection.wanted(),
                              _quiet_or(sink, json_output) if dry_run else sink, dry_run=dry_run)
    if isinstance(result, Path):
        if not json_output:
            print(_printed_path(result, selection))
    else:
        _show_plan(result, json_output)


def _printed_path(path: Path, selection: Selection) -> Path:
    """The snapshot folder, or the file itself when the repo argument named one (a .../blob/REV/file URL)."""
    from .._repo import parse_repo

    spec = parse_repo(selection.repo, repo_type=selection.repo_type)
    if spec.path and not selection.files and (path / spec.path).is_file():
        return path / spec.path
    return path


@app.command("ls", epilog="Example:\n\n  hfget ls org/name -I '*.safetensors' --mirror hf-mirror.com")
@with_selection
def list_files(
    selection: Selection,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON document (a `plan`, see hfget._schema).")]
    = False,
    debug: DebugOpt = False,
) -> None:
    """List the files a download would get: sizes, which are cached, the totals, the free space (no body fetched)."""
    from .._engine import run_download
    from ._render import QuietSink

    with _errors_to_exit_codes(debug, QuietSink()):
        report = run_download(selection.repo, selection.files, selection.options(), selection.wanted(),
                              QuietSink(), dry_run=True)
    assert not isinstance(report, Path)
    _show_plan(report, json_output)


@app.command("verify", epilog="Examples:\n\n  hfget verify org/name\n\n  hfget verify org/name -r v1.0 --repair "
             "--mirror hf-mirror.com\n\nExit code 0 when every file is good, 1 otherwise.")
@with_selection
def verify_files(
    selection: Selection,
    repair: Annotated[bool, typer.Option("--repair", help="Fetch again only the bad and missing files.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON document (a `verify`, see hfget._schema).")]
    = False,
    debug: DebugOpt = False,
) -> None:
    """Re-hash a cached snapshot or a local dir against the listing (offline if need be); report bad files."""
    from .. import _check
    from ._reports import show_verify

    sink = _make_sink(True, False, True)
    with _errors_to_exit_codes(debug, sink):
        report = _check.verify(selection.repo, selection.files, selection.options(), selection.wanted(),
                               repair=repair, sink=sink)
    show_verify(report, json_output)
    if not report.ok:
        raise typer.Exit(ExitCode.FAILED)


@app.command("sync", epilog="Examples:\n\n  hfget sync                      # hfget.toml here; writes hfget.lock\n\n"
             "  hfget sync ci/hfget.toml --frozen   # exactly the locked commits\n\n"
             "  hfget sync --offline            # no request: exit 0 if the cache holds everything")
def sync_manifest(
    manifest: Annotated[Path, typer.Argument(help="The manifest of repos.")] = Path("hfget.toml"),
    frozen: Annotated[bool, typer.Option("--frozen", help="Fetch exactly the commits in hfget.lock.")] = False,
    offline: Annotated[bool, typer.Option("--offline", help="No request: check the cache holds every locked "
                                          "file.")] = False,
    mirror: MirrorOpt = None,
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    token: TokenOpt = None,
    proxy: ProxyOpt = None,
    ca_bundle: CaBundleOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Fetch every repo of a manifest (hfget.toml) and pin the commits in hfget.lock: a CI prefetch step."""
    from .. import _sync
    from .._options import Options
    from ._render import QuietSink, RepoSink
    from ._reports import show_sync

    sink: Sink = QuietSink() if quiet else RepoSink()  # several repos at once: lines naming the repo
    with _errors_to_exit_codes(debug, sink):
        options = Options.build({"mirror": mirror or None, "endpoint": endpoint, "cache_dir": cache_dir,
                                 "token": token, "proxy": proxy, "ca_bundle": ca_bundle}, caller="flag")
        results = _sync.sync(manifest, options, frozen=frozen, offline=offline, sink=sink)
    if not show_sync(results, quiet=quiet):
        raise typer.Exit(ExitCode.FAILED)


@app.command("config", epilog="Example:\n\n  HFGET_CONNECTIONS=4 hfget config")
def show_config(debug: DebugOpt = False) -> None:
    """Show the effective settings and where each comes from (flag, environment, config file, default)."""
    from ._render import QuietSink
    from ._reports import show_settings

    with _errors_to_exit_codes(debug, QuietSink()):
        show_settings()


def _quiet_or(sink: Sink, json_output: bool) -> Sink:
    from ._render import QuietSink

    return QuietSink() if json_output else sink


def _show_plan(report: DownloadPlanned, json_output: bool) -> None:
    from ._render import plan_model, plan_table

    if json_output:
        print(plan_model(report).model_dump_json(indent=1))
    else:
        plan_table(report, sys.stdout)


def _make_sink(quiet: bool, json_output: bool = False, no_progress: bool = False) -> Sink:
    from huggingface_hub import constants

    from ._render import JsonSink, PlainSink, QuietSink, TerminalSink

    if json_output:
        return JsonSink()
    if quiet:
        return QuietSink()
    if no_progress or constants.HF_HUB_DISABLE_PROGRESS_BARS:  # read as huggingface_hub reads it: "0" is off
        return PlainSink(periodic=False)
    if not sys.stderr.isatty():
        return PlainSink()
    return TerminalSink()


class _errors_to_exit_codes:
    """One line on stderr and a documented exit code for every error; a traceback only with --debug."""

    def __init__(self, debug: bool, sink: Sink) -> None:
        self.debug = debug
        self.sink = sink

    def __enter__(self) -> None:
        if not self.debug and not os.environ.get("HF_HUB_VERBOSITY"):
            # hfget reports its own retries; huggingface_hub's log lines would repeat them in another voice.
            # Its logging module reads HF_HUB_VERBOSITY when it is imported (a run that fetches nothing never
            # imports it: importing it here would cost a tenth of a second); already imported, it is told.
            if "huggingface_hub.utils.logging" in sys.modules:
                from huggingface_hub.utils import logging as hf_logging

                hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
            else:
                os.environ["HF_HUB_VERBOSITY"] = "error"

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is None:
            return
        close = getattr(self.sink, "close", None)
        if close is not None:
            close()
        if isinstance(error, KeyboardInterrupt):
            error = InterruptedError_()
        if not isinstance(error, HfgetError):
            if isinstance(error, (typer.Exit, typer.Abort, SystemExit)) or self.debug:
                return
            print(f"hfget: internal error: {type(error).__name__}: {error} (run with --debug for the traceback)",
                  file=sys.stderr)
            raise typer.Exit(ExitCode.FAILED)
        if self.debug:
            import traceback

            traceback.print_exception(error, file=sys.stderr)
        hint = f" {error.hint}" if error.hint else ""
        print(f"hfget: {error.message}{hint}", file=sys.stderr)
        report = getattr(self.sink, "error", None)
        if report is not None:
            report(error)
        raise typer.Exit(error.exit_code)


def _register_serve() -> None:
    """`hfget serve` lives in its own module (cli/_serve.py); the server itself is imported only when it runs."""
    from ._serve import EPILOG, serve

    app.command("serve", epilog=EPILOG)(serve)


_register_serve()

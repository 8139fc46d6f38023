"""Start-up and cached re-runs (issue 11): a re-run of a branch asks one small question and reads the rest from the
cache; `--help` and a cached re-run load only what they use. Counted (requests, bytes, modules), never timed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import hfget
from hfget._options import _UNSURE, _model, _plain
from hub import Hub

MANY = {f"shards/{i // 100:02d}/file-{i:04d}.json": os.urandom(64) for i in range(400)}


def _modules_after(*argv: str, columns: int = 100) -> tuple[int, list[str]]:
    """Run the CLI in a fresh interpreter; its exit code and every module it imported."""
    code, modules, _output = _cli(*argv, columns=columns)
    return code, modules


def _cli(*argv: str, columns: int = 100) -> tuple[int, list[str], str]:
    """Run the CLI in a fresh interpreter (a terminal `columns` wide): its exit code, modules and output."""
    script = ("import json, sys\nfrom hfget.cli import main\nsys.argv = ['hfget', *sys.argv[1:]]\ncode = 0\n"
              "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code or 0\n"
              "print(json.dumps([code, sorted(sys.modules)]), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": str(columns)})
    code, modules = json.loads(proc.stderr.strip().splitlines()[-1])
    return code, modules, proc.stdout


def _loaded(modules: list[str], *packages: str) -> list[str]:
    return [m for m in modules if m.split(".")[0] in packages]


def test_a_cached_rerun_of_a_branch_makes_one_small_request(hub: Hub, run_hfget, tmp_path: Path):
    hub.create_repo("org/many", MANY)
    first = run_hfget("org/many", "--endpoint", hub.url, "--cache-dir", str(tmp_path), "-q")
    assert first.returncode == 0, first.stderr
    hub.clear_log()
    again = run_hfget("org/many", "--endpoint", hub.url, "--cache-dir", str(tmp_path), "-q")
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    [lookup] = hub.log  # the listing comes from trees/<commit>.json, the files are stat'ed: one request in all
    assert lookup.path == "/api/models/org/many/revision/main" and lookup.status == 200
    assert lookup.query["expand"] == ["sha", "lastModified"]  # as huggingface_hub encodes expand=[...]
    assert lookup.sent < 400  # the commit and its date; the whole answer names all 400 files
    hub.ignore_expand = True
    run_hfget("org/many", "--endpoint", hub.url, "--cache-dir", str(tmp_path), "-q")
    assert hub.log[-1].sent > 20 * lookup.sent


def test_the_listing_and_the_cache_tag_are_kept_whether_files_are_fetched_or_not(hub: Hub, run_hfget,
                                                                                  tmp_path: Path):
    """Both are written beside the transfers (on a thread), or before the end of a run that fetches nothing: either
    way they are there when the run ends, and the next run asks only for the revision."""
    hub.create_repo("org/many", MANY)
    trees, tag = tmp_path / "models--org--many" / "trees", tmp_path / "CACHEDIR.TAG"

    def run() -> list[str]:
        hub.clear_log()
        result = run_hfget("org/many", "--endpoint", hub.url, "--cache-dir", str(tmp_path), "-q")
        assert result.returncode == 0, result.stderr
        [listing] = trees.iterdir()
        assert tag.is_file() and len(json.loads(listing.read_text())["files"]) == len(MANY)
        hub.wait_idle()
        return [s.path for s in hub.log]

    assert len([p for p in run() if "/resolve/" in p]) == len(MANY)
    for kept in [*trees.iterdir(), tag]:
        kept.unlink()
    assert [p for p in run() if "/resolve/" in p] == []  # every file present: the listing is asked for again
    assert run() == ["/api/models/org/many/revision/main"]


def test_a_mirror_that_ignores_expand_still_serves_downloads_and_reruns(hub: Hub, run_hfget, tmp_path: Path):
    hub.create_repo("org/model", {"config.json": b"{}", "model.safetensors": os.urandom(1 << 20)})
    hub.ignore_expand = True  # every property, every file named: read the same way
    for _run in range(2):
        result = run_hfget("org/model", "--endpoint", hub.url, "--cache-dir", str(tmp_path), "--json")
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout.splitlines()[-1])
        assert summary["commit"] == hub.repos[("model", "org/model")].refs["main"]
    assert len(hub.requests(contains="/revision/")) == 2


def test_mirrors_are_compared_by_the_dates_their_small_answers_give(tmp_path: Path, run_hfget):
    old, new = Hub(tmp_path / "old").start(), Hub(tmp_path / "new").start()
    try:
        old.create_repo("org/model", {"a.txt": b"1"})
        new.create_repo("org/model", {"a.txt": b"1"})
        newest = new.commit("org/model", {"a.txt": b"2"})
        result = run_hfget("org/model", "-m", old.url, "-m", new.url, "--cache-dir", str(tmp_path / "c"), "-q")
        assert result.returncode == 0, result.stderr
        assert Path(result.stdout.strip()).name == newest
        assert all(s.query["expand"] == ["sha", "lastModified"] for s in old.log + new.log if "/revision/" in s.path)
    finally:
        old.stop()
        new.stop()


def test_help_loads_neither_the_network_nor_the_engine(hf_home: Path):
    code, modules = _modules_after("--help")
    assert code == 0
    assert _loaded(modules, "huggingface_hub", "httpx2", "httpcore2", "rich", "pydantic", "starlette",
                   "uvicorn") == []
    assert "hfget._engine" not in modules and "hfget._events" not in modules


def test_the_help_kept_for_hfget_help_is_what_typer_prints_now():
    from hfget.cli import _usage

    assert _usage.render() == _usage.TEXT, "`hfget --help` changed: run python tools/render_help.py"


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_typers_text_without_loading_typer(flag: str):
    from hfget.cli import _usage

    code, modules, output = _cli(flag, columns=132)
    assert code == 0 and output == _usage.render(132) == _usage.TEXT  # any terminal this wide: Typer's 78 columns
    assert _loaded(modules, "typer", "click", "rich") == []


def test_version_says_what_typers_app_says_without_loading_typer():
    from typer.testing import CliRunner

    from hfget.cli._app import app

    code, modules, output = _cli("--version")
    assert code == 0 and output == CliRunner().invoke(app, ["--version"]).output == f"hfget {hfget.__version__}\n"
    assert _loaded(modules, "typer", "click", "rich") == []


def test_a_narrow_terminal_gets_typers_own_wrapping():
    from hfget.cli import _usage

    code, modules, output = _cli("--help", columns=60)
    assert code == 0 and output == _usage.render(60) != _usage.TEXT
    assert "typer" in modules


def test_shell_completion_never_takes_the_kept_help(monkeypatch: pytest.MonkeyPatch):
    from hfget.cli import _usage

    monkeypatch.setenv("COLUMNS", "100")
    assert _usage.ready()
    monkeypatch.setenv("_HFGET_COMPLETE", "complete_bash")
    assert not _usage.ready()


def test_a_cached_rerun_loads_no_more_than_it_uses(hub: Hub, run_hfget, tmp_path: Path):
    hub.create_repo("org/model", {"config.json": b"{}", "tokenizer.json": b"[]"})
    assert run_hfget("org/model", "--endpoint", hub.url, "--cache-dir", str(tmp_path), "-q").returncode == 0
    hub.clear_log()
    code, modules = _modules_after("org/model", "--endpoint", hub.url, "--cache-dir", str(tmp_path), "-q",
                                   "--jobs", "4", "--stall-timeout", "20")
    assert code == 0 and len(hub.log) == 1
    # no pydantic (Typer's conversion, the settings), no HfApi, no progress bars
    assert _loaded(modules, "pydantic", "rich", "starlette", "uvicorn") == []
    assert [m for m in modules if m.startswith("huggingface_hub.") and m != "huggingface_hub.constants"
            and not m.startswith("huggingface_hub.utils")] == []
    assert "huggingface_hub.hf_api" not in modules and "typer._adapters" not in modules


def test_a_first_download_loads_neither_hfapi_nor_what_a_tagged_cache_does_not_need(hub: Hub, tmp_path: Path):
    """The listing is huggingface_hub's pagination without its HfApi module (about 0.2 s of CPU to import); a
    download into a cache that already has its CACHEDIR.TAG does not load the module that writes one (~60 ms)."""
    hub.create_repo("org/model", {"config.json": b"{}", "tokenizer.json": b"[]"})
    hub.create_repo("org/other", {"config.json": b"[]"})
    cache = tmp_path / "cache"
    code, modules = _modules_after("org/model", "--endpoint", hub.url, "--cache-dir", str(cache), "-q")
    assert code == 0 and (cache / "CACHEDIR.TAG").is_file()
    assert "huggingface_hub.hf_api" not in modules and "huggingface_hub._local_folder" in modules
    code, modules = _modules_after("org/other", "--endpoint", hub.url, "--cache-dir", str(cache), "-q")
    hub.wait_idle()
    assert code == 0 and hub.requests(contains="/api/models/org/other/tree/")
    assert "huggingface_hub.hf_api" not in modules and "huggingface_hub._local_folder" not in modules


def test_the_metadata_client_builds_no_tls_context_for_plain_http(hub: Hub):
    from hfget import _hub_http
    from hfget._network import Network

    hub.create_repo("org/model", {"a.txt": b"1"})
    client = _hub_http.client(Network())
    assert client.get(f"{hub.url}/api/models/org/model/revision/main").status_code == 200
    assert list(client._transport._transports) == [False]  # the plain transport only: no CA store loaded


def test_a_revision_lookup_that_fails_is_retried_like_any_other(hub: Hub, run_hfget, tmp_path: Path):
    from hub import Fault

    hub.create_repo("org/model", {"a.txt": b"1"})
    hub.faults.append(Fault("status", match="/revision/", status=503, times=1))
    result = run_hfget("org/model", "--endpoint", hub.url, "--cache-dir", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["event"] for line in result.stdout.splitlines()].count("retry") == 1
    assert [s.status for s in hub.requests(contains="/revision/")] == [503, 200]


@pytest.mark.parametrize(("name", "value"), [
    ("jobs", 1), ("jobs", "7"), ("jobs", "007"), ("jobs", 256), ("jobs", 0), ("jobs", "300"), ("jobs", True),
    ("jobs", " 8"), ("jobs", "3.5"), ("retries", "0"), ("retries", 101), ("connections", "64"), ("connections", 65),
    ("stall_timeout", 30), ("stall_timeout", "0.5"), ("stall_timeout", "1e3"), ("stall_timeout", 0),
    ("stall_timeout", "inf"), ("first_byte_timeout", 2.5), ("metadata_deadline", "-1"), ("limit_rate", 1000),
    ("limit_rate", "20M"), ("limit_rate", 0), ("mirror", "a.example, b.example"), ("mirror", ["x", "y"]),
    ("mirror", ""), ("mirror", [1]), ("proxy", "http://user:pw@h:1"), ("proxy", "ftp://h"),
    ("cache_dir", "/tmp/x"), ("cache_dir", Path("/y")), ("endpoint", "http://e"), ("token", "hf_x"),
    ("offline", True), ("offline", "yes"), ("space_check", False),
])
def test_settings_converted_without_pydantic_agree_with_the_model(name: str, value: object):
    """A setting of a plain kind is converted without pydantic; whatever it gives, the model gives too."""
    from pydantic import ValidationError

    plain = _plain(name, value)
    if (name, value) in (("jobs", "7"), ("stall_timeout", "0.5"), ("cache_dir", "/tmp/x"), ("offline", True)):
        assert plain is not _UNSURE  # plain values do skip pydantic (else the start-up saving is gone)
    try:
        checked = getattr(_model().model_validate({name: value}), name)
    except ValidationError:
        assert plain is _UNSURE  # the model says what is wrong
        return
    assert plain is _UNSURE or (plain == checked and type(plain) is type(checked))


@pytest.mark.parametrize("value", ["7", "007", "2.5", "30", "x", "-1", " 3", "1e3", "", "/tmp", "a\0b"])
def test_options_converted_without_pydantic_agree_with_typer(value: str):
    """Every parameter's plain conversion gives what Typer's own would, or leaves the value to it."""
    import typer.main
    from typer._click.exceptions import BadParameter
    from typer._coercion import build_runtime_param

    from hfget.cli import _app, _convert

    group = typer.main.get_command(_app.app)
    ctx = group.make_context("hfget", ["download", "org/name"])
    _convert.install(group, ctx)
    installed, plain = [], []
    for param in group.commands["download"].get_params(ctx):
        own = build_runtime_param(param.type_descriptor)
        given = [value] if param.multiple or param.nargs == -1 else value
        ours = _convert._convert(param.type_descriptor.annotation, given, param.type_descriptor.parameter_info)
        runtime = param._runtime_param  # what install() gave it: the plain conversion, Typer's as its fallback
        installed += [param.name] if isinstance(runtime, _convert._Plain) else []
        try:
            expected = own._coerce_value(given, param=param, ctx=ctx)
        except BadParameter:
            assert ours is _convert._UNSURE, param.name
            if isinstance(runtime, _convert._Plain):
                with pytest.raises(BadParameter):
                    runtime._coerce_value(given, param=param, ctx=ctx)
            continue
        assert ours is _convert._UNSURE or (ours == expected and type(ours) is type(expected)), param.name
        plain += [param.name] if ours is not _convert._UNSURE else []
        if isinstance(runtime, _convert._Plain):
            got = runtime._coerce_value(given, param=param, ctx=ctx)
            assert got == expected and type(got) is type(expected), param.name
    assert {"jobs", "cache_dir", "stall_timeout", "mirror"} <= set(installed)  # install() gave it where it may
    if value == "7":
        assert "jobs" in plain  # a plain number is converted without Typer's adapter


def test_the_public_names_are_all_there():
    assert all(getattr(hfget, name) is not None for name in hfget.__all__)


@pytest.mark.parametrize("environ", [
    {}, {"HTTP_PROXY": "x"}, {"http_proxy": ""}, {"ALL_PROXY": "y"}, {"no_proxy": "z"}, {"ftp_proxy": "a"},
    {"Https_Proxy": "b"}, {"REQUEST_METHOD": "GET", "HTTP_PROXY": "x"}, {"HTTP_PROXY": "x", "http_proxy": ""},
    {"REQUEST_METHOD": "GET", "http_proxy": "x"},
])
def test_proxy_variables_are_read_as_urllib_reads_them(environ: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    from urllib.request import getproxies_environment

    from hfget._network import environment_proxies

    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert environment_proxies() == any(s in ("http", "https", "all") for s in getproxies_environment())


@pytest.mark.parametrize("args", [[], ["--help"], ["-h"], ["org/name", "--help"], ["org/name", "-q", "--jobs", "x"]])
def test_the_lean_apps_answer_as_the_whole_app_does(args: list[str]):
    """`hfget --help` lists the commands without building their parameters, and `hfget REPO ...` builds only
    the download command; both say exactly what the whole app says."""
    from typer.testing import CliRunner

    from hfget.cli import _app, _main, _mirrors_cmd  # noqa: F401  (registers `hfget mirrors`)

    runner = CliRunner()
    whole = runner.invoke(_app.app, args, prog_name="hfget")
    lean = runner.invoke(_main._app_for(args), args, prog_name="hfget")
    assert _main._app_for(args) is not _app.app
    assert (lean.exit_code, lean.output) == (whole.exit_code, whole.output)


def test_shell_completion_gets_the_whole_app(monkeypatch: pytest.MonkeyPatch):
    from hfget.cli import _app, _main

    monkeypatch.setenv("_HFGET_COMPLETE", "complete_bash")
    assert _main._app_for([]) is _app.app
    script = Path(sys.executable).parent / "hfget"  # the console script: completion is keyed on its name
    result = subprocess.run([str(script)], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                            env={**os.environ, "COMP_WORDS": "hfget download --jo", "COMP_CWORD": "2"})
    assert result.stdout.split() == ["--jobs"], result.stderr


@pytest.mark.parametrize(("repo_id", "repo_type"), [("org/model", "model"), ("gpt2", "model"),
                                                    ("org/data.v2", "dataset"), ("a-b/c_d", "space")])
def test_the_quick_cache_folder_name_is_huggingface_hubs(repo_id: str, repo_type: str):
    from huggingface_hub.file_download import repo_folder_name

    from hfget import _compat

    assert _compat.repo_folder_name(repo_id, repo_type) == repo_folder_name(repo_id=repo_id, repo_type=repo_type)


def test_the_quick_listing_reader_reads_what_huggingface_hubs_reader_reads(tmp_path: Path):
    """The re-run's own reader of trees/<commit>.json against huggingface_hub's, on a file huggingface_hub wrote."""
    from hfget import _compat
    from hfget._models import RemoteFile

    commit = "c" * 40
    files = [RemoteFile("config.json", 2, "a" * 40), RemoteFile("w/model.safetensors", 9, "b" * 40,
                                                                 lfs_sha256="d" * 64, xet_hash="e" * 64)]
    _compat.write_tree(tmp_path, commit, files)
    quick = _compat._read_tree_v1(tmp_path / "trees" / f"{commit}.json")
    assert quick is not None  # the format huggingface_hub writes is the one the quick reader knows
    (tmp_path / "trees" / f"{commit}.json").rename(tmp_path / "trees" / "other.json")
    assert _compat._read_tree_v1(tmp_path / "trees" / f"{commit}.json") is None
    (tmp_path / "trees" / "other.json").rename(tmp_path / "trees" / f"{commit}.json")
    from huggingface_hub._tree_cache import read_tree_cache

    theirs = read_tree_cache(str(tmp_path), commit)
    assert theirs is not None
    assert sorted(f.path for f in quick) == sorted(theirs)
    assert sorted(quick, key=lambda f: f.path) == sorted(files, key=lambda f: f.path)


@pytest.mark.parametrize("token", [None, "hf_from_env", "  hf_spaced\n"])
def test_the_quick_token_lookup_finds_what_huggingface_hubs_finds(token: str | None, monkeypatch: pytest.MonkeyPatch):
    from huggingface_hub import get_token

    from hfget import _compat

    if token is not None:
        monkeypatch.setenv("HF_TOKEN", token)
    assert _compat.get_token() == get_token()

"""Every failure ends in one clear line on stderr, a documented exit code, no traceback, nothing published."""

from __future__ import annotations

from pathlib import Path

import pytest

import hfget
from hub import Hub, free_port


def _assert_clean_failure(result, code: hfget.ExitCode, *words: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines, "no message"
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[-1], (word, lines[-1])
    assert result.stdout == ""


def _no_snapshots(hf_home: Path) -> bool:
    return not any((hf_home / "hub").glob("*/snapshots/*/*")) if (hf_home / "hub").exists() else True


def test_unknown_repo(hub: Hub, hf_home: Path, run_hfget):
    result = run_hfget("org/nope", "--endpoint", hub.url)
    _assert_clean_failure(result, hfget.ExitCode.NOT_FOUND, "org/nope", hub.url, "token")
    assert _no_snapshots(hf_home)


def test_unknown_repo_when_signed_in(hub: Hub, hf_home: Path, run_hfget):
    hub.tokens.add("hf_valid")
    result = run_hfget("org/nope", "--endpoint", hub.url, "--token", "hf_valid")
    _assert_clean_failure(result, hfget.ExitCode.NOT_FOUND, "org/nope")
    assert "hf_valid" not in result.stderr


def test_unknown_revision(hub: Hub, hf_home: Path, run_hfget):
    hub.create_repo("org/model", {"a.txt": b"a"})
    result = run_hfget("org/model", "--endpoint", hub.url, "-r", "v9.9")
    _assert_clean_failure(result, hfget.ExitCode.NOT_FOUND, "'v9.9'", "org/model", "branch, tag or commit")
    assert _no_snapshots(hf_home)


def test_gated_repo_anonymous_is_401(hub: Hub, hf_home: Path, run_hfget):
    hub.create_repo("org/gated", {"a.txt": b"a"}, gated=True)
    result = run_hfget("org/gated", "--endpoint", hub.url)
    _assert_clean_failure(result, hfget.ExitCode.AUTH, "org/gated", "gated", "401", "token")
    assert _no_snapshots(hf_home)


def test_gated_repo_signed_in_without_access_is_403(hub: Hub, hf_home: Path, run_hfget):
    hub.create_repo("org/gated", {"a.txt": b"a"}, gated=True)
    hub.tokens.add("hf_noaccess")
    result = run_hfget("org/gated", "--endpoint", hub.url, "--token", "hf_noaccess")
    _assert_clean_failure(result, hfget.ExitCode.AUTH, "org/gated", "gated", "403", "no access")
    assert "hf_noaccess" not in result.stderr
    assert _no_snapshots(hf_home)


def test_invalid_token(hub: Hub, run_hfget):
    hub.create_repo("org/model", {"a.txt": b"a"})
    result = run_hfget("org/model", "--endpoint", hub.url, "--token", "hf_wrong")
    _assert_clean_failure(result, hfget.ExitCode.AUTH, "rejected the token")
    assert "hf_wrong" not in result.stderr


def test_missing_file_in_files(hub: Hub, hf_home: Path, run_hfget):
    hub.create_repo("org/model", {"a.txt": b"a", "b.txt": b"b"})
    result = run_hfget("org/model", "a.txt", "nope.bin", "--endpoint", hub.url)
    _assert_clean_failure(result, hfget.ExitCode.NOT_FOUND, "nope.bin", "org/model@main")
    assert "a.txt" not in result.stderr.strip().splitlines()[-1].split(":")[1]
    assert hub.file_gets() == []  # nothing was downloaded, not even the file that exists
    assert _no_snapshots(hf_home)


def test_unreachable_endpoint(hf_home: Path, run_hfget):
    endpoint = f"http://127.0.0.1:{free_port()}"
    result = run_hfget("org/model", "--endpoint", endpoint)
    _assert_clean_failure(result, hfget.ExitCode.NETWORK, "Cannot reach", endpoint, "--mirror")
    assert _no_snapshots(hf_home)


def test_unsafe_paths_in_a_listing_are_refused(hub: Hub, hf_home: Path, tmp_path: Path, run_hfget):
    hub.create_repo("org/evil", {"ok.txt": b"ok", "../../escape.txt": b"gotcha"})
    result = run_hfget("org/evil", "--endpoint", hub.url, "--local-dir", str(tmp_path / "target" / "dir"))
    _assert_clean_failure(result, hfget.ExitCode.NETWORK, "unsafe path", "../../escape.txt")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "target" / "escape.txt").exists()
    assert hub.file_gets() == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["a/b/c"], ["Not a repo id", "a/b/c"]),
        (["org/model", "--repo-type", "kernel"], ["Unknown repo type"]),
        (["org/model", "--endpoint", "http://x", "--mirror", "y"], ["--endpoint or --mirror"]),
        (["org/model", "--cache-dir", "a", "--local-dir", "b"], ["--cache-dir or --local-dir"]),
    ],
)
def test_usage_errors(run_hfget, args, words):
    _assert_clean_failure(run_hfget(*args), hfget.ExitCode.USAGE, *words)


def test_offline_without_the_files_cached_is_a_clear_error(hf_home: Path, run_hfget):
    result = run_hfget("org/model", env={"HF_HUB_OFFLINE": "1"})
    _assert_clean_failure(result, hfget.ExitCode.NETWORK, "HF_HUB_OFFLINE", "org/model")


def test_offline_with_the_files_cached_succeeds_without_a_request(hub: Hub, run_hfget):
    commit = hub.create_repo("org/model", {"a.txt": b"a"})
    assert run_hfget("org/model", "--endpoint", hub.url).returncode == 0
    hub.clear_log()
    result = run_hfget("org/model", "--endpoint", hub.url, "-q", env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).name == commit
    assert hub.log == []


def test_the_token_never_shows_even_with_debug_tracebacks(hub: Hub, hf_home: Path, run_hfget):
    hub.create_repo("org/gated", {"a.txt": b"a"}, gated=True)
    hub.tokens.add("hf_verysecret123")
    for args in (["org/gated"], ["org/gated", "--json"], ["org/nope"], ["ls", "org/gated"]):
        result = run_hfget(*args, "--endpoint", hub.url, "--token", "hf_verysecret123", "--debug")
        assert result.returncode != 0
        assert "hf_verysecret123" not in result.stdout + result.stderr
    assert not any("hf_verysecret123" in p.read_text(errors="ignore") for p in hf_home.rglob("*") if p.is_file())

"""A mirror is a third party: listings that would write outside the target, or bytes that do not fit them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import hfget
from hub import Fault, Hub


def _rename(old: str, new: str):
    def tamper(entries: list[dict]) -> list[dict]:
        return [{**e, "path": new} if e["path"] == old else e for e in entries]
    return tamper


@pytest.mark.parametrize("bad", ["/etc/passwd-copy", "a\\..\\..\\x", "C:/Windows/x.dll", "a/\0b", "a//b", "./a"])
def test_unsafe_listed_paths_are_refused_and_nothing_is_written(hub: Hub, tmp_path: Path, run_hfget, bad: str):
    hub.create_repo("org/model", {"ok.txt": b"ok", "victim.txt": b"x"})
    hub.tamper_tree = _rename("victim.txt", bad)
    target = tmp_path / "out"

    result = run_hfget("org/model", "--endpoint", hub.url, "--local-dir", str(target))

    assert result.returncode == hfget.ExitCode.NETWORK
    assert "unsafe path" in result.stderr.strip().splitlines()[-1] and "Traceback" not in result.stderr
    assert hub.file_gets() == []
    assert not (target / "ok.txt").exists()


def test_a_path_listed_twice_is_refused(hub: Hub, run_hfget):
    hub.create_repo("org/model", {"a.txt": b"a", "b.txt": b"b"})
    hub.tamper_tree = _rename("b.txt", "a.txt")

    result = run_hfget("org/model", "--endpoint", hub.url)

    assert result.returncode == hfget.ExitCode.NETWORK
    assert "twice" in result.stderr.strip().splitlines()[-1]
    assert hub.file_gets() == []


def test_a_size_that_does_not_match_the_bytes_served_fails_that_file_only(hub: Hub, hf_home: Path, run_hfget):
    commit = hub.create_repo("org/model", {"a.txt": b"a" * 1000, "good.txt": b"good"})
    hub.tamper_tree = lambda entries: [{**e, "size": 900} if e["path"] == "a.txt" else e for e in entries]

    result = run_hfget("org/model", "--endpoint", hub.url)

    assert result.returncode == hfget.ExitCode.FAILED
    assert "a.txt" in result.stderr.strip().splitlines()[-1]
    snapshot = hf_home / "hub" / "models--org--model" / "snapshots" / commit
    assert not (snapshot / "a.txt").exists()
    assert (snapshot / "good.txt").read_bytes() == b"good"


def test_a_body_longer_than_listed_is_an_error_never_a_silent_truncation(hub: Hub, hf_home: Path, run_hfget):
    content = os.urandom(50_000)
    commit = hub.create_repo("org/model", {"model.safetensors": content})
    hub.tamper_tree = lambda entries: [{**e, "size": 40_000, "lfs": {**e["lfs"], "size": 40_000}}
                                       if e["path"] == "model.safetensors" else e for e in entries]
    hub.faults.append(Fault("chunked", origin="cdn", times=10))  # no Content-Length to warn in advance

    result = run_hfget("org/model", "--endpoint", hub.url)

    assert result.returncode == hfget.ExitCode.FAILED
    assert "more than the 40000 bytes listed" in result.stderr
    hub.wait_idle()
    gets = hub.requests(origin="cdn", method="GET")
    assert gets and all(s.fault == "chunked" for s in gets)  # the body really came without a Content-Length
    assert not (hf_home / "hub" / "models--org--model" / "snapshots" / commit / "model.safetensors").exists()

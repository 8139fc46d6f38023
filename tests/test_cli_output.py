"""What scripts and people read: --json events, --dry-run / ls, plain logs without escape codes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from pydantic import TypeAdapter

import hfget
from hfget import _schema
from hub import Hub

ANY_EVENT = TypeAdapter(
    _schema.PlanEvent | _schema.FileStartedEvent | _schema.FileDoneEvent | _schema.RetryEvent
    | _schema.MirrorSwitchedEvent | _schema.ErrorEvent | _schema.SummaryEvent
)


@pytest.fixture
def repo(hub: Hub) -> dict[str, bytes]:
    files = {"config.json": b"{}", "model.safetensors": os.urandom(200_000), "a/b.txt": b"b"}
    hub.create_repo("org/model", files)
    return files


def test_json_events_validate_and_come_in_a_sensible_order(hub: Hub, repo, run_hfget):
    hub.corrupt["config.json"] = 1  # one retry event too

    result = run_hfget("org/model", "--endpoint", hub.url, "--json")

    assert result.returncode == 0, result.stderr
    events = [ANY_EVENT.validate_python(json.loads(line)) for line in result.stdout.splitlines()]
    kinds = [e.event for e in events]
    assert kinds[0] == "plan" and kinds[-1] == "summary"
    assert "retry" in kinds
    for path in repo:
        started = next(i for i, e in enumerate(events) if e.event == "file_started" and e.path == path)
        done = next(i for i, e in enumerate(events) if e.event == "file_done" and e.path == path)
        assert 0 < started < done < len(events) - 1
    summary = events[-1]
    assert Path(summary.path).name == summary.commit == events[0].commit
    assert summary.bytes_fetched >= sum(len(c) for c in repo.values())
    assert {f.path: f.status for f in summary.files} == {p: "fetched" for p in repo}
    assert events[0].files_total == 3 and events[0].bytes_total == sum(len(c) for c in repo.values())


def test_json_reports_an_error_event_with_the_exit_code(hub: Hub, run_hfget):
    result = run_hfget("org/nothing", "--endpoint", hub.url, "--json")
    assert result.returncode == hfget.ExitCode.NOT_FOUND
    event = ANY_EVENT.validate_python(json.loads(result.stdout.splitlines()[-1]))
    assert event.event == "error" and event.exit_code == 3 and "org/nothing" in event.message


def test_dry_run_lists_without_fetching_a_body(hub: Hub, repo, run_hfget):
    assert run_hfget("org/model", "config.json", "--endpoint", hub.url).returncode == 0
    hub.clear_log()

    result = run_hfget("org/model", "--endpoint", hub.url, "--dry-run")

    assert result.returncode == 0, result.stderr
    assert hub.file_gets() == []
    lines = result.stdout.splitlines()
    assert any(line.split() == ["cached", "2", "bytes", "config.json"] for line in lines)
    assert any(line.split()[0] == "fetch" and line.endswith("model.safetensors") for line in lines)
    assert "to fetch: 2 files" in result.stdout and "free at the target" in result.stdout


def test_ls_json_is_one_document(hub: Hub, repo, hf_home: Path, run_hfget):
    result = run_hfget("ls", "org/model", "--endpoint", hub.url, "--json", "-I", "*.json")
    assert result.returncode == 0, result.stderr
    document = _schema.PlanEvent.model_validate_json(result.stdout)
    assert [f.path for f in document.files] == ["config.json"]
    assert document.files_to_fetch == 1 and document.free_bytes > 0
    assert hub.file_gets() == []
    assert not (hf_home / "hub").exists()  # a listing writes nothing


def test_python_plan_api(hub: Hub, repo, tmp_path: Path):
    report = hfget.plan("org/model", endpoint=hub.url, cache_dir=tmp_path / "c", exclude=["*.safetensors"])
    assert {f.path for f in report.files} == {"config.json", "a/b.txt"}
    assert report.files_to_fetch == 2 and not any(f.present for f in report.files)
    assert hub.file_gets() == []


def test_logs_on_a_non_terminal_carry_no_escape_codes(hub: Hub, repo, run_hfget):
    result = run_hfget("org/model", "--endpoint", hub.url)
    assert result.returncode == 0
    assert "\x1b" not in result.stderr and "\r" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("done: 3 files")


def test_every_command_has_help_with_an_example(run_hfget):
    for command in ([], ["download"], ["ls"], ["verify"], ["sync"], ["config"]):
        result = run_hfget(*command, "--help")
        assert result.returncode == 0
        assert "Example" in result.stdout, command


def test_on_a_terminal_bars_show_then_leave_a_one_line_summary(hub: Hub, hf_home: Path, tmp_path: Path):
    import shutil
    import subprocess
    import sys

    if shutil.which("script") is None:
        pytest.skip("no `script` to give hfget a terminal")
    hub.create_repo("org/model", {"model.safetensors": os.urandom(12 << 20), "config.json": b"{}"})
    hub.rate = 6 << 20  # about two seconds: the bars get drawn
    log = tmp_path / "tty.log"
    command = f"{sys.executable} -m hfget org/model --endpoint {hub.url} -c 1"
    proc = subprocess.run(["script", "-qefc", command, str(log)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "120", "TERM": "xterm"})
    assert proc.returncode == 0, proc.stdout
    screen = log.read_text(errors="replace")
    assert "\x1b[" in screen  # drawn with terminal control codes
    assert "model.safetensors" in screen  # the large file's own bar
    assert "0/2 files" in screen or "1/2 files" in screen  # the overall bar
    assert re.search(r"done: 2 files, 12\.\d MB in [\d.]+s \([\d.]+ [kM]B/s\) from http://127\.0\.0\.1:\d+", screen)

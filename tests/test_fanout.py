"""Many small files over two processes (_fanout.py): the same files, bytes and events as one process, from two
processes' connections; a helper lost mid-way costs no file, and none outlives its run."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

import hfget
from hfget._engine import Download
from hfget._events import FileDone
from hfget._fanout import FANOUT_MIN, FORKED_SHARE, SPAWNED_SHARE, Helper, helper_jobs
from hfget._options import Options
from hfget._target import resolve_target
from hfget._verify import usable_cores
from hub import Hub
from waiting import finish, wait_until

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists() or usable_cores() < 2,
                                reason="a helper runs where more than one core is usable; pids are read in /proc")


def _repo(hub: Hub, count: int = FANOUT_MIN + 44) -> dict[str, bytes]:
    files = {f"shards/{i % 7}/part-{i:04d}.json": os.urandom(200 + i) for i in range(count)}
    files["model.safetensors"] = os.urandom(9 << 20)  # a large file (ranges from 8 MiB) stays with the main process
    hub.create_repo("org/many", files)
    hub.peer_pids = True
    hub.page_size = 1000  # one page of listing: the latency some tests add is for the files
    return files


def _start(hub: Hub, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hfget", "org/many", "--endpoint", hub.url, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def _check(snapshot: Path, files: dict[str, bytes]) -> None:
    for path, content in files.items():
        assert (snapshot / path).read_bytes() == content, path


def _body_pids(hub: Hub) -> Counter:
    hub.wait_idle()
    return Counter(s.pid for s in hub.requests(method="GET", contains="/resolve/"))


def test_many_small_files_come_from_two_processes_with_one_event_each(hub: Hub, hf_home: Path):
    files = _repo(hub)

    proc = _start(hub, "--json")
    stdout, stderr = finish(proc, "hfget fetching many small files")

    assert proc.returncode == 0, stderr
    events = [json.loads(line) for line in stdout.splitlines()]
    summary = events[-1]
    _check(Path(summary["path"]), files)
    assert summary["files_fetched"] == len(files) and summary["failed"] == 0
    assert summary["bytes_fetched"] == sum(len(b) for b in files.values())
    assert Counter(e["path"] for e in events if e["event"] == "file_done") == Counter(list(files))
    pids = _body_pids(hub)
    assert None not in pids and len(pids) == 2, pids
    helper = min(pids, key=lambda pid: pids[pid])
    assert proc.pid in pids and helper != proc.pid
    assert pids[helper] >= FANOUT_MIN // 3  # a real share of the small files, not a stray request
    # each file was asked for once: no file fetched by both processes
    assert set(Counter(s.path for s in hub.requests(method="GET", contains="/part-")).values()) == {1}


def test_a_run_on_a_terminal_forks_its_helper_and_draws_its_bars(hub: Hub, hf_home: Path, tmp_path: Path):
    """The progress bars' redraw thread starts with the transfers, after the fork: on a terminal the helper is a
    fork, whose share is half the small files (a spawned one, later at work, takes fewer: SPAWNED_SHARE)."""
    import shutil

    if shutil.which("script") is None:
        pytest.skip("no `script` to give hfget a terminal")
    files = _repo(hub)
    small = [path for path in files if "/part-" in path]
    log = tmp_path / "tty.log"
    command = f"{sys.executable} -m hfget org/many --endpoint {hub.url}"
    proc = subprocess.run(["script", "-qefc", command, str(log)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "120", "TERM": "xterm"}, stdin=subprocess.DEVNULL)

    assert proc.returncode == 0, proc.stdout
    screen = log.read_text(errors="replace")
    assert "\x1b[?25l" in screen  # the bars were drawn (rich hides the cursor while it draws them)
    assert re.search(rf"done: {len(files)} files, [\d.]+ MB in", screen)
    pids = _body_pids(hub)
    assert len(pids) == 2 and min(pids.values()) == int(len(small) * FORKED_SHARE), pids
    assert FORKED_SHARE > SPAWNED_SHARE


def test_a_run_started_with_sigchld_ignored_still_ends_well(hub: Hub, hf_home: Path):
    files = _repo(hub)  # the system reaps an exited child itself then: no wait may fail the run

    def ignore_sigchld() -> None:
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # kept across exec, as a daemon's children inherit it

    proc = subprocess.Popen([sys.executable, "-m", "hfget", "org/many", "--endpoint", hub.url, "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            preexec_fn=ignore_sigchld)
    stdout, stderr = finish(proc, "hfget with SIGCHLD ignored")

    assert proc.returncode == 0, stderr
    _check(Path(stdout.strip()), files)
    assert len(_body_pids(hub)) == 2


def test_large_files_that_need_the_whole_budget_keep_it(hub: Hub, hf_home: Path):
    files = _repo(hub)
    more = {"shard-2.safetensors": os.urandom(9 << 20)}
    hub.commit("org/many", more)
    files.update(more)

    # two large files at 4 connections each need all 8: half the files in flight to a helper would leave 6
    proc = _start(hub, "-q", "-j", "4", "--max-connections", "8", "-c", "4")
    stdout, stderr = finish(proc, "hfget with two large files and many small ones")

    assert proc.returncode == 0, stderr
    _check(Path(stdout.strip()), files)
    assert set(_body_pids(hub)) == {proc.pid}


def test_large_files_keep_their_connections_and_the_small_files_halves_share_the_rest(hub: Hub, hf_home: Path):
    files = _repo(hub)
    more = {f"shard-{i}.safetensors": os.urandom(9 << 20) for i in (2, 3)}
    hub.commit("org/many", more)
    files.update(more)
    small = [path for path in files if not path.endswith(".safetensors")]

    # three large files at 4 connections each may need 12 of 16: the 4 left go 2 to the helper, 2 to this process's
    # own half of the small files (not 4 to the helper and none here, as half of -j 8 would be)
    proc = _start(hub, "-q", "-j", "8", "--max-connections", "16", "-c", "4")
    stdout, stderr = finish(proc, "hfget with three large files and many small ones")

    assert proc.returncode == 0, stderr
    _check(Path(stdout.strip()), files)
    bodies = _body_pids(hub)
    helpers = set(bodies) - {proc.pid}
    assert len(helpers) == 1, bodies
    helper = helpers.pop()
    assert bodies[helper] == int(len(small) * FORKED_SHARE), bodies
    assert len({s.peer for s in hub.requests() if s.pid == helper}) <= 2  # one connection per file in flight
    assert {s.pid for s in hub.requests(method="GET", contains=".safetensors")} == {proc.pid}


def test_the_helper_gets_half_of_what_the_large_files_leave():
    defaults = Options()
    assert [helper_jobs(defaults, large) for large in range(5)] == [32, 26, 20, None, None]
    assert helper_jobs(dataclasses.replace(defaults, connections=8), 4) == 16
    # this process keeps a file in flight per large file, and as many again for its own small files
    assert helper_jobs(dataclasses.replace(defaults, jobs=8, connections=2), 4) == 2


def test_a_library_call_starts_no_process(hub: Hub, hf_home: Path, tmp_path: Path):
    files = _repo(hub)

    snapshot = hfget.download("org/many", endpoint=hub.url, cache_dir=tmp_path / "cache")

    _check(snapshot, files)
    assert set(_body_pids(hub)) == {os.getpid()}


def _helper_after(hub: Hub, proc: subprocess.Popen, files: int) -> int:
    """The pid of hfget's helper, once the Hub has served it `files` of the small files."""

    def helper() -> int | None:
        counts = Counter(s.pid for s in hub.requests(contains="/part-") if s.pid not in (None, proc.pid))
        return next((pid for pid, n in counts.items() if n >= files), None)

    wait_until(helper, f"the helper's first {files} files")
    pid = helper()
    assert pid is not None
    return pid


def test_a_helper_killed_midway_costs_no_file(hub: Hub, hf_home: Path):
    files = _repo(hub, count=FANOUT_MIN * 2)
    hub.latency = 0.2  # the helper has seconds of work left when it is killed
    proc = _start(hub, "-q")

    os.kill(_helper_after(hub, proc, 20), signal.SIGKILL)
    stdout, stderr = finish(proc, "hfget after its helper was killed")

    assert proc.returncode == 0, stderr
    _check(Path(stdout.strip()), files)
    hub.wait_idle()
    fetched_here = {s.path for s in hub.requests(method="GET", contains="/part-") if s.pid == proc.pid}
    assert len(fetched_here) > FANOUT_MIN  # more than its own half: it took back what the helper left


def test_stopping_the_run_stops_its_helper(hub: Hub, hf_home: Path):
    files = _repo(hub, count=FANOUT_MIN * 2)
    hub.latency = 0.2  # the helper has seconds of work left when hfget is stopped
    proc = _start(hub, "-q")

    helper = _helper_after(hub, proc, 1)
    proc.send_signal(signal.SIGTERM)  # to hfget alone, as `kill` or a CI runner sends it
    _, stderr = finish(proc, "hfget after SIGTERM")

    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert _ended(helper)  # hfget ended its helper before it exited itself
    hub.latency = 0.0
    again = _start(hub, "-q")
    stdout, stderr = finish(again, "the run resumed")
    assert again.returncode == 0, stderr
    _check(Path(stdout.strip()), files)


def _ended(pid: int) -> bool:
    """Gone, or a zombie (its parent has not reaped it yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def test_files_the_helper_cannot_verify_fail_the_run_once_each(hub: Hub, hf_home: Path):
    files = _repo(hub)
    small = [path for path in files if path.endswith(".json")]
    hub.corrupt = {path: 2 for path in small}  # every small file's body is wrong twice: each fails for good

    proc = _start(hub, "--json")
    stdout, stderr = finish(proc, "hfget with every small file corrupt")

    assert proc.returncode == 1, stderr
    events = [json.loads(line) for line in stdout.splitlines()]
    assert Counter(e["path"] for e in events if e["event"] == "error" and e["path"]) == Counter(small)
    summary = next(e for e in events if e["event"] == "summary")
    assert summary["failed"] == len(small) and summary["files_fetched"] == 1
    assert {f["path"] for f in summary["files"] if f["status"] == "failed"} == set(small)
    assert f"{len(small)} of {len(files)} files failed" in stderr
    assert len(_body_pids(hub)) == 2  # half of them failed in the helper


class _Recorded:
    def __init__(self) -> None:
        self.events: list = []
        self.bytes = 0

    def handle(self, event) -> None:
        self.events.append(event)

    def advance(self, path: str, nbytes: int) -> None:
        self.bytes += nbytes


def _private(hub: Hub, tmp_path: Path) -> tuple[dict[str, bytes], Options]:
    files = {f"part-{i:02d}.json": os.urandom(100 + i) for i in range(30)}
    hub.create_repo("org/private", files, private=True)
    hub.grant("org/private", "hf_pipe_only_token")
    hub.peer_pids = True
    options = Options.build({"endpoint": hub.url, "cache_dir": tmp_path / "cache", "token": "hf_pipe_only_token"})
    return files, options


def test_a_spawned_helper_gets_the_token_by_pipe_and_imports_nothing_from_the_working_folder(
        hub: Hub, hf_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    files, options = _private(hub, tmp_path)
    folder = tmp_path / "downloads"  # a folder holding a module named as one the helper imports
    folder.mkdir()
    (folder / "httpx2.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\n")
    monkeypatch.chdir(folder)
    target = resolve_target("org/private", [], options)
    plan = Download(target, options, _Recorded()).plan()
    target.store.prepare()
    sink = _Recorded()

    assert threading.active_count() > 1  # the Hub's threads: no fork, a fresh interpreter
    helper = Helper.start(target, plan.commit, options, plan.to_fetch, sink)
    try:
        failures, received, left = helper.finish()
    finally:
        helper.stop()

    assert (failures, left) == ([], [])
    assert received == sink.bytes == sum(len(b) for b in files.values())
    assert sorted(e.path for e in sink.events if isinstance(e, FileDone)) == sorted(files)
    snapshot = target.store.output_path(plan.commit)
    for path, content in files.items():
        assert (snapshot / path).read_bytes() == content
    assert not (tmp_path / "imported").exists()
    hub.wait_idle()
    gets = hub.requests(method="GET", contains="/resolve/")
    assert {s.pid for s in gets} == {helper.process.pid} != {os.getpid()}
    assert all(s.authorized for s in gets)


def test_an_error_that_ends_the_helper_ends_the_run_with_the_same_error(hub: Hub, hf_home: Path, tmp_path: Path):
    _, options = _private(hub, tmp_path)
    target = resolve_target("org/private", [], options)
    plan = Download(target, options, _Recorded()).plan()
    target.store.prepare()
    hub.tokens.discard("hf_pipe_only_token")  # the token revoked once the files are listed: 401 for each
    heard: list[Exception] = []

    helper = Helper.start(target, plan.commit, options, plan.to_fetch, _Recorded())
    helper.when_fatal(heard.append)  # as it stops this process's transfers
    try:
        with pytest.raises(hfget.AuthError, match="refused access") as raised:
            helper.finish()
    finally:
        helper.stop()

    assert heard == [raised.value]
    assert helper.process is not None and helper.process.poll() == hfget.ExitCode.AUTH

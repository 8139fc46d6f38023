"""Several hfget processes on one cache (CI jobs at once), and runs killed at random points then resumed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from hub import Hub, most_fetched
from waiting import wait_until

MiB = 1 << 20


def _repo(hub: Hub) -> dict[str, bytes]:
    files = {"model.safetensors": os.urandom(12 * MiB), "tokenizer.json": os.urandom(300_000)}
    files.update({f"configs/{i}.json": os.urandom(1000 + i) for i in range(20)})
    hub.create_repo("org/model", files)
    return files


def _start(hub: Hub, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hfget", "org/model", "--endpoint", hub.url, "-q", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def _check(snapshot: Path, files: dict[str, bytes]) -> None:
    for path, content in files.items():
        assert (snapshot / path).read_bytes() == content, path


def test_four_processes_on_one_cache_all_succeed_and_fetch_each_blob_once(hub: Hub, hf_home: Path):
    files = _repo(hub)
    hub.rate = 8 * MiB  # slow enough that the four runs overlap

    procs = [_start(hub) for _ in range(4)]
    outputs = [proc.communicate(timeout=120) for proc in procs]

    for proc, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr
        _check(Path(stdout.strip()), files)
    assert len({stdout for stdout, _ in outputs}) == 1
    hub.wait_idle()
    big_bytes = sum(s.sent for s in hub.requests(origin="cdn", method="GET"))
    # the large blob was fetched once across the four runs (a range cut short by a split may overrun a little)
    assert 12 * MiB <= big_bytes < 13 * MiB
    small = Counter(s.path.rsplit("/", 1)[-1] for s in hub.requests(method="GET", contains="/configs/"))
    assert set(small.values()) == {1}


def test_without_working_locks_four_processes_still_end_with_correct_files(hub: Hub, hf_home: Path):
    files = _repo(hub)
    hub.rate = 8 * MiB

    procs = [_start(hub, env={"HFGET_LOCKS": "0"}) for _ in range(4)]
    outputs = [proc.communicate(timeout=120) for proc in procs]

    for proc, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr
        _check(Path(stdout.strip()), files)
    blobs = hf_home / "hub" / "models--org--model" / "blobs"
    assert not [p for p in blobs.iterdir() if ".hfget" in p.name]  # no partial left behind


def test_killed_at_random_points_then_resumed_again_and_again(hub: Hub, hf_home: Path, run_hfget):
    files = _repo(hub)
    hub.rate = 6 * MiB
    rng = random.Random(1234)
    history = []
    for _ in range(5):
        hub.clear_log()
        proc = _start(hub, "-c", "4")
        # a random point inside the transfer, counted from when a body is under way (not from the start of the
        # process, which a loaded machine can take longer to reach than any fixed delay)
        wait_until(lambda: hub.cdn_bodies_in_flight > 0 or proc.poll() is not None,  # noqa: B023
                   "the killed run to start a body")
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        hub.wait_idle()
        history.extend(hub.requests(origin="cdn", method="GET"))
    hub.rate = None
    hub.clear_log()
    result = run_hfget("org/model", "--endpoint", hub.url, "-q")
    assert result.returncode == 0, result.stderr
    _check(Path(result.stdout.strip()), files)
    blobs = hf_home / "hub" / "models--org--model" / "blobs"
    assert not [p for p in blobs.iterdir() if ".hfget" in p.name]
    last = hub.requests(origin="cdn", method="GET")
    assert sum(s.sent for s in last) < 12 * MiB  # the last run only finished what the killed ones left
    assert most_fetched(history + last) <= 3  # a byte is fetched again only if a kill caught it in flight


def test_workers_that_find_the_partials_listing_expired_together_scan_the_folder_once(tmp_path: Path, monkeypatch):
    """32 workers claim files at once when the blobs folder's listing of partials has just expired: one of them
    scans the folder (thousands of entries in a large repo), the others use what it found."""
    import threading

    from hfget import _ownership

    (tmp_path / "abc.hfget.incomplete").write_bytes(b"x")
    scans: list[int] = []
    arrived = threading.Condition()
    real_scandir = os.scandir

    def scandir(folder):  # holds each scan until all 8 workers scan at once, or 1 s went by
        with arrived:
            scans.append(1)
            arrived.notify_all()
            arrived.wait_for(lambda: len(scans) >= 8, timeout=1)
        return real_scandir(folder)

    monkeypatch.setattr(_ownership.os, "scandir", scandir)
    monkeypatch.setitem(_ownership._LISTINGS, os.fspath(tmp_path), (float("-inf"), {}))  # expired
    found: list[dict[str, list[str]]] = []
    workers = [threading.Thread(target=lambda: found.append(_ownership.partial_bases(tmp_path)))
               for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(scans) == 1
    assert found == [{"abc": ["abc.hfget.incomplete"]}] * 8


def test_a_blob_lock_held_by_one_run_stays_held_when_another_run_of_the_process_ends(tmp_path: Path):
    """`hfget serve` runs a download per file it fetches, in one process. POSIX drops all of a process's locks on a
    file when any descriptor of it closes: one run ending must not hand the blobs another run is fetching to other
    processes (which would fetch them a second time)."""
    from hfget._ownership import BlobLocks

    path = tmp_path / ".locks" / "models--org--model" / "hfget.lock"
    fetching, ending = BlobLocks.open(path), BlobLocks.open(path)
    assert fetching is not None and ending is not None
    assert fetching.try_lock("blob-a")
    ending.close()  # the other run is over
    probe = ("import fcntl, os, sys; from hfget._ownership import BlobLocks\n"
             f"fd = os.open({str(path)!r}, os.O_RDWR)\n"
             "try:\n"
             "    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, BlobLocks.offset('blob-a'), os.SEEK_SET)\n"
             "except OSError:\n"
             "    sys.exit(3)\n")
    try:
        held = subprocess.run([sys.executable, "-c", probe], timeout=60).returncode
        fetching.unlock("blob-a")
        free = subprocess.run([sys.executable, "-c", probe], timeout=60).returncode
    finally:
        fetching.close()
    assert (held, free) == (3, 0)  # another process cannot take it while the run holds it, and can once it is done

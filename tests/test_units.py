"""Fast unit tests of single components: the exchange (over httpx2's MockTransport), the scheduler, the mirror
selector and the options. The end-to-end tests against the test Hub stay the proof for users' paths."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx2
import pytest

from hfget._errors import AuthError, FileDownloadError, UsageError
from hfget._exchange import Exchange, Link, ThreadClients, Transient, check_reply
from hfget._mirrors import Mirrors
from hfget._models import RemoteFile
from hfget._options import Options
from hfget._pieces import MIN_SPLIT, Ledger
from hfget._schedule import Scheduler
from hfget._task import IllegalMove, RangeSupport, State, Task

FILE = RemoteFile("model.bin", 100, "b" * 40, lfs_sha256="a" * 64)
HUB, CDN = "https://hub.example", "https://cdn.example"


def _exchange(handler, endpoints=(HUB,), token="hf_secret") -> tuple[Exchange, list[httpx2.Request]]:
    seen: list[httpx2.Request] = []

    def record(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return handler(request)

    client = httpx2.Client(transport=httpx2.MockTransport(record), follow_redirects=False)
    mirrors = Mirrors(endpoints, on_switch=lambda *_: None)
    return Exchange(ThreadClients(lambda: client), mirrors, token, lambda f, e: f"{e}/org/m/resolve/c/{f.path}"), seen


def _cdn_redirect(request: httpx2.Request) -> httpx2.Response:
    if request.url.host != "cdn.example":
        return httpx2.Response(302, headers={"Location": f"{CDN}/blob?sig=1"})
    return httpx2.Response(206, headers={"Content-Range": "bytes 10-19/100"}, content=b"x" * 10)


def test_the_token_goes_to_the_endpoint_only_and_the_cdn_link_is_reused():
    exchange, seen = _exchange(_cdn_redirect)
    link = Link()
    exchange.open(FILE, link, "bytes=10-19").close()
    exchange.open(FILE, link, "bytes=10-19").close()
    assert [r.url.host for r in seen] == ["hub.example", "cdn.example", "cdn.example"]
    assert [("authorization" in r.headers) for r in seen] == [True, False, False]
    assert all("referer" not in r.headers for r in seen)


def test_a_link_from_another_mirror_is_resolved_again():
    exchange, seen = _exchange(_cdn_redirect, endpoints=(HUB, "https://mirror.example"))
    link = Link()
    exchange.open(FILE, link, None).close()
    exchange.mirrors.fail_over("test")
    exchange.open(FILE, link, None).close()
    assert [r.url.host for r in seen] == ["hub.example", "cdn.example", "mirror.example", "cdn.example"]


@pytest.mark.parametrize(("status", "where", "kind", "blame"), [
    (503, HUB, Transient, 1), (429, HUB, Transient, 0), (404, HUB, Transient, 3), (404, CDN, Transient, 1),
    (403, CDN, Transient, 0), (403, HUB, AuthError, None), (416, HUB, FileDownloadError, None),
    (418, HUB, FileDownloadError, None),
])
def test_statuses_are_sorted_into_retry_refusal_or_final(status, where, kind, blame):
    def handler(request: httpx2.Request) -> httpx2.Response:
        if where == CDN and request.url.host == "hub.example":
            return httpx2.Response(302, headers={"Location": f"{CDN}/blob"})
        return httpx2.Response(status)

    exchange, _ = _exchange(handler)
    with pytest.raises(kind) as caught:
        exchange.open(FILE, Link(), None)
    if blame is not None:
        assert caught.value.blame == blame


def test_a_redirect_loop_ends():
    exchange, seen = _exchange(lambda r: httpx2.Response(302, headers={"Location": str(r.url)}))
    with pytest.raises(FileDownloadError, match="too many redirects"):
        exchange.open(FILE, Link(), None)
    assert len(seen) == 10


@pytest.mark.parametrize(("status", "headers", "ok"), [
    (206, {"Content-Range": "bytes 10-19/100"}, True),
    (206, {"Content-Range": "bytes 0-19/100"}, False),  # not where we asked
    (206, {"Content-Range": "bytes 10-59/100"}, False),  # past the end asked
    (206, {"Content-Range": "bytes 10-19/99"}, False),  # another file's size
    (200, {"Content-Length": "100"}, True),
    (200, {"Content-Length": "99"}, False),
])
def test_replies_are_checked_before_a_byte_is_written(status, headers, ok):
    response = httpx2.Response(status, headers=headers)
    if ok:
        assert check_reply(response, FILE, 10, 20) == (10 if status == 206 else 0)
    else:
        with pytest.raises(FileDownloadError):
            check_reply(response, FILE, 10, 20)


def _task(name: str, large: bool = False, size: int = 10) -> Task:
    return Task(RemoteFile(name, size, "c" * 40), Path(name), large)


def test_the_scheduler_keeps_to_jobs_and_hands_out_every_file_once():
    scheduler = Scheduler(jobs=2, max_connections=4, per_file=4, split_below=1e9, cancel=threading.Event())
    tasks = [_task(f"f{i}") for i in range(5)]
    scheduler.add(tasks)
    first = [scheduler.next_work(), scheduler.next_work()]
    assert [w[0] for w in first if w] == tasks[:2] and len(scheduler.running) == 2
    for work in first:
        assert work is not None
        scheduler.retire(work[0])
        scheduler.worker_free()
    rest = []
    while (work := scheduler.next_work()) is not None:
        rest.append(work[0])
        scheduler.retire(work[0])
        scheduler.worker_free()
    assert rest == tasks[2:]


def test_a_requeued_file_waits_behind_the_others():
    scheduler = Scheduler(jobs=4, max_connections=4, per_file=4, split_below=1e9, cancel=threading.Event())
    a, b = _task("a"), _task("b")
    scheduler.add([a, b])
    work = scheduler.next_work()
    assert work is not None and work[0] is a
    a.move(State.RUNNING)
    scheduler.requeue(a, 0.0)
    scheduler.worker_free()
    assert a.state is State.QUEUED
    order = []
    while (work := scheduler.next_work()) is not None:
        order.append(work[0].file.path)
        scheduler.retire(work[0])
        scheduler.worker_free()
    assert order == ["b", "a"]


def test_a_large_file_takes_one_connection_until_range_support_is_proven_then_all_if_its_stream_is_capped():
    task = _task("big", large=True)
    assert task.cap(8, 64e6) == 1
    task.ranges = RangeSupport.YES
    assert task.cap(8, 64e6) == 1  # proven, not measured yet
    task.connections = 1
    task.speed.per_connection = task.speed.fastest = 25e6  # a capped stream: every connection at once
    assert task.cap(8, 64e6) == 8


def test_connections_joining_a_file_together_take_first_pieces_of_growing_size():
    """A capped file's connections join at once: their first pieces grow (2/8, 3/8, ... of a piece), so they end,
    and ask for the next ones, one after another, and the file's prefix (what the hash may read) advances piece by
    piece instead of a round at a time."""
    size = 1 << 30
    task = _task("big", large=True, size=size)
    task.ledger = Ledger(size, min_split=MIN_SPLIT)
    task.ledger.claim(16 << 20)  # the probe's piece
    task.state, task.ranges, task.connections = State.RUNNING, RangeSupport.YES, 1
    task.speed.per_connection = task.speed.fastest = 25e6  # capped: all 8 connections at once, 2 s pieces
    joined = [task.join(0.0, 8, 64e6) for _ in range(7)]
    assert task.join(0.0, 8, 64e6) is None  # all 8 connections in use
    sizes = [s.end - s.start for s in joined if s is not None]
    assert sizes == [50_000_000 * n // 8 for n in range(2, 9)]
    assert [s.start for s in joined if s is not None] == sorted(s.start for s in joined if s is not None)


def _clocked_task() -> tuple[Task, list[float], list[float]]:
    """A large file with one connection, whose wall and CPU clocks the test moves (lists: set in place)."""
    clock, cpu = [100.0], [10.0]
    task = _task("big", large=True)
    task.ranges, task.connections = RangeSupport.YES, 1
    task.speed.clock, task.speed.cpu_clock = (lambda: clock[0]), (lambda: cpu[0])
    task.speed.add(0, 1)
    return task, clock, cpu


def test_a_slow_window_while_the_process_was_busy_adds_no_connection_a_quiet_one_does():
    task, clock, cpu = _clocked_task()
    clock[0] += 0.125
    cpu[0] += 0.11  # 88% of a core: the small files beside it, not the link, held the stream to 25 MB/s
    assert task.speed.add(3_125_000, 1)
    assert task.speed.busy and task.speed.per_connection == pytest.approx(25e6)
    assert task.cap(8, 64e6) == 1
    clock[0] += 0.25
    cpu[0] += 0.05  # 20% of a core and still 25 MB/s: the link caps each stream
    assert task.speed.add(6_250_000, 1)
    assert not task.speed.busy
    assert task.cap(8, 64e6) == 8
    task.connections = 3  # the budget gave it three: a busy window does not hold it back from the rest
    clock[0] += 0.25
    cpu[0] += 0.25
    assert task.speed.add(3 * 6_250_000, 3) and task.speed.busy
    assert task.cap(8, 64e6) == 8


def test_a_busy_machine_defers_the_ramp_up_two_seconds_at_most():
    task, clock, cpu = _clocked_task()
    caps = []
    for _ in range(9):
        clock[0] += 0.25
        cpu[0] += 0.25  # a whole core, window after window
        assert task.speed.add(6_250_000, 1)
        caps.append(task.cap(8, 64e6))
    assert caps == [1] * 7 + [8, 8]  # still 25 MB/s after 8 windows: the link caps it after all


def test_a_file_whose_stream_ran_faster_than_the_machine_needs_adds_none_when_the_machine_slows_it():
    task = _task("big", large=True)
    task.ranges, task.connections = RangeSupport.YES, 1
    task.speed.per_connection = task.speed.fastest = 400e6  # the machine is the limit: no more than it has
    assert task.cap(8, 64e6) == 1
    task.speed.per_connection = 40e6  # the hasher took the CPU for a window: still the machine
    assert task.cap(8, 64e6) == 1
    task.speed.recent.extend([400e6] * 6 + [0.0, 0.0])
    task.speed.per_connection = 0.0  # the disk's writeback held everything up a while
    assert task.cap(8, 64e6) == 1
    task.speed.recent.extend([5e6] * 8)
    task.speed.per_connection = 5e6  # throttled after a burst, for 2 s: capped after all
    assert task.cap(8, 64e6) == 8


def test_task_states_refuse_impossible_moves():
    task = _task("a")
    task.move(State.RUNNING)
    task.move(State.PUBLISHED)
    with pytest.raises(IllegalMove):
        task.move(State.RUNNING)


def test_mirrors_move_on_at_three_points_and_a_good_answer_forgives():
    switches: list[tuple[str, str, str]] = []
    mirrors = Mirrors(["a", "b"], on_switch=lambda *s: switches.append(s))
    assert not mirrors.blame(2, "stall")
    mirrors.answered()
    assert not mirrors.blame(2, "stall") and mirrors.current == "a"
    assert mirrors.blame(1, "503") and mirrors.current == "b"
    assert switches == [("a", "b", "503")]
    assert not mirrors.blame(10, "no next mirror") and mirrors.current == "b"


def test_options_come_from_one_place_with_one_set_of_defaults(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HFGET_JOBS", "7")
    options = Options.build({"connections": 3, "limit_rate": "1.5MiB"})
    assert (options.jobs, options.connections, options.limit_rate) == (7, 3, 1.5 * 2**20)
    assert options.origins["jobs"] == "environment" and options.origins["retries"] == "default"
    with pytest.raises(UsageError, match="--max-connections"):
        Options.build({"max_connections": 0}, caller="flag")


def test_the_resume_journal_records_each_write_and_ignores_a_record_cut_short(tmp_path: Path):
    from hfget import _resume

    listed = RemoteFile("big.bin", 1000, "d" * 40, lfs_sha256="e" * 64)
    partial = tmp_path / "big.hfget.incomplete"
    partial.write_bytes(bytes(1000))
    journal = _resume.Journal(partial, listed, [(0, 100)])
    journal.record(100, 250)
    journal.record(500, 600)
    journal.close()
    assert _resume.load(partial, listed) == [(0, 250), (500, 600)]
    with open(_resume.state_path(partial), "ab") as f:
        f.write(b"\x01\x02\x03")  # a kill in the middle of appending a record
    assert _resume.load(partial, listed) == [(0, 250), (500, 600)]
    other = RemoteFile("big.bin", 1000, "d" * 40, lfs_sha256="f" * 64)
    assert _resume.load(partial, other) == []  # another file's journal is not trusted


def test_a_version_1_sidecar_is_still_read(tmp_path: Path):
    import json

    from hfget import _resume

    listed = RemoteFile("big.bin", 1000, "d" * 40, lfs_sha256="e" * 64)
    partial = tmp_path / "big.hfget.incomplete"
    partial.write_bytes(bytes(1000))
    _resume.state_path(partial).write_text(json.dumps({"version": 1, "size": 1000, "etag": "e" * 64,
                                                       "done": [[0, 300]]}))
    assert _resume.load(partial, listed) == [(0, 300)]


def test_file_bodies_are_read_in_large_blocks_on_the_direct_route(hub):
    """httpcore2 reads 64 KiB at a time unless told otherwise; hfget's own client reads up to 1 MiB (a profiled
    quarter of a fast download's time and a fifth of a capped one's CPU), without changing any other client in the
    process."""
    import os

    from hfget._exchange import make_client
    from hfget._network import Network

    hub.create_repo("org/model", {"model.safetensors": os.urandom(8 << 20)})
    url = f"{hub.url}/org/model/resolve/main/model.safetensors"
    with make_client(connections=1, stall_timeout=30, network=Network()) as client, \
            client.stream("GET", url, follow_redirects=True) as response:
        ours = max(len(chunk) for chunk in response.iter_raw())
    with httpx2.Client() as plain, plain.stream("GET", url, follow_redirects=True) as response:
        theirs = max(len(chunk) for chunk in response.iter_raw())
    assert ours > 64 << 10 >= theirs


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_owned_partial_names_are_unique_in_a_process_and_a_forked_child_names_its_own_pid(tmp_path):
    from hfget import _ownership

    parked = tmp_path / "blob.hfget.incomplete"
    names = {_ownership.owned_name(parked).name for _ in range(1000)}
    assert len(names) == 1000 and all(f"-{os.getpid()}-" in name for name in names)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        try:
            os.write(write, _ownership.owned_name(parked).name.encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        assert f"-{child}-" in pipe.read()
    mine = _ownership.owned_name(parked)
    gone = mine.with_name(mine.name.replace(f"-{os.getpid()}-", f"-{child}-"))  # the child exited: its partial
    for path in (mine, gone):
        path.write_bytes(b"x")
    assert _ownership.orphans(parked) == [gone]


def test_reads_double_while_the_socket_fills_them_and_halve_when_it_does_not():
    from hfget._reads import FIRST_READ, READ_SIZE, next_read

    size, asked = FIRST_READ, []
    for _ in range(6):  # a body streaming faster than it is read: every read comes back full
        asked.append(size)
        size = next_read(size, size)
    assert asked == [64 << 10, 128 << 10, 256 << 10, 512 << 10, READ_SIZE, READ_SIZE]
    for _ in range(5):  # small files on the same connection: 8 KiB answers
        size = next_read(size, 8 << 10)
    assert size == FIRST_READ  # halved back: a 1 MiB buffer per small answer cost an mmap each
    assert next_read(FIRST_READ, 16 << 10) == FIRST_READ  # a TLS record at a time never grows it


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity and two usable cores")
def test_the_hashers_count_the_cores_the_process_may_use_not_the_machines():
    """Under `taskset -c N` (or a container's CPU set) one core is usable: one hashing thread, not one a core."""
    core = min(os.sched_getaffinity(0))
    code = (f"import os; os.sched_setaffinity(0, {{{core}}}); from hfget._verify import PrefixHasher; "
            "print(len(PrefixHasher()._threads))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"

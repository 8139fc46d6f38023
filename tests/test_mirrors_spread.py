"""Several mirrors at once (issue 11): the ranges of a large file spread over every healthy mirror serving the commit.

The two mirrors are two test Hubs serving the same commit (`Hub.mirror_of`), each with its own CDN origin, so every
request says which mirror it went to. Assertions are on the Hubs' logs and the bytes, never on time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hfget._errors import ExitCode
from hfget._mirrors import Mirrors
from hfget._options import Options
from hfget._spread import Spread
from hub import Fault, Hub
from waiting import wait_until

MiB = 1 << 20
TOKEN = "hf_spread_token"


@pytest.fixture
def second_hub(tmp_path: Path) -> Iterator[Hub]:
    server = Hub(tmp_path / "second-hub").start()
    yield server
    server.stop()


def _snapshot(result) -> Path:
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


def _ranged(hub: Hub) -> list:
    """The CDN bodies a Hub sent as answers to Range requests."""
    return [s for s in hub.requests(origin="cdn", method="GET") if s.range and s.status == 206]


def _twins(hub: Hub, second_hub: Hub, files: dict, *, rate: float | None) -> str:
    commit = hub.create_repo("org/model", files, private=True)
    hub.grant("org/model", TOKEN)
    second_hub.mirror_of(hub, "org/model")
    for mirror in (hub, second_hub):
        mirror.rate = rate  # capped streams: the file takes more connections, so the second mirror gets some
    return commit


def test_two_mirrors_of_one_commit_both_deliver_ranges_of_one_file(hub: Hub, second_hub: Hub, run_hfget):
    content = os.urandom(64 * MiB)
    commit = _twins(hub, second_hub, {"model.safetensors": content, "config.json": b"{}"}, rate=16 * MiB)

    result = run_hfget("org/model", "--mirror", hub.url, "--mirror", second_hub.url, "--token", TOKEN)

    snapshot = _snapshot(result)
    assert snapshot.name == commit
    assert (snapshot / "model.safetensors").read_bytes() == content  # and hfget verified its sha256
    hub.wait_idle()
    second_hub.wait_idle()
    for mirror in (hub, second_hub):
        assert _ranged(mirror), f"{mirror.url} delivered no range"
        assert sum(s.sent for s in _ranged(mirror)) >= 4 * MiB  # a real share, not a probe cut short
        resolves = mirror.requests(method="GET", contains="/resolve/")
        assert resolves and all(s.authorized for s in resolves)  # the token goes to each mirror it belongs to...
        assert not any(s.authorized for s in mirror.requests(origin="cdn"))  # ...and to no CDN
    # no range fetched twice (a cut range's server pushed some bytes past where the client stopped reading)
    assert sum(s.sent for mirror in (hub, second_hub) for s in _ranged(mirror)) < 1.25 * len(content)
    assert "switching" not in result.stderr


def test_a_mirror_failing_mid_run_is_dropped_and_the_file_completes_from_the_other(
        hub: Hub, second_hub: Hub, run_hfget):
    content = os.urandom(64 * MiB)
    _twins(hub, second_hub, {"model.safetensors": content}, rate=16 * MiB)
    # the first mirror alone needs seconds for the file (8 MiB/s in all), far longer than the second needs to fail
    # three times: the run cannot end before the evidence is in, however the machine schedules it
    hub.total_rate = 8 * MiB
    # the second mirror sends 1 MiB of its first range, then it and its CDN answer only 500
    second_hub.faults += [Fault("reset", origin="cdn", after=MiB), Fault("status", status=500, origin="cdn",
                          times=1000, skip=1), Fault("status", status=500, match="/resolve/", times=1000, skip=1)]

    result = run_hfget("org/model", "--mirror", hub.url, "--mirror", second_hub.url, "--token", TOKEN)

    assert (_snapshot(result) / "model.safetensors").read_bytes() == content
    assert f"switching from {second_hub.url} to {hub.url}" in result.stderr
    hub.wait_idle()
    second_hub.wait_idle()
    failed = [s for s in second_hub.file_gets() if s.status == 500]
    # dropped on the evidence (3 points), not asked again and again: beyond the failures that made the evidence, at
    # most the requests already in flight to it then (one per connection of the file)
    assert 1 <= len(failed) <= Options().connections
    dropped_at = max(s.at for s in failed)
    assert [s for s in hub.file_gets() if s.at > dropped_at]  # the rest came from the first mirror
    assert sum(s.sent for mirror in (hub, second_hub) for s in _ranged(mirror)) < 1.5 * len(content)


def test_a_mirror_whose_bodies_stall_mid_way_is_blamed_not_the_one_in_use(hub: Hub, second_hub: Hub, run_hfget):
    """A body that stalls mid-way counts against the mirror that sent it: with ranges spread over two mirrors,
    the second one's stalls must drop the second, not the first (the one in use, which was blamed for them)."""
    content = os.urandom(64 * MiB)
    _twins(hub, second_hub, {"model.safetensors": content}, rate=16 * MiB)
    hub.total_rate = 8 * MiB  # the run lasts long enough for the second mirror's evidence to come in
    second_hub.faults.append(Fault("stall", origin="cdn", after=256 << 10, seconds=60, times=1000))

    result = run_hfget("org/model", "--mirror", hub.url, "--mirror", second_hub.url, "--token", TOKEN,
                       "--stall-timeout", "2")

    assert (_snapshot(result) / "model.safetensors").read_bytes() == content
    assert f"switching from {second_hub.url} to {hub.url}" in result.stderr
    assert f"switching from {hub.url}" not in result.stderr


def test_a_mirror_that_lags_far_behind_is_dropped_and_holds_no_range_to_the_end(
        hub: Hub, second_hub: Hub, run_hfget):
    content = os.urandom(64 * MiB)
    _twins(hub, second_hub, {"model.safetensors": content}, rate=16 * MiB)
    second_hub.rate = MiB // 4  # a sixty-fourth of the first mirror's speed per connection

    result = run_hfget("org/model", "--mirror", hub.url, "--mirror", second_hub.url, "--token", TOKEN)

    assert (_snapshot(result) / "model.safetensors").read_bytes() == content
    assert f"switching from {second_hub.url} to {hub.url}: it delivers" in result.stderr
    hub.wait_idle()
    second_hub.wait_idle()
    assert _ranged(second_hub)  # it was tried...
    assert sum(s.sent for s in _ranged(second_hub)) < 8 * MiB  # ...and its ranges went to the first mirror
    assert "attempts" not in result.stderr


def test_a_mirror_serving_an_older_commit_gets_no_range(hub: Hub, second_hub: Hub, run_hfget):
    content = os.urandom(32 * MiB)
    _twins(hub, second_hub, {"model.safetensors": content, "config.json": b'{"v": 1}'}, rate=16 * MiB)
    new = second_hub.commit("org/model", {"config.json": b'{"v": 2}'})  # the first mirror lags behind

    result = run_hfget("org/model", "--mirror", hub.url, "--mirror", second_hub.url, "--token", TOKEN)

    snapshot = _snapshot(result)
    assert snapshot.name == new and (snapshot / "model.safetensors").read_bytes() == content
    assert hub.file_gets() == []  # asked for the revision only
    assert len(_ranged(second_hub)) >= 2


def test_one_mirror_of_several_left_is_used_for_everything_as_before(hub: Hub, second_hub: Hub, run_hfget):
    content = os.urandom(32 * MiB)
    _twins(hub, second_hub, {"model.safetensors": content}, rate=16 * MiB)
    second_hub.stop()  # unreachable at the lookup: never in the run

    result = run_hfget("org/model", "--mirror", hub.url, "--mirror", second_hub.url, "--token", TOKEN)

    assert (_snapshot(result) / "model.safetensors").read_bytes() == content
    assert len(_ranged(hub)) >= 2 and second_hub.file_gets() == []


def _lookups(hub: Hub, commit: str) -> list:
    return [s for s in hub.requests(origin="hub", method="GET") if s.path.endswith(f"/revision/{commit}")]


def _pinned_run_after_the_lookup(hub: Hub, second_hub: Hub, run_hfget, commit: str, then: tuple[Fault, ...] = ()):
    """`-r commit -m hub -m second_hub`, the first mirror's probe held (a stall at its first byte) until the
    second mirror has answered the lookup of the commit, so the order does not depend on the machine's speed;
    `then`: faults the first mirror applies from that moment."""
    hub.faults.append(Fault("stall", origin="cdn", after=0, seconds=600))
    outcome: list = []
    run = threading.Thread(target=lambda: outcome.append(run_hfget(
        "org/model", "-r", commit, "--mirror", hub.url, "--mirror", second_hub.url, "--token", TOKEN)))
    run.start()
    try:
        wait_until(lambda: _lookups(second_hub, commit) and hub.stalling,
                   "the second mirror's answer about the pinned commit, with the first mirror's probe held")
    finally:
        hub.faults.extend(then)
        hub.release_stalls()
        run.join(timeout=120)
    assert outcome, "hfget did not finish"
    return outcome[0]


def test_a_pinned_commit_spreads_over_the_mirrors_serving_it(hub: Hub, second_hub: Hub, run_hfget):
    """`-r <commit>` with two mirrors (a CI job pinning its weights): the second mirror is asked for the commit while
    the file is fetched from the first, and once it answers, it delivers ranges of the file too."""
    content = os.urandom(64 * MiB)
    commit = _twins(hub, second_hub, {"model.safetensors": content}, rate=16 * MiB)
    result = _pinned_run_after_the_lookup(hub, second_hub, run_hfget, commit)

    assert (_snapshot(result) / "model.safetensors").read_bytes() == content
    hub.wait_idle()
    second_hub.wait_idle()
    assert _lookups(hub, commit) == []  # the first mirror serves the listing: it is not asked again
    assert _ranged(second_hub), "the mirror found serving the commit delivered no range of the file"
    assert _ranged(hub)


def test_a_pinned_commit_is_not_asked_of_a_mirror_that_lacks_it(hub: Hub, second_hub: Hub, run_hfget):
    """A mirror one commit behind answers 404 for the pinned one: no file is asked of it."""
    _twins(hub, second_hub, {"config.json": b"{}"}, rate=16 * MiB)  # the second mirror stops at this commit
    content = os.urandom(32 * MiB)
    commit = hub.commit("org/model", {"model.safetensors": content})
    result = _pinned_run_after_the_lookup(hub, second_hub, run_hfget, commit)

    assert (_snapshot(result) / "model.safetensors").read_bytes() == content
    hub.wait_idle()
    second_hub.wait_idle()
    assert [s.status for s in _lookups(second_hub, commit)] == [404]
    assert second_hub.file_gets() == [] and len(_ranged(hub)) >= 2


def test_a_mirror_that_lacks_the_pinned_commit_is_not_failed_over_to(hub: Hub, second_hub: Hub, run_hfget):
    """The first mirror then fails three times (503): with the other one known to lack the commit, hfget keeps to
    the first and retries, instead of moving to a mirror that can only answer 404 (the run then failed)."""
    _twins(hub, second_hub, {"config.json": b"{}"}, rate=16 * MiB)
    content = os.urandom(32 * MiB)
    commit = hub.commit("org/model", {"model.safetensors": content})

    result = _pinned_run_after_the_lookup(hub, second_hub, run_hfget, commit,
                                          then=(Fault("status", origin="cdn", status=503, times=3),))

    assert (_snapshot(result) / "model.safetensors").read_bytes() == content
    second_hub.wait_idle()
    assert second_hub.file_gets() == []


@pytest.mark.parametrize("answer", ["RevisionNotFound", "a bare 404"])
def test_a_pinned_commit_that_the_first_mirror_lacks_comes_from_the_next(hub: Hub, second_hub: Hub, run_hfget,
                                                                          answer: str):
    """The first mirror is a commit behind: its 404 for the pinned commit's listing (the Hub's RevisionNotFound, or
    a bare 404 as nginx and proxies send) moves the run to the next mirror (a line says so), and nothing else is
    asked of it."""
    _twins(hub, second_hub, {"config.json": b"{}"}, rate=None)  # the second mirror stops at this commit
    content = os.urandom(16 * MiB)
    commit = hub.commit("org/model", {"model.safetensors": content})
    if answer == "a bare 404":
        second_hub.faults.append(Fault("status", origin="hub", status=404, match=f"/tree/{commit}"))

    result = run_hfget("org/model", "-r", commit, "--mirror", second_hub.url, "--mirror", hub.url, "--token", TOKEN)

    assert (_snapshot(result) / "model.safetensors").read_bytes() == content
    assert f"switching from {second_hub.url} to {hub.url}" in result.stderr
    second_hub.wait_idle()
    assert second_hub.file_gets() == [] and all(s.status == 404 for s in second_hub.log)


def test_a_pinned_commit_on_no_mirror_names_them_all(hub: Hub, second_hub: Hub, run_hfget):
    _twins(hub, second_hub, {"config.json": b"{}"}, rate=None)
    missing = "0123456789abcdef" * 2 + "01234567"

    result = run_hfget("org/model", "-r", missing, "--mirror", hub.url, "--mirror", second_hub.url, "--token", TOKEN)

    assert result.returncode == ExitCode.NOT_FOUND, result.stderr
    assert f"is on none of the mirrors: {hub.url}, {second_hub.url}" in result.stderr
    assert "may not have synced it yet" in result.stderr


def test_a_pinned_commit_already_cached_asks_no_mirror(hub: Hub, second_hub: Hub, run_hfget):
    content = os.urandom(32 * MiB)
    commit = _twins(hub, second_hub, {"model.safetensors": content}, rate=None)
    arguments = ("org/model", "-r", commit, "--mirror", hub.url, "--mirror", second_hub.url, "--token", TOKEN)
    _snapshot(run_hfget(*arguments))
    hub.wait_idle()
    second_hub.wait_idle()
    hub.clear_log()
    second_hub.clear_log()

    assert (_snapshot(run_hfget(*arguments)) / "model.safetensors").read_bytes() == content
    assert hub.log == [] and second_hub.log == []


def test_new_ranges_go_where_they_add_speed():
    mirrors = Mirrors(["a", "b"], on_switch=lambda *_: None)
    assert Spread(mirrors).choose() == "a" and mirrors.serving == ("a",)  # not known to serve the commit yet
    mirrors.keep(["a", "b"])  # a revision lookup found both serving it
    spread = Spread(mirrors)
    assert spread.choose("a") == "a"  # a probe goes where it is told
    assert spread.choose() == "b"  # never tried: tried next
    assert [spread.choose() for _ in range(4)] == ["a", "b", "a", "b"]  # nothing measured: alternate
    meters = spread._meters
    meters["a"].speed, meters["b"].speed = 120e6, 40e6  # a delivers three times what b does
    for endpoint in ("a", "b"):
        meters[endpoint].in_flight = 0
        meters[endpoint].since = 0.0
    placed = [spread.choose() for _ in range(8)]
    assert placed.count("a") == 6 and placed.count("b") == 2  # in proportion to the speed each delivers


def test_a_mirror_that_failed_before_its_first_byte_is_not_taken_for_untried_again():
    mirrors = Mirrors(["a", "b", "c"], on_switch=lambda *_: None)
    mirrors.keep(["a", "b", "c"])
    spread = Spread(mirrors)
    assert spread.choose() == "a"
    spread.closed("a")  # refused before a byte came (a cap: no blame), so nothing was measured
    assert spread.choose() == "b"  # the next never asked, not "a" again
    assert spread.choose() == "c"


def test_a_mirror_found_without_the_commit_is_excluded_unless_it_is_the_one_in_use():
    switches: list = []
    mirrors = Mirrors(["a", "b", "c"], on_switch=lambda *s: switches.append(s))
    mirrors.exclude("b")
    assert mirrors.remaining == ("a", "c") and switches == []  # no event: a lookup's thread calls it
    mirrors.exclude("a")  # the one in use: its own answers drop it
    assert mirrors.remaining == ("a", "c")
    mirrors.confirm("c")
    assert mirrors.serving == ("a", "c")


def test_dropping_a_mirror_that_is_not_the_one_in_use():
    switches: list[tuple[str, str, str]] = []
    mirrors = Mirrors(["a", "b", "c"], on_switch=lambda *s: switches.append(s))
    assert not mirrors.blame(2, "stall", "b") and mirrors.healthy("b")
    assert mirrors.blame(1, "500", "b") and not mirrors.healthy("b")
    assert mirrors.current == "a" and mirrors.remaining == ("a", "c")
    assert not mirrors.blame(5, "late evidence", "b")  # a dropped mirror is blamed no more
    assert mirrors.fail_over("down") and mirrors.remaining == ("c",)
    assert switches == [("b", "a", "500"), ("a", "c", "down")]
    assert not mirrors.blame(10, "the last one stays", "c") and mirrors.current == "c"

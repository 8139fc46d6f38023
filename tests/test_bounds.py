"""No server can make hfget wait forever or exhaust the machine (issue 10): each run against the misbehaving
server of tests/hostile.py ends by itself with one line on stderr and a documented exit code."""

from __future__ import annotations

import pytest

import hfget
from hostile import HostileServer


@pytest.fixture
def hostile():
    server = HostileServer().start()
    yield server
    server.stop()


@pytest.mark.parametrize(("mode", "args", "said"), [
    ("loop-pages", ["-r", "c" * 40], "pages repeat"),
    ("redirects", [], "in a loop"),
    ("trickle", [], "to send one answer"),
    ("bomb", [], "more than 256 MiB"),
    ("headers", [], "malformed answer"),
])
def test_hostile_metadata_ends_with_one_line_and_exit_5(hostile: HostileServer, run_hfget, mode, args, said):
    deadline = "60" if mode == "bomb" else "2"  # 256 MiB must not race the deadline on a busy machine
    result = run_hfget("org/model", "--endpoint", f"{hostile.url}/{mode}", *args,
                       env={"HFGET_METADATA_DEADLINE": deadline})
    assert result.returncode == hfget.ExitCode.NETWORK, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("hfget: ") and said in lines[-1], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", ["object", "number", "lfs", "pathless", "sizeless"])
def test_a_file_list_of_another_shape_is_the_endpoints_fault_in_one_line(hostile: HostileServer, run_hfget, kind):
    """hfget reads the tree's entries itself: an answer it cannot read is said to be the endpoint's, with exit 5
    and no traceback (not a bug of hfget's), and nothing is fetched."""
    result = run_hfget("org/model", "--endpoint", f"{hostile.url}/garbled-{kind}", "--retries", "0")
    assert result.returncode == hfget.ExitCode.NETWORK, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("hfget: ") and "garbled" in lines[-1] and "--mirror" in lines[-1], result.stderr
    assert "Traceback" not in result.stderr
    assert any("/tree/" in path for path in hostile.paths)
    assert not any("/resolve/" in path for path in hostile.paths)  # nothing was fetched


def test_a_body_without_end_fails_that_file_once_past_its_size(hostile: HostileServer, run_hfget):
    result = run_hfget("org/model", "--endpoint", f"{hostile.url}/endless", "--retries", "0")
    assert result.returncode == hfget.ExitCode.FAILED, result.stderr
    assert "more than the 10 bytes listed" in result.stderr

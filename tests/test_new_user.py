"""What a new user hit (issue 9): read-only caches, the Python API's arguments, plain 404s, settings errors."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import hfget
from hfget import _schema as hfget_schema
from hub import Hub
from waiting import finish, wait_until

# Tests run as root, where permissions do not stop writes: drop the capabilities that bypass them.
NO_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner",
               "--inh-caps=-dac_override,-dac_read_search,-fowner"]


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.lstat().st_mtime_ns, p.lstat().st_size) for p in root.rglob("*")}


@pytest.fixture
def repo(hub: Hub) -> str:
    return hub.create_repo("org/model", {"config.json": b"{}", "model.safetensors": os.urandom(9 << 20),
                                         "a/b.txt": b"b"})


@pytest.mark.parametrize("offline", [False, True])
def test_a_complete_read_only_cache_serves_a_rerun_and_nothing_is_written(
        hub: Hub, repo: str, tmp_path: Path, run_hfget, offline: bool):
    cache = tmp_path / "cache"
    assert run_hfget("org/model", "--endpoint", hub.url, "--cache-dir", str(cache)).returncode == 0
    before = _tree(cache)
    subprocess.run(["chmod", "-R", "a-w", str(cache)], check=True)
    try:
        env = {**os.environ, **({"HF_HUB_OFFLINE": "1"} if offline else {})}
        result = subprocess.run([*NO_OVERRIDE, sys.executable, "-m", "hfget", "org/model", "--endpoint", hub.url,
                                 "--cache-dir", str(cache), "-q"], env=env, capture_output=True, text=True,
                                timeout=120, stdin=subprocess.DEVNULL)
        probe = subprocess.run([*NO_OVERRIDE, sys.executable, "-c", f"open({str(cache / 'probe')!r}, 'w')"],
                               capture_output=True, timeout=60)
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(cache)], check=True)
    assert probe.returncode != 0, "the test must run where the cache really is read-only"
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).name == repo
    assert _tree(cache) == before


def test_the_python_api_takes_a_string_where_a_list_is_expected(hub: Hub, repo: str, tmp_path: Path, hf_home):
    only_json = hfget.plan("org/model", endpoint=hub.url, cache_dir=tmp_path / "c", include="*.json")
    assert [f.path for f in only_json.files] == ["config.json"]
    no_weights = hfget.plan("org/model", endpoint=hub.url, cache_dir=tmp_path / "c", exclude="*.safetensors")
    assert sorted(f.path for f in no_weights.files) == ["a/b.txt", "config.json"]
    path = hfget.download("org/model", "config.json", endpoint=hub.url, cache_dir=tmp_path / "c",
                          limit_rate="20M")
    assert sorted(p.name for p in path.iterdir()) == ["config.json"]


def test_the_python_api_names_the_keyword_that_is_wrong(hub: Hub, tmp_path: Path, hf_home):
    with pytest.raises(hfget.UsageError, match=r"jobs="):
        hfget.download("org/model", endpoint=hub.url, cache_dir=tmp_path, jobs=0)
    with pytest.raises(hfget.UsageError, match=r"limit_rate="):
        hfget.download("org/model", endpoint=hub.url, cache_dir=tmp_path, limit_rate="fast")
    with pytest.raises(hfget.UsageError, match=r"include="):
        hfget.download("org/model", endpoint=hub.url, cache_dir=tmp_path, include=3)  # type: ignore[arg-type]
    assert hub.log == []


def test_the_python_api_uses_the_configured_mirror(hub: Hub, repo: str, tmp_path: Path, hf_home,
                                                   monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "config.toml"
    config.write_text(f'mirror = ["{hub.url}"]\n')
    monkeypatch.setenv("HFGET_CONFIG", str(config))
    path = hfget.download("org/model", "config.json", cache_dir=tmp_path / "c")
    assert (path / "config.json").read_bytes() == b"{}"


@pytest.mark.parametrize(("content", "named"), [
    ('connections = "abc"\n', "connections in"),
    ("conections = 4\n", "Did you mean 'connections'"),
    ("connections = [\n", "is not valid TOML"),
])
def test_settings_errors_are_one_line_naming_the_file_and_key(tmp_path: Path, run_hfget, content: str, named: str):
    config = tmp_path / "config.toml"
    config.write_text(content)
    for args in (["config"], ["org/model", "--endpoint", "http://127.0.0.1:9"]):
        result = run_hfget(*args, env={"HFGET_CONFIG": str(config)})
        assert result.returncode == 2, result.stderr
        assert named in result.stderr and str(config) in result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_bad_environment_variable_is_named(run_hfget):
    result = run_hfget("config", env={"HFGET_CONNECTIONS": "lots"})
    assert result.returncode == 2 and "HFGET_CONNECTIONS" in result.stderr and "Traceback" not in result.stderr


def test_jobs_zero_is_one_line_naming_the_flag(run_hfget):
    result = run_hfget("org/model", "--jobs", "0", "--endpoint", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [line for line in result.stderr.strip().splitlines()
                                                  if line.startswith("hfget: Bad setting --jobs")]


def test_endpoint_and_a_repo_url_of_another_host_is_a_usage_error(hub: Hub, run_hfget):
    result = run_hfget(f"{hub.url}/org/model", "--endpoint", "http://127.0.0.1:9")
    assert result.returncode == 2 and "--endpoint" in result.stderr
    assert hub.log == []


class _Plain404(http.server.BaseHTTPRequestHandler):
    """nginx in front of nothing: 404 without X-Error-Code for every path."""

    def do_GET(self) -> None:
        body = b"<html><body>404 Not Found</body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_plain_404_is_not_found_naming_the_repo_and_the_endpoint(run_hfget):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Plain404)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = run_hfget("org/mistyped", "--endpoint", url)
    finally:
        server.shutdown()
    assert result.returncode == hfget.ExitCode.NOT_FOUND, result.stderr
    assert "org/mistyped" in result.stderr and url in result.stderr and "ot found" in result.stderr
    assert "trouble" not in result.stderr


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".hfget" in p.name or p.name.endswith(".tmp"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_ranged_download_leaves_nothing_behind_once_resumed(hub: Hub, hf_home: Path, run_hfget, sig):
    big = os.urandom(24 << 20)
    hub.create_repo("org/model", {"model.safetensors": big})
    hub.rate = 2 << 20
    blobs = hf_home / "hub" / "models--org--model" / "blobs"
    proc = subprocess.Popen([sys.executable, "-m", "hfget", "org/model", "--endpoint", hub.url, "-c", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # under way: its pieces are read to their end, so none is in the Hub's log (of requests done) before the end
    wait_until(lambda: any(p.name.endswith(".ranges") for p in blobs.glob("*")) and hub.cdn_bodies_in_flight >= 2,
               "a ranged download under way")
    proc.send_signal(sig)
    finish(proc, f"hfget after {sig.name}")
    assert proc.returncode == 130
    parked = _leftovers(blobs)
    assert all(".hfget." in name for name in parked), parked  # parked under the shared name, not our own
    hub.rate = None
    result = run_hfget("org/model", "--endpoint", hub.url, "-q")
    assert result.returncode == 0, result.stderr
    assert (Path(result.stdout.strip()) / "model.safetensors").read_bytes() == big
    assert _leftovers(hf_home / "hub") == []


def test_a_pinned_commit_is_not_announced_as_coming_from_the_cache(hub: Hub, repo: str, run_hfget):
    result = run_hfget("org/model", "--endpoint", hub.url, "-r", repo)
    assert result.returncode == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert "from the cache" not in first and "no lookup" in first


def test_verify_after_the_branch_moved_checks_the_cached_commit_and_says_so(hub: Hub, repo: str, run_hfget):
    assert run_hfget("org/model", "--endpoint", hub.url).returncode == 0
    newer = hub.commit("org/model", {"config.json": b'{"v": 2}'})
    result = run_hfget("verify", "org/model", "--endpoint", hub.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"moved from {repo[:12]} to {newer[:12]}" in result.stderr
    assert "3 of 3 files good" in result.stdout


def test_verify_says_whether_the_size_or_the_hash_differs(hub: Hub, repo: str, hf_home: Path, run_hfget):
    path = Path(run_hfget("org/model", "--endpoint", hub.url, "-q").stdout.strip())
    (path / "config.json").resolve().write_bytes(b"{{}")
    (path / "a" / "b.txt").resolve().write_bytes(b"c")
    result = run_hfget("verify", "org/model", "--endpoint", hub.url, "--json")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["event"] == "verify" and document["schema_version"] == 1
    problems = {f["path"]: f["problem"] for f in document["files"] if f["status"] == "bad"}
    assert "size" in problems["config.json"] and "does not match" in problems["a/b.txt"]


def test_a_local_dir_download_works_offline(hub: Hub, repo: str, tmp_path: Path, run_hfget):
    target = tmp_path / "local"
    assert run_hfget("org/model", "--endpoint", hub.url, "--local-dir", str(target)).returncode == 0
    hub.clear_log()
    offline = {"HF_HUB_OFFLINE": "1"}
    again = run_hfget("org/model", "--endpoint", hub.url, "--local-dir", str(target), env=offline)
    assert again.returncode == 0, again.stderr
    checked = run_hfget("verify", "org/model", "--endpoint", hub.url, "--local-dir", str(target), env=offline)
    assert checked.returncode == 0, checked.stderr
    hub.stop()
    unreachable = run_hfget("verify", "org/model", "--endpoint", hub.url, "--local-dir", str(target))
    assert unreachable.returncode == 0, unreachable.stderr
    assert hub.log == []


def test_ls_json_names_the_endpoint_and_calls_cached_bytes_partial_bytes(hub: Hub, repo: str, run_hfget):
    result = run_hfget("ls", "org/model", "--endpoint", hub.url, "--json")
    document = json.loads(result.stdout)
    assert document["endpoint"] == hub.url and document["dry_run"] is True
    assert all("partial_bytes" in f for f in document["files"])
    schema = hfget_schema.json_schema()
    assert schema["plan"]["properties"]["commit"]["description"]
    assert "verify" in schema


def test_wording_of_a_dry_run_and_a_cached_rerun(hub: Hub, repo: str, run_hfget):
    dry = run_hfget("org/model", "--endpoint", hub.url, "--dry-run")
    assert "would fetch 3 of 3 files" in dry.stderr and "fetching" not in dry.stderr
    assert run_hfget("org/model", "--endpoint", hub.url).returncode == 0
    again = run_hfget("org/model", "--endpoint", hub.url)
    assert "up to date" in again.stderr and "done: 0 files" not in again.stderr
    one = run_hfget("org/model", "config.json", "--endpoint", hub.url, "-r", repo, "--dry-run")
    assert "1 files" not in one.stdout + one.stderr


def test_config_shows_plain_values_and_the_endpoint_that_wins(run_hfget):
    result = run_hfget("config", env={"HFGET_MIRROR": "a.example,b.example"})
    assert result.returncode == 0, result.stderr
    assert "mirror = a.example, b.example  (from HFGET_MIRROR)" in result.stdout
    assert "endpoint in use = https://a.example, then https://b.example" in result.stdout
    assert "None" not in result.stdout and "[" not in result.stdout


def test_a_blob_url_with_quiet_prints_the_file(hub: Hub, repo: str, run_hfget):
    result = run_hfget(f"{hub.url}/org/model/blob/main/config.json", "-q")
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).name == "config.json"
    assert Path(result.stdout.strip()).read_bytes() == b"{}"

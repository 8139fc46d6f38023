"""Settings precedence: flags > HFGET_* environment > config file > defaults; `hfget config` says which."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfget._options import Options
from hub import Hub


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.toml"
    path.write_text('connections = 3\nretries = 7\nmirror = ["mirror-from-file.example"]\n')
    monkeypatch.setenv("HFGET_CONFIG", str(path))  # the clean environment has no other HFGET_* variable
    return path


def test_flags_beat_environment_beat_config_file(config_file: Path, monkeypatch: pytest.MonkeyPatch):
    assert Options.build({}).connections == 3
    monkeypatch.setenv("HFGET_CONNECTIONS", "5")
    assert Options.build({}).connections == 5
    assert Options.build({"connections": 2}).connections == 2
    assert Options.build({}).retries == 7 and Options.build({}).jobs == Options.jobs
    assert Options.build({}).mirror == ("mirror-from-file.example",)
    monkeypatch.setenv("HFGET_MIRROR", "a.example, b.example")
    assert Options.build({}).mirror == ("a.example", "b.example")


def test_hfget_config_shows_each_source_and_masks_the_token(config_file: Path, hf_home: Path, run_hfget):
    result = run_hfget("config", env={"HFGET_CONFIG": str(config_file), "HFGET_CONNECTIONS": "5",
                                      "HF_TOKEN": "hf_supersecret"})
    assert result.returncode == 0, result.stderr
    lines = {line.split(" = ")[0]: line for line in result.stdout.splitlines() if " = " in line}
    assert "(from HFGET_CONNECTIONS)" in lines["connections"]
    assert "config file" in lines["retries"] and "7" in lines["retries"]
    assert "default" in lines["jobs"]
    assert "hf_supersecret" not in result.stdout and "***" in lines["token"]


def test_mirrors_from_the_config_file_are_used(hub: Hub, tmp_path: Path, hf_home: Path, run_hfget):
    hub.create_repo("org/model", {"a.txt": b"from the configured mirror"})
    config = tmp_path / "mirrors.toml"
    config.write_text(f'mirror = ["{hub.url}"]\n')
    result = run_hfget("org/model", "-q", env={"HFGET_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    assert (Path(result.stdout.strip()) / "a.txt").read_bytes() == b"from the configured mirror"


def test_a_bad_setting_is_a_usage_error(tmp_path: Path, hf_home: Path, run_hfget):
    config = tmp_path / "bad.toml"
    config.write_text('connections = "many"\n')
    result = run_hfget("org/model", env={"HFGET_CONFIG": str(config)})
    assert result.returncode == 2
    assert "connections" in result.stderr and "Traceback" not in result.stderr

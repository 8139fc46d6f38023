"""Fixtures: a running test Hub, an isolated HF home, and a runner for the real `hfget` command."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub import Hub

TOKEN_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_HOME",
             "HF_HUB_DISABLE_SYMLINKS", "HF_XET_CACHE")


@pytest.fixture
def hub(tmp_path: Path):
    server = Hub(tmp_path / "hub-data", page_size=3).start()
    yield server
    server.stop()


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HF_HOME, so no test reads or writes the user's cache or token."""
    for name in TOKEN_ENV:
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("HFGET_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HFGET_CONFIG", str(tmp_path / "no-config.toml"))  # not the developer's own config
    home = tmp_path / "hf-home"
    home.mkdir()
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return home


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_hfget(hf_home: Path):
    """Run the installed `hfget` in a subprocess (as a user would), with the test's environment."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "hfget", *args],
            capture_output=True, text=True, env=full_env, timeout=timeout, stdin=subprocess.DEVNULL,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run

"""Fixtures: a running test Hub, an isolated HF home, and a runner for the real `hfget` command.

Every test runs in a clean environment (`clean_env`, autouse): none of the developer's HF_* or HFGET_* variables,
token, cache or config file can reach hfget, in a subprocess or in this process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub import Hub

# named one by one for the variables that do not share a prefix with the rest
_HF_NAMES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "HF_HOME", "HF_TOKEN_PATH", "HF_XET_CACHE",
             "HF_ASSETS_CACHE", "HF_DATASETS_CACHE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE",
             "TRANSFORMERS_CACHE")


def _foreign(name: str) -> bool:
    """A variable that would let the developer's own Hugging Face or hfget setup leak into a test."""
    return name in _HF_NAMES or name.startswith(("HF_HUB_", "HFGET_"))


def _scrub(environ: MutableMapping[str, str], home: Path, config: Path) -> None:
    for name in [n for n in environ if _foreign(n)]:
        del environ[name]
    environ["HF_HOME"] = str(home)
    environ["HFGET_CONFIG"] = str(config)  # a file that does not exist: not the developer's own config
    environ["HF_HUB_DISABLE_XET"] = "1"
    environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


_session_home: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    # huggingface_hub reads HF_HOME and friends once, when first imported: scrub the process before any test can
    # import it, so its constants never point at the developer's cache or token either
    global _session_home
    _session_home = tempfile.mkdtemp(prefix="hfget-tests-home-")
    _scrub(os.environ, Path(_session_home) / "hf-home", Path(_session_home) / "no-config.toml")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _session_home is not None:
        shutil.rmtree(_session_home, ignore_errors=True)


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test: a private HF_HOME, no token, no endpoint, no HF_HUB_* or HFGET_* setting, no config file."""
    for name in [n for n in os.environ if _foreign(n)]:
        monkeypatch.delenv(name)
    home = tmp_path / "hf-home"
    home.mkdir()
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HFGET_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return home


@pytest.fixture
def hf_home(clean_env: Path) -> Path:
    """The test's private HF_HOME (the clean environment is there for every test; this names its home)."""
    return clean_env


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    server = Hub(tmp_path / "hub-data", page_size=3).start()
    yield server
    server.stop()


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

"""hfget's own settings: one pydantic-settings model. Flags win, then the environment, then the config file.

    flags (--jobs 8)  >  HFGET_* variables (HFGET_JOBS=8)  >  ~/.config/hfget/config.toml  >  defaults

The config file (`$HFGET_CONFIG`, else `$XDG_CONFIG_HOME/hfget/config.toml`, else `~/.config/hfget/config.toml`):

    mirror = ["hf-mirror.com", "my-mirror.example"]   # fail-over order
    connections = 8
    max_connections = 32
    jobs = 32
    limit_rate = "20M"
    retries = 5
    stall_timeout = 30

The Hub's own variables keep their meaning and are read where huggingface_hub reads them: HF_ENDPOINT,
HF_TOKEN, HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE. `hfget config` shows every value and where it came from.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The defaults, in one place: the pydantic-settings model below takes its field defaults from here.
DEFAULTS: dict[str, Any] = {
    "mirror": [],
    "connections": 8,
    "max_connections": 32,
    "jobs": 32,
    "limit_rate": None,
    "retries": 5,
    "stall_timeout": 30.0,
}


@dataclass(frozen=True)
class Effective:
    """The settings a run uses."""

    mirror: list[str] = field(default_factory=list)
    connections: int = DEFAULTS["connections"]
    max_connections: int = DEFAULTS["max_connections"]
    jobs: int = DEFAULTS["jobs"]
    limit_rate: str | None = None
    retries: int = DEFAULTS["retries"]
    stall_timeout: float = DEFAULTS["stall_timeout"]


@dataclass(frozen=True)
class TransferSettings:
    """What the transfer layer (_transfer.py) is told: resolved from the Effective settings and the flags."""

    max_connections: int = 32  # the whole run's connection budget
    connections_per_file: int = 8
    jobs: int = 32  # files in flight
    min_split: int = 4 << 20  # a range is split only if both halves keep this much; files under 2x are "small"
    connect_timeout: float = 10.0
    stall_timeout: float = 30.0  # a connection that delivers no byte for this long is dropped and retried
    retries: int = 5  # consecutive transient failures tolerated per file before it fails (see _retry.py)
    endpoints: tuple[str, ...] = ()  # the endpoint in use first, then the mirrors to fail over to
    space_check: bool = True  # compare what is still to fetch with the free space before starting
    limit_rate: float | None = None  # bytes per second for the whole run
    # A file gets another connection only while its connections each run slower than this. Where a mirror or
    # CDN caps each stream, more connections multiply throughput; where one stream already runs this fast,
    # the limit is the machine (CPU, disk) and more connections only cost (measured: benchmarks/bench.py).
    split_below: float = 64e6


def config_path() -> Path:
    explicit = os.environ.get("HFGET_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "hfget" / "config.toml"


@functools.cache
def model():
    """The pydantic-settings model. Built on first use: importing pydantic-settings costs ~100 ms, which a run
    with no HFGET_* variable and no config file (the common case, and every benchmark) need not pay."""
    from pydantic import field_validator
    from pydantic_settings import (BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict,
                                   TomlConfigSettingsSource)

    class _Env(PydanticBaseSettingsSource):
        """HFGET_* variables; lists as comma-separated text (pydantic-settings would want JSON)."""

        def get_field_value(self, field, field_name):  # pragma: no cover - __call__ does the work
            return None, field_name, False

        def __call__(self) -> dict[str, Any]:
            return _env_values()

    class Settings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="HFGET_", extra="ignore")

        mirror: list[str] = DEFAULTS["mirror"]
        connections: int = DEFAULTS["connections"]
        max_connections: int = DEFAULTS["max_connections"]
        jobs: int = DEFAULTS["jobs"]
        limit_rate: str | None = DEFAULTS["limit_rate"]
        retries: int = DEFAULTS["retries"]
        stall_timeout: float = DEFAULTS["stall_timeout"]

        @field_validator("mirror", mode="before")
        @classmethod
        def _split(cls, value: Any) -> Any:
            if isinstance(value, str):  # HFGET_MIRROR="a.example,b.example"
                return [part.strip() for part in value.split(",") if part.strip()]
            return value

        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                       file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, _Env(settings_cls), TomlConfigSettingsSource(settings_cls, toml_file=config_path())

    return Settings


def _env_values() -> dict[str, Any]:
    values = {}
    for name in DEFAULTS:
        raw = os.environ.get(f"HFGET_{name.upper()}")
        if raw is not None and raw != "":
            values[name] = raw
    return values


def load(flags: dict[str, Any]) -> Effective:
    """The effective settings; `flags` holds only what the command line actually set."""
    from ._errors import UsageError

    given = {k: v for k, v in flags.items() if v is not None}
    if not _env_values() and not config_path().exists():
        return Effective(**{**DEFAULTS, **given})  # nothing else to read: flags over defaults
    from pydantic import ValidationError

    try:
        settings = model()(**given)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"Bad setting {where}: {first['msg']}.",
                         hint=f"Check the flag, HFGET_{where.upper()} and {config_path()}.") from None
    return Effective(**settings.model_dump())


def sources(flags: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """Each setting's effective value and where it came from: flag, environment, config file or default."""
    settings = load(flags)
    env = _env_values()
    from_file: dict[str, Any] = {}
    if config_path().exists():
        from pydantic_settings import TomlConfigSettingsSource

        try:
            from_file = TomlConfigSettingsSource(model(), toml_file=config_path())()
        except Exception:
            from_file = {}
    out = {}
    for name in DEFAULTS:
        if flags.get(name) is not None:
            origin = "flag"
        elif name in env:
            origin = f"environment (HFGET_{name.upper()})"
        elif name in from_file:
            origin = f"config file ({config_path()})"
        else:
            origin = "default"
        out[name] = (getattr(settings, name), origin)
    return out

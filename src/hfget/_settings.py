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

import os
from pathlib import Path
from typing import Any

from pydantic import field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource


def config_path() -> Path:
    explicit = os.environ.get("HFGET_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "hfget" / "config.toml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HFGET_", extra="ignore")

    mirror: list[str] = []
    connections: int = 8
    max_connections: int = 32
    jobs: int = 32
    limit_rate: str | None = None
    retries: int = 5
    stall_timeout: float = 30.0

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


class _Env(PydanticBaseSettingsSource):
    """HFGET_* variables; lists as comma-separated text (pydantic-settings would want JSON)."""

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ does the work
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values = {}
        for name in self.settings_cls.model_fields:
            raw = os.environ.get(f"HFGET_{name.upper()}")
            if raw is not None and raw != "":
                values[name] = raw
        return values


def load(flags: dict[str, Any]) -> Settings:
    """The effective settings; `flags` holds only what the command line actually set."""
    from pydantic import ValidationError

    from ._errors import UsageError

    try:
        return Settings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"Bad setting {where}: {first['msg']}.",
                         hint=f"Check the flag, HFGET_{where.upper()} and {config_path()}.") from None


def sources(flags: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """Each setting's effective value and where it came from: flag, environment, config file or default."""
    settings = load(flags)
    env = _Env(Settings)()
    try:
        from_file = TomlConfigSettingsSource(Settings, toml_file=config_path())()
    except Exception:
        from_file = {}
    out = {}
    for name in Settings.model_fields:
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

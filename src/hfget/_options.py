"""One typed, frozen options object for a run, built once: explicit values > HFGET_* > config file > defaults.

    explicit (a flag, or a keyword of hfget.download)  >  HFGET_JOBS=8  >  ~/.config/hfget/config.toml  >  default

The defaults are the field defaults of `Options` and are written nowhere else. The CLI, `sync`, `verify`,
`plan()` and `download()` all call `Options.build`, so every entry point honours the same settings.

The config file (`$HFGET_CONFIG`, else `$XDG_CONFIG_HOME/hfget/config.toml`, else `~/.config/hfget/config.toml`)
holds the settings of `SETTINGS`; an unknown key is an error that suggests the closest known one.

Each source is validated on its own before they are merged, so an error names where the bad value came from
(`--jobs`, `jobs=`, `HFGET_JOBS`, or the file and key). That, and the `origins` that `hfget config` shows, is why
the sources are read here rather than through pydantic-settings, which merges first and validates after.

The Hub's own variables keep their meaning and are read where huggingface_hub reads them: HF_ENDPOINT,
HF_TOKEN, HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE, HF_HUB_DISABLE_SYMLINKS, HF_HUB_DISABLE_PROGRESS_BARS, and
HF_HUB_DOWNLOAD_TIMEOUT / HF_HUB_ETAG_TIMEOUT when `first_byte_timeout` is not set. Without `proxy`, the usual
HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY apply; without `ca_bundle`, SSL_CERT_FILE, REQUESTS_CA_BUNDLE and
CURL_CA_BUNDLE (see _network.py).
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from ._errors import UsageError

if TYPE_CHECKING:
    from pydantic import BaseModel

Caller = Literal["flag", "argument"]


def _rate(value: Any) -> Any:
    """`20M` -> 20e6 bytes/s: pydantic's ByteSize units (K, M, G decimal; KiB, MiB binary), plus `Mi` and `/s`."""
    if not isinstance(value, str):
        return value
    from pydantic import ByteSize, TypeAdapter, ValidationError

    text = value.strip().removesuffix("/s")
    if text[-1:] in ("i", "I"):
        text += "B"
    try:
        return float(TypeAdapter(ByteSize).validate_python(text))
    except ValidationError:
        raise ValueError(f"not a rate: {value!r} (use bytes per second such as 20M, 500K or 1.5MiB)") from None


def _names(value: Any) -> Any:
    """A list of mirrors: a list, or text with commas (HFGET_MIRROR="a.example,b.example")."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _proxy_url(value: str | None) -> str | None:
    """`http://`, `https://`, `socks5://` or `socks5h://`, with a host (and optionally `user:password@`)."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(value.strip())
    if parts.scheme not in PROXY_SCHEMES or not parts.hostname:
        raise ValueError(f"not a proxy URL: {mask_url(value)!r} (use {', '.join(s + '://' for s in PROXY_SCHEMES)} "
                         "followed by host:port)")
    return value.strip()


PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")


def mask_url(url: str) -> str:
    """The URL with any `user:password@` replaced by `***@`: what may be printed of a proxy."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[1]
    return f"{scheme}{sep}{authority}{slash}{path}"


@dataclass(frozen=True)
class Options:
    """How a run fetches. Frozen; build it with `Options.build` (`dataclasses.replace` for a variant)."""

    # settings: also read from HFGET_* and the config file
    mirror: tuple[str, ...] = ()
    jobs: int = 64  # files in flight at once
    max_connections: int = 64  # connections for the whole run
    connections: int = 12  # connections for one large file (README, "mirror": why 12)
    limit_rate: float | None = None
    retries: int = 5  # transient failures in a row per file
    stall_timeout: float = 30.0  # seconds without a byte before a connection is dropped
    metadata_deadline: float = 120.0  # seconds for one whole metadata answer
    first_byte_timeout: float = 300.0  # seconds to wait for an answer to begin
    proxy: str | None = field(default=None, repr=False)
    ca_bundle: Path | None = None
    # the run only: explicit values
    endpoint: str | None = None
    token: str | None = field(default=None, repr=False)
    cache_dir: Path | None = None
    local_dir: Path | None = None
    offline: bool | None = None  # None: HF_HUB_OFFLINE decides
    space_check: bool = True
    # where each setting came from: "explicit", "environment", "config file" or "default"
    origins: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def connections_per_file(self) -> int:
        return min(self.connections, self.max_connections)

    @property
    def files_in_flight(self) -> int:
        return min(self.jobs, self.max_connections)

    def splits(self, size: int) -> bool:
        """A file of `size` bytes is fetched in ranges over several connections (_large.py), not in one GET."""
        from ._pieces import MIN_SPLIT

        return size >= 2 * MIN_SPLIT and self.connections_per_file > 1

    def first_byte_wait(self, kind: Literal["file", "metadata"]) -> float:
        """Seconds to wait for an answer to begin: `first_byte_timeout` when it was set anywhere, else
        huggingface_hub's HF_HUB_DOWNLOAD_TIMEOUT (files) or HF_HUB_ETAG_TIMEOUT (metadata) when set, else the
        default. Their own default (10 s) is not taken: a caching proxy may fetch a whole file before it answers."""
        if self.origins.get("first_byte_timeout", "default") != "default":
            return self.first_byte_timeout
        variable = "HF_HUB_DOWNLOAD_TIMEOUT" if kind == "file" else "HF_HUB_ETAG_TIMEOUT"
        raw = os.environ.get(variable)
        if not raw:
            return self.first_byte_timeout
        try:
            seconds = float(raw)
        except ValueError:
            seconds = 0.0
        if not seconds > 0:
            raise UsageError(f"Bad setting {variable}: not a number of seconds above 0 (got {raw!r}).")
        return seconds

    @classmethod
    def build(cls, given: Mapping[str, Any] | None = None, *, caller: Caller = "argument") -> Options:
        """The options of a run: `given` holds what the caller set explicitly (None means "not set")."""
        explicit = _checked({k: v for k, v in (given or {}).items() if v is not None},
                            lambda name: _label(name, caller))
        env = _checked(environment_values(), lambda name: f"HFGET_{name.upper()}")
        path = config_path()
        from_file = _checked(read_config(path), lambda name: f"{name} in {path}")
        merged = {**from_file, **env, **explicit}
        origins = {name: "explicit" if name in explicit else "environment" if name in env
                   else "config file" if name in from_file else "default" for name in SETTINGS}
        return cls(**merged, origins=origins)


SETTINGS = ("mirror", "jobs", "max_connections", "connections", "limit_rate", "retries", "stall_timeout",
            "metadata_deadline", "first_byte_timeout", "proxy", "ca_bundle")


def _label(name: str, caller: Caller) -> str:
    return f"--{name.replace('_', '-')}" if caller == "flag" else f"{name}="


BOUNDS = {"jobs": (1, 256), "max_connections": (1, 256), "connections": (1, 64), "retries": (0, 100)}
SECONDS = ("stall_timeout", "metadata_deadline", "first_byte_timeout")  # above 0
_UNSURE = object()


def _checked(values: dict[str, Any], label: Any) -> dict[str, Any]:
    """The values converted to their fields' types, or a UsageError naming the first bad one (`label(name)`).
    Values of the plain kinds (see `_plain`) are converted here; if any is not, the pydantic model (`_model`)
    checks them all: it is the definition of what is valid, and gives the messages."""
    converted = {name: _plain(name, value) for name, value in values.items()}
    if _UNSURE not in converted.values():
        return converted
    from pydantic import ValidationError

    try:
        model = _model().model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        message = str(first["msg"]).removeprefix("Value error, ")
        shown = first.get("input")
        if name == "proxy" and isinstance(shown, str):
            shown = mask_url(shown)  # a proxy's credentials are never printed
        raise UsageError(f"Bad setting {label(name)}: {message[:1].lower()}{message[1:]} (got {shown!r}).",
                         hint=_fix_hint(label(name))) from None
    return {name: getattr(model, name) for name in values}


def _plain(name: str, value: Any) -> Any:
    """`value` as the model converts it, when it is of a kind whose conversion is plain (an int in bounds, digits,
    a str, a Path...); _UNSURE for anything else. A test holds it to the model's answers."""
    kind = type(value)
    if name in BOUNDS and (kind is int or (kind is str and re.fullmatch(r"[0-9]{1,9}", value))):
        number = int(value)
        return number if BOUNDS[name][0] <= number <= BOUNDS[name][1] else _UNSURE
    if name in SECONDS and (kind in (int, float) or (kind is str and re.fullmatch(r"[0-9]{1,9}(\.[0-9]{1,9})?",
                                                                                 value))):
        seconds = float(value)
        return seconds if 0 < seconds < float("inf") else _UNSURE
    if name == "limit_rate" and kind in (int, float):
        return float(value) if 0 < value < float("inf") else _UNSURE
    if name == "mirror" and (kind is str or (kind in (list, tuple) and all(type(v) is str for v in value))):
        return _names(value) if kind is str else tuple(value)
    if name in ("endpoint", "token") and kind is str:
        return value
    if name == "proxy" and kind is str:
        return _plain_proxy(value)
    if name in ("ca_bundle", "cache_dir", "local_dir") and (kind is str or isinstance(value, Path)) \
            and "\0" not in str(value):
        return Path(value)
    if name in ("offline", "space_check") and kind is bool:
        return value
    return _UNSURE


def _plain_proxy(value: str) -> Any:
    try:
        return _proxy_url(value)
    except ValueError:
        return _UNSURE


@functools.cache
def _model() -> type[BaseModel]:
    """What a valid setting is, as pydantic checks it: built the first time a value is not plain, which a run with
    plain flags and settings never needs."""
    from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

    def bounded(name: str, default: int) -> Any:
        return Field(default, ge=BOUNDS[name][0], le=BOUNDS[name][1])

    class Checked(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid")

        mirror: Annotated[tuple[str, ...], BeforeValidator(_names)] = ()
        jobs: int = bounded("jobs", Options.jobs)
        max_connections: int = bounded("max_connections", Options.max_connections)
        connections: int = bounded("connections", Options.connections)
        limit_rate: Annotated[float | None, BeforeValidator(_rate), Field(gt=0)] = None
        retries: int = bounded("retries", Options.retries)
        stall_timeout: float = Field(Options.stall_timeout, gt=0)
        metadata_deadline: float = Field(Options.metadata_deadline, gt=0)
        first_byte_timeout: float = Field(Options.first_byte_timeout, gt=0)
        proxy: Annotated[str | None, AfterValidator(_proxy_url)] = None
        ca_bundle: Path | None = None
        endpoint: str | None = None
        token: str | None = None
        cache_dir: Path | None = None
        local_dir: Path | None = None
        offline: bool | None = None
        space_check: bool = True

    return Checked


def _fix_hint(where: str) -> str | None:
    if " in " in where:
        return f"Fix the key{where[where.index(' in '):]}."
    return None


def config_path() -> Path:
    explicit = os.environ.get("HFGET_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "hfget" / "config.toml"


def environment_values() -> dict[str, str]:
    values = {}
    for name in SETTINGS:
        raw = os.environ.get(f"HFGET_{name.upper()}")
        if raw:
            values[name] = raw
    return values


def read_config(path: Path) -> dict[str, Any]:
    """The config file's settings ({} when there is none); unknown keys are errors."""
    data = read_toml(path, missing_ok=True)
    check_keys(data, SETTINGS, where=str(path))
    return data


def check_keys(data: Mapping[str, Any], known: tuple[str, ...], *, where: str) -> None:
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"Did you mean {close[0]!r}?" if close else f"Known keys: {', '.join(known)}."
            raise UsageError(f"{where}: unknown key {key!r}.", hint=hint)


def read_toml(path: Path, *, missing_ok: bool = False) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise UsageError(f"No file at {path}.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"Cannot read {path}: {error}.") from None
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]
    try:
        data: dict[str, Any] = tomllib.loads(text)
        return data
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{path} is not valid TOML: {error}.") from None


def describe(options: Options) -> list[tuple[str, str, str]]:
    """(name, value as text, origin) for each setting, as `hfget config` shows them."""
    rows = []
    for name in SETTINGS:
        value = getattr(options, name)
        origin = options.origins.get(name, "default")
        if origin == "environment":
            origin = f"from HFGET_{name.upper()}"
        elif origin == "config file":
            origin = f"from config file {config_path()}"
        elif origin == "explicit":
            origin = "from the command line"
        rows.append((name, mask_url(value) if name == "proxy" and value else _text(value), origin))
    return rows


def _text(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, tuple):
        return ", ".join(value) if value else "(none)"
    return str(value)


def names(value: object, what: str) -> tuple[str, ...]:
    """A string or a list of strings, as a tuple (a string is one name, never its characters); anything else is a
    UsageError naming `what` (`include=`, or `hfget.toml: include`)."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise UsageError(f"{what} must be a string or a list of strings, not {type(value).__name__}.")

"""Typer's parameter conversion for the plain types of hfget's options (str, int, float, bool, Path, lists of
them), without pydantic.

Typer (0.29) converts each parameter through a pydantic `TypeAdapter` it builds when the command runs, one per
parameter, given or not: on a run that fetches nothing, that was a fifth of a second of a second's run. Here a
value of the plain form (a string; digits for a number; a path without NUL) is converted the way Typer converts
it; any other value or type goes to Typer's own conversion, built then, with its own checks and error messages.
A Typer without this machinery (`typer._coercion`, `_runtime_param`, `type_descriptor`) is left as it is.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param

_UNSURE = object()
_NUMBER = {int: re.compile(r"[0-9]{1,18}"), float: re.compile(r"[0-9]{1,15}(\.[0-9]{1,15})?")}


def install(command: Any, ctx: Any) -> None:
    """Give each parameter of the command (and of its sub-commands), --help included, the plain conversion, where
    Typer would build an adapter. `ctx`: the command's context (its help option's names are the context's)."""
    for sub in getattr(command, "commands", {}).values():
        install(sub, ctx)
    for param in command.get_params(ctx):
        descriptor = getattr(param, "type_descriptor", None)
        if getattr(param, "_runtime_param", _UNSURE) is None and isinstance(descriptor, TypeDescriptor) \
                and _plain_type(descriptor.annotation) and _no_extras(descriptor.parameter_info):
            param._runtime_param = _Plain(descriptor.parameter_info, descriptor.annotation, descriptor)


def _no_extras(info: Any) -> bool:
    """No custom parser or click type, no bounds: nothing of Typer's conversion but the type itself."""
    return all(getattr(info, name, None) is None for name in ("parser", "click_type", "min", "max"))


def _plain_type(annotation: Any) -> bool:
    if getattr(annotation, "__origin__", None) is list:
        return all(_plain_type(a) for a in annotation.__args__)
    return annotation in (str, int, float, bool, Path)


@dataclass(frozen=True)
class _Plain(RuntimeParam):
    descriptor: TypeDescriptor

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        converted = _convert(self.annotation, value, self.parameter_info)
        if converted is _UNSURE:
            return build_runtime_param(self.descriptor)._coerce_value(value, param=param, ctx=ctx)
        return converted


def _convert(annotation: Any, value: Any, info: Any) -> Any:
    if getattr(annotation, "__origin__", None) is list:
        items = [_convert(annotation.__args__[0], v, info) for v in (value if isinstance(value, (list, tuple))
                                                                      else [value])]
        return _UNSURE if _UNSURE in items else items
    if annotation is bool:  # a flag: click gives a bool, or None when it is absent (handled before this)
        return value if isinstance(value, bool) else _UNSURE
    if not isinstance(value, str):
        return _UNSURE
    if annotation is str:
        return value
    if annotation in _NUMBER:
        return annotation(value) if _NUMBER[annotation].fullmatch(value) else _UNSURE
    return _path(value, info)


def _path(value: str, info: Any) -> Any:
    """Typer's checks of a path with its default flags: nothing asked of it, except to be readable if it exists."""
    defaults = (info.exists, info.file_okay, info.dir_okay, info.writable, info.readable, info.resolve_path,
                info.allow_dash, info.path_type)
    if "\0" in value or defaults != (False, True, True, False, True, False, False, None):
        return _UNSURE
    try:
        os.stat(value)
    except OSError:
        return Path(value)
    return Path(value) if os.access(value, os.R_OK) else _UNSURE

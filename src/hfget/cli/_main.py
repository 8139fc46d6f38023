"""What `hfget` runs: the whole Typer app, or a lean copy of it where that says the same for less.

Typer builds every command's parameters before it parses a word. For `hfget REPO ...` (a download, the most
frequent run) only the download command is given to it, and for `hfget --help` (the list of commands) the
commands without their parameters: the text and the behaviour are the whole app's (a test compares them).
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from .._errors import ExitCode
from .._memory import lighter_collection
from .._process import interrupt_on_sigterm
from ._app import _APP, app, download
from ._usage import completing


def run() -> None:
    from . import _mirrors_cmd  # noqa: F401  (registers `hfget mirrors`: a module of its own)

    interrupt_on_sigterm()
    with lighter_collection():  # _memory.py (`hfget serve` returns to Python's own collection: it runs for days)
        try:
            _app_for(sys.argv[1:])()
        except KeyboardInterrupt:
            print("hfget: Interrupted.", file=sys.stderr)
            sys.exit(ExitCode.INTERRUPTED)


def _app_for(argv: list[str]) -> typer.Typer:
    """The app to run: all of it, or for `hfget REPO ...` (a download, the most frequent run) the same app with the
    download command alone, which it would run anyway, so Typer does not build every other command first."""
    first = argv[0] if argv else ""
    names = {info.name or typer.main.get_command_name(getattr(info.callback, "__name__", ""))
             for info in app.registered_commands}
    if completing():
        return app  # shell completion: everything
    if first in ("", "--help", "-h") and len(argv) <= 1:  # the list of commands: their names and help only
        return _lean([_listed(info) for info in app.registered_commands])
    if first.startswith("-") or first in names:
        return app
    return _lean([info for info in app.registered_commands if info.callback is download])


def _lean(commands: list[Any]) -> typer.Typer:
    lean = typer.Typer(**_APP)
    lean.registered_callback = app.registered_callback
    lean.registered_commands = commands
    return lean


def _listed(info: Any) -> Any:
    """A command as `hfget --help` lists it (name, help, epilog) without its parameters, which Typer would build."""
    import copy

    def listed() -> None:
        pass

    listed.__name__, listed.__doc__ = info.callback.__name__, info.callback.__doc__
    shown = copy.copy(info)
    shown.callback = listed
    return shown

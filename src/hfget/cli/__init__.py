"""The `hfget` command: a Typer app over the engine; the only package that imports typer and rich."""


def main() -> None:
    import os
    import sys

    if sys.argv[1:] in (["--help"], ["-h"]):  # the list of commands, rendered ahead of time where it holds
        from . import _usage

        if _usage.ready():
            sys.stdout.write(_usage.TEXT)
            return
    if sys.argv[1:] == ["--version"]:  # what the root command's --version prints, without building it
        from .._version import version_line

        print(version_line())
        return
    # pydantic (Typer's conversion of what cli/_convert.py leaves to it, a setting that is not plain) scans every
    # installed package's entry points for plugins on first use (about 12 ms); hfget uses none.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from .._process import own
    from ._main import run

    own()  # hfget may tune what the process shares: its allocator, huggingface_hub's session (_process.py)

    run()

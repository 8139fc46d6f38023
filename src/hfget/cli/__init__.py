"""The `hfget` command: a Typer app over the engine; the only package that imports typer and rich."""


def main() -> None:
    import os

    # Typer converts parameters with pydantic, whose first use scans every installed package's entry points for
    # plugins (about 12 ms of every run); hfget uses none.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from ._app import run

    run()

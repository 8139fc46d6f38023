"""The `hfget` command: a Typer app over the engine; the only package that imports typer and rich."""


def main() -> None:
    from ._app import run

    run()

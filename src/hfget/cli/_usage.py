"""What `hfget --help` prints, rendered by Typer from the whole app ahead of time, so that it needs no Typer.

`hfget --help` is the first thing a new user runs and the one run that does nothing else; importing Typer to
print it cost about 60 of its 100 ms. The text is Typer's own rendering of the whole app, written into `TEXT` by
`python tools/render_help.py`, and a test fails as soon as Typer would print anything else (a changed docstring,
option or Typer release), so it cannot go stale unnoticed. It is Typer's text only where Typer's formatter is 78
columns wide, that is on terminals of 80 columns or more (and when not on a terminal); narrower terminals, and
shell completion, go through Typer as before.
"""

from __future__ import annotations

import os
import shutil

WIDTH = 80  # the columns `TEXT` was rendered for; Typer's help is as wide on any terminal at least this wide

# -- written by tools/render_help.py ---------------------------------------------------------------------------
TEXT = """\
Usage: hfget [OPTIONS] COMMAND [ARGS]...

  Download Hugging Face Hub repos fast, through mirrors, resumable and
  verified. `hfget REPO [FILES...]` is short for `hfget download REPO
  [FILES...]`.

Options:
  --version             Show the version and exit.
  --install-completion  Install completion for the current shell.
  --show-completion     Show completion for the current shell, to copy it or
                        customize the installation.
  -h, --help            Show this message and exit.

Commands:
  download  Download a repo (or some of its files) into the HF cache or a...
  ls        List the files a download would get: sizes, which are cached,...
  verify    Re-hash a cached snapshot or a local dir against the listing...
  sync      Fetch every repo of a manifest (hfget.toml) and pin the...
  config    Show the effective settings and where each comes from (flag,...
  serve     Serve the HF cache, read-only, as a Hub endpoint...
  mirrors   Latency, throughput and the commit each mirror serves, best...

  Examples:

    hfget Duffy/Llama-820m --mirror hf-mirror.com

    hfget datasets/org/name -I '*.parquet' --local-dir ./data

    MODEL=$(hfget org/name -q -r v1.0)

  Exit codes: 0 ok, 1 some files failed, 2 usage, 3 not found, 4
  authentication, 5 network, 6 storage, 130 interrupted.
"""
# -- end -----------------------------------------------------------------------------------------------------------


def ready() -> bool:
    """Whether `TEXT` is what Typer would print here: a terminal wide enough, no shell completion under way."""
    return not completing() and shutil.get_terminal_size().columns >= WIDTH


def completing() -> bool:
    """Whether the shell asks for completions (`_HFGET_COMPLETE=...`, its words in other variables)."""
    return any(name.startswith("_") and name.endswith("_COMPLETE") for name in os.environ)


def render(columns: int = WIDTH) -> str:
    """Typer's `hfget --help` for the whole app on a terminal `columns` wide (what `TEXT` must equal at WIDTH), from
    a process of its own: Typer's test runner would force its own width."""
    import subprocess
    import sys
    from pathlib import Path

    code = "from hfget.cli import _mirrors_cmd; from hfget.cli._app import app; app(['--help'], prog_name='hfget')"
    here = str(Path(__file__).resolve().parents[2])  # the child imports this very hfget, not another installed one
    env = {**os.environ, "COLUMNS": str(columns),
           "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    return done.stdout

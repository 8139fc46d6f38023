"""Write Typer's rendering of `hfget --help` into src/hfget/cli/_usage.py (its `TEXT`), for the quick path.

    python tools/render_help.py

Run it after changing the app's help, a command's docstring or an option of the root command, or after a Typer
upgrade; tests/test_startup.py fails until then. See _usage.py's docstring for why the text is kept there.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "src" / "hfget" / "cli" / "_usage.py"
BLOCK = re.compile(r"(# -- written by tools/render_help.py -+\n)(.*?)(# -- end -+\n)", re.S)


def main() -> int:
    sys.path.insert(0, str(ROOT / "src"))
    from hfget.cli import _usage

    text = _usage.render()
    source = MODULE.read_text()
    if not BLOCK.search(source):
        print(f"{MODULE}: the block between the markers is missing", file=sys.stderr)
        return 1
    updated = BLOCK.sub(lambda m: f"{m[1]}{_literal(text)}{m[3]}", source, count=1)
    if updated != source:
        MODULE.write_text(updated)
        print(f"wrote {MODULE.relative_to(ROOT)}")
    return 0


def _literal(text: str) -> str:
    """`TEXT = ...` as the text reads, one line of help per line of source where it can be."""
    if "\\" in text or '"""' in text or not text.endswith("\n"):
        return f"TEXT = {text!r}  # noqa: E501\n"
    return f'TEXT = """\\\n{text}"""\n'


if __name__ == "__main__":
    raise SystemExit(main())

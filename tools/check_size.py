"""Fail when a module, class or function grows past the project's size limits.

    python tools/check_size.py [PATH ...]      (default: src/hfget)

Limits: a module over 450 lines, a class over 250 lines, a function body over 50 lines. A function's body runs
from its first statement after the docstring to its last line, so a long docstring costs nothing; nested
functions and methods are checked on their own as well. Each offender is listed as file:line, and the exit
status is 1 if there is any, 0 otherwise (2 for a path that does not exist or a file that does not parse).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

MAX_MODULE_LINES = 450
MAX_CLASS_LINES = 250
MAX_FUNCTION_BODY_LINES = 50

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "src" / "hfget"


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]  # the docstring
    if not body:
        return 0
    end = node.end_lineno if node.end_lineno is not None else body[-1].lineno
    return end - body[0].lineno + 1


def offences(path: Path, source: str) -> Iterator[str]:
    """One line per limit that the module in `source` (read from `path`) goes over."""
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES:
        yield f"{path}:1: module is {lines} lines (max {MAX_MODULE_LINES})"
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.ClassDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_CLASS_LINES:
                yield f"{path}:{node.lineno}: class {node.name} is {length} lines (max {MAX_CLASS_LINES})"
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = _body_lines(node)
            if length > MAX_FUNCTION_BODY_LINES:
                yield (f"{path}:{node.lineno}: function {node.name} has a {length}-line body "
                       f"(max {MAX_FUNCTION_BODY_LINES})")


def _python_files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(path.rglob("*.py"))
        else:
            yield path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[DEFAULT_PATH],
                        help="files or folders to check (default: src/hfget)")
    args = parser.parse_args(argv)
    missing = [p for p in args.paths if not p.exists()]
    if missing:
        print(f"check_size: no such path: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    found: list[str] = []
    for path in _python_files(args.paths):
        try:
            found.extend(offences(path, path.read_text(encoding="utf-8")))
        except SyntaxError as error:
            print(f"check_size: {path}:{error.lineno}: cannot parse: {error.msg}", file=sys.stderr)
            return 2
    for line in found:
        print(line)
    if found:
        print(f"check_size: {len(found)} over the limits", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

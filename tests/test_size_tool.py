"""tools/check_size.py finds each kind of oversized code (module, class, function body) by file:line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parent.parent / "tools" / "check_size.py"


def _check(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOL), *map(str, paths)], capture_output=True, text=True,
                          timeout=60)


def _function(name: str, body_lines: int, *, indent: str = "", docstring_lines: int = 0) -> str:
    doc = [f'{indent}    """'] + [f"{indent}    doc" for _ in range(docstring_lines)] + [f'{indent}    """'] \
        if docstring_lines else []
    body = [f"{indent}    x{i} = {i}" for i in range(body_lines)]
    return "\n".join([f"{indent}def {name}():", *doc, *body]) + "\n"


def test_a_function_body_over_50_lines_is_reported_at_its_def(tmp_path: Path):
    module = tmp_path / "long_function.py"
    module.write_text("import os\n\n\n" + _function("fine", 50) + "\n\n" + _function("too_long", 51))

    result = _check(module)

    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"{module}:57: function too_long has a 51-line body (max 50)"]


def test_a_docstring_does_not_count_towards_the_body(tmp_path: Path):
    module = tmp_path / "documented.py"
    module.write_text(_function("documented", 50, docstring_lines=30))

    result = _check(module)

    assert (result.returncode, result.stdout) == (0, "")


def test_a_long_method_is_reported_too(tmp_path: Path):
    module = tmp_path / "method.py"
    module.write_text("class Small:\n" + _function("method", 60, indent="    "))

    result = _check(module)

    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"{module}:2: function method has a 60-line body (max 50)"]


def test_a_class_over_250_lines_is_reported_at_its_line(tmp_path: Path):
    methods = "\n".join(_function(f"m{i}", 40, indent="    ") for i in range(6))  # 6 x 41 lines + 5 blank
    module = tmp_path / "big_class.py"
    module.write_text("import os\n\n\nclass Big:\n" + methods)

    result = _check(module)

    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"{module}:4: class Big is 252 lines (max 250)"]


def test_a_module_over_450_lines_is_reported(tmp_path: Path):
    module = tmp_path / "big_module.py"
    module.write_text("".join(f"x{i} = {i}\n" for i in range(451)))
    fine = tmp_path / "fine_module.py"
    fine.write_text("".join(f"x{i} = {i}\n" for i in range(450)))

    result = _check(tmp_path)  # a folder: every .py under it

    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"{module}:1: module is 451 lines (max 450)"]


def test_a_module_within_every_limit_passes_silently(tmp_path: Path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text('"""A package."""\n')
    (package / "ok.py").write_text("class Fine:\n" + _function("method", 50, indent="    ") + "\n"
                                   + _function("helper", 10))

    result = _check(package)

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_a_path_that_does_not_exist_is_an_error_not_a_pass(tmp_path: Path):
    result = _check(tmp_path / "nowhere")
    assert result.returncode == 2 and "no such path" in result.stderr

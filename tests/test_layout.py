"""The structure: layers whose imports run one way (the import contracts of pyproject.toml), thin command-line
modules that nothing imports, and short functions."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("modeling_mtcae", "processing", "hub_scripts")
CONTRACTS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
COMMAND_LINE_MODULES = next(c for c in CONTRACTS if c["type"] == "forbidden")["forbidden_modules"]
MAX_COMMAND_LINE_LINES, MAX_FUNCTION_LINES = 150, 60


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter on the packages under ``root`` (the first on the path), with the repo's contracts."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code, "--no-cache", "--no-logo", str(REPO / "pyproject.toml")],
                          cwd=root, env={"PYTHONPATH": str(root), "PATH": ""}, capture_output=True, text=True,
                          timeout=300)


def _modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (REPO / package).rglob("*.py"))


def test_the_import_contracts_hold():
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(CONTRACTS)} kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module, added, contract", [
    ("processing/datasets_in_the_wild.py", "from processing import folds", "No import cycle between modules"),
    ("modeling_mtcae/configuration_mtcae.py", "import processing.sampling_mtcae", "Layers"),
    ("processing/sampling_mtcae.py", "import hub_scripts.cli", "Layers"),
    ("hub_scripts/inference/windows.py", "import hub_scripts.demo", "Nothing imports a command-line module"),
    ("hub_scripts/ablate.py", "import hub_scripts.cross_validate", "Nothing imports a command-line module"),
])
def test_the_contracts_fail_on_a_deliberately_added_import(tmp_path, module, added, contract):
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / module, "a") as handle:
        handle.write(f"\n{added}  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert len(broken) == 1 and broken[0].startswith(contract), result.stdout


def test_every_console_script_is_a_command_line_module_under_the_contract():
    targets = set(re.findall(r'"mtcae-[\w-]+=([\w.]+):main"', (REPO / "setup.py").read_text()))
    assert len(targets) >= 11 and targets <= set(COMMAND_LINE_MODULES), targets - set(COMMAND_LINE_MODULES)


def test_command_line_modules_are_thin():
    sizes = {name: len((REPO / f"{name.replace('.', '/')}.py").read_text().splitlines())
             for name in COMMAND_LINE_MODULES}
    assert max(sizes.values()) <= MAX_COMMAND_LINE_LINES, sizes


def test_no_function_is_longer_than_a_screen():
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.name} ({length} lines)")
    assert not long, long


def _deferred_project_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, source)`` of every import of this project made inside a function of ``path``."""
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = ["." if node.level else node.module]
            if any(name == "." or name.split(".")[0] in PACKAGES for name in names):
                found.append((node.lineno, lines[node.lineno - 1]))
    return found


def test_a_project_import_inside_a_function_says_which_dependency_it_defers():
    unexplained = [f"{path.relative_to(REPO)}:{line}: {text.strip()}" for path in _modules()
                   for line, text in _deferred_project_imports(path) if "# deferred:" not in text]
    assert not unexplained, unexplained

"""The code stays ruff- and mypy-clean, and the layers depend on each other one way only."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO

PACKAGES = ("gateway", "routers", "clients", "tfserving_compat", "examples")


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, check=False
    )


def test_ruff_is_clean() -> None:
    result = _run("ruff", "check", *PACKAGES, "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = _run("ruff", "format", "--check", *PACKAGES, "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def _imported_top_levels(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {(str(path.relative_to(REPO)), alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((str(path.relative_to(REPO)), node.module))
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("clients", ("gateway", "routers", "fastapi", "starlette")),
        ("gateway", ("routers",)),
        ("tfserving_compat", ("gateway", "routers", "fastapi")),
    ],
)
def test_dependencies_point_one_way(package: str, forbidden: tuple[str, ...]) -> None:
    offending = sorted(
        f"{path} imports {module}"
        for path, module in _imported_top_levels(package)
        if module.split(".")[0] in forbidden and not path.endswith("gateway/app.py")
    )
    assert not offending


def test_core_never_imports_transport_or_tensorflow() -> None:
    heavy = ("grpc", "tensorflow", "tensorflow_serving", "google", "fastapi", "starlette")
    offending = sorted(
        f"{path} imports {module}"
        for path, module in _imported_top_levels("gateway")
        if module.split(".")[0] in heavy and not path.endswith(("app.py", "cli.py"))
    )
    assert not offending

"""The layering of docs/architecture.md holds: import-linter's contracts (pyproject.toml) are all kept."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports() -> str:
    found = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if found is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    return found


def test_the_layering_contracts_are_kept():
    done = subprocess.run([_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_a_new_import_circle_breaks_a_contract(tmp_path):
    # the same kind of contract on a two-module package whose modules import each other
    package = tmp_path / "circle"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from circle import b\n")
    (package / "b.py").write_text("from circle import a\n")
    (tmp_path / ".importlinter").write_text(
        "[importlinter]\nroot_package = circle\n\n[importlinter:contract:acyclic]\n"
        "name = no circles\ntype = acyclic_siblings\nancestors =\n    circle\n"
    )
    done = subprocess.run([_lint_imports(), "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
                          env={"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)})
    assert done.returncode != 0 and "BROKEN" in done.stdout, done.stdout + done.stderr

"""No import circle among the project's modules (scripts/import_cycles.py: a static check of every import
statement, function-level ones included)."""
from __future__ import annotations

import subprocess
import sys

from hashtale.settings import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "import_cycles.py"


def run_check(root) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True, timeout=60)


def test_the_tree_has_no_import_circle():
    result = run_check(PROJECT_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(" 0 circles")


def test_a_circle_through_a_function_level_import_is_found(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from pkg.b import VALUE\n")
    (tmp_path / "pkg" / "b.py").write_text("VALUE = 1\n\ndef late():\n    from pkg import a\n    return a\n")
    (tmp_path / "pkg" / "c.py").write_text("from . import a\n")  # relative, and outside the circle
    result = run_check(tmp_path)
    assert result.returncode == 1
    assert "import circle: pkg.a <-> pkg.b\n" in result.stdout

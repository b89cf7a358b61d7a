"""The layers of DESIGN.md hold: a paper package imports neither the harness (runners), nor the suites,
nor another paper package, anywhere in its code (module level or inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAPERS = sorted(p.name for p in ROOT.glob("paper_*") if p.is_dir())


def imported(path: Path) -> set[str]:
    """Top-level package names a file imports (relative imports stay inside their package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_paper_packages_are_found():
    assert PAPERS == ["paper_dmpc", "paper_infcompute", "paper_lewm", "paper_pacbayes", "paper_ssd"]


@pytest.mark.parametrize("package", PAPERS)
def test_a_paper_package_imports_no_harness_suite_or_other_paper(package):
    forbidden = {"runners", "suites", *PAPERS} - {package}
    found = {f"{path.relative_to(ROOT)} imports {name}" for path in sorted((ROOT / package).rglob("*.py"))
             for name in imported(path) & forbidden}
    assert not found, "; ".join(sorted(found))


def test_the_check_sees_imports_inside_functions(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from runners.api import Suite\n    import paper_lewm.sigreg\n")
    assert imported(probe) == {"runners", "paper_lewm"}

"""The lab (``lab/``: training and measuring the micro models) depends on the product, never the reverse:
no module of the product imports it. Tests and scripts may."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAY_IMPORT_LAB = {"lab", "tests", "scripts"}
NOT_SOURCE = {".venv", ".git", "build", "outputs", "multirun", "results", "data"}


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules.add(node.module)
    return modules


def product_files() -> list[Path]:
    return [p for p in ROOT.rglob("*.py")
            if not {p.relative_to(ROOT).parts[0]} & (MAY_IMPORT_LAB | NOT_SOURCE)]


def test_no_product_module_imports_the_lab():
    files = product_files()
    assert any(p.relative_to(ROOT).parts[0] == "harness" for p in files)  # the walk sees the product
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if m.split(".")[0] == "lab")
                 for p in files}
    assert {f: m for f, m in offenders.items() if m} == {}


def test_the_check_sees_an_import_of_the_lab(tmp_path):
    module = tmp_path / "product.py"
    module.write_text("import os\nfrom lab.micro.training import data\n")
    assert "lab.micro.training" in imported_modules(module)

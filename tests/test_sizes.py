"""Sizes in include/lifecycle: no class over 250 lines, no function over 60, so a newcomer reads each whole."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "include" / "lifecycle"
CLASS_LINES = 250
FUNCTION_LINES = 60
# The demo's data generator: long tables of made-up words and row recipes, read as data, not as logic.
EXCEPTED = {
    "demo/rows.py": "the demo's row recipes, one table per dataset",
    "demo/words.py": "the demo's word lists",
    "demo/generate.py": "the demo's generator, one recipe after another",
}
# The DAG definitions: each DAG's wiring is one decorated function whose tasks are nested in it.
EXCEPTED_FOLDERS = ("airflow/dags/",)


def _oversized() -> list[str]:
    """Every class over CLASS_LINES and function over FUNCTION_LINES lines, as `path:line name (n lines)`."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in EXCEPTED or relative.startswith(EXCEPTED_FOLDERS):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ClassDef):
                limit = CLASS_LINES
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                limit = FUNCTION_LINES
            else:
                continue
            lines = node.end_lineno - node.lineno + 1
            if lines > limit:
                found.append(f"{relative}:{node.lineno} {node.name} ({lines} lines, limit {limit})")
    return found


def test_no_class_or_function_over_its_size():
    assert _oversized() == []


def test_the_excepted_files_exist():
    """An exception names a file that is there: one that went away leaves no stale pass behind."""
    assert [name for name in EXCEPTED if not (PACKAGE / name).is_file()] == []

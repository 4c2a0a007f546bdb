"""The layers the README's architecture picture shows, checked on the import graph."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "include" / "lifecycle"
DOMAIN = ("retention", "erasure", "sharing", "incident", "rights", "mail", "notifier", "deadlines")
#: what the configuration layer may build on: its models' own vocabulary, not the domain
CONFIG_MAY_IMPORT = {"config", "catalog", "anonymize", "durations", "errors", "shapes", "paths"}


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (at any depth: lazy imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def _modules(*parts: str) -> list[Path]:
    return sorted(p for part in parts for p in [*PACKAGE.glob(f"{part}.py"), *(PACKAGE / part).rglob("*.py")])


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


@pytest.mark.parametrize("path", _modules("config"), ids=_name)
def test_the_configuration_layer_imports_no_domain_package(path):
    ours = {m.split(".")[1] for m in _imports(path) if m.startswith("lifecycle.")}
    assert ours <= CONFIG_MAY_IMPORT, f"{_name(path)} imports {sorted(ours - CONFIG_MAY_IMPORT)}"


@pytest.mark.parametrize("path", _modules(*DOMAIN), ids=_name)
def test_domain_modules_reach_data_only_through_stores(path):
    drivers = {m for m in _imports(path) if m.split(".")[0] in ("sqlalchemy", "boto3", "botocore")}
    assert not drivers, f"{_name(path)} imports {sorted(drivers)}: reach data through lifecycle.stores"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=_name)
def test_only_dag_files_import_the_dag_helpers(path):
    assert "lifecycle.runs" not in _imports(path), f"{_name(path)} imports lifecycle.runs (DAG files only)"

"""The layers of docs/engineering-notes.md's Module map, checked on the import graph of every module."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "include" / "lifecycle"
NOTES = ROOT / "docs" / "engineering-notes.md"
DAG_FILES = PACKAGE / "airflow" / "dags"  # the DAG definitions that lifecycle.airflow.build_dags executes
DOMAIN = (
    "cancellations",
    "retention",
    "erasure",
    "sharing",
    "incident",
    "rights",
    "mail",
    "notifier",
    "deadlines",
    "discovery",
)


def _layers() -> list[tuple[str, set[str]]]:
    """The Module map's rows, top first: (layer, its modules and packages); details in parentheses left out."""
    table = NOTES.read_text().split("## Module map", 1)[1].split("\n\n## ", 1)[0]
    rows = [line.split("|")[1:3] for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    layers = [
        (layer.strip(), {name.rstrip("/") for name in re.findall(r"`([a-z_]+/?)`", re.sub(r"\([^)]*\)", "", cell))})
        for layer, cell in rows[1:]  # the header row names the columns
    ]
    assert layers, f"no Module map table in {NOTES}"
    return layers


LAYERS = _layers()
RANK = {unit: i for i, (_, units) in enumerate(LAYERS) for unit in units}
MODULES = sorted(PACKAGE.rglob("*.py"))


def _dotted(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


KNOWN = {_dotted(p) for p in MODULES}


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (at any depth: lazy and type-checking imports count);
    ``from package import module`` is an import of that module."""
    here = _dotted(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in KNOWN else base for a in node.names)
    return found


def _ours(path: Path) -> set[str]:
    """Our modules ``path`` imports, each as the module or package the file defines."""
    found = set()
    for name in _imports(path):
        while name and name not in KNOWN:
            name = name.rpartition(".")[0]
        if name and name != "lifecycle" and name != _dotted(path):
            found.add(name)
    return found


def _unit(module: str) -> str:
    """``lifecycle.config.retention`` -> ``config``: the top-level module or package."""
    return module.split(".")[1] if "." in module else module


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


GRAPH = {_dotted(p): _ours(p) for p in MODULES}
OWN = [p for p in MODULES if p != PACKAGE / "__init__.py"]


@pytest.mark.parametrize("path", OWN, ids=_name)
def test_every_module_has_its_layer(path):
    unit = _unit(_dotted(path))
    assert unit in RANK, f"{_name(path)}: {unit!r} is in no row of the Module map ({NOTES.name}); add it to its layer"


@pytest.mark.parametrize("path", OWN, ids=_name)
def test_imports_run_only_up_the_layers(path):
    me = _unit(_dotted(path))
    rank = RANK.get(me)
    if rank is None:
        pytest.skip("no layer (reported above)")
    later = {m for m in GRAPH[_dotted(path)] if RANK.get(_unit(m), -1) > rank}
    assert not later, (
        f"{_name(path)} ({LAYERS[rank][0]}) imports "
        + ", ".join(f"{m} ({LAYERS[RANK[_unit(m)]][0]})" for m in sorted(later))
        + f": a {LAYERS[rank][0]} module may import only its own layer and the ones above it in the Module map"
    )


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports in ``graph``, as the names along it, or None."""
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return None


def test_no_packages_import_each_other_in_a_circle():
    units: dict[str, set[str]] = {}
    for module, imported in GRAPH.items():
        if module.endswith(".__main__"):
            continue  # an entry script (``python -m lifecycle.devenv``): run, never imported
        units.setdefault(_unit(module), set()).update(_unit(m) for m in imported if _unit(m) != _unit(module))
    circle = _cycle(units)
    assert circle is None, f"packages import each other in a circle: {' -> '.join(circle)}"


def test_no_modules_import_each_other_in_a_circle():
    circle = _cycle(GRAPH)
    assert circle is None, f"modules import each other in a circle: {' -> '.join(circle)}"


def test_the_checks_catch_an_upward_import_and_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert RANK["config"] < RANK["stores"] < RANK["runtime"] < RANK["sharing"] < RANK["runs"]
    assert RANK["errors"] < RANK["anonymize"] == RANK["catalog"] == RANK["config"]


@pytest.mark.parametrize("path", [p for p in MODULES if _unit(_dotted(p)) in DOMAIN], ids=_name)
def test_domain_modules_reach_data_only_through_stores(path):
    drivers = {m for m in _imports(path) if m.split(".")[0] in ("sqlalchemy", "boto3", "botocore")}
    assert not drivers, f"{_name(path)} imports {sorted(drivers)}: reach data through lifecycle.stores"


@pytest.mark.parametrize("path", [p for p in MODULES if DAG_FILES not in p.parents], ids=_name)
def test_only_dag_files_import_the_dag_helpers(path):
    assert "lifecycle.runs" not in _imports(path), f"{_name(path)} imports lifecycle.runs (DAG files only)"

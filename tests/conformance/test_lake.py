"""Generated worlds with lake tables: an Iceberg table on moto S3 (SQLite catalog) and a Delta
table on moto S3, each one to four hops from the subject through the world's SQL tables.

The same checks as every world (incident scope, sharing, access package, erasure against the
oracle), the lake tables' live rows among them, and storage read file by file with pyarrow
after the purge: none of the erased people's rows (nor an anonymized row's original values)
in any Parquet file under a table's location, every other row still there.  Then the run
killed right after a lake commit, and half-way through a purge, and run again; and a run
during which another process commits to the lake tables.

``LIFECYCLE_CONFORMANCE_LAKE_WORLDS=N`` runs seeds 0 to N - 1 (default: three chosen worlds, on SQLite; with
``LIFECYCLE_CONFORMANCE_LONG=1`` on every backend).
"""

from __future__ import annotations

import itertools
import os

import pytest

from tests.conformance.suite import header
from tests.conformance.world import World
from tests.conftest import BACKENDS

LONG = os.environ.get("LIFECYCLE_CONFORMANCE_LONG") == "1"
# by default three worlds: delete through four hops (seed 0), anonymized with the link cleared on
# a text key (7), anonymized with the link kept (13: storage keeps the rows, not the values)
WORLDS = (
    range(int(os.environ["LIFECYCLE_CONFORMANCE_LAKE_WORLDS"]))
    if os.environ.get("LIFECYCLE_CONFORMANCE_LAKE_WORLDS")
    else [0, 7, 13]
)
CASES = [
    pytest.param(backend, seed, id=f"{backend}-seed{seed}")
    for backend in (BACKENDS if LONG else ["sqlite"])
    for seed in WORLDS
]


def _erasing(seed: int) -> bool:
    """The world's erasure is neither refused at validation nor at the preflight."""
    world = World(seed, lakes=True)
    refused = world.anonymized.refusals or world.anonymized.unfit or (world.outside and world.outside.refused)
    return not refused


ERASING = [s for s in itertools.islice(itertools.count(), 40) if _erasing(s)]


def _check(out: dict, backend: str, test: str, parts=("incident", "sharing", "access", "erasure")) -> None:
    problems = [f"{part}: {p}" for part in parts for p in out[part]]
    if problems:
        pytest.fail(header(out["world"], backend, test) + "\n  " + "\n  ".join(problems), pytrace=False)


@pytest.mark.parametrize("backend, seed", CASES)
def test_lake_world(backend, seed, suite, monkeypatch):
    _check(suite.erasure_instance(backend, seed, monkeypatch, lakes=True), backend, "test_lake_world")


@pytest.mark.parametrize("kill", ["commit", "purge"])
def test_lake_world_killed_and_run_again(kill, suite, monkeypatch):
    seed = ERASING[0 if kill == "commit" else 1]
    out = suite.erasure_instance("sqlite", seed, monkeypatch, lakes=True, kill=kill)
    _check(out, "sqlite", f"test_lake_world_killed_and_run_again[{kill}]", parts=("erasure",))


def test_lake_world_written_by_another_process_during_the_erasure(suite, monkeypatch):
    seed = ERASING[2]
    out = suite.erasure_instance("sqlite", seed, monkeypatch, lakes=True, kill="writer")
    _check(out, "sqlite", "test_lake_world_written_by_another_process_during_the_erasure", parts=("erasure",))

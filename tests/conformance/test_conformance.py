"""Generated worlds run through the engine's real path, compared with the independent oracle.

Each (backend, seed) is its own test id, e.g. ``test_retention[postgresql-seed17]``.
``LIFECYCLE_CONFORMANCE_WORLDS=N`` sets the number of worlds per backend (default 16);
``LIFECYCLE_CONFORMANCE_SEED=S`` runs that seed only.  A failure names the seed, the
backend, the tables and keys that differ, and the command that replays it.
"""

from __future__ import annotations

import pytest

from tests.conformance.suite import header, seeds
from tests.conftest import BACKENDS

CASES = [pytest.param(backend, seed, id=f"{backend}-seed{seed}") for backend in BACKENDS for seed in seeds()]


def _check(world, backend, test, problems):
    if problems:
        pytest.fail(header(world, backend, test) + "\n  " + "\n  ".join(problems), pytrace=False)


@pytest.mark.parametrize("backend, seed", CASES)
def test_retention(backend, seed, retention_objects, monkeypatch):
    world, problems = retention_objects.retention(backend, seed, monkeypatch)
    _check(world, backend, "test_retention", problems)


@pytest.mark.parametrize("backend, seed", CASES)
def test_erasure(backend, seed, suite, monkeypatch):
    out = suite.erasure_instance(backend, seed, monkeypatch)
    _check(out["world"], backend, "test_erasure", out["erasure"])


@pytest.mark.parametrize("backend, seed", CASES)
def test_incident_scope(backend, seed, suite, monkeypatch):
    out = suite.erasure_instance(backend, seed, monkeypatch)
    _check(out["world"], backend, "test_incident_scope", out["incident"])


@pytest.mark.parametrize("backend, seed", CASES)
def test_sharing_extract(backend, seed, suite, monkeypatch):
    out = suite.erasure_instance(backend, seed, monkeypatch)
    _check(out["world"], backend, "test_sharing_extract", out["sharing"])


@pytest.mark.parametrize("backend, seed", CASES)
def test_access_package(backend, seed, suite, monkeypatch):
    out = suite.erasure_instance(backend, seed, monkeypatch)
    _check(out["world"], backend, "test_access_package", out["access"])

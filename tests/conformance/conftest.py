"""Fixtures of the conformance suite: one Suite per session over moto's S3 server.

Its figures (time in worlds per backend, partitions dropped) are printed at the end of the
run by ``tests/conftest.py``; under pytest-xdist a worker hands them to the controller."""

from __future__ import annotations

import pytest

from tests.conformance.suite import Suite


@pytest.fixture(scope="session")
def suite(s3_endpoint, tmp_path_factory, request):
    made = Suite(s3_endpoint, lambda name: tmp_path_factory.mktemp(name))
    yield made
    timings = made.timings
    if timings:
        by_backend: dict[str, float] = {}
        for key, seconds in timings.items():
            backend = key.split(":")[0]
            by_backend[backend] = by_backend.get(backend, 0.0) + seconds
        _keep(request.config, "conformance_timings", by_backend)
    _keep(request.config, "conformance_partitions", made.partitions)


def _keep(config, name: str, figures: dict) -> None:
    """Keep a summary figure for the end of the run (a worker's goes to the controller)."""
    if hasattr(config, "workeroutput"):
        config.workeroutput[name] = figures
    else:
        setattr(config, f"_{name}", figures)


@pytest.fixture(scope="session")
def retention_objects(suite, request):
    """Upload the objects of every retention world collected in this session, in timed phases."""
    cases = sorted(
        {
            (item.callspec.params["backend"], item.callspec.params["seed"])
            for item in request.session.items
            if getattr(item, "originalname", "") == "test_retention" and hasattr(item, "callspec")
        }
    )
    suite.upload_retention_objects(cases)
    return suite

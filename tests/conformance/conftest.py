"""Fixtures of the conformance suite: one Suite per session over moto's S3 server."""

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
        request.config._conformance_timings = by_backend
    request.config._conformance_partitions = made.partitions


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


def pytest_terminal_summary(terminalreporter, config):
    timings = getattr(config, "_conformance_timings", None)
    if timings:
        terminalreporter.write_line(
            "conformance: seconds spent in worlds per backend: "
            + ", ".join(f"{b} {s:.1f}" for b, s in sorted(timings.items()))
        )
    partitions = getattr(config, "_conformance_partitions", None)
    if partitions:
        terminalreporter.write_line(
            "conformance: retention worlds' partitioned tables and partitions dropped whole: "
            + ", ".join(f"{b} {t} / {d}" for b, (t, d) in sorted(partitions.items()))
        )

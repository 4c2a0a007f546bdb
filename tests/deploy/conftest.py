"""One distributed Airflow for the deployment tests (see tests/support/cluster.py)."""

from __future__ import annotations

import os
import re
import shutil
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.cluster import start_cluster, stop_cluster
from tests.support.leaks import Needles

REPO = Path(__file__).resolve().parents[2]
AS_OF = datetime.now(UTC).strftime("%Y-%m-%d")


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="package")  # stopped once the deployment tests are done, not at the session's end
def cluster(tmp_path_factory):
    missing = [name for name, port in (("PostgreSQL", 5432), ("Redis", 6379)) if not _reachable(port)]
    if missing:
        reason = f"the distributed run needs {' and '.join(missing)} on 127.0.0.1"
        if os.environ.get("LIFECYCLE_REQUIRE_SERVERS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    # the demo configuration, but incident notices wait for a person's approval, as in production
    config = tmp_path_factory.mktemp("config")
    shutil.copytree(REPO / "config" / "lifecycle", config, dirs_exist_ok=True)
    incidents = config / "incidents.yaml"
    text = incidents.read_text()
    assert re.search(r"^approval: none\b", text, re.M), "incidents.yaml: the demo's approval switch moved"
    incidents.write_text(re.sub(r"^approval: none\b", "approval: required", text, flags=re.M))
    cluster = start_cluster(tmp_path_factory.mktemp("cluster"), as_of=AS_OF, config_dir=config)
    try:
        # what the seeded subjects are called and reached by, before any erasure
        cluster.needles = Needles.from_app(cluster.database("app"))
        yield cluster
    finally:
        left = stop_cluster(cluster)
    assert not left, f"still running after stop: {left}"

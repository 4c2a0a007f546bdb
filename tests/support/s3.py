"""A real S3 endpoint for tests: moto in server mode over HTTP on loopback.

Server mode rather than ``mock_aws`` so the code under test goes through
the same path as production: an Airflow connection, a boto3 client, HTTP.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer


@contextmanager
def moto_server() -> Iterator[str]:
    """Run moto on 127.0.0.1 at a free port; yields its endpoint URL.

    Werkzeug's access log (one line per request) is muted while it runs, so a
    failing test's captured log shows the test, not thousands of PUTs.
    """
    access_log = logging.getLogger("werkzeug")
    level = access_log.level
    access_log.setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        access_log.setLevel(level)


def aws_connection(endpoint_url: str, region_name: str = "us-east-1") -> str:
    """The value of an ``AIRFLOW_CONN_<ID>`` variable for an aws connection
    to ``endpoint_url`` (JSON form; moto accepts any credentials)."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint_url, "region_name": region_name},
        }
    )

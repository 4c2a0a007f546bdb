"""Stores: the only code that talks to data systems.

``SqlStore`` (SQLAlchemy Core) and ``S3Store`` (boto3) share parameter names:
a dataset name, a ``Selection`` of what to touch, and batch boundaries.
``open_store`` picks the adapter by the system's type in the catalog.
"""

from __future__ import annotations

from lifecycle.catalog import Catalog


def open_store(catalog: Catalog, system_name: str):
    """The store for a catalog system, connected through its Airflow connection."""
    system = catalog.systems[system_name]
    if system.type == "sql":
        from lifecycle.connections import sql_engine
        from lifecycle.stores.sql import SqlStore

        return SqlStore(sql_engine(system.conn_id), catalog)
    from lifecycle.stores.s3 import S3Store

    return S3Store.from_connection(system.conn_id, system.bucket)

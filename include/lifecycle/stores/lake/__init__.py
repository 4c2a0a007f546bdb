"""The lake adapters of the store contract: Apache Iceberg (``iceberg``, pyiceberg) and Delta
Lake (``delta``, deltalake).

``base`` holds every verb once (selection as an Arrow mask, commits by primary key retried
on the new snapshot when another writer committed first, ``Rows``, verification read from
the files); ``iceberg`` and ``delta`` hold what differs: reading, the two commits, the
schema and the purge.  ``links`` resolves subjects through the catalog's hops (other
datasets' stores), ``files`` is the storage (S3 through an aws connection, or a local
folder), ``arrow`` the masks and strategies on Arrow columns.
"""

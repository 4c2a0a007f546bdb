"""The S3 adapter of the store contract (boto3): object datasets, versions, documents.

Erasure in a versioned bucket means removing every version id and every
delete marker, so the store works in versions, never in plain keys.  An
object dataset's unit is a key (all its versions): a key is expired when its
newest version or marker is, and it belongs to the subject its prefix
template names.  Deletes report what happened per version instead of raising
half-way: a version under Object Lock (judged by S3's own clock, the wall
clock) is *kept* and reported with its retain-until date, never retried
forever; any other refusal fails the call, terminal or transient as
``failures.transient`` decides (throttling, 5xx and lost connections are
transient).

``S3Store`` is composed of one part per responsibility, each in its own
module: ``bucket`` (client, failures), ``versions`` (listing, deleting and
locks of versions), ``datasets`` (keys grouped and selected, counts, units,
verification), ``inventory`` (planning from S3 Inventory, candidates confirmed
before they go), ``deletion`` (delete with Object Lock handling),
``documents`` (whole files, streamed uploads) and ``reading`` (current
versions, streamed bodies, expiring links). The parts reach each other
through ``self`` (a test that patches ``S3Store.list_versions`` sees every
listing); state lives in ``Bucket`` and in ``ObjectDatasets`` (the
snapshot's listings).
"""

from __future__ import annotations

from lifecycle.stores.s3.bucket import Bucket
from lifecycle.stores.s3.datasets import ObjectDatasets
from lifecycle.stores.s3.deletion import Deletion
from lifecycle.stores.s3.documents import DocumentObjects, Uploaded
from lifecycle.stores.s3.failures import transient
from lifecycle.stores.s3.inventory import InventoryReading
from lifecycle.stores.s3.reading import ObjectReading
from lifecycle.stores.s3.versions import (
    MAX_KEYS_PER_DELETE,
    DeleteError,
    DeleteOutcome,
    ObjectLock,
    ObjectVersion,
    Versions,
)

__all__ = [
    "MAX_KEYS_PER_DELETE",
    "DeleteError",
    "DeleteOutcome",
    "ObjectLock",
    "ObjectVersion",
    "S3Store",
    "Uploaded",
    "transient",
]


class S3Store(Deletion, ObjectReading, ObjectDatasets, InventoryReading, DocumentObjects, Versions, Bucket):
    """Object datasets of one bucket (the store contract), and whole documents in it."""

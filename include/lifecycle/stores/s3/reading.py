"""Reading objects' current versions: the ``ObjectReading`` ability (a person's access
package copies every current object under their prefixes, streamed, and links to it)."""

from __future__ import annotations

from collections.abc import Iterator

from lifecycle.stores.contract import ALL, Selection, StoredObject


class ObjectReading:
    """``current_objects``, ``chunks`` and ``presigned_get`` of ``S3Store``."""

    def current_objects(self, dataset: str, selection: Selection = ALL) -> list[StoredObject]:
        """The current version of every selected key (keys whose latest entry is a delete
        marker have none), in key order."""
        found = []
        for key, versions in self._select(dataset, selection).items():
            latest = [v for v in versions if v.is_latest and not v.is_delete_marker]
            if latest:
                v = latest[0]
                found.append(StoredObject(key, v.version_id, v.size, v.last_modified))
        return sorted(found, key=lambda o: o.key)

    def chunks(self, key: str, *, version_id: str | None = None, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The object's body (that version, else the latest) in chunks of at most ``chunk_size``
        bytes, read from the stream as they are consumed: never the whole object in memory."""
        extra = {"VersionId": version_id} if version_id and version_id != "null" else {}
        with self._failures(None, f"read {key!r}"):
            body = self.client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"]
            try:
                yield from body.iter_chunks(chunk_size)
            finally:
                body.close()

    def presigned_get(self, key: str, expires_in: int) -> str:
        """A link that downloads ``key`` without credentials for ``expires_in`` seconds
        (S3 allows at most seven days); whoever holds the link can read the object."""
        with self._failures(None, f"sign a link to {key!r}"):
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=int(expires_in)
            )

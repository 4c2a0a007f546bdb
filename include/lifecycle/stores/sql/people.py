"""The ``SubjectDirectory`` ability: how people can be reached, from the catalog's ``subject.contact`` columns."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import sqlalchemy as sa

from lifecycle.batching import chunks


class Directory:
    """``contacts`` and ``reach`` of ``SqlStore``."""

    def contacts(self, subjects: list, fields: Iterable[str] | None = None, chunk: int = 5000) -> dict[str, dict]:
        """How to reach ``subjects``: the catalog's ``subject.contact`` columns
        (``fields`` of them; default every configured one) by subject id, read
        in chunks of ``chunk`` ids.  A field the catalog does not map is None."""
        name = self.catalog.subject.dataset
        contact = self.catalog.subject.contact
        fields = list(fields) if fields is not None else [f for f, column in contact.model_dump().items() if column]
        key = self.column(name, self.catalog.subject.key)
        columns = [self.column(name, getattr(contact, f)).label(f) for f in fields if getattr(contact, f)]
        found: dict[str, dict] = {}
        with self._connect(name, "read contact columns") as conn:
            for part in chunks(subjects, chunk):
                for row in conn.execute(sa.select(key, *columns).where(self.one_of(key, part))):
                    found[str(row[0])] = {f: row._mapping.get(f) for f in fields}
        return found

    def find(self, field: str, value: str) -> list[str]:
        """The subjects whose ``subject.contact`` ``field`` is ``value`` (the e-mail on file:
        compared without case), at most two: more than one is for the caller to refuse."""
        name = self.catalog.subject.dataset
        column_name = getattr(self.catalog.subject.contact, field)
        if not column_name:
            return []
        key, column = self.column(name, self.catalog.subject.key), self.column(name, column_name)
        match = sa.func.lower(column) == value.lower() if field == "email" else column == value
        with self._connect(name, f"find a person by {field}") as conn:
            return [str(row[0]) for row in conn.execute(sa.select(key).where(match).order_by(key).limit(2))]

    def reach(self, subjects: list, chunk: int = 5000) -> Iterator[tuple]:
        """(id, has e-mail, has phone, has postal address, country, locale) per subject,
        the flags computed in the database: addresses do not leave it."""
        name = self.catalog.subject.dataset
        contact = self.catalog.subject.contact
        key = self.column(name, self.catalog.subject.key)

        def flag(field):
            if not field:
                return sa.literal(0)
            column = self.column(name, field)
            return sa.case((sa.and_(column.is_not(None), column != ""), 1), else_=0)

        def plain(field):
            return self.column(name, field) if field else sa.null()

        columns = [
            key,
            flag(contact.email),
            flag(contact.phone),
            flag(contact.address),
            plain(contact.country),
            plain(contact.locale),
        ]
        with self._connect(name, "classify how people can be reached") as conn:
            for part in chunks(subjects, chunk):
                for row in conn.execute(sa.select(*columns).where(self.one_of(key, part))):
                    yield (str(row[0]), *row[1:])

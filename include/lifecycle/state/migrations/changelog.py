"""The one applier of the steps' changelogs: each step's DDL stated as data in ``vNN_<what>.yaml``.

A changelog names what its step does, in this order: ``create`` tables (columns
and named indexes), ``add`` columns to a table an earlier step created, and
``seed`` rows into a table it creates, while that table is empty.  A column is one line of words::

    seq: bigint primary key no autoincrement
    subject_id: string(255) not null index
    owed: boolean not null default false

Every step is frozen, and so is this file: a word here never changes its meaning
(that would change what an old step creates); a new need is a new word.  Each
operation is idempotent (``create`` checks first, ``add`` skips a column that
is there, ``seed`` writes only into an empty table), so a step interrupted on
a backend whose DDL commits at once (MariaDB) is finished by running it again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from importlib.resources import files

import sqlalchemy as sa
import yaml

_TYPES = {
    "bigint": sa.BigInteger,
    "integer": sa.Integer,
    "boolean": sa.Boolean,
    "date": sa.Date,
    "text": sa.Text,
    "string": sa.String,  # with its length: string(255)
}

_WORDS = {
    "primary key": {"primary_key": True},
    "autoincrement": {"autoincrement": True},
    "no autoincrement": {"autoincrement": False},
    "not null": {"nullable": False},
    "unique": {"unique": True},
    "index": {"index": True},
    "default false": {"server_default": sa.false()},
}

_COLUMN = re.compile(r"(?P<type>[a-z]+)(?:\((?P<length>\d+)\))?(?P<words>.*)")
_WORD = re.compile("|".join(sorted(map(re.escape, _WORDS), key=len, reverse=True)))


@cache
def changelog(step: str) -> dict:
    """The step's changelog as written (``vNN_<what>.yaml`` beside this module)."""
    text = files(__package__).joinpath(f"{step}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def column(step: str, table: str, name: str, spec: str) -> sa.Column:
    """One column from its line; a word not known here is refused, naming where it stands."""
    match = _COLUMN.fullmatch(spec.strip())
    where = f"{step}.yaml: {table}.{name}"
    if match is None or match["type"] not in _TYPES:
        raise ValueError(f"{where}: {spec!r} does not start with one of {', '.join(_TYPES)}")
    kind = _TYPES[match["type"]]
    words = match["words"].strip()
    options: dict = {}
    for found in _WORD.findall(words):
        options.update(_WORDS[found])
    if _WORD.sub("", words).strip():
        raise ValueError(f"{where}: {spec!r} has words other than {', '.join(_WORDS)}")
    return sa.Column(name, kind(int(match["length"])) if match["length"] else kind, **options)


@cache
def tables(step: str) -> dict[str, sa.Table]:
    """The tables the step creates, as it created them (a ``MetaData`` of the step's own)."""
    metadata, made = sa.MetaData(), {}
    for name, spec in (changelog(step).get("create") or {}).items():
        columns = [column(step, name, c, s) for c, s in spec["columns"].items()]
        indexes = [sa.Index(i, *on) for i, on in (spec.get("indexes") or {}).items()]
        made[name] = sa.Table(name, metadata, *columns, *indexes)
    return made


def apply(conn: sa.Connection, step: str) -> None:
    """Carry out the step's changelog: create, add, seed."""
    made = tables(step)
    for table in made.values():
        table.create(conn, checkfirst=True)
    for name, added in (changelog(step).get("add") or {}).items():
        present = {c["name"] for c in sa.inspect(conn).get_columns(name)}
        for new, spec in added.items():
            if new not in present:
                ddl = sa.schema.CreateColumn(column(step, name, new, spec)).compile(dialect=conn.dialect)
                conn.execute(sa.text(f"ALTER TABLE {name} ADD COLUMN {ddl}"))
    for name, rows in (changelog(step).get("seed") or {}).items():
        if conn.execute(sa.select(sa.literal(1)).select_from(made[name]).limit(1)).first() is None:
            conn.execute(made[name].insert(), rows)


def step(name: str) -> Callable[[sa.Connection, str], None]:
    """A step that is its changelog only, as ``migrate`` calls it: ``upgrade(conn, now)``."""

    def upgrade(conn: sa.Connection, now: str) -> None:
        apply(conn, name)

    upgrade.__qualname__ = f"{name}.upgrade"
    return upgrade

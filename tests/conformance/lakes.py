"""Lake tables as a dimension of the generator: an Iceberg table (moto S3, a SQLite catalog) and
a Delta table (moto S3), each linked to a SQL table of the world (the subject, or a chain table
one to three hops from it), so reaching a person takes one to four hops.

A lake table is a chain table like the others (``Table.lake`` names its system): the world
draws its rows, the oracle its expected end state.  Here it is written with pyiceberg and
deltalake directly (in a few commits: several files, several snapshots), read back the same
way, and its storage read file by file with pyarrow: what every Parquet file under the table's
location still holds, live or not.  Nothing here imports the engine.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from tests.conformance.world import CHAIN_CATEGORIES, PERSONAL_POOL, PLAIN_POOL, Field, Link, Table

NAMES = {"iceberg": ["clickstream", "PageViews", "search_log"], "delta": ["orders_daily", "SessionFacts", "carts"]}
PK_NAMES = ["id", "event_id", "key", "order"]
CREATED_NAMES = ["ts", "event_time", "Created", "from"]
LINK_NAMES = ["user_id", "owner", "parentId", "select"]
NAMESPACE = "lake"


def add(world) -> None:
    """One Iceberg and one Delta table, each under a SQL table with a key a lake column can hold."""
    rng = random.Random(f"lakes-{world.seed}")
    parents = [t for t in world.tables.values() if t.role in ("subject", "chain") and t.pk_kind != "ts"]
    parents.sort(key=lambda t: (t.depth, t.dataset))
    for system in ("iceberg", "delta"):
        parent = rng.choice(parents)
        name = rng.choice(NAMES[system])
        cols: set[str] = set()
        pk = _pick(rng, PK_NAMES, cols)
        table = Table(
            dataset=f"{system}_{name}",
            table=name,
            role="chain",
            pk=pk,
            pk_kind=rng.choice(["int", "text", "bigint"]),
            created=_pick(rng, CREATED_NAMES, cols),
            created_nullable=False,
            depth=parent.depth + 1,
            category=rng.choice(CHAIN_CATEGORIES),
            link=Link(_pick(rng, LINK_NAMES, cols), parent.dataset, "none", True),
            lake=system,
        )
        for column, strategy, kind in rng.sample(PERSONAL_POOL, rng.randint(1, 3)):
            if column not in cols:
                cols.add(column)
                table.fields.append(Field(column, kind, True, strategy=strategy))
        column, kind = rng.choice(PLAIN_POOL)
        if column not in cols:
            table.fields.append(Field(column, kind, True, personal=False))
        world.tables[table.dataset] = table
        world.lakes.append(table)


def lake_as_of() -> datetime:
    """A lake world's logical time: a few minutes after now, to the second.  Purges judge
    snapshots and files by when they were written, so the world's time is after every write
    its run makes (a logical time before them would find nothing old enough to remove)."""
    now = datetime.now(UTC).replace(microsecond=0)
    return now + timedelta(minutes=10)


def _pick(rng: random.Random, pool: list[str], taken: set[str]) -> str:
    name = rng.choice([n for n in pool if n not in taken])
    taken.add(name)
    return name


def table_name(t: Table) -> str:
    """The dataset's ``table``: namespace.table for Iceberg, a path under the location for Delta."""
    return f"{NAMESPACE}.{t.table}" if t.lake == "iceberg" else t.table


def systems(conn_id: str, lake: dict) -> dict:
    bucket = lake["bucket"]
    return {
        "lake_iceberg": {
            "type": "iceberg",
            "conn_id": conn_id,
            "catalog": {"path": lake["catalog"]},
            "warehouse": f"s3://{bucket}/warehouse",
            "purge_after": "0",
        },
        "lake_delta": {"type": "delta", "conn_id": conn_id, "location": f"s3://{bucket}/delta", "purge_after": "0"},
    }


# ------------------------------------------------------------------ writing and reading, by the libraries alone


class Lake:
    """The world's lake tables in one instance's bucket, through pyiceberg, deltalake and pyarrow."""

    def __init__(self, world, endpoint: str, lake: dict):
        self.world, self.endpoint, self.bucket, self.catalog_path = world, endpoint, lake["bucket"], lake["catalog"]
        self._catalog = None

    def iceberg(self):
        if self._catalog is None:
            from pyiceberg.catalog.sql import SqlCatalog

            self._catalog = SqlCatalog(
                "lifecycle",
                uri=f"sqlite:///{self.catalog_path}",
                warehouse=f"s3://{self.bucket}/warehouse",
                **{
                    "s3.endpoint": self.endpoint,
                    "s3.access-key-id": "testing",
                    "s3.secret-access-key": "testing",
                    "s3.region": "us-east-1",
                },
            )
        return self._catalog

    def options(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }

    def delta_uri(self, t: Table) -> str:
        return f"s3://{self.bucket}/delta/{t.table}"

    def schema(self, t: Table) -> pa.Schema:
        parent = self.world.tables[t.link.parent]
        kinds = {"int": pa.int64(), "bigint": pa.int64(), "text": pa.string(), "uuid": pa.string()}
        columns = [(t.pk, kinds[t.pk_kind]), (t.link.column, kinds[parent.pk_kind]), (t.created, pa.timestamp("us"))]
        for f in t.fields:
            columns.append((f.column, {"int": pa.int64(), "dt": pa.timestamp("us")}.get(f.kind, pa.string())))
        return pa.schema(columns)

    def arrow(self, t: Table, rows: list[dict]) -> pa.Table:
        schema = self.schema(t)
        return pa.table({name: [r[name] for r in rows] for name in schema.names}, schema=schema)

    def create(self, client, commits: int = 3) -> None:
        """Every lake table with its rows, in ``commits`` appends (files and snapshots to purge)."""
        from deltalake import write_deltalake

        client.create_bucket(Bucket=self.bucket)
        if any(t.lake == "iceberg" for t in self.world.lakes):
            self.iceberg().create_namespace(NAMESPACE)
        for t in self.world.lakes:
            parts = [t.rows[i::commits] for i in range(commits)]
            if t.lake == "iceberg":
                table = self.iceberg().create_table(table_name(t), schema=self.schema(t))
                for part in parts:
                    if part:
                        table.append(self.arrow(t, part))
            else:
                for n, part in enumerate(parts):
                    if part or n == 0:
                        write_deltalake(
                            self.delta_uri(t), self.arrow(t, part), mode="append", storage_options=self.options()
                        )

    def append(self, t: Table, rows: list[dict]) -> None:
        """Another writer's commit."""
        if t.lake == "iceberg":
            self.iceberg().load_table(table_name(t)).append(self.arrow(t, rows))
        else:
            from deltalake import write_deltalake

            write_deltalake(self.delta_uri(t), self.arrow(t, rows), mode="append", storage_options=self.options())

    def live(self, t: Table) -> pa.Table:
        """The table's current snapshot (version)."""
        if t.lake == "iceberg":
            return self.iceberg().load_table(table_name(t)).scan().to_arrow()
        from deltalake import DeltaTable

        return DeltaTable(self.delta_uri(t), storage_options=self.options()).to_pyarrow_table()

    def actual_rows(self) -> dict[str, dict]:
        """{dataset: {pk: row}} of every lake table as it now is (values as the world keeps them)."""
        out = {}
        for t in self.world.lakes:
            rows = self.live(t).to_pylist()
            out[t.dataset] = {r[t.pk]: {k: _plain(v) for k, v in r.items()} for r in rows}
        return out

    # ---------------------------------------------------------------- storage, file by file

    def filesystem(self) -> pafs.S3FileSystem:
        scheme, _, host = self.endpoint.partition("://")
        return pafs.S3FileSystem(
            access_key="testing", secret_key="testing", endpoint_override=host, scheme=scheme, region="us-east-1"
        )

    def root(self, t: Table) -> str:
        if t.lake == "iceberg":
            return self.iceberg().load_table(table_name(t)).location().removeprefix("s3://")
        return f"{self.bucket}/delta/{t.table}"

    def stored(self, t: Table) -> list[pa.Table]:
        """Every Parquet data file under the table's location (the Delta log's checkpoints aside)."""
        fs = self.filesystem()
        infos = fs.get_file_info(pafs.FileSelector(self.root(t), recursive=True, allow_not_found=True))
        tables = []
        for info in infos:
            if info.type != pafs.FileType.File or not info.path.endswith(".parquet") or "/_delta_log/" in info.path:
                continue
            with fs.open_input_file(info.path) as handle:
                table = pq.read_table(handle)
            strings = [f.with_type(pa.string()) if pa.types.is_string_view(f.type) else f for f in table.schema]
            tables.append(table.cast(pa.schema(strings)))  # delta-rs writes string views
        return tables


def _plain(value):
    return value.replace(tzinfo=None) if isinstance(value, datetime) and value.tzinfo else value


def left_in_storage(lake: Lake, world, due: set, owners) -> list[str]:
    """Every Parquet file under each lake table, read with pyarrow: the due people's rows that
    went must be in none; an anonymized row's original personal values in none; every row of
    the others still in some file."""
    problems = []
    for t in world.lakes:
        mine = [r for r in t.rows if owners.owner(t.dataset, r) in due]
        anonymized = world.anonymized.anonymized(t.dataset)
        files = lake.stored(t)
        erased = 0
        for table in files:
            keys = pa.array([r[t.pk] for r in mine], type=table.schema.field(t.pk).type)
            held = table.filter(pc.is_in(table[t.pk], value_set=keys)).to_pylist()
            if not anonymized:
                erased += len(held)
                continue
            originals = {r[t.pk]: r for r in mine}
            personal = [f.column for f in t.fields if f.personal and f.strategy]
            for row in held:
                before = originals[row[t.pk]]
                if any(before[c] is not None and row[c] == before[c] for c in personal):
                    erased += 1
        if erased:
            problems.append(
                f"lake table {t.table!r} ({t.lake}): {erased} row(s) of the erased people still in "
                f"{len(files)} Parquet file(s) under its location"
            )
        others = {r[t.pk] for r in t.rows if owners.owner(t.dataset, r) not in due}
        seen = set()
        for table in files:
            seen.update(table[t.pk].to_pylist())
        if others - seen:
            problems.append(
                f"lake table {t.table!r}: rows of people not erased gone from storage: {sorted(others - seen)[:6]}"
            )
    return problems


# ------------------------------------------------------------------ another writer, in a process of its own


class AnotherWriter:
    """A process of its own that commits to the lake tables when asked (started before the
    run, so asking costs the commit, not the imports): ``append(dataset)`` writes three new
    rows of people the run does not erase, and one reaching nobody, and waits for the commit;
    the world keeps them, so the oracle expects them kept."""

    def __init__(self, lake: Lake, world):
        import subprocess
        import sys
        from pathlib import Path

        self.lake, self.world = lake, world
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.conformance.lakes"],
            cwd=Path(__file__).resolve().parents[2],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def append(self, dataset: str) -> None:
        import json

        t = self.world.tables[dataset]
        rows = _others(self.world, t)
        path = self.lake.catalog_path + f".{t.table}.parquet"
        pq.write_table(self.lake.arrow(t, rows), path)
        spec = {
            "endpoint": self.lake.endpoint,
            "bucket": self.lake.bucket,
            "catalog": self.lake.catalog_path,
            "system": t.lake,
            "table": table_name(t),
            "uri": self.lake.delta_uri(t),
            "rows": path,
        }
        self.process.stdin.write(json.dumps(spec) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        if answer != "committed":
            raise RuntimeError(f"the other writer did not commit to {t.table}: {answer!r}")
        t.rows.extend(rows)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def _others(world, t: Table) -> list[dict]:
    from tests.conformance.oracle import Owners, due_subjects

    owners, due = Owners(world), due_subjects(world)
    parent = world.tables[t.link.parent]
    kept = [r[parent.pk] for r in parent.rows if owners.owner(parent.dataset, r) not in due]
    kept = [k for k in kept if owners.owner(t.dataset, {t.link.column: k}) is not None][:3]
    rows = []
    for n, link in enumerate([*kept, None]):
        row = {t.pk: _new_key(t, n), t.link.column: link, t.created: world.as_of.replace(tzinfo=None)}
        for f in t.fields:
            row[f.column] = n if f.kind == "int" else f"written by another process {n}"
        rows.append(row)
    return rows


def _new_key(t: Table, n: int):
    if t.pk_kind == "text":
        return f"zz-other-{n}"
    return max(r[t.pk] for r in t.rows) + 1000 + n if t.rows else 10**6 + n


def _append(spec: dict) -> None:
    """The other process: one append commit, by pyiceberg or deltalake."""
    rows = pq.read_table(spec["rows"])
    lake = Lake.__new__(Lake)
    lake.endpoint, lake.bucket, lake.catalog_path, lake._catalog = (
        spec["endpoint"],
        spec["bucket"],
        spec["catalog"],
        None,
    )
    if spec["system"] == "iceberg":
        lake.iceberg().load_table(spec["table"]).append(rows)
    else:
        from deltalake import write_deltalake

        write_deltalake(spec["uri"], rows, mode="append", storage_options=lake.options())


if __name__ == "__main__":  # the other writer: one append commit per line read
    import json
    import sys

    for line in sys.stdin:
        _append(json.loads(line))
        print("committed", flush=True)

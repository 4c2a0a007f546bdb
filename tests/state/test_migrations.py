"""The state store's migrations, frozen in time: replaying every step from an empty
database builds the current schema (tables, columns with their types and
nullability, keys, indexes, unique constraints), on every backend; a store left
at any older step upgrades to it; no step reads today's table definitions.
Migration 6: erasure notices and incident deliveries become rows of one claim table.
Migration 7: the regulator deliveries, with the reports approved runs wrote before it."""

import ast
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from lifecycle.state import migrations, schema
from lifecycle.state.claims import Claims
from lifecycle.state.migrations import changelog
from lifecycle.state.migrations.changelog import tables

NOW = "2026-12-01T00:00:00+00:00"
LAST = migrations.MIGRATIONS[-1][0]


def _up_to(engine, last: int):
    assert migrations.migrate(engine, now=NOW, until=last) == list(range(1, last + 1))


def _shape(engine) -> dict:
    """What the database holds, as the backend reports it: per table its columns (type as the
    dialect writes it, nullability, autoincrement, default), primary key, indexes, unique
    constraints and foreign keys."""
    inspector = sa.inspect(engine)
    shape = {}
    for table in sorted(inspector.get_table_names()):
        columns = [
            (c["name"], c["type"].compile(dialect=engine.dialect), c["nullable"], c.get("autoincrement"), c["default"])
            for c in inspector.get_columns(table)
        ]
        indexes = {(i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table)}
        uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)}
        foreign = {
            (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
            for f in inspector.get_foreign_keys(table)
        }
        key = tuple(inspector.get_pk_constraint(table)["constrained_columns"])
        shape[table] = {"columns": columns, "key": key, "indexes": indexes, "uniques": uniques, "foreign": foreign}
    return shape


def _current_shape(engine) -> dict:
    """The shape of today's definitions (``schema.metadata``) built directly, in the same database."""
    meta = sa.MetaData()
    meta.reflect(engine)
    meta.drop_all(engine)
    schema.metadata.create_all(engine)
    return _shape(engine)


def _differences(built: dict, current: dict) -> list[str]:
    found = [f"table {t}: only in the migrated store" for t in sorted(set(built) - set(current))]
    found += [f"table {t}: missing from the migrated store" for t in sorted(set(current) - set(built))]
    for table in sorted(set(built) & set(current)):
        for part, value in built[table].items():
            if value != current[table][part]:
                found.append(f"{table} {part}: migrated {value!r}, current {current[table][part]!r}")
    return found


def test_replaying_every_migration_from_an_empty_database_builds_the_current_schema(engine):
    assert migrations.migrate(engine, now=NOW) == list(range(1, LAST + 1))
    built = _shape(engine)
    assert set(built) == set(schema.metadata.tables), "every current table, and only those"
    differences = _differences(built, _current_shape(engine))
    assert not differences, "\n".join(differences)


@pytest.mark.parametrize("older", [1, 5, LAST - 1])
def test_a_store_at_an_older_migration_upgrades_to_the_current_schema(engine, older):
    _up_to(engine, older)
    with engine.connect() as conn:
        recorded = conn.execute(sa.select(migrations.versions.c.version)).scalars().all()
    assert sorted(recorded) == list(range(1, older + 1))
    assert migrations.migrate(engine, now=NOW) == list(range(older + 1, LAST + 1))
    assert migrations.migrate(engine, now=NOW) == [], "applied once"
    differences = _differences(_shape(engine), _current_shape(engine))
    assert not differences, "\n".join(differences)


def test_migration_ids_run_one_to_the_last_in_order():
    assert [version for version, _ in migrations.MIGRATIONS] == list(range(1, LAST + 1))


def test_every_step_has_its_changelog_and_every_changelog_is_a_step():
    changelogs = sorted(Path(migrations.__file__).parent.glob("v*.yaml"))
    assert [int(p.stem[1:3]) for p in changelogs] == list(range(1, LAST + 1))
    assert all(changelog.changelog(p.stem) for p in changelogs), "each one states what its step does"


@pytest.mark.parametrize("path", sorted(Path(migrations.__file__).parent.glob("*.py")), ids=lambda p: p.name)
def test_no_migration_reads_the_current_table_definitions(path):
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    assert not {m for m in imported if m.startswith("lifecycle.state.schema")}, (
        f"{path.name} imports lifecycle.state.schema: a migration states its own tables as they were when written"
    )


def test_a_changelog_column_with_a_word_the_applier_does_not_know_is_refused_naming_its_place():
    with pytest.raises(ValueError, match=r"v99_new\.yaml: t\.c: 'text nullable' has words other than"):
        changelog.column("v99_new", "t", "c", "text nullable")
    with pytest.raises(ValueError, match=r"v99_new\.yaml: t\.c: 'varchar\(3\)' does not start with one of"):
        changelog.column("v99_new", "t", "c", "varchar(3)")
    owed = changelog.column("v99_new", "t", "owed", "boolean not null default false")
    assert (owed.nullable, owed.server_default is not None) == (False, True)


def test_rows_of_both_old_tables_move_to_the_claim_table_and_the_old_tables_go(engine):
    _up_to(engine, 5)
    with engine.begin() as conn:
        conn.execute(
            tables("v05_notices")["lifecycle_notices"].insert(),
            [
                {
                    "template": "cancellation_completed",
                    "subject_id": "7",
                    "scope": "run#0",
                    "status": "sent",
                    "locale": "de",
                    "message_id": "<m7@x>",
                    "claimed_at": "t1",
                    "updated_at": "t2",
                    "ledger_hash": "ab" * 32,
                },
                {
                    "template": "cancellation_scheduled",
                    "subject_id": "7",
                    "scope": "run",
                    "status": "sending",
                    "locale": None,
                    "message_id": "<s7@x>",
                    "ledger_hash": None,
                    "claimed_at": "t1",
                    "updated_at": "t1",
                },
            ],
        )
        conn.execute(
            tables("v04_incidents")["lifecycle_incident_deliveries"].insert(),
            [
                {
                    "incident_id": "INC-1",
                    "subject_id": "7",
                    "run_id": "manual__1",
                    "batch": 0,
                    "status": "undeliverable",
                    "code": 550,
                    "attempts": 1,
                    "message_id": "<i7@x>",
                },
            ],
        )
    assert migrations.migrate(engine, now=NOW)[0] == 6
    names = set(sa.inspect(engine).get_table_names())
    assert "lifecycle_deliveries" in names
    assert not {"lifecycle_notices", "lifecycle_incident_deliveries"} & names
    with engine.connect() as conn:
        rows = {(r.notice, r.subject_id): r for r in conn.execute(sa.select(schema.deliveries))}
    assert set(rows) == {
        ("notice:cancellation_completed", "7"),
        ("notice:cancellation_scheduled", "7"),
        ("incident:INC-1", "7"),
    }
    done = rows[("notice:cancellation_completed", "7")]
    assert (done.status, done.locale, done.message_id, done.ledger_hash) == ("sent", "de", "<m7@x>", "ab" * 32)
    refused = rows[("incident:INC-1", "7")]
    assert (refused.scope, refused.batch, refused.code, refused.attempts) == ("manual__1", 0, 550, 1)
    assert refused.claimed_at == NOW, "incident rows had no claim time: the migration's"
    assert not Claims(engine, "incident:INC-1", "manual__2").claim("7", "<again@x>"), "still claimed once"
    assert migrations.migrate(engine, now=NOW) == [], "applied once"


def _run(run_id: str, *, dry_run=False, approval=None, reports=("eu",)) -> dict:
    obligations = {"regulators": [{"id": "eu", "deadline": "2026-11-15T08:00:00+00:00"}]}
    return {
        "run_id": run_id,
        "incident_id": "INC-1",
        "phase": "initial",
        "dry_run": dry_run,
        "as_of": NOW,
        "facts": "{}",
        "obligations": json.dumps(obligations),
        "approval": json.dumps(approval) if approval else None,
        "figures": json.dumps({"reports": {r: {"pdf": f"r/report.{r}.pdf"} for r in reports}}),
        "created_at": NOW,
        "updated_at": NOW,
    }


def test_reports_approved_runs_wrote_before_deliveries_were_recorded_are_not_taken_for_owed_ones(engine):
    _up_to(engine, 6)
    approved = {"decision": "approved", "by": None, "how": "test"}
    with engine.begin() as conn:
        conn.execute(
            tables("v04_incidents")["lifecycle_incident_runs"].insert(),
            [
                _run("approved", approval=approved),
                _run("dry", dry_run=True),
                _run("rejected", approval={"decision": "rejected", "by": None, "how": "test"}),
            ],
        )
    assert migrations.migrate(engine, now=NOW)[0] == 7
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schema.regulator_deliveries)).all()
    assert [(r.run_id, r.regulator_id, r.channel, r.status, r.deadline) for r in rows] == [
        ("approved", "eu", "register", "before_delivery", "2026-11-15T08:00:00+00:00")
    ]

"""One world per (backend, seed): build its instances, run the engine, compare with the oracle.

Retention runs on instance ``r``; incident, sharing and erasure on instance
``e`` (in that order: the first two only read the application's data).  Each
returns a list of problems; an empty list is a pass.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tests.conformance import oracle, runner, traps
from tests.conformance.backends import Instance, create_bucket, delete_bucket, read_back, s3_client, upload
from tests.conformance.lakes import AnotherWriter, Lake, lake_as_of, left_in_storage
from tests.conformance.world import World


def _dropped(inst: Instance) -> int:
    """Partitions the run dropped whole, from its ledger (the state store's own file)."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{inst.state_path}")
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT count(*) FROM lifecycle_ledger WHERE kind = 'retention.drop_partition'")
            ).scalar()
    finally:
        engine.dispose()


def _refusal(inst: Instance, refused: list[str]) -> list[str]:
    """The preflight refuses, naming each column: a key from a table outside the lifecycle without
    an ON DELETE that lets rows go (traps.py), a link cleared on a NOT NULL column (anonymized.py);
    otherwise it lets the run go on."""
    out, world = inst.outside, inst.world
    expected = [(f"{out.table}.ref", "foreign key")] if out is not None and out.refused else []
    for name in world.anonymized.unfit:
        expected.append((f"{world.tables[name].table}.{world.tables[name].link.column}:", "NOT NULL"))
    if not expected:
        return [f"preflight refused: {refused}"] if refused else []
    missing = [where for where, what in expected if not any(where in f and what in f for f in refused)]
    return [f"preflight: expected a refusal naming {missing}, got {refused}"] if missing else []


def _preflight_refuses(inst: Instance) -> bool:
    return bool(inst.world.anonymized.unfit) or (inst.outside is not None and inst.outside.refused)


def _invalid(expected: list[tuple[str, str]], got: list[tuple[str, str]]) -> list[str]:
    """Erasure choices validation refuses: refused naming each (file, key); else not refused."""
    if not expected:
        return [f"validation refused: {got}"] if got else []
    missing = [f"{f}: {k}" for f, k in expected if (f, k) not in got]
    return [f"validation: expected a refusal naming {missing}, got {got}"] if missing else []


def _outside_rows(inst: Instance, remaining: set) -> list[str]:
    """The outside table's rows: untouched, or removed / unlinked by the database with their parent rows."""
    out = inst.outside
    if out is None:
        return []
    with inst.engine.connect() as conn:
        got = {r.id: {"id": r.id, "ref": oracle.canonical(r.ref)} for r in conn.execute(sa.select(inst.outside_table))}
    want = traps.expected_outside(out, remaining)
    if got == want:
        return []
    wrong = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    return [
        f"{out.table} (ON DELETE {out.on_delete} onto {out.parent}): expected {[want.get(k) for k in wrong]}, got {[got.get(k) for k in wrong]}"
    ]


def seeds() -> list[int]:
    if os.environ.get("LIFECYCLE_CONFORMANCE_SEED"):
        return [int(os.environ["LIFECYCLE_CONFORMANCE_SEED"])]
    return list(range(int(os.environ.get("LIFECYCLE_CONFORMANCE_WORLDS", "16"))))


def replay(backend: str, seed: int, test: str) -> str:
    return (
        f"replay: LIFECYCLE_CONFORMANCE_SEED={seed} .venv/bin/python -m pytest tests/conformance "
        f"-k '{test} and {backend}'"
    )


def header(world: World, backend: str, test: str) -> str:
    t = world.tables
    return (
        f"world seed {world.seed} on {backend} ({test}); as_of {world.as_of.isoformat()}; "
        f"tidy={world.tidy}; tables: "
        + ", ".join(
            f"{x.table}[{x.pk}:{x.pk_kind}{', 2nd schema' if x.second_schema and backend != 'sqlite' else ''}"
            f"{', ' + x.link.column + '->' + x.link.parent + ' fk=' + x.link.fk if x.link else ''}]"
            for x in t.values()
        )
        + (
            f"; erasure choices (mode, default, overrides, links, refusals): {world.anonymized.describe()}"
            if test == "test_erasure"
            else ""
        )
        + f"\n{replay(backend, world.seed, test)}"
    )


class Suite:
    def __init__(self, endpoint: str, folder_factory):
        self.endpoint = endpoint
        self.client = s3_client(endpoint)
        self.folders = folder_factory
        self.uploaded: dict[tuple[str, int], list[dict]] | None = None
        self.e_results: dict[tuple[str, int], dict] = {}
        self.timings: dict[str, float] = {}
        self.partitions: dict[str, list[int]] = {}  # backend -> [tables partitioned, partitions dropped]

    # ---------------------------------------------------------------- objects in phases

    def upload_retention_objects(self, cases: list[tuple[str, int]]) -> None:
        """Every retention world's objects, phase by phase, ~1.1 s apart (S3 dates objects itself)."""
        if self.uploaded is not None:
            return
        self.uploaded = {}
        worlds = {case: World(case[1]) for case in cases}
        worlds = {case: w for case, w in worlds.items() if w.object_retention}
        records: dict = {case: [] for case in worlds}
        for case, w in worlds.items():
            create_bucket(self.client, Instance.bucket_for(case[0], case[1], "r"), w.lock_bucket)
        for phase in (0, 1, 2):
            if phase:
                time.sleep(1.1)
            for case, w in worlds.items():
                upload(
                    self.client, Instance.bucket_for(case[0], case[1], "r"), w.retention_objects, phase, records[case]
                )
        for case in worlds:
            self.uploaded[case] = read_back(self.client, Instance.bucket_for(case[0], case[1], "r"), records[case])

    # ---------------------------------------------------------------- retention

    def retention(self, backend: str, seed: int, monkeypatch) -> tuple[World, list[str]]:
        started = time.monotonic()
        world = World(seed)
        versions: list[dict] = []
        if world.object_retention:
            versions = self.uploaded[(backend, seed)]
            anchor = max(v["last_modified"] for v in versions if v["key"] == world.anchor_key)
            cutoff = datetime.fromtimestamp(anchor.timestamp(), UTC) + timedelta(seconds=world.anchor_delta)
            as_of = world.object_keep().after(cutoff)
            assert world.object_keep().before(as_of) == cutoff
        else:
            as_of = world.fixed_as_of()
        world.materialize(as_of)
        inst = Instance(world, backend, "r", self.folders(f"w{seed}_{backend}_r"), self.endpoint)
        inst.versions = versions
        problems: list[str] = []
        try:
            inst.create()
            inst.write_config()
            if world.objects and not world.object_retention:
                create_bucket(self.client, inst.bucket, world.lock_bucket)
            for name, value in inst.environment().items():
                monkeypatch.setenv(name, value)

            def snapshot():
                return (
                    oracle.actual_rows(inst.engine, inst.tables, world),
                    oracle.actual_objects(self.client, inst.bucket) if world.objects else set(),
                )

            again = seed % 3 == 0
            result = runner.retention(inst, f"scheduled__w{seed}", again=again, snapshot=snapshot)
            counts = self.partitions.setdefault(backend, [0, 0])
            counts[0] += len(inst.partitioned)
            counts[1] += _dropped(inst)
            problems += [f"engine: {e}" for e in result["errors"]]
            rows, objects = snapshot()
            expected = oracle.expected_retention_rows(world)
            problems += oracle.compare_rows(expected, rows, world)
            if world.object_retention:
                want = oracle.expected_retention_objects(world, versions, datetime.now(UTC))
                cutoffs = ", ".join(
                    f"{o.name} cutoff {world.cutoffs_objects(o.name)}" for o in world.objects if world.rule_of(o.name)
                )
                problems += oracle.compare_objects(
                    want,
                    objects,
                    inst.bucket,
                    versions,
                    f"{cutoffs}; holds {[(h.subject, h.datasets) for h in world.holds]}",
                )
            if again and result.get("first") is not None:
                first_rows, first_objects = result["first"]
                changed = oracle.compare_rows(first_rows, rows, world)
                if changed or first_objects != objects:
                    problems.append(
                        "idempotence: the same run (same run_id) a second time changed the state: "
                        + "; ".join(changed)
                        + ("; objects changed" if first_objects != objects else "")
                    )
        finally:
            runner.dispose(inst)
            inst.drop()
            if world.objects:
                delete_bucket(self.client, inst.bucket)
            self.timings[f"{backend}:r:{seed}"] = time.monotonic() - started
        return world, problems

    # ---------------------------------------------------------------- incident, sharing, erasure

    def erasure_instance(self, backend: str, seed: int, monkeypatch, *, lakes: bool = False, kill=None) -> dict:
        """``lakes``: the world with lake tables (lakes.py), as of a moment after their writes;
        ``kill``: where the erasure run is killed once before it runs again (runner.killed_once)."""
        case = (backend, seed, lakes, kill)
        if case in self.e_results:
            return self.e_results[case]
        started = time.monotonic()
        world = World(seed, lakes=lakes).materialize(lake_as_of() if lakes else World(seed).fixed_as_of())
        tag = f"w{seed}_{backend}_e" + (f"_lake_{kill or 'run'}" if lakes else "")
        inst = Instance(world, backend, "e", self.folders(tag), self.endpoint)
        if lakes:  # buckets of their own: the world without lakes, and each variant, has its own too
            for name in ("bucket", "drop_bucket", "lake_bucket"):
                setattr(inst, name, f"{getattr(inst, name)}-{kill or 'lake'}")
        out = {"world": world, **({"incident": [], "sharing": [], "access": []} if kill else {})}
        lake = None
        try:
            inst.create()
            inst.write_config()
            self.client.create_bucket(Bucket=inst.drop_bucket)
            if lakes:
                lake = Lake(world, self.endpoint, inst.lake())
                lake.create(self.client)
            versions: list[dict] = []
            if world.objects:
                create_bucket(self.client, inst.bucket, world.lock_bucket)
                records: list[dict] = []
                upload(self.client, inst.bucket, world.erasure_objects, None, records)
                versions = read_back(self.client, inst.bucket, records)
            for name, value in inst.environment().items():
                monkeypatch.setenv(name, value)

            if kill is None:
                self._reads(inst, world, versions, out)
            out["erasure"] = self._erasure(inst, world, versions, lake, kill)
        except BaseException as exc:
            for part in ("incident", "sharing", "access", "erasure"):
                out.setdefault(part, [f"world could not be run: {type(exc).__name__}: {exc}"])
            if not isinstance(exc, Exception):
                raise
        finally:
            runner.dispose(inst)
            inst.drop()
            for bucket in (
                ([inst.bucket] if world.objects else []) + [inst.drop_bucket] + ([inst.lake_bucket] if lakes else [])
            ):
                delete_bucket(self.client, bucket)
            self.timings[f"{backend}:e:{seed}"] = time.monotonic() - started
        self.e_results[case] = out
        return out

    def _reads(self, inst: Instance, world: World, versions: list[dict], out: dict) -> None:
        """Incident, sharing and access: the parts that only read the application's data."""
        seed, backend = world.seed, inst.backend
        # incident: who had a row in the affected datasets inside the window
        got = runner.incident(inst, f"manual__incident_w{seed}")
        problems = [f"engine: {e}" for e in got["errors"]]
        if got["subjects"] is not None:
            want = oracle.expected_incident(world)
            if got["subjects"] != want:
                problems.append(
                    f"incident {world.incident['datasets']} window [{world.incident['from']}, "
                    f"{world.incident['to']}]: missing {sorted(want - got['subjects'])}, "
                    f"not affected but listed {sorted(got['subjects'] - want)}"
                )
        out["incident"] = problems

        # sharing: the delivered records
        got = runner.sharing(inst, f"scheduled__sharing_w{seed}", self.client)
        problems = [f"engine: {e}" for e in got["errors"]]
        if got["records"] is not None:
            want = oracle.expected_sharing(world, backend)
            if got["records"] != want:
                missing, extra = want - got["records"], got["records"] - want
                problems.append(
                    f"sharing {world.share[0]} {world.share[1]} (consent={world.consent_recipient}): "
                    f"{sum(missing.values())} record(s) missing {sorted(missing)[:4]}; "
                    f"{sum(extra.values())} unexpected {sorted(extra)[:4]}"
                )
        out["sharing"] = problems

        # access: the package of the person with the most rows, against the oracle
        subject = oracle.access_subject(world)
        got = runner.access(inst, f"manual__access_w{seed}", subject, self.client)
        problems = [f"engine: {e}" for e in got["errors"]]
        if got["rows"] is not None:
            want = oracle.expected_access_rows(world, subject)
            pks = {name: world.tables[name].pk for name in world.tables}
            have = {
                name: {str(oracle.jsonable(r[pks[name]])) for r in rows} for name, rows in got["rows"].items() if rows
            }
            for name in sorted(set(want) | set(have)):
                missing, extra = (
                    want.get(name, set()) - have.get(name, set()),
                    have.get(name, set()) - want.get(name, set()),
                )
                if missing or extra:
                    problems.append(
                        f"access for {subject}: {name}: missing {sorted(missing)[:5]}, not theirs {sorted(extra)[:5]}"
                    )
            columns = {name: {c.name for c in inst.tables[name].c} for name in got["rows"] if name in inst.tables}
            for name, rows in got["rows"].items():
                if rows and name in columns and set(rows[0]) != columns[name]:
                    problems.append(f"access: {name}: columns {sorted(rows[0])}, table has {sorted(columns[name])}")
            if world.objects:
                want_objects = oracle.expected_access_objects(world, versions, subject)
                if got["objects"] != want_objects:
                    problems.append(
                        f"access for {subject}: objects missing {sorted(want_objects - got['objects'])[:5]}, "
                        f"not theirs {sorted(got['objects'] - want_objects)[:5]}"
                    )
        out["access"] = problems

    def _erasure(self, inst: Instance, world: World, versions: list[dict], lake=None, kill=None) -> list[str]:
        """The erasure run against the oracle: refused at validation (erasure choices it refuses,
        written only now so the other parts could run) or at the preflight with nothing changed,
        else due subjects erased, no original value left where they are still reached; lake
        tables' storage read file by file (lakes.py)."""
        choices, seed = world.anonymized, world.seed
        if choices.refusals:
            inst.write_config(refused=True)
        problems, run_id = [], f"scheduled__erasure_w{seed}"
        if kill in ("commit", "purge"):
            killed = runner.killed_once(inst, run_id, kill)
            problems += [f"engine (killed run): {e}" for e in killed["errors"]]
            if not killed["killed"] and not choices.refusals and not _preflight_refuses(inst):
                problems.append(f"the run was not killed at a {kill}: the world gave it no such moment")
        if kill == "writer":
            writer = AnotherWriter(lake, world)
            try:
                got = runner.with_another_writer(inst, run_id, writer.append)
            finally:
                writer.close()
            if not got["written"] and not choices.refusals and not _preflight_refuses(inst):
                problems.append("no lake commit for another writer to race")
        else:
            got = runner.erasure(inst, run_id)
        problems += [f"engine: {e}" for e in got["errors"]]
        problems += _invalid(choices.refusals, got["invalid"])
        problems += [] if choices.refusals else _refusal(inst, got["refused"])
        refused = bool(choices.refusals) or _preflight_refuses(inst)
        due = set() if refused else {str(s) for s in oracle.due_subjects(world)}
        done = {s for s, state in got["states"].items() if state == "done"}
        if done != due:
            problems.append(f"erasure states: due {sorted(due)}, done {sorted(done)} (all: {got['states']})")
        rows = oracle.actual_rows(inst.engine, inst.tables, world)
        if lake is not None:
            rows.update(lake.actual_rows())
        want_rows = oracle.initial_rows(world) if refused else oracle.expected_erasure_rows(world)
        problems += oracle.compare_rows(want_rows, rows, world)
        problems += _outside_rows(inst, set(want_rows[inst.outside.parent]) if inst.outside else set())
        if not refused:
            problems += oracle.originals_left(world, rows)
            kept = [p for p in inst.folder.rglob("*") if p.is_file() and not p.name.startswith("app.db")]
            problems += oracle.originals_in_files(world, [p for p in kept if p.parent.name != "config"])
            if lake is not None:
                problems += left_in_storage(lake, world, oracle.due_subjects(world), oracle.Owners(world))
        if world.objects and refused:
            want = {(v["key"], v["version_id"]) for v in versions}
            problems += oracle.compare_objects(want, oracle.actual_objects(self.client, inst.bucket), inst.bucket)
        elif world.objects:
            want = oracle.expected_erasure_objects(world, versions, datetime.now(UTC))
            problems += oracle.compare_objects(
                want, oracle.actual_objects(self.client, inst.bucket), inst.bucket, versions, f"due {sorted(due)}"
            )
        return problems

"""The runner: drives the engine the way an Airflow task does.

The only module of the suite that imports ``lifecycle``.  Stores are opened by
system name from the connections in the environment (``AIRFLOW_CONN_<ID>``),
never handed in.  Every step's exception is caught and recorded (the step, the
type and the first lines of the message), so a test can report it together
with the end state it left.
"""

from __future__ import annotations

import traceback
from collections import Counter
from datetime import timedelta

import sqlalchemy as sa

from tests.conformance.timeutil import naive


def _failure(step: str, exc: BaseException) -> str:
    lines = str(exc).strip().splitlines() or [""]
    where = traceback.extract_tb(exc.__traceback__)
    inside = [f for f in where if "/lifecycle/" in f.filename]
    at = (
        f" (at {inside[-1].filename.rsplit('/lifecycle/', 1)[1]}:{inside[-1].lineno} in {inside[-1].name})"
        if inside
        else ""
    )
    text = " | ".join(line.strip() for line in lines[:6])
    return f"{step}: {type(exc).__name__}: {text[:900]}{at}"


def load(folder):
    from lifecycle.config import load_config

    return load_config(folder)


def scan(config) -> list[str]:
    from lifecycle.scan import cleared_links, scan_report, time_columns

    report = scan_report(config.catalog, times=time_columns(config), cleared=cleared_links(config))
    return [str(f) for f in report.findings]


def _state(config, inst):
    """The instance's state store (from its connection), its legal holds added once."""
    from lifecycle.state import StateStore

    state = StateStore.for_catalog(config.catalog)
    if not getattr(inst, "holds_added", False):
        for n, hold in enumerate(inst.world.holds):
            state.holds.add(
                hold.subject,
                reason=f"conformance hold {n}",
                datasets=hold.datasets,
                until=None,
                today=inst.world.as_of.date(),
            )
        inst.holds_added = True
    return state


def dispose(inst) -> None:
    """Close the pools lifecycle.connections keeps for this instance's connections."""
    from lifecycle.connections import sql_engine

    for key in ("app", "state"):
        try:
            sql_engine(inst.conn[key]).dispose()
        except Exception:
            pass


def retention(inst, run_id: str, *, again: bool, snapshot) -> dict:
    """plan -> gate -> apply stage by stage -> verify -> report; ``again``: the same run once more."""
    from lifecycle.retention import Retention

    world, errors = inst.world, []
    try:
        config = load(inst.config_dir)
    except Exception as exc:
        return {"errors": [_failure("load_config", exc)], "loaded": False}
    state = _state(config, inst)

    def one_run(label: str) -> None:
        r = Retention(config, state)
        try:
            plan = r.plan(run_id, world.as_of)
            units = r.gate(plan)
        except Exception as exc:
            errors.append(_failure(f"{label}plan/gate", exc))
            return
        stages = sorted({int(group.rsplit("_", 1)[1]) for group in units})
        for stage in stages:
            failed = False
            for group in sorted(g for g in units if g.endswith(f"__stage_{stage}")):
                for unit in units[group]:
                    try:
                        r.apply(unit, run_id, world.as_of)
                    except Exception as exc:
                        errors.append(_failure(f"{label}apply {unit['dataset']} ({group})", exc))
                        failed = True
            if failed:
                errors.append(f"{label}later stages, verify and report not run (as in the DAG: upstream failed)")
                return
        for step, call in (("verify", r.verify), ("report", _report(r, run_id, world.as_of))):
            try:
                call(plan)
            except Exception as exc:
                errors.append(_failure(f"{label}{step}", exc))

    one_run("")
    result = {"errors": errors, "loaded": True}
    if again:
        result["first"] = snapshot()
        one_run("second run: ")
    return result


def _report(retention, run_id, as_of):
    """``report(plan)``, or ``report(run_id, as_of=...)`` where the engine has moved to that."""
    import inspect

    first = next(iter(inspect.signature(retention.report).parameters))
    if first == "plan":
        return retention.report
    return lambda plan: retention.report(run_id, as_of=as_of)


def incident(inst, run_id: str) -> dict:
    from lifecycle.incident import IncidentNotification, parse

    world = inst.world
    try:
        config = load(inst.config_dir)
        state = _state(config, inst)
        form = parse(
            {
                "incident_id": f"INC-{world.seed:04d}",
                "title": "Conformance incident",
                "discovered_at": _iso(max(naive(world.as_of), world.incident["to"]) + timedelta(hours=1)),
                "occurred_from": _iso(world.incident["from"]),
                "occurred_to": _iso(world.incident["to"]),
                "cause": "A generated world had an incident.",
                "affected_datasets": world.incident["datasets"],
                "impact": "Generated impact.",
                "measures_taken": "Generated measures.",
                "precautions": "Generated precautions.",
                "remedies": "Generated remedies.",
                "channels": ["email"],
                "phase": "initial",
                "dry_run": True,
            },
            config.catalog,
        )
        notifier = IncidentNotification(config, state)
        notifier.register(form, run_id, world.as_of)
        notifier.resolve(run_id)
    except Exception as exc:
        return {"errors": [_failure("incident", exc)], "subjects": None}
    engine = sa.create_engine(f"sqlite:///{inst.state_path}")
    try:
        with engine.connect() as conn:
            found = {
                r[0]
                for r in conn.execute(
                    sa.text("SELECT subject_id FROM lifecycle_incident_subjects WHERE run_id = :run"), {"run": run_id}
                )
            }
    finally:
        engine.dispose()
    return {"errors": [], "subjects": found}


def sharing(inst, run_id: str, client) -> dict:
    import json

    from lifecycle.sharing.service import Interval, Sharing

    world = inst.world
    interval = Interval(world.as_of - timedelta(days=1), world.as_of)
    dataset, _ = world.share
    try:
        config = load(inst.config_dir)
        state = _state(config, inst)
        s = Sharing(config, state, "partner")
        s.gate(interval, dag_id="sharing_partner", run_id=run_id)
        files = [s.extract(d, interval) for d in s.recipient.share]
        manifest = s.manifest(interval, files, dag_id="sharing_partner", run_id=run_id)
        s.record_delivery(interval, manifest, dag_id="sharing_partner", run_id=run_id)
    except Exception as exc:
        return {"errors": [_failure("sharing", exc)], "records": None}
    key = f"w{world.seed}/{interval.start.date().isoformat()}/{dataset}.jsonl"
    body = client.get_object(Bucket=inst.drop_bucket, Key=key)["Body"].read().decode("utf-8")
    records = Counter(
        json.dumps(json.loads(line), sort_keys=True, ensure_ascii=False) for line in body.splitlines() if line
    )
    return {"errors": [], "records": records}


def access(inst, run_id: str, subject: str, client) -> dict:
    """An access request for ``subject`` answered through the engine; the package read back from S3:
    rows per dataset (JSON objects) and the object keys it holds."""
    import io
    import json
    import zipfile

    from lifecycle.rights import SubjectRights

    world = inst.world
    try:
        config = load(inst.config_dir)
        rights = SubjectRights(config, _state(config, inst))
        form = rights.parse({"kind": "access", "subject": subject, "request_id": f"A-{world.seed}"}, run_id)
        (request_id,) = rights.take_in(form, run_id, world.as_of)
        answer = rights.answer(request_id, run_id, world.as_of)
    except Exception as exc:
        return {"errors": [_failure("access", exc)], "rows": None, "objects": None}
    key = answer["result"]["package_key"]
    body = client.get_object(Bucket=inst.drop_bucket, Key=key)["Body"].read()
    rows, objects = {}, set()
    with zipfile.ZipFile(io.BytesIO(body)) as package:
        for name in package.namelist():
            if name.startswith("data/") and name.endswith(".jsonl"):
                text = package.read(name).decode("utf-8")
                rows[name[len("data/") : -len(".jsonl")]] = [json.loads(line) for line in text.splitlines() if line]
            elif name.startswith("objects/"):
                objects.add(name[len("objects/") :])
    return {"errors": [], "rows": rows, "objects": objects}


def erasure(inst, run_id: str) -> dict:
    from lifecycle.erasure import Erasure
    from lifecycle.errors import ConfigError, LifecycleError
    from lifecycle.health import schema_matches

    world, errors = inst.world, []
    try:
        try:
            config = load(inst.config_dir)
        except ConfigError as exc:  # refused at validation: the (file, key) of each problem
            return {"errors": [], "states": {}, "refused": [], "invalid": [(p.file, p.path) for p in exc.problems]}
        try:
            schema_matches(config)  # the DAG's preflight
        except LifecycleError:
            return {"errors": [], "states": {}, "refused": scan(config), "invalid": []}
        state = _state(config, inst)
        e = Erasure(config, state)
        intake = e.intake(run_id, world.as_of)
    except Exception as exc:
        return {"errors": [_failure("intake", exc)], "states": {}, "refused": [], "invalid": []}
    for batch in intake.batches:
        try:
            e.erase(batch, world.as_of, run_id=run_id)
        except Exception as exc:
            errors.append(_failure(f"erase {batch}", exc))
    engine = sa.create_engine(f"sqlite:///{inst.state_path}")
    try:
        with engine.connect() as conn:
            states = dict(conn.execute(sa.text("SELECT subject_id, state FROM lifecycle_erasures")).all())
    finally:
        engine.dispose()
    return {"errors": errors, "states": states, "refused": [], "invalid": []}


def _iso(when) -> str:
    from tests.conformance.timeutil import naive

    return naive(when).isoformat() + "Z"


class Killed(BaseException):
    """The process killed at a chosen moment: like a SIGKILL, nothing after it runs."""


def killed_once(inst, run_id: str, where: str) -> dict:
    """The erasure run killed once: ``commit``, right after a lake table's data commit (before
    the step's record of it); ``purge``, half-way through removing a purge's files."""
    from lifecycle.stores.lake.base import LakeStore
    from lifecycle.stores.lake.files import Storage

    fired: list[str] = []
    if where == "commit":
        target, name = LakeStore, "_committing"
        original = LakeStore._committing

        def replacement(self, dataset, *args, **kwargs):
            done = original(self, dataset, *args, **kwargs)
            if not fired:
                fired.append(dataset)
                raise Killed(f"killed after the commit on {dataset}")
            return done

    elif where == "purge":
        target, name = Storage, "remove"
        original = Storage.remove

        def replacement(self, paths):
            if fired or len(paths) < 2:
                return original(self, paths)
            original(self, paths[: len(paths) // 2])
            fired.append(paths[0])
            raise Killed("killed half-way through a purge's removals")

    else:
        raise ValueError(where)
    setattr(target, name, replacement)
    try:
        result = erasure(inst, run_id)
    except Killed:
        result = {"errors": []}
    finally:
        setattr(target, name, original)
    return {"errors": result["errors"], "killed": bool(fired)}


def with_another_writer(inst, run_id: str, write) -> dict:
    """The erasure run while another process commits to its lake tables: ``write(dataset)`` runs
    between the lifecycle's read of a lake dataset and its first commit there (once each)."""
    from lifecycle.stores.lake.base import LakeStore

    original, written = LakeStore._committing, []

    def committing(self, dataset, *args, **kwargs):
        if dataset not in written:
            written.append(dataset)
            write(dataset)
        return original(self, dataset, *args, **kwargs)

    LakeStore._committing = committing
    try:
        result = erasure(inst, run_id)
    finally:
        LakeStore._committing = original
    return {**result, "written": written}

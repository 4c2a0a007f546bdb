"""Run DAGs once, in this process, through Airflow's ``dag.test()``, and say what each did.

Used by ``make demo`` and by the end-to-end tests.  Needs the Airflow
environment of the embedded defaults (``python -m lifecycle.devenv run --``).
Prints task states and the counts each task returned; never row values.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class DagOutcome:
    dag_id: str
    run_id: str
    state: str
    seconds: float
    tasks: dict[str, str] = field(default_factory=dict)  # task id (and map index) -> state
    returned: dict[str, object] = field(default_factory=dict)  # task id -> return value (counts)


def dag_ids() -> list[str]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag()
    if bag.import_errors:
        raise RuntimeError("DAG import errors:\n" + "\n".join(f"{k}: {v}" for k, v in bag.import_errors.items()))
    return sorted(bag.dag_ids)


def run(dag_id: str, as_of: datetime, conf: dict | None = None) -> DagOutcome:
    import sqlalchemy as sa
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    bag = DagBag()
    dag = bag.get_dag(dag_id)
    if dag is None:
        errors = "\n".join(f"{k}: {v}" for k, v in bag.import_errors.items())
        raise RuntimeError(f"no DAG {dag_id!r}" + (f"; import errors:\n{errors}" if errors else ""))
    started = time.monotonic()
    dag_run = dag.test(logical_date=as_of, run_conf=conf)
    outcome = DagOutcome(dag_id, dag_run.run_id, str(dag_run.state), time.monotonic() - started)
    for ti in sorted(dag_run.get_task_instances(), key=lambda t: (t.task_id, t.map_index)):
        name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        outcome.tasks[name] = str(ti.state)
    with create_session() as session:
        rows = session.execute(
            sa.select(XComModel.task_id, XComModel.map_index, XComModel.value).where(
                XComModel.dag_id == dag_id, XComModel.run_id == dag_run.run_id, XComModel.key == "return_value"
            )
        ).all()
    for task_id, map_index, value in rows:
        outcome.returned[task_id if map_index < 0 else f"{task_id}[{map_index}]"] = value
    return outcome


def describe(outcome: DagOutcome) -> str:
    lines = [f"{outcome.dag_id}: {outcome.state} in {outcome.seconds:.1f}s (run {outcome.run_id})"]
    for task, state in outcome.tasks.items():
        value = outcome.returned.get(task)
        shown = "" if value is None else "  " + _brief(value)
        lines.append(f"  {task:<28} {state:<10}{shown}")
    return "\n".join(lines)


def _brief(value, limit: int = 160) -> str:
    """Return values as JSON, long lists of work units cut to their count."""
    text = json.dumps(value, default=str, sort_keys=True)
    if len(text) <= limit:
        return text
    if isinstance(value, list):
        return f"[{len(value)} item(s)]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_brief(v, 40)}" for k, v in value.items()) + "}"
    return text[:limit] + "…"

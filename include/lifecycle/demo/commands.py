"""``python -m lifecycle demo seed|run`` (alias ``python -m lifecycle.demo seed|run``)

``seed`` fills the demo app's database and media bucket (the SQL system of
the subject dataset and the S3 system of the first object dataset in the
catalog, reached through their Airflow connections) and puts the demo's
legal holds into the state store.  ``run`` runs DAGs once through Airflow and
prints what each did.  Both print counts and states only.  Both ask the S3
endpoint and the mail server first and stop with one line when one does not
answer (after ``make down``: start them with ``make up``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from lifecycle import reach
from lifecycle.config import load_config
from lifecycle.demo import generate


def _as_of(text: str | None) -> datetime:
    """The given day at 00:00 UTC, else now (to the second), naive UTC."""
    if text is None:
        return datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    try:
        return datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise argparse.ArgumentTypeError(f"--as-of {text!r}: write YYYY-MM-DD") from None


def cmd_seed(args) -> int:
    from lifecycle.connections import s3_client, sql_engine
    from lifecycle.state import StateStore

    config = load_config(args.config)
    catalog = config.catalog
    if not args.no_s3:
        reach.require([p for p in reach.parts_of(config) if p.kind == "S3 endpoint"])
    engine = sql_engine(catalog.system_of(catalog.subject.dataset).conn_id)
    media = next((catalog.system_of(d) for d in catalog.object_datasets), None)
    client = None if args.no_s3 or media is None else s3_client(media.conn_id)
    bucket = media.bucket if media else None
    started = time.monotonic()
    lake_rows: dict[str, int] = {}
    lake_seconds = 0.0
    try:
        if args.reset:
            generate.reset(engine, client, bucket)
        counts = generate.seed(
            engine, client, bucket, users=args.users, as_of=args.as_of, seed=args.seed, chunk_size=args.chunk_size
        )
    except generate.DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    if client is not None:
        from lifecycle.demo.sharing import ensure_delivery_buckets

        ensure_delivery_buckets(config)
        lake_rows, lake_seconds = _seed_lake(config, args)
        counts.update(lake_rows)
        started += lake_seconds  # the rows/s line is the app's
    holds = StateStore.for_catalog(catalog).holds
    for subject, datasets, reason in generate.demo_holds(args.users, seed=args.seed):
        if not any(h.subject_id == str(subject) for h in holds.active(args.as_of.date())):
            holds.add(str(subject), reason=reason, datasets=datasets, today=args.as_of.date())
    counts["legal_holds"] = len(holds.active(args.as_of.date()))
    if not args.no_s3:
        from lifecycle.demo import incident as demo_incident

        demo_incident.prepare(config, s3_client)
    elapsed = time.monotonic() - started
    width = max(map(len, counts))
    for name, count in counts.items():
        print(f"{name:<{width}}  {count:>10,}")
    rows = sum(v for k, v in counts.items() if k in {t.name for t in generate.schema.metadata.sorted_tables})
    print(f"{'rows':<{width}}  {rows:>10,}  in {elapsed:.1f}s ({rows / max(elapsed, 1e-9):,.0f} rows/s)")
    if lake_rows:
        print(f"{'lake rows':<{width}}  {sum(lake_rows.values()):>10,}  in {lake_seconds:.1f}s")
    return 0


def _seed_lake(config, args) -> tuple[dict[str, int], float]:
    """The analytics lake (``demo/lake.py``), where the catalog has one: rows per dataset, seconds."""
    from lifecycle.demo import lake

    if not lake.lake_datasets(config.catalog):
        return {}, 0.0
    started = time.monotonic()
    rows = lake.seed(
        config.catalog,
        users=args.users,
        as_of=args.as_of,
        rows=args.lake_rows,
        seed=args.seed,
        reset=args.reset,
    )
    return rows, time.monotonic() - started


@contextlib.contextmanager
def _output_to(log: Path):
    """Send everything written to fd 1 and 2 (Airflow's task logs) to ``log``;
    yield a stream on the original stdout for the summary."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    with open(log, "ab") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
    summary = os.fdopen(os.dup(saved_out), "w", buffering=1)
    try:
        yield summary
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        summary.close()


def cmd_run(args) -> int:
    from lifecycle.demo import incident as demo_incident
    from lifecycle.demo import runner

    config = load_config(args.config)
    reach.require(reach.parts_of(config))
    as_of = args.as_of.replace(tzinfo=UTC)
    log = Path(args.log or Path(os.environ.get("LIFECYCLE_VAR_DIR", "var")) / "log" / "demo-run.log")
    tally = _Tally()
    with _output_to(log) as out:
        out.write(f"running DAGs as of {as_of:%Y-%m-%d %H:%M} UTC (Airflow's task logs: {log})\n")
        dag_ids = args.dags.split(",") if args.dags else runner.dag_ids()
        for dag_id, when, conf in demo_incident.runs(dag_ids, as_of, args.conf):
            outcome = runner.run(dag_id, when, conf)
            out.write(runner.describe(outcome) + "\n")
            tally.add(outcome, config)
        out.write(tally.summary(as_of, log))
        if not args.dags:  # the whole demo: its month's evidence pack, and its check
            from lifecycle.demo.evidence import pack_lines

            out.write("".join(line + "\n" for line in pack_lines(config, as_of)))
    return 1 if tally.failed else 0


class _Tally:
    """The outcomes of a demo run, each counted once: succeeded, refused by the sharing gate
    (recorded, not a crash), deadlines found (the check did its job), or failed."""

    def __init__(self):
        self.outcomes, self.failed, self.refused, self.attention = [], [], [], []
        self._state, self._config = None, None

    def add(self, outcome, config) -> None:
        from lifecycle.demo import sharing

        self._config = config
        self.outcomes.append(outcome)
        if outcome.state == "success":
            return
        if outcome.dag_id.startswith("sharing_") and sharing.refused_by_gate(outcome, self._state_of(config)):
            self.refused.append(outcome.dag_id)
        elif _deadlines_found(outcome):
            self.attention.append(outcome)
        else:
            self.failed.append(outcome.dag_id)

    def _state_of(self, config):
        if self._state is None:
            from lifecycle.state import StateStore

            self._state = StateStore.for_catalog(config.catalog)
        return self._state

    def _lake_summary(self) -> list[str]:
        """Day partitions dropped and purges, from the ledger entries of this demo's runs."""
        from lifecycle.demo import lake

        if self._config is None:
            return []
        runs = {o.run_id for o in self.outcomes}
        ledger = self._state_of(self._config).ledger
        entries = [
            (e.kind, e.payload)
            for kind in ("retention.drop_partition", "erasure.plan", "erasure.purged")
            for e in ledger.entries(kind=kind)
            if e.run_id in runs
        ]
        return lake.summary(entries, set(lake.lake_datasets(self._config.catalog)))

    def summary(self, as_of, log: Path) -> str:
        from lifecycle.demo import incident as demo_incident
        from lifecycle.demo import requests as demo_requests
        from lifecycle.demo import sharing

        lines = [
            *sharing.summary(self.outcomes, as_of),
            *self._lake_summary(),
            *demo_incident.summary(self.outcomes),
            *demo_requests.summary(self.outcomes),
            *(_deadlines_summary(outcome) for outcome in self.attention),
        ]
        ok = len(self.outcomes) - len(self.failed) - len(self.refused) - len(self.attention)
        last = f"\n{ok} of {len(self.outcomes)} DAG run(s) succeeded"
        if self.refused:
            last += (
                f"; refused by the sharing gate, as configured: {', '.join(self.refused)} "
                "(run state failed, nothing delivered)"
            )
        if self.attention:
            last += (
                f"; deadlines near or past, as the demo world has them: {', '.join(o.dag_id for o in self.attention)} "
                "(run state failed, the privacy contact mailed)"
            )
        if self.failed:
            last += f"; failed: {', '.join(self.failed)} (see {log})"
        return "".join(line + "\n" for line in [*lines, last])


def _deadlines_found(outcome) -> bool:
    """A lifecycle_deadlines run that failed only because it found deadlines near or past."""
    failed = {task for task, state in outcome.tasks.items() if state in ("failed", "upstream_failed")}
    return outcome.dag_id == "lifecycle_deadlines" and failed == {"deadlines_kept", "run_complete"}


def _deadlines_summary(outcome) -> str:
    from lifecycle.deadlines import DeadlineReport

    found = outcome.returned.get("check")
    if not found:
        return "\ndeadlines: the check did not report"
    report = DeadlineReport.from_json(found)
    lines = [f"\ndeadlines as of {report.as_of}: {report.past} past, {report.near} near"]
    return "\n".join(lines + [f"  {problem}" for problem in report.problems()])


def add_commands(sub) -> None:
    """``seed`` and ``run``, as subcommands of ``sub``: mounted under ``python -m lifecycle demo``."""
    s = sub.add_parser("seed", help="create and fill the demo tables and media bucket, add the demo's legal holds")
    s.add_argument("--users", type=int, default=200, help="how many users (default 200)")
    s.add_argument(
        "--as-of",
        type=_as_of,
        default=_as_of(None),
        help="the day data ages are relative to, YYYY-MM-DD (default: now)",
    )
    s.add_argument("--seed", type=int, default=0, help="random seed (same seed and arguments: same data)")
    s.add_argument("--reset", action="store_true", help="drop the demo tables and empty the demo prefixes first")
    s.add_argument("--no-s3", action="store_true", help="leave the media bucket alone")
    s.add_argument("--chunk-size", type=int, default=10_000, help="rows per insert batch (default 10000)")
    s.add_argument(
        "--lake-rows",
        type=int,
        default=1_000_000,
        help="events in the analytics lake's Iceberg table (default 1000000)",
    )
    s.set_defaults(run=cmd_seed)
    r = sub.add_parser("run", help="run DAGs once through Airflow (dag.test) and print what each did")
    r.add_argument("--dags", help="comma-separated DAG ids (default: every DAG)")
    r.add_argument(
        "--as-of", type=_as_of, default=_as_of(None), help="the run's logical date, YYYY-MM-DD (default: now)"
    )
    r.add_argument("--log", help="where Airflow's task logs go (default: $LIFECYCLE_VAR_DIR/log/demo-run.log)")
    r.add_argument(
        "--conf",
        help="run configuration (the trigger form) as JSON, or @file; incident_notification "
        "without it runs the demo incident twice: dry run, then approved",
    )
    r.set_defaults(run=cmd_run)

"""Incident notification: the sending phase against a raw smtplib loop, in one run (see bench/README.md).

N affected people (default 100,000) in a PostgreSQL app database, the state
store in another PostgreSQL database, an aiosmtpd sink in a child process.
The lifecycle side runs the DAG's steps (register, resolve, obligations,
approval), then ``--workers`` × ``--slots`` processes send the batches as the
DAG's mapped ``send`` tasks do on that many Celery workers of that
concurrency (``email.connections`` at a time): each takes the next batch not
yet taken (render per person in their language, text and HTML parts, the
delivery rows of a group of people committed before their mails, one SMTP
connection per batch with the envelope pipelined, one ledger entry per batch,
the mail starts drawn in blocks from the run's one rate in the state store).  The raw side sends the same number of messages, rendered and
built before the clock starts, with ``sendmail`` over one smtplib connection.
The rate limit is set far above either side's speed.

    .venv/bin/python bench/incident_bench.py [--people 100000] [--batch-size 5000] [--workers 2] [--slots 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import os
import smtplib
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "include")]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))

from lifecycle.config import load_config
from lifecycle.connections import get_connection
from lifecycle.incident import IncidentNotification, parse
from lifecycle.mail import Mailer, render_notice
from lifecycle.state import StateStore
from lifecycle.stores.sql import SqlStore
from tests.config import sample

AS_OF = datetime(2026, 11, 12, 10, 0, tzinfo=UTC)
RUN_ID = "bench"
LOCALES = ["en", "zh-CN", "de", "en", "fr"]


def _sink(port_queue, stop):
    """An aiosmtpd sink in its own process (so its parsing does not share our interpreter)."""
    from lifecycle.mailsink import MailSink

    with MailSink(keep=False) as sink:
        port_queue.put(sink.port)
        stop.wait()
        port_queue.put(sink.count)


def _seed(engine, people: int) -> None:
    meta = sa.MetaData()
    users = sa.Table(
        "users",
        meta,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String(255)),
        sa.Column("name", sa.String(100)),
        sa.Column("phone", sa.String(40)),
        sa.Column("address", sa.String(200)),
        sa.Column("country", sa.String(2)),
        sa.Column("locale", sa.String(16)),
        sa.Column("password_hash", sa.String(128)),
        sa.Column("tier", sa.String(20)),
        sa.Column("created_at", sa.DateTime),
    )
    logs = sa.Table(
        "access_logs",
        meta,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.BigInteger, index=True),
        sa.Column("ip", sa.String(45)),
        sa.Column("path", sa.String(200)),
        sa.Column("logged_at", sa.DateTime, index=True),
    )
    meta.create_all(engine)
    when = datetime(2026, 11, 5)
    with engine.begin() as conn:
        for first in range(1, people + 1, 20_000):
            ids = range(first, min(first + 20_000, people + 1))
            conn.execute(
                users.insert(),
                [
                    {
                        "id": i,
                        "email": f"person{i}@example.com",
                        "name": f"Person {i}",
                        "phone": None,
                        "address": None,
                        "country": "DE" if i % 7 == 0 else "CN",
                        "locale": LOCALES[i % len(LOCALES)],
                        "password_hash": "h",
                        "tier": "free",
                        "created_at": datetime(2025, 1, 1),
                    }
                    for i in ids
                ],
            )
            conn.execute(
                logs.insert(), [{"id": i, "user_id": i, "ip": "10.0.0.1", "path": "/", "logged_at": when} for i in ids]
            )


def _config(folder: Path, batch_size: int, workers: int):
    files = copy.deepcopy(sample.FILES)
    catalog = files["catalog.yaml"]
    catalog["subject"]["contact"] = {
        "email": "email",
        "name": "name",
        "phone": "phone",
        "address": "address",
        "country": "country",
        "locale": "locale",
    }
    catalog["datasets"]["users"]["fields"].update(
        {
            "phone": {"category": "basic_info", "anonymize": "null"},
            "address": {"category": "basic_info", "anonymize": "redact"},
            "country": {"category": "basic_info", "anonymize": "null"},
            "locale": {"personal": False},
        }
    )
    catalog["reports"] = {"path": str(folder / "reports")}
    files["incidents.yaml"].update(
        {
            "email": {
                "conn_id": "smtp_default",
                "from": "MIC Privacy <privacy@mic.example>",
                "max_per_second": 1_000_000,
                "connections": workers,
            },
            "batch_size": batch_size,
        }
    )
    return sample.write(folder / "config", files)


FORM = {
    "incident_id": "BENCH-1",
    "title": "Access log exposure",
    "discovered_at": "2026-11-12T08:00:00Z",
    "occurred_from": "2026-11-01T00:00:00Z",
    "occurred_to": "2026-11-10T00:00:00Z",
    "cause": "A misconfigured log export made access records readable from the internet.",
    "affected_datasets": ["access_logs"],
    "impact": "Someone could learn which pages you visited.",
    "measures_taken": "We closed the export and rotated keys.",
    "precautions": "Be wary of messages quoting your activity.",
    "remedies": "A free security review of your account.",
    "channels": ["email"],
    "phase": "initial",
    "dry_run": False,
}


class FirstMail(Mailer):
    first: float | None = None  # wall clock: compared across processes

    def deliver(self, *args, **kwargs):
        outcome = super().deliver(*args, **kwargs)
        if FirstMail.first is None:
            FirstMail.first = time.time()
        return outcome


def _worker(urls: dict, folder: Path, batches, ready, go, results) -> None:
    """One worker process: its own engines and notifier, then batches until none is left."""
    app, state_engine = sa.create_engine(urls["app"]), sa.create_engine(urls["state"])
    config = load_config(folder)
    email = config.notifications.email
    notifier = IncidentNotification(
        config,
        StateStore(state_engine, dataset_names=set(config.catalog.datasets)),
        open_store=lambda system: SqlStore(app, config.catalog, system),
        mailer=lambda: FirstMail(email.conn_id, email.from_, email.max_per_second),
    )
    notifier.services.run(RUN_ID)  # the run read and Airflow imported before the clock starts, as in a task
    get_connection(email.conn_id)
    ready.release()
    go.wait()
    sent, cpu = 0, time.process_time()
    while (batch := batches.get()) is not None:
        sent += notifier.send_batch(RUN_ID, batch).get("sent", 0)
    results.put((sent, FirstMail.first, time.process_time() - cpu))


def _cpu(*pids: int) -> dict[str, float]:
    """CPU seconds so far of the sink (``pids``) and of every PostgreSQL process."""
    import psutil

    def seconds(process) -> float:
        try:
            times = process.cpu_times()
        except psutil.Error:
            return 0.0
        return times.user + times.system

    postgres = [p for p in psutil.process_iter(["name"]) if p.info["name"] and p.info["name"].startswith("postgres")]
    return {"sink": sum(seconds(psutil.Process(pid)) for pid in pids), "postgres": sum(map(seconds, postgres))}


def _per_mail(before: dict, after: dict, mails: int) -> str:
    return ", ".join(f"{k} {1000 * (after[k] - before[k]) / mails:.2f}" for k in before)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2, help="Celery workers sending batches side by side")
    parser.add_argument(
        "--slots",
        type=int,
        default=2,
        help="task slots per worker (Celery's --concurrency; `make cluster` runs 2): a process each",
    )
    args = parser.parse_args()

    admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    names = {side: f"bench_incident_{side}_{uuid.uuid4().hex[:6]}" for side in ("app", "state")}
    with admin.connect() as conn:
        for name in names.values():
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    url = sa.make_url(args.postgres)
    app = sa.create_engine(url.set(database=names["app"]))
    state_engine = sa.create_engine(url.set(database=names["state"]))
    work = Path(tempfile.mkdtemp(prefix="bench-incident-"))
    ports, stop = multiprocessing.Queue(), multiprocessing.Event()
    sink = multiprocessing.Process(target=_sink, args=(ports, stop), daemon=True)
    sink.start()
    try:
        started = time.perf_counter()
        _seed(app, args.people)
        print(f"seeded {args.people:,} people in {time.perf_counter() - started:.0f}s")
        port = ports.get(timeout=30)
        os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {"disable_ssl": True, "disable_tls": True},
            }
        )
        processes = args.workers * args.slots  # the send tasks running at once: email.connections
        folder = _config(work, args.batch_size, processes)
        config = load_config(folder)
        state = StateStore(state_engine, dataset_names=set(config.catalog.datasets))
        email = config.notifications.email
        notifier = IncidentNotification(config, state, open_store=lambda system: SqlStore(app, config.catalog, system))

        # ---- lifecycle: the DAG's steps, then the batches on --workers x --slots processes
        run_id = RUN_ID
        t0 = time.time()
        notifier.register(parse(FORM, config.catalog), run_id, AS_OF)
        resolved = notifier.resolve(run_id)
        notifier.obligations(run_id)
        notifier.record_approval(run_id, "approved", by="bench", how="bench")
        t_decided = time.time()
        spawn = multiprocessing.get_context("spawn")
        batches, results, ready, go = spawn.Queue(), spawn.Queue(), spawn.Semaphore(0), spawn.Event()
        for batch in notifier.batches(run_id):
            batches.put(batch)
        urls = {"app": app.url.render_as_string(hide_password=False)}
        urls["state"] = state_engine.url.render_as_string(hide_password=False)
        workers = [
            spawn.Process(target=_worker, args=(urls, folder, batches, ready, go, results)) for _ in range(processes)
        ]
        for worker in workers:
            worker.start()
            batches.put(None)  # one end mark per worker
        for _ in workers:
            ready.acquire()
        cpu_before = _cpu(sink.pid)
        t_send = time.perf_counter()
        go.set()
        outcomes = [results.get() for _ in workers]
        t_done = time.perf_counter()
        cpu_lifecycle = _cpu(sink.pid)
        for worker in workers:
            worker.join()
        sent = sum(n for n, _, _ in outcomes)
        first = min(f for _, f, _ in outcomes if f is not None)
        worker_cpu = sum(c for _, _, c in outcomes)
        lifecycle_rate = sent / (t_done - t_send)

        # ---- raw: the same number of messages, rendered and built beforehand, one connection
        context = notifier.notice_context(notifier.form(run_id), notifier.services.run(run_id).scope)
        notices = {loc: render_notice("incident_notice", loc, "en", name="Person", **context) for loc in set(LOCALES)}
        composer = Mailer(email.conn_id, email.from_)
        messages = [
            composer.compose(f"raw{i}@example.com", notices[LOCALES[i % len(LOCALES)]], key=f"raw:{i}")
            for i in range(1, sent + 1)
        ]  # bytes on the wire, built before the clock starts
        cpu_raw = _cpu(sink.pid)
        t_raw, raw_cpu = time.perf_counter(), time.process_time()
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            for message in messages:
                smtp.sendmail("privacy@mic.example", [message.to], message.data)
        raw_rate = len(messages) / (time.perf_counter() - t_raw)
        raw_cpu = time.process_time() - raw_cpu
        cpu_raw_after = _cpu(sink.pid)
        stop.set()
        received = ports.get(timeout=30)

        print(f"resolve: {resolved['affected']:,} affected, {resolved['batches']} batch(es) of {args.batch_size}")
        print(
            f"sending phase: {sent:,} mails on {args.workers} worker(s) x {args.slots} slot(s) "
            f"in {t_done - t_send:.1f}s "
            f"= {lifecycle_rate:,.0f} mails/s"
        )
        print(f"raw smtplib:   {len(messages):,} mails = {raw_rate:,.0f} mails/s (pre-rendered, one connection)")
        print(f"ratio {lifecycle_rate / raw_rate:.2f} (target >= 1.5 with 2 workers)")
        print(
            f"CPU ms per mail: lifecycle: workers {1000 * worker_cpu / sent:.2f}, "
            f"{_per_mail(cpu_before, cpu_lifecycle, sent)}; raw: client {1000 * raw_cpu / len(messages):.2f}, "
            f"{_per_mail(cpu_raw, cpu_raw_after, len(messages))}"
        )
        print(
            f"register to approval {t_decided - t0:.1f}s (resolve included); first mail "
            f"{first - t_decided:.1f}s after approval (workers started); the sink received {received:,}"
        )
        assert received == sent + len(messages)
        return 0
    finally:
        stop.set()
        sink.join(timeout=10)
        app.dispose()
        state_engine.dispose()
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())

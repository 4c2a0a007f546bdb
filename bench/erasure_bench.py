"""Cancellation erasure phase against a raw set-based baseline, in one run (see bench/README.md).

A PostgreSQL demo world of N users (default 100,000) with D of them due at
once (default 1,000); S3 objects (two versions each, avatars and chats) for
the first 100 due subjects (moto answers each listing in time proportional
to the whole bucket).  The raw side lists each object prefix once and
deletes the due subjects' versions in DeleteObjects of 1,000.
The database is copied (CREATE DATABASE … TEMPLATE) so both sides start
identical.  The lifecycle side runs ``Erasure.erase`` for every batch, as the
DAG's mapped ``erase`` tasks do, ``--workers`` batches side by side
(threads; ``--processes``: a process and an ``Erasure`` per batch, as Airflow
runs them) — plan and done records, verification, completion notices to an
SMTP sink running in its own process, the subject rows, certificates; the raw
side runs one ``DELETE … WHERE user_id IN (…)`` per
table, children first, and a list + DeleteObjects per subject prefix.

    .venv/bin/python bench/erasure_bench.py [--users 100000] [--due 1000] [--workers 2] [--mail-rate 100000]
    .venv/bin/python bench/erasure_bench.py --users 20000 --timings --mail-rate 100000     # where the time goes
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "include")]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))

from lifecycle import connections  # noqa: E402
from lifecycle.config import load_config  # noqa: E402
from lifecycle.demo import generate, schema  # noqa: E402
from lifecycle.erasure import Erasure  # noqa: E402
from lifecycle.state import StateStore  # noqa: E402
from lifecycle.state.schema import erasures  # noqa: E402
from lifecycle.stores.s3 import S3Store  # noqa: E402
from lifecycle.stores.sql import SqlStore  # noqa: E402
from tests.support.s3 import moto_server  # noqa: E402

AS_OF = datetime(2026, 11, 26, tzinfo=timezone.utc)
CHILDREN_FIRST = ["chat_messages", "conversations", "access_logs", "devices", "favorites", "inquiries",
                  "purchase_demands", "orders", "consents", "account_cancellations"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=2, help="erase batches side by side (the DAG's mapped tasks)")
    parser.add_argument("--mail-rate", type=float, help="notices per second (default: incidents.yaml email.max_per_second)")
    parser.add_argument("--with-objects", type=int, default=100,
                        help="due subjects that have S3 objects (moto lists in time proportional to the whole bucket)")
    parser.add_argument("--profile", action="store_true",
                        help="run the lifecycle side under cProfile, one worker, and print where its time goes")
    parser.add_argument("--no-completion-notices", action="store_true",
                        help="leave the completion notice out (notify.completed unset): the data part of the phase alone")
    parser.add_argument("--processes", action="store_true",
                        help="run each batch in a worker process with its own Erasure, as Airflow runs mapped tasks "
                             "(default: threads of this process sharing one Erasure and one GIL)")
    parser.add_argument("--keep-world", action="store_true",
                        help="keep the seeded world as a template database (bench_erase_world_<users>_<due>) "
                             "and copy it on later runs instead of seeding again")
    parser.add_argument("--timings", action="store_true",
                        help="wall time of each part of Erasure.erase, no profiler (cProfile inflates pure-Python code): "
                             "one worker, or each worker process with --processes")
    args = parser.parse_args()
    if args.profile or (args.timings and not args.processes):
        args.workers = 1

    admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    names = {side: f"bench_erase_{side}_{uuid.uuid4().hex[:6]}" for side in ("dag", "raw", "state")}
    work = Path(tempfile.mkdtemp(prefix="bench-erasure-"))
    world = f"bench_erase_world_{args.users}_{args.due}"
    with admin.connect() as conn:
        kept = args.keep_world and conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": world}).first()
        conn.execute(sa.text(f"CREATE DATABASE {names['dag']}" + (f" TEMPLATE {world}" if kept else "")))
        conn.execute(sa.text(f"CREATE DATABASE {names['state']}"))      # the state store on PostgreSQL, as in production
    url = sa.make_url(args.postgres)
    dag_engine = sa.create_engine(url.set(database=names["dag"]))
    due = sorted(random.Random(7).sample(range(1, args.users + 1), args.due))
    try:
        if kept:
            print(f"copied the kept world {world}; {len(due):,} due")
        else:
            started = time.perf_counter()
            generate.seed(dag_engine, None, None, users=args.users, as_of=AS_OF.replace(tzinfo=None))
            with dag_engine.begin() as conn:
                conn.execute(schema.metadata.tables["account_cancellations"].delete())
                conn.execute(schema.metadata.tables["account_cancellations"].insert(), [
                    {"id": i + 1, "user_id": u, "requested_at": AS_OF.replace(tzinfo=None) - timedelta(days=20), "withdrawn_at": None}
                    for i, u in enumerate(due)])
            with dag_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("VACUUM ANALYZE"))        # both copies start with the same statistics
            print(f"seeded {args.users:,} users in {time.perf_counter() - started:.0f}s; {len(due):,} due")
        dag_engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {names['raw']} TEMPLATE {names['dag']}"))
            if args.keep_world and not kept:
                conn.execute(sa.text(f"CREATE DATABASE {world} TEMPLATE {names['dag']}"))
        dag_engine = sa.create_engine(url.set(database=names["dag"]))
        raw_engine = sa.create_engine(url.set(database=names["raw"]))

        with moto_server() as endpoint, _sink_process(work / "mail") as sink, contextlib.ExitStack() as stack:
            os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps(
                {"conn_type": "smtp", "host": "127.0.0.1", "port": sink.port, "extra": {"disable_ssl": True, "disable_tls": True}})
            os.environ["AIRFLOW_VAR_LIFECYCLE_HMAC_KEY"] = "bench-hmac-key-0123456789abcdef"
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                  aws_access_key_id="testing", aws_secret_access_key="testing")
            buckets = {side: f"bench-erase-{side}-{uuid.uuid4().hex[:6]}" for side in ("dag", "raw")}
            for bucket in buckets.values():
                client.create_bucket(Bucket=bucket)
                client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(lambda k, b=bucket: client.put_object(Bucket=b, Key=k, Body=b"x"),
                                  [f"{p}/{u}/{n}.jpg" for u in due[:args.with_objects] for p in ("avatars", "chats") for n in (1, 1)]))

            os.environ["LIFECYCLE_VAR_DIR"] = str(work)        # the demo config writes reports there
            config = load_config(REPO / "config" / "lifecycle")
            state_engine = sa.create_engine(url.set(database=names["state"]))
            state = StateStore(state_engine, dataset_names=set(config.catalog.datasets))
            media = {n for n in config.catalog.systems if config.catalog.systems[n].type == "s3"}
            from lifecycle.mail import Mailer

            email = config.incidents.email
            rate = args.mail_rate or email.max_per_second
            erasure = Erasure(config, state, open_store=lambda system: S3Store(client, buckets["dag"]) if system in media
                              else SqlStore(dag_engine, config.catalog),
                              mailer=lambda: Mailer(email.conn_id, email.from_, rate))
            if args.no_completion_notices:
                erasure.cfg = erasure.cfg.model_copy(update={"notify": erasure.cfg.notify.model_copy(update={"completed": None})})
            timings: dict[str, float] = {}
            if args.timings and not args.processes:
                _time_parts(erasure, timings)
            run_id = "bench"
            if args.workers > 1 and args.processes:
                # The DAG's mapped erase tasks are processes of their own: each builds its Erasure
                # (engines, reflection, SMTP session) per batch and shares no interpreter lock.
                def build() -> Erasure:
                    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                      aws_access_key_id="testing", aws_secret_access_key="testing")
                    data = sa.create_engine(url.set(database=names["dag"]))
                    child = Erasure(config, StateStore(sa.create_engine(url.set(database=names["state"])),
                                                       dataset_names=set(config.catalog.datasets)),
                                    open_store=lambda system: S3Store(s3, buckets["dag"]) if system in media
                                    else SqlStore(data, config.catalog),
                                    mailer=lambda: Mailer(email.conn_id, email.from_, rate))
                    child.cfg = erasure.cfg
                    return child

                import airflow.sdk  # noqa: F401  (loaded in every Airflow task process before the task runs)

                _CHILD["build"], _CHILD["run_id"], _CHILD["timings"] = build, run_id, args.timings
                pool = stack.enter_context(ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("fork")))
                list(pool.map(time.sleep, [0.2] * args.workers))        # the workers exist before the clock starts
            batches = erasure.intake(run_id, AS_OF)["batches"]
            erasure.notify_scheduled()
            scheduled = sink.count()
            timings.clear()                                # the phase only, not the scheduled notices
            started, start_wall = time.perf_counter(), datetime.now(timezone.utc)
            profile = cProfile.Profile() if args.profile else None
            if profile:
                profile.enable()
            if args.workers == 1:                          # cProfile and --timings see only this thread
                for batch in batches:
                    erasure.erase(batch, AS_OF, run_id=run_id)
            elif args.processes:
                list(pool.map(_erase_in_child, batches))
            else:
                with ThreadPoolExecutor(args.workers) as pool:
                    list(pool.map(lambda batch: erasure.erase(batch, AS_OF, run_id=run_id), batches))
            dag_seconds = time.perf_counter() - started
            for part, seconds in sorted(timings.items(), key=lambda kv: -kv[1]):
                print(f"  {part:<28} {seconds:6.2f}s")
            if profile:
                profile.disable()
                pstats.Stats(profile).sort_stats("cumulative").print_stats(r"lifecycle|sqlalchemy/engine/base|smtplib|botocore/endpoint", 40)
            with state.engine.connect() as conn:
                done = conn.execute(sa.select(erasures.c.completed_at).where(erasures.c.state == "done")).scalars().all()
            latencies = sorted((datetime.fromisoformat(c) - start_wall).total_seconds() for c in done)

            started = time.perf_counter()
            meta = sa.MetaData()
            meta.reflect(raw_engine)
            with raw_engine.begin() as conn:
                t = meta.tables
                conversations = sa.select(t["conversations"].c.id).where(t["conversations"].c.user_id.in_(due))
                conn.execute(t["chat_messages"].delete().where(t["chat_messages"].c.conversation_id.in_(conversations)))
                for name in CHILDREN_FIRST[1:]:
                    conn.execute(t[name].delete().where(t[name].c.user_id.in_(due)))
                conn.execute(t["users"].delete().where(t["users"].c.id.in_(due)))
            wanted = {str(u) for u in due}
            for prefix in ("avatars/", "chats/", "inquiries/"):          # one listing per prefix, the fastest raw way
                keys = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                        for page in client.get_paginator("list_object_versions").paginate(Bucket=buckets["raw"], Prefix=prefix)
                        for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                        if v["Key"].split("/")[1] in wanted]
                for i in range(0, len(keys), 1000):
                    client.delete_objects(Bucket=buckets["raw"], Delete={"Objects": keys[i:i + 1000], "Quiet": True})
            raw_seconds = time.perf_counter() - started

        notices = sink.count() - scheduled
        print(f"erasure phase: {len(done):,} subjects in {dag_seconds:.1f}s ({len(batches)} batches, {args.workers} worker(s)), "
              f"{notices} completion notices at <= {rate:g}/s per worker (>= {notices / rate / args.workers:.1f}s of it)")
        print(f"raw baseline:  {len(due):,} subjects in {raw_seconds:.1f}s")
        print(f"ratio {raw_seconds / dag_seconds:.2f} (target >= 0.5); median due->done within the run "
              f"{statistics.median(latencies):.1f}s (max {latencies[-1]:.1f}s)")
        return 0
    finally:
        connections.sql_engine.cache_clear()
        dag_engine.dispose()
        if "state_engine" in locals():
            state_engine.dispose()
        if "raw_engine" in locals():
            raw_engine.dispose()
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


_CHILD: dict = {}


def _erase_in_child(batch: str) -> dict:
    """One mapped erase task in a worker process (forked: the builder is inherited)."""
    started = time.perf_counter()
    erasure = _CHILD["build"]()
    timings: dict[str, float] = {}
    if _CHILD["timings"]:
        _time_parts(erasure, timings)
    built = time.perf_counter()
    result = erasure.erase(batch, AS_OF, run_id=_CHILD["run_id"])
    parts = "".join(f"\n    {part:<28} {seconds:6.2f}s" for part, seconds in sorted(timings.items(), key=lambda kv: -kv[1]))
    print(f"  {batch}: set-up {built - started:.2f}s, erase {time.perf_counter() - built:.2f}s{parts}", flush=True)
    return result


class _Sink:
    def __init__(self, port: int, folder: Path):
        self.port, self.folder = port, folder

    def count(self) -> int:
        return sum(1 for _ in self.folder.glob("*.eml"))


@contextlib.contextmanager
def _sink_process(folder: Path):
    """The SMTP sink in a process of its own, as a mail server is: its parsing and
    file writing do not compete with the erasure for this interpreter's GIL."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "include"), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "lifecycle.mailsink", "--port", "0", "--folder", str(folder)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = process.stdout.readline()          # "mail sink listening on 127.0.0.1:<port>, writing to …"
        port = int(line.split(" on ", 1)[1].split(",", 1)[0].rsplit(":", 1)[1])
        yield _Sink(port, folder)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _time_parts(erasure: Erasure, timings: dict[str, float]) -> None:
    """Wrap the parts of ``erase`` (and the SMTP sends inside the notices) to add up their wall time."""
    from lifecycle import mail

    def timed(owner, name, label):
        original = getattr(owner, name, None)
        if original is None:                      # a part this version does not have
            return

        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timings[label] = timings.get(label, 0.0) + time.perf_counter() - started
        setattr(owner, name, wrapper)

    for name in ("_send", "_apply", "_verify", "_certify", "_record_certificates", "_retained", "_entries"):
        timed(erasure, name, name)
    for name in ("_contacts", "_notice_rows", "_summarize"):
        timed(erasure, name, f"  of _send: {name}")
    timed(mail.Mailer, "transmit", "  of _send: SMTP transmit")
    timed(mail.Mailer, "compose", "  of _send: compose")
    timed(mail, "render_notice", "  of _send: render notice")
    from lifecycle import reports

    timed(reports, "canonical", "  of _certify: JSON")
    timed(reports, "render", "  of _certify+_send: Jinja")
    timed(reports.ReportSink, "write", "  of _certify: file writes")
    timed(SqlStore, "delete", "  of _apply: SQL DELETE")
    timed(SqlStore, "anonymize_range", "  of _apply: SQL anonymize")
    timed(SqlStore, "count_by_subject", "  count_by_subject")


if __name__ == "__main__":
    sys.exit(main())

"""Cancellation erasure phase against a raw set-based baseline, in one run (see bench/README.md).

A PostgreSQL demo world of N users (default 100,000) with D of them due at
once (default 1,000); S3 objects (two versions each, avatars and chats) for
every due subject (``--with-objects`` for fewer).  Each batch's database
transactions are counted (SQLAlchemy's ``begin``/``commit``/``rollback``
events, per database: the data and the state store) and reported.  Each round copies the world (CREATE DATABASE …
TEMPLATE) once per side, so every side starts identical, and runs the sides
in an order rotated from the round before; the medians of the rounds are
reported:

* **erasure**: ``Erasure.erase`` for every batch, as the DAG's mapped
  ``erase`` tasks run it — a process per batch, ``--workers`` side by side —
  with the completion notice left out: every reachable dataset (plan and done
  records in the ledger), objects, verification, the subject rows, a
  certificate per person.  This is the work the raw side does, with its proof.
  Its *data part* ends when the last batch has erased and verified its rows
  and objects, before it writes the certificates.
* **with notices**: the same with the completion notice, sent to an SMTP sink
  in a process of its own at ``email.max_per_second`` per worker (or
  ``--mail-rate``) between the verification and the subject rows.
* **raw**: one ``DELETE … WHERE user_id IN (…)`` per table, children first,
  in one transaction, and one listing plus ``DeleteObjects`` per object prefix.

Intake and scheduled notices are not timed.

    .venv/bin/python bench/erasure_bench.py [--users 100000] [--due 1000] [--workers 2] [--rounds 3] [--mail-rate 100000]
    .venv/bin/python bench/erasure_bench.py --keep-world --timings     # where each worker's time goes
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import json
import multiprocessing
import os
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "include")]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))

from lifecycle import connections, signing
from lifecycle.config import load_config
from lifecycle.demo import generate, schema
from lifecycle.erasure import Erasure
from lifecycle.erasure.steps import erasure_steps
from lifecycle.mail import Mailer
from lifecycle.state import StateStore
from lifecycle.state.schema import erasures
from lifecycle.stores.s3 import S3Store
from lifecycle.stores.sql import SqlStore
from tests.support.s3 import aws_connection, moto_client, moto_process

AS_OF = datetime(2026, 11, 26, tzinfo=UTC)
CHILDREN_FIRST = [
    "chat_messages",
    "conversations",
    "access_logs",
    "devices",
    "favorites",
    "inquiries",
    "purchase_demands",
    "orders",
    "consents",
    "account_cancellations",
    "privacy_requests",
]
SIDES = {"erasure": False, "with notices": True}  # side -> completion notices
S3_CONN_ID = "bench_s3"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=2, help="batches erased side by side (the DAG's mapped tasks)")
    parser.add_argument(
        "--threads",
        action="store_true",
        help="workers as threads of this process sharing one Erasure (default: a process and an "
        "Erasure per batch, as Airflow runs mapped tasks)",
    )
    parser.add_argument(
        "--mail-rate", type=float, help="notices per second (default: incidents.yaml email.max_per_second)"
    )
    parser.add_argument(
        "--with-objects",
        type=int,
        help="due subjects that have S3 objects (default: every one; moto lists in time proportional "
        "to the whole bucket)",
    )
    parser.add_argument(
        "--list-concurrency",
        type=int,
        default=S3Store.list_concurrency,
        help="people's prefixes an object step lists side by side (catalog.yaml systems.<name>.list_concurrency; "
        "1: one after another, as before)",
    )
    parser.add_argument("--side", choices=sorted(SIDES), help="run this lifecycle side only (default: both)")
    parser.add_argument(
        "--keep-world",
        action="store_true",
        help="keep the seeded world as a template database (bench_erase_world_<users>_<due>) "
        "and copy it on later runs instead of seeding again",
    )
    parser.add_argument(
        "--timings",
        action="store_true",
        help="wall time of each part of Erasure.erase in each worker, no profiler (cProfile inflates pure-Python code)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="one worker in this process under cProfile: where its time goes"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds, each on fresh copies of the world, the sides' order rotated from one round "
        "to the next (the first side after the copies runs slower); medians are reported",
    )
    parser.add_argument(
        "--reports",
        type=Path,
        default=REPO / "var",
        help="where each side writes its certificates and the sink its mails, in a folder of their "
        "own (default var/, where the demo config writes them; /dev/shm takes the disk out)",
    )
    parser.add_argument("--batch-size", type=int, help="cancellation.yaml: batch_size (subjects per mapped erase task)")
    args = parser.parse_args()
    sides = [args.side] if args.side else list(SIDES)
    if args.with_objects is None:
        args.with_objects = args.due
    S3Store.list_concurrency = args.list_concurrency
    _count_transactions()

    admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    url = sa.make_url(args.postgres)
    args.reports.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-erasure-", dir=args.reports))
    print(f"reports and mail under {work}: creating a file there costs {_file_cost(work) * 1000:.2f} ms")
    kept_world = f"bench_erase_world_{args.users}_{args.due}"
    due = sorted(random.Random(7).sample(range(1, args.users + 1), args.due))
    world = None
    try:
        with admin.connect() as conn:
            kept = (
                args.keep_world
                and conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": kept_world}).first()
            )
        if kept:
            world = kept_world
            print(f"copying the kept world {kept_world}; {len(due):,} due")
        else:
            world = f"bench_erase_seed_{uuid.uuid4().hex[:6]}"
            _seed(admin, url.set(database=world), args.users, due)
            if args.keep_world:  # only a whole world is kept
                with admin.connect() as conn:
                    conn.execute(sa.text(f"ALTER DATABASE {world} RENAME TO {kept_world}"))
                world = kept_world

        with moto_process() as endpoint, _sink_process(work / "mail") as sink:
            os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": sink.port,
                    "extra": {"disable_ssl": True, "disable_tls": True},
                }
            )
            os.environ["AIRFLOW_VAR_LIFECYCLE_HMAC_KEY"] = "bench-hmac-key-0123456789abcdef"
            os.environ["AIRFLOW_CONN_LIFECYCLE_EVIDENCE_SIGNING"] = json.dumps(
                {"conn_type": "generic", "password": signing.generate_text()}  # the Ed25519 key of what is issued
            )
            os.environ[f"AIRFLOW_CONN_{S3_CONN_ID.upper()}"] = aws_connection(endpoint)
            os.environ["LIFECYCLE_VAR_DIR"] = str(work)  # the demo config's reports folder (each side has its own)
            config = load_config(REPO / "config" / "lifecycle")
            rate = args.mail_rate or config.notifications.email.max_per_second
            s3 = moto_client(endpoint)
            _warm_s3(s3, _bucket(s3, [0]))
            rounds = []
            for number in range(args.rounds):
                order = [*sides, "raw"]
                order = order[number % len(order) :] + order[: number % len(order)]
                print(f"round {number + 1} of {args.rounds}: {', '.join(order)}", flush=True)
                rounds.append(
                    _round(args, admin, url, world, order, config, s3, due, rate, sink, work / f"round{number + 1}")
                )
                _print_round(args, rounds[-1], rate)

        if len(rounds) > 1:
            print(f"median of {len(rounds)} rounds (range):")
            raws = [r["raw"] for r in rounds]
            print(f"  raw baseline:  {statistics.median(raws):.2f}s ({min(raws):.2f}-{max(raws):.2f})")
            for side in sides:
                seconds = [r[side][0] for r in rounds]
                ratios = [r["raw"] / r[side][0] for r in rounds]
                medians = [statistics.median(r[side][1]) for r in rounds]
                print(
                    f"  {side + ':':<14} {statistics.median(seconds):.2f}s ({min(seconds):.2f}-{max(seconds):.2f}); "
                    f"ratio {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}); "
                    f"due->done median {statistics.median(medians):.2f}s"
                )
                data = [r["raw"] / r[side][3] for r in rounds if r[side][3]]
                if data:
                    print(
                        f"  {'':<14} the data part (rows and objects erased and verified, before the "
                        f"certificates): ratio {statistics.median(data):.2f} ({min(data):.2f}-{max(data):.2f})"
                    )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
        connections.forget()
        if world and world != kept_world:
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {world} WITH (FORCE)"))
        admin.dispose()


def _round(
    args,
    admin: sa.Engine,
    url: sa.URL,
    world: str,
    order: list[str],
    config,
    s3,
    due: list[int],
    rate: float,
    sink,
    folder: Path,
) -> dict:
    """Every side once, in ``order``, each on its own copy of the world, its own bucket and its own
    reports folder under ``folder`` (certificates are named by the subject's hash: a side writing
    where another side wrote would replace files, not create them, as a real run does):
    side -> (seconds, due->done latencies, mails), and "raw" -> seconds."""
    tag = uuid.uuid4().hex[:6]
    names = {"raw": f"bench_erase_raw_{tag}"}
    for n, side in enumerate(s for s in order if s != "raw"):
        names[side], names[f"{side} state"] = f"bench_erase_side{n}_{tag}", f"bench_erase_state{n}_{tag}"
    engines: list[sa.Engine] = []
    try:
        with admin.connect() as conn:
            # PostgreSQL 15 copies a database through the WAL by default: gigabytes of WAL and the
            # checkpoints they cause would still be running while the first side is timed.
            copy = " STRATEGY FILE_COPY" if conn.dialect.server_version_info >= (15,) else ""
            for key, name in names.items():
                conn.execute(
                    sa.text(f"CREATE DATABASE {name}" + ("" if key.endswith("state") else f" TEMPLATE {world}{copy}"))
                )
        for key, name in names.items():
            if not key.endswith("state"):
                _no_autovacuum(url.set(database=name))
        buckets = {side: _bucket(s3, due[: args.with_objects]) for side in order}
        results = {}
        for side in order:
            _settle(admin)
            if side == "raw":
                raw_engine = sa.create_engine(url.set(database=names["raw"]))
                engines.append(raw_engine)
                results["raw"] = _raw_side(raw_engine, s3, buckets["raw"], due, _object_prefixes(config))
            else:
                os.environ["LIFECYCLE_VAR_DIR"] = str(
                    folder / side.replace(" ", "-")
                )  # the demo config's reports folder
                results[side] = _lifecycle_side(
                    args,
                    config,
                    url.set(database=names[side]),
                    url.set(database=names[f"{side} state"]),
                    buckets[side],
                    notices=SIDES[side],
                    rate=rate,
                    sink=sink,
                )
        return results
    finally:
        connections.forget()
        for engine in engines:
            engine.dispose()
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def _file_cost(folder: Path, files: int = 200) -> float:
    """Seconds to create one small file in ``folder`` as the report sink does (write, then rename).
    Each side writes two certificate files per subject; on this machine kind the cost of creating
    a file on disk ranged from 0.05 to 0.8 ms, by folder and by hour."""
    probe = Path(tempfile.mkdtemp(prefix="probe-", dir=folder))
    started = time.perf_counter()
    for n in range(files):
        (probe / f"{n}.tmp").write_bytes(b"x" * 4096)
        (probe / f"{n}.tmp").replace(probe / f"{n}.json")
    seconds = (time.perf_counter() - started) / files
    shutil.rmtree(probe)
    return seconds


def _no_autovacuum(url: sa.URL) -> None:
    """A side deletes rows of the big tables, which would start an autovacuum of its copy while
    the next side is timed; the copies are dropped after the round, so none of it is needed."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for table in conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars():
            conn.execute(sa.text(f'ALTER TABLE "{table}" SET (autovacuum_enabled = false)'))
    engine.dispose()


def _settle(admin: sa.Engine) -> None:
    """What the previous side left to write goes to disk before the next clock starts: the copies,
    PostgreSQL's dirty buffers (a checkpoint) and the files the reports and the mail sink wrote."""
    with admin.connect() as conn:
        conn.execute(sa.text("CHECKPOINT"))
    os.sync()


def _print_round(args, results: dict, rate: float) -> None:
    raw_seconds = results["raw"]
    print(f"  raw baseline:  {args.due:,} subjects in {raw_seconds:.2f}s")
    for side, value in results.items():
        if side == "raw":
            continue
        seconds, latencies, notices, data_seconds = value
        data = f"; the data part {data_seconds:.2f}s, ratio {raw_seconds / data_seconds:.2f}" if data_seconds else ""
        mails = (
            f"; {notices} completion notices at <= {rate:g}/s per worker (>= {notices / rate / args.workers:.1f}s of it)"
            if SIDES[side]
            else ""
        )
        print(
            f"  {side + ':':<14} {len(latencies):,} subjects in {seconds:.2f}s ({args.workers} worker(s){mails}) -> "
            f"ratio {raw_seconds / seconds:.2f}; due->done median {statistics.median(latencies):.2f}s, "
            f"max {latencies[-1]:.2f}s{data}",
            flush=True,
        )


def _seed(admin: sa.Engine, url: sa.URL, users: int, due: list[int]) -> None:
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {url.database}"))
    engine = sa.create_engine(url)
    started = time.perf_counter()
    generate.seed(engine, None, None, users=users, as_of=AS_OF.replace(tzinfo=None))
    with engine.begin() as conn:
        conn.execute(schema.metadata.tables["account_cancellations"].delete())
        conn.execute(
            schema.metadata.tables["account_cancellations"].insert(),
            [
                {
                    "id": i + 1,
                    "user_id": u,
                    "requested_at": AS_OF.replace(tzinfo=None) - timedelta(days=20),
                    "withdrawn_at": None,
                }
                for i, u in enumerate(due)
            ],
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))  # every copy starts with the same statistics
    engine.dispose()
    print(f"seeded {users:,} users in {time.perf_counter() - started:.0f}s; {len(due):,} due")


def _warm(engine: sa.Engine) -> None:
    """Every table and index of the side's database read once, its indexes into shared buffers:
    each side starts from the same cache state however recently its copy was made."""
    with engine.connect() as conn:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_prewarm"))
        conn.execute(
            sa.text(
                "SELECT pg_prewarm(c.oid, CASE WHEN c.relkind = 'i' THEN 'buffer' ELSE 'read' END) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')"
            )
        )
        conn.commit()


def _warm_s3(client, bucket: str) -> None:
    """moto builds each response's template on its first use: pay that before any clock starts."""
    versions = client.list_object_versions(Bucket=bucket, Prefix="avatars/")["Versions"]
    client.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions]}
    )
    client.list_object_versions(Bucket=bucket, Prefix="avatars/")


def _bucket(client, owners: list[int]) -> str:
    bucket = f"bench-erase-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda key: client.put_object(Bucket=bucket, Key=key, Body=b"x"),
                [f"{p}/{u}/1.jpg" for u in owners for p in ("avatars", "chats") for _ in (1, 2)],
            )
        )
    return bucket


def _erasure(
    config,
    data_url: sa.URL,
    state_url: sa.URL,
    bucket: str,
    *,
    notices: bool,
    rate: float,
    batch_size: int | None = None,
) -> Erasure:
    """An Erasure on one side's databases and bucket, as a mapped task builds it (engines as
    ``connections.sql_engine`` makes them, the S3 client as ``connections.s3_client`` does)."""
    s3, data = connections.s3_client(S3_CONN_ID), connections.engine_for(data_url)
    media = {n for n, system in config.catalog.systems.items() if system.type == "s3"}
    email = config.notifications.email
    cancellation = config.cancellation
    if batch_size:
        cancellation = cancellation.model_copy(update={"batch_size": batch_size})
    if not notices:
        cancellation = cancellation.model_copy(
            update={"notify": cancellation.notify.model_copy(update={"completed": None})}
        )
    config = dataclasses.replace(config, cancellation=cancellation)
    erasure = Erasure(
        config,
        StateStore(connections.engine_for(state_url), dataset_names=set(config.catalog.datasets)),
        open_store=lambda system: (
            S3Store(s3, bucket, config.catalog, system) if system in media else SqlStore(data, config.catalog, system)
        ),
        mailer=lambda: Mailer(email.conn_id, email.from_, rate),
    )
    return erasure


def _lifecycle_side(args, config, data_url, state_url, bucket, *, notices: bool, rate: float, sink):
    """Intake and scheduled notices (untimed), then every batch's erase; seconds, due->done latencies, mails sent."""
    erasure = _erasure(config, data_url, state_url, bucket, notices=notices, rate=rate, batch_size=args.batch_size)
    batches = erasure.intake("bench", AS_OF).batches
    erasure.notify_scheduled()
    before = sink.count()
    _warm(erasure.stores.of(config.catalog.subject.dataset).engine)
    started, start_wall = time.perf_counter(), datetime.now(UTC)
    data_seconds = None  # measured where batches run in processes, as the DAG runs them
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for batch in batches:
            erasure.erase(batch, AS_OF, run_id="bench")
        profile.disable()
        seconds = time.perf_counter() - started
        pstats.Stats(profile).sort_stats("cumulative").print_stats(
            r"lifecycle|sqlalchemy/engine/base|smtplib|botocore/endpoint", 40
        )
    elif args.threads:
        if args.timings:
            _TIMINGS.clear()
            _time_parts(erasure)
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(lambda batch: erasure.erase(batch, AS_OF, run_id="bench"), batches))
        seconds = time.perf_counter() - started
        _print_timings("all workers")
    else:
        import airflow.sdk  # noqa: F401  (imported before the fork: children start with Airflow loaded)

        _CHILD.update(
            build=lambda: _erasure(
                config, data_url, state_url, bucket, notices=notices, rate=rate, batch_size=args.batch_size
            ),
            timings=args.timings,
        )
        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("fork")) as pool:
            list(pool.map(time.sleep, [0.2] * args.workers))  # the workers exist before the clock starts
            started, start_wall, cpu = time.perf_counter(), datetime.now(UTC), _cpu()
            finished = list(pool.map(_erase_in_child, batches))
            seconds = time.perf_counter() - started
            data_seconds = max(at for at, _ in finished) - started
            print(f"  {'with' if notices else 'without'} notices: {_cpu_since(cpu)}", flush=True)
            _print_transactions([counted for _, counted in finished], data_url.database)
    with erasure.state.engine.connect() as conn:
        done = conn.execute(sa.select(erasures.c.completed_at).where(erasures.c.state == "done")).scalars().all()
    latencies = sorted((datetime.fromisoformat(c) - start_wall).total_seconds() for c in done)
    return seconds, latencies, sink.count() - before, data_seconds


def _object_prefixes(config) -> list[str]:
    """The static prefix of every object dataset the erasure reaches: the raw side erases what
    the lifecycle erases, in one listing each."""
    catalog = config.catalog
    return sorted(
        catalog.static_prefix(s.dataset) for s in erasure_steps(config) if not catalog.dataset(s.dataset).is_table
    )


def _raw_side(engine: sa.Engine, client, bucket: str, due: list[int], prefixes: list[str]) -> float:
    _warm(engine)
    started, cpu = time.perf_counter(), _cpu()
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.begin() as conn:
        t = meta.tables
        conversations = sa.select(t["conversations"].c.id).where(t["conversations"].c.user_id.in_(due))
        conn.execute(t["chat_messages"].delete().where(t["chat_messages"].c.conversation_id.in_(conversations)))
        for name in CHILDREN_FIRST[1:]:
            conn.execute(t[name].delete().where(t[name].c.user_id.in_(due)))
        conn.execute(t["users"].delete().where(t["users"].c.id.in_(due)))
    wanted = {str(u) for u in due}
    for prefix in prefixes:  # one listing per prefix, the fastest raw way
        keys = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            if v["Key"].split("/")[1] in wanted
        ]
        for i in range(0, len(keys), 1000):
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys[i : i + 1000], "Quiet": True})
    seconds = time.perf_counter() - started
    print(f"  raw: {_cpu_since(cpu)}", flush=True)
    return seconds


def _cpu() -> dict[str, int]:
    """CPU ticks so far: the whole machine's busy and total ticks (/proc/stat), and what
    PostgreSQL's processes (the postmaster counts its ended backends) and moto's server used."""
    with open("/proc/stat") as stat:
        ticks = [int(t) for t in stat.readline().split()[1:]]
    now = {"busy": sum(ticks) - ticks[3] - ticks[4], "total": sum(ticks), "PostgreSQL": 0, "moto": 0}  # idle, iowait
    for process in Path("/proc").glob("[0-9]*"):
        try:
            stat, command = (process / "stat").read_text(), (process / "cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        used = sum(int(f) for f in fields[11:15])  # utime, stime, and those of reaped children
        if stat[stat.index("(") + 1 :].startswith("postgres"):
            now["PostgreSQL"] += used
        elif b"moto.server" in command:
            now["moto"] += used
    return now


def _cpu_since(before: dict[str, int]) -> str:
    """How busy the machine's cores were since ``before`` (a side at 100% was bound by the cores,
    not by waits), and the seconds PostgreSQL and moto spent on a core meanwhile."""
    now, hertz = _cpu(), os.sysconf("SC_CLK_TCK")
    busy = (now["busy"] - before["busy"]) / max(1, now["total"] - before["total"])
    return (
        f"the machine's cores were {busy:.0%} busy; on a core, PostgreSQL {(now['PostgreSQL'] - before['PostgreSQL']) / hertz:.2f}s "
        f"and moto {(now['moto'] - before['moto']) / hertz:.2f}s"
    )


_CHILD: dict = {}


def _erase_in_child(batch: str) -> float:
    """One mapped erase task in a worker process (forked: the builder is inherited); returns when
    its data part ended (``perf_counter``, one clock for every process): rows and objects erased
    and verified, the certificates not yet begun."""
    started = time.perf_counter()
    erasure = _CHILD["build"]()
    if _CHILD["timings"]:
        _TIMINGS.clear()
        _time_parts(erasure)
    built, cpu = time.perf_counter(), time.process_time()
    data_done = []
    issue = erasure.certificates.issue

    def certificates(*args, **kwargs):
        data_done.append(time.perf_counter())
        return issue(*args, **kwargs)

    erasure.certificates.issue = certificates
    data = erasure.stores.of(erasure.config.catalog.subject.dataset).engine.url.database
    _TRANSACTIONS.clear()
    erasure.erase(batch, AS_OF, run_id="bench")
    counted = {kind: _TRANSACTIONS.get((data or "", kind), 0) for kind in ("begin", "commit", "rollback")}
    print(
        f"  {batch}: set-up {built - started:.2f}s, erase {time.perf_counter() - built:.2f}s "
        f"(of it {time.process_time() - cpu:.2f}s on a core in this process); data database: "
        f"{counted['begin']} transactions, {counted['commit']} commits, {counted['rollback']} rollbacks",
        flush=True,
    )
    _print_timings(batch)
    return data_done[0], dict(_TRANSACTIONS)


_TRANSACTIONS: dict[tuple[str, str], int] = {}  # (database, begin|commit|rollback) -> count, in this process


def _count_transactions() -> None:
    """Count every transaction of every engine in this process (and in the workers forked from it)."""

    def counter(kind: str):
        def count(conn, *args) -> None:
            key = (conn.engine.url.database or "", kind)
            _TRANSACTIONS[key] = _TRANSACTIONS.get(key, 0) + 1

        return count

    for kind in ("begin", "commit", "rollback"):
        sa.event.listen(sa.engine.Engine, kind, counter(kind))


def _print_transactions(batches: list[dict], data: str) -> None:
    """Transactions per batch: begun, committed, rolled back, on the data database and the state store."""
    for where, label in ((True, "data"), (False, "state")):
        per_batch = {
            kind: [
                sum(n for (db, k), n in counted.items() if k == kind and (db == data) == where) for counted in batches
            ]
            for kind in ("begin", "commit", "rollback")
        }
        print(
            f"  transactions per batch on the {label} database: "
            + ", ".join(f"{kind} {min(v)}-{max(v)}" for kind, v in per_batch.items()),
            flush=True,
        )


def _print_timings(label: str) -> None:
    for part, (wall, on_core) in sorted(_TIMINGS.items(), key=lambda kv: -kv[1][0]):
        print(f"    {label}: {part:<50} {wall:6.2f}s (on a core {on_core:.2f}s)", flush=True)


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
    process = subprocess.Popen(
        [sys.executable, "-m", "lifecycle.mailsink", "--port", "0", "--folder", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        line = process.stdout.readline()  # "mail sink listening on 127.0.0.1:<port>, writing to …"
        port = int(line.split(" on ", 1)[1].split(",", 1)[0].rsplit(":", 1)[1])
        yield _Sink(port, folder)
    finally:
        process.terminate()
        process.wait(timeout=30)


_TIMINGS: dict[
    str, tuple[float, float]
] = {}  # part -> (wall, thread CPU) seconds, of the batches timed in this process
_CLASSES_TIMED: list[bool] = []


def _time_parts(erasure: Erasure) -> None:
    """Wrap the parts of ``erase`` (and the SMTP sends inside the notices) to add up their wall time in ``_TIMINGS``."""
    from lifecycle import mail, reports

    def timed(owner, name, label):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                wall, on_core = _TIMINGS.get(label, (0.0, 0.0))
                _TIMINGS[label] = (wall + time.perf_counter() - started, on_core + time.thread_time() - cpu)

        setattr(owner, name, wrapper)

    timed(erasure.notices, "send", "notices.send")
    timed(erasure.state.notices, "rows", "  of notices.send: notice rows")
    for name in ("_document", "_write", "_record", "retained"):
        timed(erasure.certificates, name, f"certificates.{name}")
    if _CLASSES_TIMED:  # module and class functions: once per process
        return
    _CLASSES_TIMED.append(True)
    from lifecycle.erasure import batch, certificates, executor, notices

    timed(notices.NoticeBook, "summarize", "  of notices.send: the ledger summary")

    timed(executor.StepExecutor, "apply", "StepExecutor.apply (tables; objects beside them)")
    timed(executor.StepExecutor, "verify", "StepExecutor.verify")
    timed(batch, "batch_entries", "batch_entries (completion notice)")
    timed(certificates, "batch_entries", "batch_entries (certificates)")
    timed(S3Store, "_listing", "  of apply+verify: S3 listings")
    timed(mail.Mailer, "transmit", "  of notices.send: SMTP (helper thread claims meanwhile)")
    timed(mail.Mailer, "compose", "  of notices.send: compose")
    timed(mail, "render_notice", "  of notices.send: render notice")
    timed(reports, "canonical", "  of certificates._write: JSON")
    timed(reports, "render", "  of certificates._write+notices.send: Jinja")
    timed(reports.ReportSink, "write", "  of certificates._write: file writes")
    timed(SqlStore, "delete", "  of apply: SQL DELETE")
    timed(SqlStore, "anonymize", "  of apply: SQL anonymize")
    timed(SqlStore, "count_by_subject", "  count_by_subject")
    timed(S3Store, "delete_versions", "  of apply: S3 DeleteObjects")
    from lifecycle.state.ledger import Ledger

    timed(Ledger, "append_many", "  ledger appends")


if __name__ == "__main__":
    sys.exit(main())

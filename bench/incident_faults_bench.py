"""Incident notification throttled, against a server that misbehaves (see bench/README.md).

N affected people (default 100,000), each with an address, sent by ``--workers`` × ``--slots``
processes as ``incident_bench.py`` does, at ``email.max_per_second`` = ``--rate``, to an aiosmtpd
sink in a child process that answers ``421`` (and closes the connection) to one message in every
``--close-every`` (1,000) and ``451`` to ``--greylist`` (1 %) of the recipients on their first
try (accepted on the second).  The sink's own record is the oracle:

* every person mailed exactly once (the recipients of the messages it accepted);
* the rate never exceeded: the most MAIL commands (tries, refused ones included) in any
  one-second window, against ``--rate``;
* the whole send within 1.2× the time the rate alone allows (people ÷ rate).

    .venv/bin/python bench/incident_faults_bench.py [--people 100000] [--rate 400] [--workers 2] [--slots 2]
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "include"), str(REPO / "bench")]

from incident_bench import AS_OF, FORM, RUN_ID, _config, _seed, _worker

from lifecycle.config import load_config
from lifecycle.incident import IncidentNotification, parse
from lifecycle.state import StateStore
from lifecycle.stores.sql import SqlStore


def greylisted(address: str, percent: float) -> bool:
    """The recipients the sink greylists: a fixed ``percent`` of addresses, by their hash."""
    return int(hashlib.sha256(address.encode()).hexdigest()[:8], 16) % 10_000 < percent * 100


def _sink(port_queue, stop, close_every: int, percent: float) -> None:
    """The faulty sink in its own process; reports what it saw when ``stop`` is set."""
    from lifecycle.mailsink import MailSink
    from tests.support.faults import SmtpFaults

    accepted: Counter = Counter()
    starts: list[float] = []
    faults = SmtpFaults(close_every, lambda address: greylisted(address, percent), greylist_tries=2)

    def hook(stage: str, address: str) -> str | None:
        if stage == "MAIL":
            starts.append(time.monotonic())
        reply = faults(stage, address)
        if stage == "DATA" and reply is None:
            accepted.update(address.split(","))
        return reply

    with MailSink(keep=False, faults=hook) as sink:
        port_queue.put(sink.port)
        stop.wait()
        port_queue.put(
            {
                "received": sink.count,
                "people": len(accepted),
                "twice": sum(1 for n in accepted.values() if n > 1),
                "closed": faults.closed,
                "greylisted": faults.greylisted,
                "starts": starts,
            }
        )


def _busiest_second(starts: list[float]) -> int:
    """The most MAIL commands in any one-second window."""
    starts = sorted(starts)
    return max((bisect.bisect_left(starts, t + 1.0) - i for i, t in enumerate(starts)), default=0)


def _throttled_config(work: Path, args):
    folder = _config(work, args.batch_size, args.workers * args.slots)
    config_file = folder / "incidents.yaml"
    import yaml

    data = yaml.safe_load(config_file.read_text())
    data["email"].update({"max_per_second": args.rate, "retry_attempts": 3, "retry_backoff": args.backoff})
    config_file.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return folder


def _send(urls: dict, folder: Path, notifier: IncidentNotification, processes: int) -> float:
    """The batches on ``processes`` worker processes; the wall time from the go to the last mail."""
    spawn = multiprocessing.get_context("spawn")
    batches, results, ready, go = spawn.Queue(), spawn.Queue(), spawn.Semaphore(0), spawn.Event()
    for batch in notifier.batches(RUN_ID):
        batches.put(batch)
    workers = [
        spawn.Process(target=_worker, args=(urls, folder, batches, ready, go, results)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
        batches.put(None)
    for _ in workers:
        ready.acquire()
    started = time.perf_counter()
    go.set()
    for _ in workers:
        results.get()
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join()
    return elapsed


def _report(args, seen: dict, elapsed: float) -> None:
    """What the sink saw, against the rate; every person once or the run fails."""
    allowed = args.people / args.rate
    print(
        f"{args.people:,} people at {args.rate:g}/s on {args.workers} x {args.slots}: "
        f"{seen['closed']} x 421 (connection closed), {seen['greylisted']} x 451"
    )
    print(f"mailed {seen['people']:,} people ({seen['twice']} twice), {len(seen['starts']):,} MAIL commands")
    print(f"busiest second: {_busiest_second(seen['starts'])} MAIL commands (rate {args.rate:g})")
    print(f"send {elapsed:.1f}s; the rate alone allows {allowed:.1f}s: ratio {elapsed / allowed:.3f} (target <= 1.2)")
    assert seen["people"] == args.people and seen["twice"] == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=400, help="email.max_per_second")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--close-every", type=int, default=1000, help="421 to one message in this many")
    parser.add_argument("--greylist", type=float, default=1.0, help="percent of recipients greylisted once")
    parser.add_argument("--backoff", default="1s", help="email.retry_backoff")
    args = parser.parse_args()

    admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    names = {side: f"bench_faults_{side}_{uuid.uuid4().hex[:6]}" for side in ("app", "state")}
    with admin.connect() as conn:
        for name in names.values():
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    url = sa.make_url(args.postgres)
    app = sa.create_engine(url.set(database=names["app"]))
    state_engine = sa.create_engine(url.set(database=names["state"]))
    ports, stop = multiprocessing.Queue(), multiprocessing.Event()
    sink = multiprocessing.Process(target=_sink, args=(ports, stop, args.close_every, args.greylist), daemon=True)
    sink.start()
    try:
        _seed(app, args.people)
        port = ports.get(timeout=30)
        os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {"disable_ssl": True, "disable_tls": True},
            }
        )
        folder = _throttled_config(Path(tempfile.mkdtemp(prefix="bench-faults-")), args)
        config = load_config(folder)
        state = StateStore(state_engine, dataset_names=set(config.catalog.datasets))
        notifier = IncidentNotification(config, state, open_store=lambda system: SqlStore(app, config.catalog, system))
        notifier.register(parse(FORM, config.catalog), RUN_ID, AS_OF)
        notifier.resolve(RUN_ID)
        notifier.obligations(RUN_ID)
        notifier.record_approval(RUN_ID, "approved", by="bench", how="bench")
        urls = {
            side: e.url.render_as_string(hide_password=False) for side, e in (("app", app), ("state", state_engine))
        }
        elapsed = _send(urls, folder, notifier, args.workers * args.slots)
        stop.set()
        _report(args, ports.get(timeout=60), elapsed)
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

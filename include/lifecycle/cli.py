"""``python -m lifecycle``: the one command line.

validate, scan (``--suggest``: discovery), init (``--from``: a first configuration),
plan, pools, holds, ledger verify (``--checkpoints``), manifest
verify, the sharing register, ``records processing|requests|breaches`` (the record of processing, a period's request statistics, the breach register), ``evidence verify`` and ``certificate show``; ``access apply`` (roles and users of the Airflow UI),
``dev start|stop|status|env|run`` (the embedded defaults) and ``demo seed|run``
(the demo world).  ``python -m lifecycle.access``, ``python -m lifecycle.devenv``
and ``python -m lifecycle.demo`` are aliases of the last three.

Exit status: 0 when all is well, 1 when the command found problems (invalid
configuration, scan findings, a broken ledger) or failed (a store unreachable,
a SQL error), 2 for bad arguments.  A failure is one line on stderr naming the
command and where it failed; a part that does not answer (the S3 endpoint, the
mail server, a database) is named with how to start it.  ``--debug`` prints
the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import traceback
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from lifecycle import reach
from lifecycle.clock import aware_utc
from lifecycle.config import collect, load_config
from lifecycle.devenv.env import DevenvError
from lifecycle.errors import ConfigError, LifecycleError
from lifecycle.proofs import outcome

_ALL_MATCH = "signature valid, every file matches its SHA-256"


def _config(args):
    """Loaded once per command, and kept so a failure can be traced to its system."""
    if getattr(args, "loaded", None) is None:
        args.loaded = load_config(args.config)
    return args.loaded


def cmd_validate(args) -> int:
    _, problems, folder = collect(args.config)
    if problems:
        print(f"{folder}: {len(problems)} problem(s)")
        for problem in problems:
            print(f"  {problem}")
        return 1
    config = load_config(args.config)
    catalog = config.catalog
    print(f"{folder}: valid")
    print(
        f"  catalog: {len(catalog.systems)} systems, {len(config.catalog_file.categories)} categories, "
        f"{len(catalog.table_datasets)} table datasets, {len(catalog.object_datasets)} object datasets"
    )
    print(f"  retention: {len(config.retention.rules)} rules, {len(config.retention.statutory)} statutory minimums")
    print(f"  cancellation: {'configured' if config.cancellation else 'not configured'}")
    print(f"  requests: {'configured' if config.requests else 'not configured'}")
    print(f"  recipients: {len(config.recipients.recipients)}")
    print(f"  incidents: {'configured' if config.incidents else 'not configured'}")
    mail = config.notifications
    print(f"  notifications: {f'mail through {mail.email.conn_id!r}' if mail else 'not configured'}")
    watch = config.deadlines
    print(
        f"  deadlines: {watch.schedule or 'not scheduled'}, near = "
        + ", ".join(f"{name} {window}" for name, window in watch.near)
    )
    missing = _undefined_connections(config)
    if missing:
        print(f"  connections not defined here: {', '.join(f'{c} (AIRFLOW_CONN_{c.upper()})' for c in missing)}")
    return 1 if missing and args.require_connections else 0


def _undefined_connections(config) -> list[str]:
    """The Airflow connections the configuration names that this environment does not define."""
    from lifecycle.connections import get_connection

    wanted = {s.conn_id for s in config.catalog.systems.values() if s.conn_id}
    if config.notifications:
        wanted.add(config.notifications.email.conn_id)
    missing = []
    for conn_id in sorted(wanted):
        try:
            get_connection(conn_id)
        except LifecycleError:
            missing.append(conn_id)
    return missing


def cmd_scan(args) -> int:
    """Findings fail the command; a ``personal: false`` table's unnamed columns are only listed."""
    from lifecycle.scan import cleared_links, scan_report, time_columns

    if args.suggest:
        return cmd_suggest(args)

    config = _config(args)
    report = scan_report(config.catalog, times=time_columns(config), cleared=cleared_links(config))
    for finding in report.findings:
        print(finding)
    if report.notes:
        print("informational (not findings):")
        for note in report.notes:
            print(f"  {note}")
    findings = report.findings
    print(f"scan: {len(findings)} finding(s)" if findings else "scan: every table and column is classified")
    return 1 if findings else 0


def cmd_suggest(args) -> int:
    """``scan --suggest``: sample, judge, write the patch; fails when a ``personal: false`` column looks personal."""
    from lifecycle.discovery import report

    config = _config(args)
    coverage = report.suggest_for(config.catalog, as_of=date.today(), sample_size=args.sample, categories=args.category)
    path = report.write_patch(coverage, config.catalog, Path(args.out) if args.out else None)
    for line in report.lines(coverage):
        print(line)
    print(f"scan --suggest: patch written to {path} (catalog.yaml is unchanged)")
    return 1 if coverage.flagged else 0


def cmd_init(args) -> int:
    """``init --from <connection>``: a configuration folder from a live database."""
    from lifecycle.connections import sql_engine
    from lifecycle.discovery import defaults, initial
    from lifecycle.stores.sql import SqlStore

    engine = sql_engine(args.source)
    system = args.system or args.source
    store = SqlStore(engine, None, system)
    catalog = initial.catalog_from(store, system, args.source, as_of=date.today(), sample_size=args.sample)
    folder = Path(args.out or args.config or "config/lifecycle")
    for path in initial.write_folder(catalog, folder, args.source):
        print(f"wrote {path}")
    for name, why in defaults.skipped(catalog).items():
        print(f"not written: {name}: {why}")
    print(f"init: {len(catalog['datasets'])} dataset(s); next: python -m lifecycle --config {folder} validate")
    return 0


def _kind_category(text: str) -> tuple[str, str]:
    kind, sep, category = text.partition("=")
    if not sep or not kind or not category:
        raise argparse.ArgumentTypeError(f"--category {text!r}: write KIND=CATEGORY (for example email=basic_info)")
    return kind.strip(), category.strip()


def _sample_size(text: str) -> int:
    try:
        size = int(text)
    except ValueError:
        size = 0
    if not 1 <= size <= 100_000:
        raise argparse.ArgumentTypeError(f"--sample {text!r}: a number of rows from 1 to 100000")
    return size


def _state(args):
    from lifecycle.state import StateStore

    return StateStore.for_catalog(_config(args).catalog)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; write YYYY-MM-DD") from None


def cmd_holds(args) -> int:
    state = _state(args)
    today = datetime.now(UTC).date()
    if args.action == "add":
        datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets else None
        hold = state.holds.add(args.subject, reason=args.reason, datasets=datasets, until=args.until, today=today)
        print(
            f"hold {hold.id} added: subject {hold.subject_id}, datasets {', '.join(hold.datasets) if hold.datasets else 'all'}, "
            f"until {hold.until or 'removed'}"
        )
    elif args.action == "remove":
        count = state.holds.remove(args.subject)
        print(f"{count} hold(s) removed for subject {args.subject}")
        return 0 if count else 1
    else:
        holds = state.holds.active(today)
        for hold in holds:
            print(
                f"{hold.id}\tsubject {hold.subject_id}\t{','.join(hold.datasets) if hold.datasets else 'all datasets'}\t"
                f"until {hold.until or '-'}\t{hold.reason}"
            )
        print(f"{len(holds)} active hold(s)")
    return 0


def _instant(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date or date-time (e.g. 2026-11-26 or 2026-11-26T10:00:00Z)"
        ) from None
    return aware_utc(when)


def cmd_plan(args) -> int:
    from lifecycle.retention import Retention

    config = _config(args)
    retention = Retention(config, _state(args))
    with _reported_here("lifecycle.retention", unless=args.verbose):
        plan = retention.plan("cli-preview", args.as_of or datetime.now(UTC), record=False)
    print(f"retention plan as of {plan.as_of} (not recorded; nothing is changed)")
    print(
        f"{'dataset':<20} {'rule':<28} {'action':<9} {'cutoff':<20} {'total':>9} {'candidates':>10} "
        f"{'floor':>7} {'held':>6} {'refd':>6} {'to act':>8} {'share':>6}  guardrail"
    )
    for d in plan.datasets:
        if d.error:
            print(f"{d.dataset:<20} {d.rule:<28} {d.action:<9} {d.effective_cutoff[:19]:<20} cannot be planned (below)")
            continue
        print(
            f"{d.dataset:<20} {d.rule:<28} {d.action:<9} {d.effective_cutoff[:19]:<20} {d.total:>9,} {d.candidates:>10,} "
            f"{d.under_floor:>7,} {d.held:>6,} {d.referenced:>6,} {d.to_act:>8,} {100 * d.fraction:>5.1f}%  {d.guardrail}"
        )
    for d in plan.datasets:
        for ref in d.references:
            print(
                f"  {d.dataset}: {ref['rows']:,} expired row(s) kept (refd): rows of {ref['dataset']} "
                f"({', '.join(ref['columns'])}) that stay still point at them"
            )
        for part in d.partitions:
            verdict = f"drop ({part.counted})" if part.go else "rows"
            print(
                f"  {d.dataset}: partition {part.name} [{part.low or '-'}, {part.high or '-'}): {verdict}: {part.why}"
            )
    failed = [d for d in plan.datasets if d.error]
    if failed:
        names = ", ".join(d.dataset for d in failed)
        print(
            f"error: plan: {len(failed)} of {len(plan.datasets)} dataset(s) cannot be planned ({names}); "
            f"the first: {failed[0].error}",
            file=sys.stderr,
        )
        return 1
    return 0


@contextlib.contextmanager
def _reported_here(logger: str, unless: bool):
    """Drop a module's error records while the command reports those errors itself (one line, not two)."""

    def below_error(record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR

    if unless:
        yield
        return
    logging.getLogger(logger).addFilter(below_error)
    try:
        yield
    finally:
        logging.getLogger(logger).removeFilter(below_error)


def cmd_pools(args) -> int:
    """The Airflow pools the DAGs use, as JSON for ``airflow pools import``."""
    import json

    catalog = _config(args).catalog
    pools = {
        f"lifecycle_{name}": {
            "slots": system.pool_slots,
            "description": f"lifecycle tasks on system {name}",
            "include_deferred": False,
        }
        for name, system in catalog.systems.items()
    }
    print(json.dumps(pools, indent=2, sort_keys=True))
    return 0


def cmd_ledger(args) -> int:
    ledger = _state(args).ledger
    result = ledger.verify()
    for problem in result.problems:
        print(problem)
    print(
        f"ledger: {result.entries} entries, " + ("chain intact" if result.ok else f"{len(result.problems)} problem(s)")
    )
    if args.checkpoints:
        from lifecycle import proofs

        return max(proofs.ledger_checkpoints(_config(args).catalog, ledger), 0 if result.ok else 1)
    return 0 if result.ok else 1


def cmd_manifest(args) -> int:
    """A delivery's manifest (S3), or a person's access package: its zip (a local file or in S3)
    or its manifest (the copy beside the zip, or a local file)."""
    from lifecycle.connections import connection_secret
    from lifecycle.sharing.verify import verify_manifest
    from lifecycle.stores import open_store

    config = _config(args)
    catalog, key, system = config.catalog, args.key, args.system
    signing_key = lambda: connection_secret(config.recipients.signing.conn_id)  # noqa: E731
    local = Path(key)
    if not key.startswith("s3://") and local.is_file():
        return _verify_local_package(config, local, signing_key)
    if key.startswith("s3://"):
        bucket, _, key = key[5:].partition("/")
        named = [n for n, s in catalog.systems.items() if s.type == "s3" and s.bucket == bucket]
        if not named:
            print(f"error: no s3 system in catalog.yaml has bucket {bucket!r}", file=sys.stderr)
            return 2
        system = system or named[0]
    if system is None and key.endswith(".zip") and config.requests and config.requests.access:
        system = config.requests.access.delivery.system
    if system is None:
        used = sorted({r.delivery.system for r in config.recipients.recipients})
        if len(used) != 1:
            print(
                f"error: name the system with --system (deliveries go to: {', '.join(used) or 'none'})", file=sys.stderr
            )
            return 2
        system = used[0]
    if system not in catalog.systems or catalog.systems[system].type != "s3":
        print(f"error: {system!r} is not an s3 system of catalog.yaml", file=sys.stderr)
        return 2
    store = open_store(catalog, system)
    if key.endswith(".zip"):
        return _verify_stored_package(store, key, signing_key(), None)
    raw = store.get_bytes(key)
    if _manifest_kind(raw) == "access_package":
        package = json.loads(raw).get("package") or {}
        return _verify_stored_package(store, package.get("key", ""), signing_key(), raw)
    problems = verify_manifest(store, key, signing_key())
    return outcome(f"manifest s3://{store.bucket}/{key}: ", problems, _ALL_MATCH)


def _manifest_kind(raw: bytes) -> str | None:
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    return document.get("kind") if isinstance(document, dict) else None


def _package_outcome(where: str, problems: list[str]) -> int:
    return outcome(f"access package {where}: ", problems, _ALL_MATCH)


def _verify_stored_package(store, key: str, signing_key: bytes, manifest: bytes | None) -> int:
    """Download the zip in chunks to a temporary file and check it (and the manifest beside it)."""
    import tempfile

    from lifecycle.rights.package import verify_package

    with tempfile.TemporaryFile(prefix="access-") as file:
        for chunk in store.chunks(key):
            file.write(chunk)
        file.seek(0)
        return _package_outcome(f"s3://{store.bucket}/{key}", verify_package(file, signing_key, manifest=manifest))


def _verify_local_package(config, path: Path, signing_key) -> int:
    """A zip on disk, or an access manifest on disk (its package read from S3)."""
    import zipfile

    from lifecycle.rights.package import verify_package
    from lifecycle.stores import open_store

    if zipfile.is_zipfile(path):
        return _package_outcome(str(path), verify_package(str(path), signing_key()))
    raw = path.read_bytes()
    if _manifest_kind(raw) != "access_package":
        print(f"error: {path} is neither an access package (zip) nor its manifest", file=sys.stderr)
        return 2
    package = json.loads(raw).get("package") or {}
    named = [n for n, s in config.catalog.systems.items() if s.type == "s3" and s.bucket == package.get("bucket")]
    if not named:
        print(f"error: no s3 system in catalog.yaml has bucket {package.get('bucket')!r}", file=sys.stderr)
        return 2
    store = open_store(config.catalog, named[0])
    return _verify_stored_package(store, package.get("key", ""), signing_key(), raw)


def cmd_sharing_register(args) -> int:
    from lifecycle.sharing.register import SharingRegister

    if args.end < args.start:
        print(f"error: --to {args.end} is before --from {args.start}", file=sys.stderr)
        return 2
    config = _config(args)
    export = SharingRegister(_state(args)).export(config.catalog, args.start, args.end)
    print(f"sharing register {args.start} – {args.end}: {export.rows} entr{'y' if export.rows == 1 else 'ies'}")
    print(f"  csv:  {export.csv}\n  html: {export.html}")
    return 0


def cmd_records(args) -> int:
    """``records processing|requests``: the record of processing, or a period's request statistics
    (``--to`` is the period's last day), as HTML or ``--json`` on stdout, or both files in ``--out``."""
    from lifecycle import reports
    from lifecycle.registers import processing, requests

    config = _config(args)
    if args.action == "processing":
        module, name, document = processing, "record_of_processing", processing.record_of_processing(config)
    else:
        if args.end < args.start:
            print(f"error: --to {args.end} is before --from {args.start}", file=sys.stderr)
            return 2
        end = args.end + timedelta(days=1)
        module, name = requests, f"request_statistics_{args.start}_{args.end}"
        document = requests.request_statistics(config, _state(args), args.start, end)
    if args.out:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.json").write_bytes(reports.canonical(document))
        (folder / f"{name}.html").write_text(module.render(document), encoding="utf-8")
        print(f"wrote {folder / name}.json\nwrote {folder / name}.html")
    else:
        print(reports.canonical(document).decode("utf-8") if args.json else module.render(document))
    return 0


def _records_command(sub) -> None:
    """``records processing|requests|breaches``: the records regulators ask for (``--to``: a period's last day)."""
    records = sub.add_parser("records", help="the records regulators ask for").add_subparsers(
        dest="action", required=True
    )
    processing = records.add_parser("processing", help="the record of processing activities, from the configuration")
    statistics = records.add_parser("requests", help="a period's requests, erasures, deletion requests and deliveries")
    statistics.add_argument("--from", dest="start", type=_date, required=True, help="first day (YYYY-MM-DD)")
    statistics.add_argument("--to", dest="end", type=_date, required=True, help="last day (YYYY-MM-DD)")
    for command in (processing, statistics):
        command.add_argument("--json", action="store_true", help="print the JSON document instead of HTML")
        command.add_argument("--out", metavar="DIR", help="write the JSON and the HTML into DIR instead")
        command.set_defaults(run=cmd_records)
    breaches = records.add_parser("breaches", help="the breach register (GDPR art. 33(5)) of a period: JSON and HTML")
    breaches.add_argument("--from", dest="start", type=_date, required=True, help="first day (YYYY-MM-DD)")
    breaches.add_argument("--to", dest="end", type=_date, required=True, help="last day (YYYY-MM-DD)")
    breaches.add_argument("--json", action="store_true", help="print the register as JSON")
    breaches.add_argument("--out", metavar="DIR", help="write the files here (default: the reports destination)")
    breaches.set_defaults(run=cmd_records_breaches)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m lifecycle", description="Privacy Lifecycle commands")
    top.add_argument("--config", help="configuration folder (default: $LIFECYCLE_CONFIG_DIR or config/lifecycle)")
    top.add_argument("-v", "--verbose", action="store_true", help="log progress")
    top.add_argument("--debug", action="store_true", help="on a failure, print the traceback instead of one line")
    sub = top.add_subparsers(dest="command", required=True)
    validate = sub.add_parser("validate", help="validate the configuration")
    validate.add_argument(
        "--require-connections", action="store_true", help="fail when a connection it names is not defined here"
    )
    validate.set_defaults(run=cmd_validate)
    scan = sub.add_parser("scan", help="compare the catalog with the live schema")
    scan.set_defaults(run=cmd_scan)
    _suggest_options(scan)
    _init_command(sub)
    plan = sub.add_parser("plan", help="what a retention run would do now (counts only)")
    plan.add_argument(
        "--as-of",
        type=_instant,
        metavar="WHEN",
        help="decide as a run at this instant would (ISO date or date-time, UTC unless it says; default: now)",
    )
    plan.set_defaults(run=cmd_plan)
    sub.add_parser("pools", help="the Airflow pools the DAGs use (JSON for `airflow pools import`)").set_defaults(
        run=cmd_pools
    )

    _holds_command(sub)
    manifest = sub.add_parser("manifest", help="delivery manifests").add_subparsers(dest="action", required=True)
    verify = manifest.add_parser(
        "verify",
        help="check a manifest's signature and re-hash the files it names: a delivery's (S3), or an access "
        "package's (its zip or its manifest, a local file or in S3)",
    )
    verify.add_argument("key", help="the manifest's or package's key (or s3://bucket/key, or a local file)")
    verify.add_argument("--system", help="the s3 system holding it (default: the one deliveries go to)")
    verify.set_defaults(run=cmd_manifest)
    sharing = sub.add_parser("sharing", help="the sharing register").add_subparsers(dest="action", required=True)
    register = sharing.add_parser(
        "register", help="export the register for a period (CSV and HTML, reports destination)"
    )
    register.add_argument("--from", dest="start", type=_date, required=True, help="first day (YYYY-MM-DD)")
    register.add_argument("--to", dest="end", type=_date, required=True, help="last day (YYYY-MM-DD)")
    register.set_defaults(run=cmd_sharing_register)

    ledger = sub.add_parser("ledger", help="the hash-chained ledger").add_subparsers(dest="action", required=True)
    ledger_verify = ledger.add_parser("verify", help="check every entry's hash and the chain")
    ledger_verify.add_argument(
        "--checkpoints", action="store_true", help="and that the ledger extends every published signed checkpoint"
    )
    ledger_verify.set_defaults(run=cmd_ledger)
    from lifecycle import proofs

    proofs.mount(sub)
    _records_command(sub)
    _mount(sub)
    return top


def cmd_records_breaches(args) -> int:
    from lifecycle.registers.breaches import breach_register, write

    """``records breaches``: the breach register of the days ``--from`` … ``--to``, written as JSON and HTML."""
    if args.end < args.start:
        print(f"error: --to {args.end} is before --from {args.start}", file=sys.stderr)
        return 2
    start, end = (datetime.combine(day, datetime.min.time(), UTC) for day in (args.start, args.end + timedelta(days=1)))
    register = breach_register(_config(args), _state(args), start, end)
    written = write(_config(args), register, args.out)
    if args.json:
        print(json.dumps(register, indent=2, sort_keys=True, ensure_ascii=False))
        return 0
    totals = register["totals"]
    decisions = ", ".join(f"{n} {d.replace('_', ' ')}" for d, n in totals["decisions"].items()) or "none"
    print(f"breach register {args.start} – {args.end}: {totals['incidents']} incident(s): {decisions}")
    print(f"  json: {written['json']}\n  html: {written['html']}")
    return 0


def _holds_command(sub) -> None:
    """``holds add|remove|list``: legal holds."""
    holds = sub.add_parser("holds", help="manage legal holds").add_subparsers(dest="action", required=True)
    add = holds.add_parser("add", help="put a subject under legal hold")
    add.add_argument("--subject", required=True)
    add.add_argument("--datasets", help="comma-separated datasets (default: all)")
    add.add_argument("--reason", required=True)
    add.add_argument("--until", type=_date, help="last day of the hold (YYYY-MM-DD)")
    remove = holds.add_parser("remove", help="end every hold of a subject")
    remove.add_argument("--subject", required=True)
    holds.add_parser("list", help="list active holds")
    for p in (add, remove, holds.choices["list"]):
        p.set_defaults(run=cmd_holds)


def _suggest_options(scan) -> None:
    scan.add_argument(
        "--suggest",
        action="store_true",
        help="sample unclassified and personal: false columns and write a YAML patch of suggested classifications",
    )
    scan.add_argument("--sample", type=_sample_size, default=1000, help="rows sampled per table (default: 1000)")
    scan.add_argument("--out", help="where the patch goes (default: $LIFECYCLE_VAR_DIR/discovery/catalog.patch.yaml)")
    scan.add_argument(
        "--category",
        type=_kind_category,
        action="append",
        metavar="KIND=CATEGORY",
        help="the category to propose for a kind (email, phone, ...); repeatable",
    )


def _init_command(sub) -> None:
    init = sub.add_parser("init", help="scaffold a configuration folder from a live database")
    init.add_argument("--from", dest="source", required=True, metavar="CONN_ID", help="the Airflow connection to read")
    init.add_argument("--system", help="the system's name in catalog.yaml (default: the connection id)")
    init.add_argument(
        "--out", help="the folder to write (default: --config, else config/lifecycle); must not hold catalog.yaml"
    )
    init.add_argument("--sample", type=_sample_size, default=1000, help="rows sampled per table (default: 1000)")
    init.set_defaults(run=cmd_init)


def _mount(sub) -> None:
    """The commands of the access, devenv and demo modules, each under its own word."""
    from lifecycle import access, devenv
    from lifecycle.demo import commands as demo

    for word, module, about in (
        ("access", access, "roles and users of the Airflow UI (FAB auth manager)"),
        ("dev", devenv, "the embedded defaults: start, stop, status, env, run -- CMD"),
        ("demo", demo, "the demo world: seed it, run every DAG once"),
    ):
        module.add_commands(sub.add_parser(word, help=about).add_subparsers(dest="action", required=True))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.getLogger("lifecycle").setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        with _engine_of_failures():
            return args.run(args)
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        elif isinstance(exc, ConfigError):
            print(exc, file=sys.stderr)  # every problem, one per line
        elif isinstance(exc, DevenvError):
            print(f"error: {_command(args)}: {exc}", file=sys.stderr)  # a service's last log lines follow
        else:
            print(failure_line(args, exc), file=sys.stderr)
        return 1


# ----------------------------------------------------------------- failures


def failure_line(args, exc: BaseException) -> str:
    """One line: the command, where it failed and why.

    Database errors give the driver's first line only: the statement and its
    parameters (row values) stay out of the terminal and its logs.
    """
    where = _where(args, exc)
    down = reach.explain(exc)
    reason = down or _reason(exc)
    hint = "" if down or isinstance(exc, LifecycleError) else " (--debug shows the traceback)"
    return f"error: {_command(args)}: {where + ': ' if where else ''}{reason}{hint}"


def _command(args) -> str:
    return " ".join(part for part in (args.command, getattr(args, "action", None)) if part)


def _reason(exc: BaseException) -> str:
    from lifecycle.failures import describe

    return " ".join(line.strip() for line in describe(exc).splitlines() if line.strip())


def _where(args, exc: BaseException) -> str:
    """The catalog systems (and connection) behind the engine a database error came from."""
    engine = getattr(exc, "lifecycle_engine", None)
    config = getattr(args, "loaded", None)
    if engine is None or config is None:
        return ""
    found = {
        name: system.conn_id
        for name, system in sorted(config.catalog.systems.items())
        if system.type == "sql" and _engine_of(system.conn_id) is engine
    }
    if not found:
        return f"database {engine.url.set(query={}).render_as_string(hide_password=True)}"
    systems = ", ".join(map(repr, found))
    conn_ids = ", ".join(map(repr, dict.fromkeys(found.values())))
    return f"system{'s' if len(found) > 1 else ''} {systems} (connection {conn_ids})"


def _engine_of(conn_id: str) -> sa.Engine | None:
    """The engine the lifecycle keeps for a connection (None if the connection is undefined)."""
    from lifecycle.connections import sql_engine

    try:
        return sql_engine(conn_id)
    except Exception:
        return None


@contextlib.contextmanager
def _engine_of_failures():
    """While a command runs, mark each database error with the engine it came from."""

    def mark(context) -> None:
        if context.sqlalchemy_exception is not None and context.engine is not None:
            context.sqlalchemy_exception.lifecycle_engine = context.engine

    sa.event.listen(sa.Engine, "handle_error", mark)
    try:
        yield
    finally:
        sa.event.remove(sa.Engine, "handle_error", mark)

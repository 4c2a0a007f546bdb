"""``python -m lifecycle``: validate, scan, plan, pools, holds, ledger verify, manifest verify and the sharing register.

Exit status: 0 when all is well, 1 when the command found problems (invalid
configuration, scan findings, a broken ledger), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date, datetime, timezone

from lifecycle.config import collect, load_config
from lifecycle.errors import ConfigError, LifecycleError


def _config(args):
    return load_config(args.config)


def cmd_validate(args) -> int:
    models, problems, folder = collect(args.config)
    if problems:
        print(f"{folder}: {len(problems)} problem(s)")
        for problem in problems:
            print(f"  {problem}")
        return 1
    config = load_config(args.config)
    catalog = config.catalog
    print(f"{folder}: valid")
    print(f"  catalog: {len(catalog.systems)} systems, {len(config.catalog_file.categories)} categories, "
          f"{len(catalog.table_datasets)} table datasets, {len(catalog.object_datasets)} object datasets")
    print(f"  retention: {len(config.retention.rules)} rules, {len(config.retention.statutory)} statutory minimums")
    print(f"  cancellation: {'configured' if config.cancellation else 'not configured'}")
    print(f"  recipients: {len(config.recipients.recipients)}")
    print(f"  incidents: {'configured' if config.incidents else 'not configured'}")
    return 0


def cmd_scan(args) -> int:
    from lifecycle.scan import scan

    findings = scan(_config(args).catalog)
    for finding in findings:
        print(finding)
    print(f"scan: {len(findings)} finding(s)" if findings else "scan: every table and column is classified")
    return 1 if findings else 0


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
    today = datetime.now(timezone.utc).date()
    if args.action == "add":
        datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets else None
        hold = state.holds.add(args.subject, reason=args.reason, datasets=datasets, until=args.until, today=today)
        print(f"hold {hold.id} added: subject {hold.subject_id}, datasets {', '.join(hold.datasets) if hold.datasets else 'all'}, "
              f"until {hold.until or 'removed'}")
    elif args.action == "remove":
        count = state.holds.remove(args.subject)
        print(f"{count} hold(s) removed for subject {args.subject}")
        return 0 if count else 1
    else:
        holds = state.holds.active(today)
        for hold in holds:
            print(f"{hold.id}\tsubject {hold.subject_id}\t{','.join(hold.datasets) if hold.datasets else 'all datasets'}\t"
                  f"until {hold.until or '-'}\t{hold.reason}")
        print(f"{len(holds)} active hold(s)")
    return 0


def _instant(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date or date-time (e.g. 2026-11-26 or 2026-11-26T10:00:00Z)") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def cmd_plan(args) -> int:
    from lifecycle.retention import Retention

    config = _config(args)
    retention = Retention(config, _state(args))
    plan = retention.plan("cli-preview", args.as_of or datetime.now(timezone.utc), record=False)
    print(f"retention plan as of {plan.as_of} (not recorded; nothing is changed)")
    print(f"{'dataset':<20} {'rule':<28} {'action':<9} {'cutoff':<20} {'total':>9} {'candidates':>10} "
          f"{'floor':>7} {'held':>6} {'to act':>8} {'share':>6}  guardrail")
    for d in plan.datasets:
        print(f"{d.dataset:<20} {d.rule:<28} {d.action:<9} {d.effective_cutoff[:19]:<20} {d.total:>9,} {d.candidates:>10,} "
              f"{d.under_floor:>7,} {d.held:>6,} {d.to_act:>8,} {100 * d.fraction:>5.1f}%  {d.guardrail}")
    return 0


def cmd_pools(args) -> int:
    """The Airflow pools the DAGs use, as JSON for ``airflow pools import``."""
    import json

    catalog = _config(args).catalog
    pools = {
        f"lifecycle_{name}": {"slots": system.pool_slots, "description": f"lifecycle tasks on system {name}",
                              "include_deferred": False}
        for name, system in catalog.systems.items()
    }
    print(json.dumps(pools, indent=2, sort_keys=True))
    return 0


def cmd_ledger(args) -> int:
    result = _state(args).ledger.verify()
    for problem in result.problems:
        print(problem)
    print(f"ledger: {result.entries} entries, " + ("chain intact" if result.ok else f"{len(result.problems)} problem(s)"))
    return 0 if result.ok else 1


def cmd_manifest(args) -> int:
    from lifecycle.connections import connection_secret
    from lifecycle.sharing.service import verify_manifest
    from lifecycle.stores import open_store

    config = _config(args)
    catalog, key, system = config.catalog, args.key, args.system
    if key.startswith("s3://"):
        bucket, _, key = key[5:].partition("/")
        named = [n for n, s in catalog.systems.items() if s.type == "s3" and s.bucket == bucket]
        if not named:
            print(f"error: no s3 system in catalog.yaml has bucket {bucket!r}", file=sys.stderr)
            return 2
        system = system or named[0]
    if system is None:
        used = sorted({r.delivery.system for r in config.recipients.recipients})
        if len(used) != 1:
            print(f"error: name the system with --system (deliveries go to: {', '.join(used) or 'none'})", file=sys.stderr)
            return 2
        system = used[0]
    if system not in catalog.systems or catalog.systems[system].type != "s3":
        print(f"error: {system!r} is not an s3 system of catalog.yaml", file=sys.stderr)
        return 2
    store = open_store(catalog, system)
    problems = verify_manifest(store, key, connection_secret(config.recipients.signing.conn_id))
    for problem in problems:
        print(problem)
    print(f"manifest s3://{store.bucket}/{key}: " + ("signature valid, every file matches its SHA-256" if not problems
                                                     else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


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


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m lifecycle", description="Privacy Lifecycle commands")
    top.add_argument("--config", help="configuration folder (default: $LIFECYCLE_CONFIG_DIR or config/lifecycle)")
    top.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("validate", help="validate the configuration").set_defaults(run=cmd_validate)
    sub.add_parser("scan", help="compare the catalog with the live schema").set_defaults(run=cmd_scan)
    plan = sub.add_parser("plan", help="what a retention run would do now (counts only)")
    plan.add_argument("--as-of", type=_instant, metavar="WHEN",
                      help="decide as a run at this instant would (ISO date or date-time, UTC unless it says; default: now)")
    plan.set_defaults(run=cmd_plan)
    sub.add_parser("pools", help="the Airflow pools the DAGs use (JSON for `airflow pools import`)").set_defaults(run=cmd_pools)

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

    manifest = sub.add_parser("manifest", help="delivery manifests").add_subparsers(dest="action", required=True)
    verify = manifest.add_parser("verify", help="check a manifest's signature and re-hash the files it names in S3")
    verify.add_argument("key", help="the manifest's key (or s3://bucket/key)")
    verify.add_argument("--system", help="the s3 system holding it (default: the one deliveries go to)")
    verify.set_defaults(run=cmd_manifest)
    sharing = sub.add_parser("sharing", help="the sharing register").add_subparsers(dest="action", required=True)
    register = sharing.add_parser("register", help="export the register for a period (CSV and HTML, reports destination)")
    register.add_argument("--from", dest="start", type=_date, required=True, help="first day (YYYY-MM-DD)")
    register.add_argument("--to", dest="end", type=_date, required=True, help="last day (YYYY-MM-DD)")
    register.set_defaults(run=cmd_sharing_register)

    ledger = sub.add_parser("ledger", help="the hash-chained ledger").add_subparsers(dest="action", required=True)
    ledger.add_parser("verify", help="check every entry's hash and the chain").set_defaults(run=cmd_ledger)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.getLogger("lifecycle").setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        return args.run(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    except LifecycleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

"""``python -m lifecycle evidence verify``, ``certificate show`` and ``ledger verify
--checkpoints``: the commands of what anyone can check.

``evidence verify`` needs no state store and no HMAC secret: the document (a
local file or ``s3://bucket/key``) and the public keys — ``--keys`` (the
published ``public-keys.json`` or a PEM), else the ``public-keys.json`` found
in the document's folder or one above it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from lifecycle import attestations, signing
from lifecycle.errors import LifecycleError


def outcome(lead: str, problems: list[str], valid: str) -> int:
    """A check's verdict on stdout: each problem, then ``lead`` and ``valid`` or how many problems; the exit status."""
    for problem in problems:
        print(problem)
    print(lead + (valid if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


def mount(sub) -> None:
    evidence = sub.add_parser("evidence", help="check what the lifecycle issued, offline, with the public key")
    actions = evidence.add_subparsers(dest="action", required=True)
    verify = actions.add_parser(
        "verify",
        help="check a signed document, a person's certificate, a checkpoint, an access package or an evidence pack",
    )
    verify.add_argument("files", nargs="+", metavar="FILE", help="a local file or s3://bucket/key")
    verify.add_argument("--keys", help="the public keys: public-keys.json as published, or a PEM (file or s3://)")
    verify.add_argument(
        "--conn-id", help="the Airflow connection to read s3:// with (default: the system of that bucket)"
    )
    verify.set_defaults(run=cmd_evidence_verify)
    pack = actions.add_parser("pack", help="build the evidence pack of a period, then check it")
    pack.add_argument("--from", dest="start", type=_day, required=True, help="first day (YYYY-MM-DD)")
    pack.add_argument("--to", dest="end", type=_day, required=True, help="last day, included (YYYY-MM-DD)")
    pack.add_argument("--out", help="write the pack to this folder (default: the packs destination of catalog.yaml)")
    pack.set_defaults(run=cmd_evidence_pack)
    certificate = sub.add_parser("certificate", help="a person's erasure certificate, rendered on demand")
    show = certificate.add_subparsers(dest="action", required=True).add_parser(
        "show", help="the person's leaf, its inclusion proof and the batch's signed root (JSON)"
    )
    show.add_argument("--batch", required=True, help="the erasure batch")
    show.add_argument("--subject", required=True, help="the subject's certificate hash (16+ hex digits)")
    show.add_argument("--out", help="write it to this file (default: standard output)")
    show.set_defaults(run=cmd_certificate_show)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write YYYY-MM-DD") from None


def cmd_evidence_pack(args) -> int:
    """Build the period's pack, then check it as a regulator would (the published keys)."""
    from lifecycle.config import load_config
    from lifecycle.packs import Period, build_pack, verify_pack
    from lifecycle.state import StateStore

    config = load_config(args.config)
    period = Period(args.start, args.end)
    built = build_pack(config, StateStore.for_catalog(config.catalog), period.start, period.end, args.out)
    print(
        f"evidence pack {built.period}: {built.location} ({built.files} files, sections: {', '.join(built.sections)})"
    )
    checked = verify_pack(config, period, args.out)
    print("\n".join(checked.lines(built.location + "manifest.json")))
    return 0 if checked.ok else 1


def _read(where: str, args) -> bytes:
    if not where.startswith("s3://"):
        try:
            return Path(where).read_bytes()
        except OSError as exc:
            raise LifecycleError(f"{where}: cannot be read ({exc.strerror})") from None
    from lifecycle.connections import s3_client

    bucket, _, key = where.removeprefix("s3://").partition("/")
    conn_id = args.conn_id or _bucket_connection(args, bucket)
    return s3_client(conn_id).get_object(Bucket=bucket, Key=key)["Body"].read()


def _bucket_connection(args, bucket: str) -> str:
    from lifecycle.config import load_config

    systems = load_config(args.config).catalog.model.systems
    for system in systems.values():
        if getattr(system, "bucket", None) == bucket:
            return system.conn_id
    raise LifecycleError(f"s3://{bucket}: no system of the catalog holds this bucket; name one with --conn-id")


def _keys_beside(where: str, args) -> tuple[str, bytes]:
    """The ``public-keys.json`` in the document's folder or the nearest one above it."""
    if where.startswith("s3://"):
        parts = where.split("/")
        candidates = ["/".join(parts[:n]) + "/public-keys.json" for n in range(len(parts) - 1, 3, -1)]
    else:
        candidates = [str(folder / "public-keys.json") for folder in Path(where).resolve().parents]
    for candidate in candidates:
        try:
            return candidate, _read(candidate, args)
        except Exception:
            continue
    raise LifecycleError(f"{where}: no public-keys.json beside it or above it; give --keys FILE")


def cmd_evidence_verify(args) -> int:
    failed = 0
    for where in args.files:
        if not where.startswith("s3://") and Path(where).is_dir():
            where = str(Path(where) / "manifest.json")  # an evidence pack's folder: its signed manifest
        source, raw_keys = (args.keys, _read(args.keys, args)) if args.keys else _keys_beside(where, args)
        keys = signing.PublicKeys.load(raw_keys, source)
        raw = _read(where, args)
        checked = attestations.check(raw, keys, beside=_beside(where), read=_sibling(where, args))
        print("\n".join(checked.lines(where)))
        print(f"  public keys: {source} ({', '.join(keys.keys)})")
        failed += not checked.ok
    return 1 if failed else 0


def _sibling(where: str, args):
    """What reads a file by its path relative to the document's folder (an evidence pack's files)."""
    folder = where.rsplit("/", 1)[0] if "/" in where else "."

    def read(path: str) -> bytes | None:
        try:
            return _read(f"{folder}/{path}", args)
        except Exception:  # missing or unreadable: the check names the file
            return None

    return read


def _beside(where: str) -> dict[str, bytes]:
    """Local files a document's signature vouches for: the report's PDF, a batch root's leaves."""
    if where.startswith("s3://") or not where.endswith(".json"):
        return {}
    found = {"pdf": Path(where[: -len(".json")] + ".pdf"), "leaves": Path(where).with_name("leaves.jsonl")}
    return {name: path.read_bytes() for name, path in found.items() if path.exists()}


def cmd_certificate_show(args) -> int:
    from lifecycle.config import load_config
    from lifecycle.erasure.certificates import Certificates

    catalog = load_config(args.config).catalog
    document = Certificates(catalog, None).person(args.batch, args.subject)
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"certificate: {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def ledger_checkpoints(catalog, ledger) -> int:
    """``ledger verify --checkpoints``: the ledger against every published checkpoint."""
    from lifecycle import checkpoints, reports

    count, problems = checkpoints.check(catalog, ledger, reports.public_keys(catalog))
    return outcome(f"checkpoints: {count} checked, ", problems, "the ledger extends every one")

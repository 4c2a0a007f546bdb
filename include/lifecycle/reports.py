"""Generated documents: one renderer (Jinja2 over include/lifecycle/templates) and one sink.

The sink writes to the catalog's ``reports`` destination: a local folder
(``reports: {path: …}``; ``$LIFECYCLE_VAR_DIR`` may appear in it, and a
relative path is taken from the working directory) or an S3 system under a
prefix.  Keys derive from the run, so a rerun overwrites its own documents.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import string
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import jinja2
import msgspec

from lifecycle import signing
from lifecycle.catalog import Catalog
from lifecycle.paths import TEMPLATES

#: The published public keys, written beside the reports and the checkpoints.
PUBLIC_KEYS = "public-keys.json"


def var_dir() -> Path:
    """``$LIFECYCLE_VAR_DIR``, else ``var`` of the working directory."""
    return Path(os.environ.get("LIFECYCLE_VAR_DIR") or Path.cwd() / "var")


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=lambda name: bool(name) and name.endswith((".html", ".html.j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates ship with the package: no stat of the file per render
    )


def render(template: str, **context) -> str:
    return _environment().get_template(template).render(**context)


def canonical(document: dict) -> bytes:
    """The one JSON form of a generated document: keys sorted, indented by two, UTF-8.

    Manifests are signed over exactly these bytes, so the form is
    ``json.dumps(indent=2, sort_keys=True, ensure_ascii=False, default=str)``
    and stays so.  Asked to indent, the standard library encodes in pure
    Python; its C encoder's compact text re-indented by msgspec is the same
    bytes in a third of the time (one certificate per erased person).  NaN
    and the infinities are refused: they are not JSON.
    """
    compact = json.dumps(document, sort_keys=True, ensure_ascii=False, default=str, allow_nan=False)
    return msgspec.json.format(compact.encode("utf-8"), indent=2)


def safe_name(text: str) -> str:
    """``text`` as one file or key name: letters, digits, ``-_.``; anything else ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


@dataclass(frozen=True)
class Written:
    location: str
    sha256: str
    size: int


def signer(catalog: Catalog) -> signing.Signer:
    """The Ed25519 signer of everything the lifecycle issues (``evidence.signing_conn_id``)."""
    return signing.signer(catalog.model.evidence.signing_conn_id)


def public_keys(catalog: Catalog) -> signing.PublicKeys:
    """The current public key and the retired ones ``evidence.retired_keys`` lists."""
    retired = [
        (k.public_key, f"catalog.yaml evidence.retired_keys[{n}]")
        for n, k in enumerate(catalog.model.evidence.retired_keys)
    ]
    return signing.PublicKeys.of(signer(catalog).public, retired)


class ReportSink:
    parallel_puts = 8  # documents write_many puts to S3 at once

    def __init__(self, catalog: Catalog, destination=None):
        """The reports destination, or ``destination`` (a ``Reports``-shaped block: ``path`` or ``system`` and ``prefix``)."""
        self.reports = destination or catalog.model.reports
        self.catalog = catalog
        self._made: set[str] = set()

    @functools.cached_property
    def _folder(self) -> str:
        text = string.Template(self.reports.path).safe_substitute(LIFECYCLE_VAR_DIR=str(var_dir()))
        folder = Path(text)
        return str(folder if folder.is_absolute() else Path.cwd() / folder)

    @functools.cached_property
    def _store(self):
        from lifecycle.stores import open_store

        return open_store(self.catalog, self.reports.system)

    def write(self, key: str, data: bytes, *, content_type: str) -> Written:
        """Write one document whole: to a folder, through a temporary file renamed into place
        (string paths, not pathlib: a certificate per erased person goes through here)."""
        digest = hashlib.sha256(data).hexdigest()
        if self.reports.path is not None:
            path = os.path.join(self._folder, key)
            parent = os.path.dirname(path)
            if parent not in self._made:
                os.makedirs(parent, exist_ok=True)
                self._made.add(parent)
            with open(path + ".tmp", "wb") as tmp:
                tmp.write(data)
            os.replace(path + ".tmp", path)
            return Written(path, digest, len(data))
        full_key = f"{self.reports.prefix}{key}"
        self._store.put_bytes(full_key, data, content_type=content_type)
        return Written(f"s3://{self._store.bucket}/{full_key}", digest, len(data))

    def read(self, key: str) -> bytes:
        """A document written under ``key`` (as ``keys`` lists it: in the folder, or under the
        prefix in the bucket), as stored."""
        if self.reports.path is not None:
            with open(os.path.join(self._folder, key), "rb") as file:
                return file.read()
        return self._store.get_bytes(f"{self.reports.prefix}{key}")

    def write_many(self, documents: Iterable[tuple[str, bytes, str]]) -> list[Written]:
        """Write ``(key, data, content type)`` documents, in order of ``documents``.

        To S3, several at a time (each PUT waits on the network while a
        generator of ``documents`` renders the next); to a folder, one after
        the other: a local write takes microseconds, and threads would only
        contend with the rendering for the interpreter.
        """
        if self.reports.path is not None:
            return [self.write(key, data, content_type=content_type) for key, data, content_type in documents]
        self._store  # noqa: B018  (opened once here, not by each thread)
        with ThreadPoolExecutor(self.parallel_puts) as pool:
            return list(pool.map(lambda doc: self.write(doc[0], doc[1], content_type=doc[2]), documents))

    def keys(self, prefix: str = "") -> list[str]:
        """Every document key under ``prefix`` (relative to the destination), sorted.

        In a folder, only regular files inside it (a symbolic link that leads out is
        not listed); unfinished writes (``.tmp``) are left out."""
        if self.reports.path is None:
            base = self.reports.prefix
            return sorted(k[len(base) :] for k in self._store.keys(base + prefix) if not k.endswith(".tmp"))
        root = os.path.realpath(self._folder)
        start = os.path.join(root, prefix) if prefix else root
        found = []
        for folder, _dirs, files in os.walk(start if os.path.isdir(start) else os.path.dirname(start)):
            for name in files:
                path = os.path.join(folder, name)
                key = os.path.relpath(path, root).replace(os.sep, "/")
                inside = os.path.realpath(path).startswith(root + os.sep)
                if inside and key.startswith(prefix) and not name.endswith(".tmp"):
                    found.append(key)
        return sorted(found)


@dataclass(frozen=True)
class Report:
    json: Written
    html: Written
    pdf: Written | None = None


class ReportWriter:
    """A generated document as ``<name>.json`` (canonical, Ed25519-signed, with the SHA-256 of
    its PDF where one is given) and ``<name>.html`` (its template), and the PDF, in the
    reports destination, the public keys beside them; then, for evidence (a ``kind`` given;
    drafts are not), one ledger entry that names each file and its SHA-256, so a changed or
    swapped report can be detected."""

    def __init__(self, catalog: Catalog, ledger=None):
        self.sink, self.ledger, self.catalog = ReportSink(catalog), ledger, catalog
        self._published = False

    def sign(self, document: dict, kind: str) -> dict:
        """``document`` signed; the public keys written beside the reports once per writer."""
        if not self._published:
            self.sink.write(PUBLIC_KEYS, public_keys(self.catalog).published(), content_type="application/json")
            self._published = True
        return signer(self.catalog).sign(document, kind)

    def write(
        self,
        name: str,
        document: dict,
        *,
        template: str,
        kind: str | None = None,
        run_id: str | None = None,
        dag_id: str | None = None,
        key: str | None = None,
        about: dict | None = None,
        pdf: bytes | None = None,
        **context,
    ) -> Report:
        """Write ``document`` under ``name`` (rendered by ``template`` with it as ``report``)
        and, given a ``kind``, append it to the ledger: ``about`` and the files, recorded
        once under ``key`` where one is given."""
        if pdf is not None:
            document = document | {"pdf_sha256": hashlib.sha256(pdf).hexdigest()}
        signed = self.sign(document, kind or template.removesuffix(".html.j2"))
        json_file = self.sink.write(f"{name}.json", canonical(signed), content_type="application/json")
        html = render(template, report=document, **context).encode("utf-8")
        html_file = self.sink.write(f"{name}.html", html, content_type="text/html; charset=utf-8")
        pdf_file = self.sink.write(f"{name}.pdf", pdf, content_type="application/pdf") if pdf is not None else None
        files = {"json": json_file, "html": html_file, **({"pdf": pdf_file} if pdf_file else {})}
        if kind is not None:
            payload = (about or {}) | {part: w.location for part, w in files.items()}
            payload |= {f"{part}_sha256": w.sha256 for part, w in files.items()}
            self.ledger.append(kind, payload, dag_id=dag_id, run_id=run_id, key=key)
        return Report(json_file, html_file, pdf_file)

    def write_run(self, area: str, document: dict, run_id: str, *, template: str, kind: str, **options) -> dict:
        """A run's report at ``<area>/<day of its as_of>/<run>/report`` (``write``); where its JSON and HTML went."""
        folder = f"{area}/{document['as_of'][:10]}/{safe_name(run_id)}"
        written = self.write(f"{folder}/report", document, template=template, kind=kind, run_id=run_id, **options)
        return {"json": written.json.location, "html": written.html.location}

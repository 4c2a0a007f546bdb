"""Ed25519 signatures anyone can check with the public key alone.

A signed document carries an ``attestation`` member: the algorithm, the key id
(the first 16 hex digits of SHA-256 of the raw public key), the kind of
document, the top-level members it covers, and the signature.  The signature
is over the document's compact canonical JSON (keys sorted, no spaces, UTF-8,
``ensure_ascii`` off) with the attestation in it *without* its ``value`` — so
the kind, the key id and the list of members are signed too — and without a
``signature`` member (the HMAC-SHA256 some recipients check, made after the
attestation, over it).  Whitespace is not signed; every value is.

The private key is the password of an Airflow connection (a secrets backend in
production): 32 raw bytes in base64, or a PKCS#8 PEM.  Public keys are
published as JSON (``{"keys": [{"key_id", "algorithm", "public_key", "status"}]}``,
``public_key`` the raw 32 bytes in base64); retired keys stay listed, so what
they signed still verifies.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lifecycle.errors import LifecycleError

ALGORITHM = "Ed25519"
MEMBER = "attestation"
#: Members the Ed25519 signature leaves out: its own value, and the HMAC signature made over it.
UNSIGNED = (MEMBER, "signature")


class SigningError(LifecycleError):
    """A key could not be read; the message names where it came from."""


def compact(document) -> bytes:
    """The signed form: compact JSON, keys sorted, UTF-8; NaN and the infinities refused."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str
    ).encode("utf-8")


def signed_bytes(document: dict) -> bytes:
    """What the signature of ``document`` covers: every member but the unsigned ones, plus the
    attestation without its value."""
    body = {k: v for k, v in document.items() if k not in UNSIGNED}
    attestation = {k: v for k, v in (document.get(MEMBER) or {}).items() if k != "value"}
    return compact(body | {MEMBER: attestation})


def raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(public)).hexdigest()[:16]


def private_key(text: str, where: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from base64 of its 32 raw bytes or a PEM; ``where`` names the source."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        except (ValueError, TypeError) as exc:
            raise SigningError(f"{where}: not a readable PEM private key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningError(f"{where}: the PEM key is not an Ed25519 key")
        return key
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SigningError(f"{where}: expected an Ed25519 private key (base64 of 32 bytes, or a PEM)")
    return Ed25519PrivateKey.from_private_bytes(raw)


def generate_text() -> str:
    """A new private key as its connection holds it (base64 of the 32 raw bytes)."""
    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class Signer:
    """Signs documents with one private key."""

    key: Ed25519PrivateKey

    @functools.cached_property
    def public(self) -> Ed25519PublicKey:
        return self.key.public_key()

    @functools.cached_property
    def key_id(self) -> str:
        return key_id(self.public)

    def sign(self, document: dict, kind: str) -> dict:
        """``document`` with its attestation (a new dict; an attestation it had is replaced)."""
        body = {k: v for k, v in document.items() if k != MEMBER}
        fields = sorted(k for k in body if k not in UNSIGNED)
        attestation = {"algorithm": ALGORITHM, "key_id": self.key_id, "kind": kind, "signed_fields": fields}
        signed = body | {MEMBER: attestation}
        attestation["value"] = base64.b64encode(self.key.sign(signed_bytes(signed))).decode("ascii")
        return signed


def signer(conn_id: str) -> Signer:
    """The signer whose private key is the password of the Airflow connection ``conn_id``."""
    from lifecycle.connections import connection_secret

    text = connection_secret(conn_id).decode("utf-8")
    return _signer(text, f"Airflow connection {conn_id!r}")


@functools.lru_cache(maxsize=8)
def _signer(text: str, where: str) -> Signer:
    return Signer(private_key(text, where))


@dataclass(frozen=True)
class PublicKeys:
    """The published public keys by key id: the current one and those retired."""

    keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, current: Ed25519PublicKey, retired: list[tuple[str, str]] = ()) -> PublicKeys:
        """The current key and retired ones given as (base64 public key, where it is configured)."""
        keys, status = {key_id(current): current}, {key_id(current): "current"}
        for text, where in retired:
            public = public_key(text, where)
            keys.setdefault(key_id(public), public)
            status.setdefault(key_id(public), "retired")
        return cls(keys, status)

    @classmethod
    def load(cls, raw: bytes, where: str) -> PublicKeys:
        """Keys as published (the JSON this module writes) or one PEM public key."""
        text = raw.decode("utf-8", errors="replace").strip()
        if text.startswith("-----BEGIN"):
            try:
                public = serialization.load_pem_public_key(text.encode("ascii"))
            except ValueError as exc:
                raise SigningError(f"{where}: not a readable PEM public key ({exc})") from None
            if not isinstance(public, Ed25519PublicKey):
                raise SigningError(f"{where}: the PEM key is not an Ed25519 key")
            return cls({key_id(public): public}, {key_id(public): "given"})
        try:
            listed = json.loads(text)["keys"]
        except (ValueError, KeyError, TypeError):
            raise SigningError(f"{where}: neither a PEM public key nor published keys (JSON with 'keys')") from None
        keys, status = {}, {}
        for n, entry in enumerate(listed):
            public = public_key(str(entry.get("public_key", "")), f"{where}: keys[{n}]")
            if entry.get("key_id") not in (None, key_id(public)):
                raise SigningError(f"{where}: keys[{n}]: key_id {entry.get('key_id')!r} is not this key's id")
            keys[key_id(public)], status[key_id(public)] = public, str(entry.get("status", "listed"))
        return cls(keys, status)

    def published(self) -> bytes:
        """The JSON to publish (README, beside reports, the Privacy view)."""
        entries = [
            {
                "key_id": kid,
                "algorithm": ALGORITHM,
                "public_key": base64.b64encode(raw_public(public)).decode("ascii"),
                "status": self.status.get(kid, "listed"),
                "pem": public.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ).decode("ascii"),
            }
            for kid, public in self.keys.items()
        ]
        document = {"algorithm": ALGORITHM, "signature_member": MEMBER, "keys": entries}
        return json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def public_key(text: str, where: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SigningError(f"{where}: expected an Ed25519 public key (base64 of 32 bytes)")
    return Ed25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True)
class Verdict:
    """What a check of one document found: its kind, the key id, the members signed, the problems."""

    kind: str | None
    key_id: str | None
    signed_fields: list[str]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(document: dict, keys: PublicKeys) -> Verdict:
    """Check ``document``'s attestation against ``keys``; each problem named."""
    attestation = document.get(MEMBER)
    if not isinstance(attestation, dict):
        return Verdict(None, None, [], [f"no '{MEMBER}' member: the document is not signed"])
    kind, kid = attestation.get("kind"), attestation.get("key_id")
    fields = attestation.get("signed_fields") or []
    present = sorted(k for k in document if k not in UNSIGNED)
    problems = []
    if attestation.get("algorithm") != ALGORITHM:
        problems.append(f"algorithm {attestation.get('algorithm')!r}: only {ALGORITHM} is checked")
    added, removed = sorted(set(present) - set(fields)), sorted(set(fields) - set(present))
    if added:
        problems.append(f"member(s) not signed: {', '.join(added)} (added after signing)")
    if removed:
        problems.append(f"signed member(s) missing: {', '.join(removed)} (removed after signing)")
    public = keys.keys.get(kid)
    if public is None:
        problems.append(f"key id {kid!r} is not among the public keys given ({', '.join(keys.keys) or 'none'})")
    else:
        try:
            public.verify(base64.b64decode(str(attestation.get("value", "")), validate=True), signed_bytes(document))
        except (InvalidSignature, binascii.Error, ValueError):
            problems.append(
                f"the {ALGORITHM} signature does not match under key {kid} (the document was changed after signing)"
            )
    return Verdict(kind, kid, list(fields), problems)

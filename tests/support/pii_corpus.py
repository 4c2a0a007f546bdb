"""A generated corpus for discovery: columns of known kinds of personal values, and look-alikes
(order numbers, hashes, SKUs, version strings, timestamps, UUIDs, random digit strings, plain
text) that must not be taken for them.  Seeded: the same corpus on every run."""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import date, datetime, timedelta

from lifecycle.discovery.detectors import iso7064_mod11_2, luhn

WORDS = [
    "the",
    "order",
    "arrived",
    "late",
    "please",
    "check",
    "shipping",
    "box",
    "size",
    "color",
    "blue",
    "red",
    "steel",
    "bolts",
    "pack",
    "of",
    "ten",
]
CN_MOBILE = ["130", "131", "132", "135", "136", "138", "139", "150", "151", "152", "158", "186", "188", "189"]
REGIONS = ["110105", "310101", "440301", "320102", "510104", "330106"]


def _luhn_complete(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn(body + d))


def email(r):
    first, last = r.choice(["li", "wang", "anna", "tom", "chen", "maria"]), r.choice(["zhang", "smith", "liu", "k"])
    return f"{first}.{last}{r.randint(1, 9999)}@{r.choice(['example.com', 'mail.cn', 'corp.example.org'])}"


def phone(r):
    mobile = r.choice(CN_MOBILE) + f"{r.randint(0, 99_999_999):08d}"
    form = r.randrange(3)
    return (f"+86 {mobile[:3]} {mobile[3:7]} {mobile[7:]}", f"{mobile[:3]}-{mobile[3:7]}-{mobile[7:]}", f"+86{mobile}")[
        form
    ]


def ipv4(r):
    return f"{r.randint(1, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"


def ipv6(r):
    return "2001:db8:" + ":".join(f"{r.randint(0, 0xFFFF):x}" for _ in range(6))


def mac(r):
    sep = r.choice(":-")
    return sep.join(f"{r.randint(0, 255):02x}" for _ in range(6))


def imei(r):
    return _luhn_complete(r.choice(["35", "86", "01", "49"]) + "".join(str(r.randint(0, 9)) for _ in range(12)))


def card(r):
    prefix, length = r.choice([("4", 16), ("51", 16), ("55", 16), ("37", 15), ("62", 16)])
    number = _luhn_complete(prefix + "".join(str(r.randint(0, 9)) for _ in range(length - len(prefix) - 1)))
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4)) if r.random() < 0.5 else number


def prc_id(r):
    born = date(1950, 1, 1) + timedelta(days=r.randint(0, 20000))
    body = r.choice(REGIONS) + born.strftime("%Y%m%d") + f"{r.randint(0, 999):03d}"
    return body + iso7064_mod11_2(body)


def birth_date(r):
    return date(1940, 1, 1) + timedelta(days=r.randint(0, 25000))


def sentence(r, n=8):
    return " ".join(r.choice(WORDS) for _ in range(n))


def free_text(r):
    if r.random() < 0.7:
        return sentence(r)
    hidden = r.choice([email, phone, card, prc_id])(r)
    return f"{sentence(r, 4)} contact {hidden} {sentence(r, 3)}"


def order_number(r):
    return r.choice([f"ORD-{r.randint(2015, 2026)}-{r.randint(0, 999999):06d}", f"SO{r.randint(10**9, 10**10 - 1)}"])


def hash_hex(r):
    return hashlib.new(r.choice(["md5", "sha1", "sha256"]), str(r.random()).encode()).hexdigest()


def sku(r):
    return f"{r.choice('ABCDEFGH')}{r.choice('XYZ')}-{r.randint(1000, 9999)}-{r.choice(['S', 'M', 'L', 'XL'])}"


def version(r):
    if r.random() < 0.3:
        return f"{r.randint(0, 3)}.{r.randint(0, 20)}.{r.randint(0, 9)}.{r.randint(0, 999)}"
    return f"{r.randint(0, 12)}.{r.randint(0, 30)}.{r.randint(0, 40)}"


def timestamp(r):
    at = datetime(2019, 1, 1) + timedelta(seconds=r.randint(0, 8 * 365 * 86400))
    return at if r.random() < 0.5 else at.isoformat(sep=r.choice(" T"))


def recent_date(r):
    return date(2018, 1, 1) + timedelta(days=r.randint(0, 3000))


def uuid_text(r):
    return str(uuid.UUID(int=r.getrandbits(128), version=4))


def digits(r):
    return "".join(str(r.randint(0, 9)) for _ in range(r.randint(6, 19)))


def product_text(r):
    return f"{sentence(r, 5)} sku {sku(r)} order {order_number(r)} v{version(r)}"


KNOWN = {
    "email": [email],
    "phone": [phone],
    "ip_address": [ipv4, ipv6],
    "mac_address": [mac],
    "imei": [imei],
    "payment_card": [card],
    "national_id": [prc_id],
    "date_of_birth": [birth_date],
    "free_text": [free_text],
}
LOOK_ALIKES = {
    "order_number": order_number,
    "hash": hash_hex,
    "sku": sku,
    "version": version,
    "timestamp": timestamp,
    "recent_date": recent_date,
    "uuid": uuid_text,
    "digits": digits,
    "product_text": product_text,
}


def corpus(columns_per_kind: int = 12, values: int = 200, seed: int = 7):
    """``(truth, values)`` per column: truth is a kind, or ``look-alike:<name>``.  Known columns
    carry a few NULLs and a little junk, as live columns do."""
    r = random.Random(seed)
    out = []
    for kind, makers in KNOWN.items():
        for i in range(columns_per_kind):
            make = makers[i % len(makers)]
            column = [None if r.random() < 0.05 else make(r) for _ in range(values)]
            for j in r.sample(range(values), values // 50):
                column[j] = r.choice(["n/a", "unknown", "-"])
            out.append((kind, column))
    for name, make in LOOK_ALIKES.items():
        out.extend((f"look-alike:{name}", [make(r) for _ in range(values)]) for _ in range(columns_per_kind))
    return out

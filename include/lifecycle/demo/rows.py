"""The rows and objects of one fake buyer, drawn from that buyer's own random stream.

Every user draws from ``random.Random`` seeded by ``(seed, user id)``, so the
same arguments give the same rows, and a user's rows do not depend on how
many users are made.  Times are naive UTC relative to ``as_of``: most
activity is recent, a tail reaches back five years, and ~3% of dated rows sit
within two days of a retention boundary of the demo configuration.
"""

from __future__ import annotations

import base64
import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dateutil.relativedelta import relativedelta

from lifecycle.demo import schema
from lifecycle.demo import words as W
from lifecycle.demo.plan import Plan

DAY = 86400
GRACE_PERIOD = timedelta(days=15)  # cancellation.yaml grace_period; the mix is placed around it
MEDIA_FRACTION = 0.4  # share of users with objects in the media bucket
# Retention boundaries of the demo configuration (retention.yaml).
EDGES = (
    relativedelta(days=180),
    relativedelta(months=6),
    relativedelta(years=1),
    relativedelta(years=2),
    relativedelta(years=3),
)


def normalize_as_of(as_of: datetime) -> datetime:
    """Naive UTC, whole seconds (MariaDB DATETIME keeps no fraction)."""
    if as_of.tzinfo is not None:
        as_of = as_of.astimezone(UTC).replace(tzinfo=None)
    return as_of.replace(microsecond=0)


@dataclass
class World:
    seed: int
    as_of: datetime
    plan: Plan
    edges: tuple[float, ...] = ()
    next_id: dict[str, int] = field(default_factory=lambda: {t.name: 1 for t in schema.TABLES})

    def __post_init__(self):
        self.edges = tuple((self.as_of - (self.as_of - e)).total_seconds() for e in EDGES)

    def at(self, age: float) -> datetime:
        return self.as_of - timedelta(seconds=int(age))

    def take_id(self, table: str) -> int:
        n = self.next_id[table]
        self.next_id[table] = n + 1
        return n


@dataclass
class MediaObject:
    key: str
    versions: int  # 1 or 2 PUTs
    delete_marker: bool  # then a DELETE without VersionId


def _age(rng: random.Random, world: World, mean_days: float, max_age: float) -> float:
    """Seconds before as_of: exponential around ``mean_days``, never older than ``max_age``."""
    if rng.random() < 0.03:
        near = rng.choice(world.edges) + rng.uniform(-2 * DAY, 2 * DAY)
        if 60 < near < max_age:
            return near
    age = rng.expovariate(1.0 / (mean_days * DAY))
    if age >= max_age:
        age = rng.uniform(0, max_age)
    return max(age, min(60.0, max_age / 2))


_ACTION_WEIGHTS = [weight for *_, weight in W.ACTIONS]


def _count(rng: random.Random, mean: float) -> int:
    return int(rng.expovariate(1.0 / mean)) if mean > 0 else 0


def _ipv4(rng: random.Random) -> str:
    first = rng.choice(
        (
            36,
            42,
            58,
            60,
            61,
            101,
            112,
            113,
            114,
            117,
            120,
            121,
            123,
            125,
            171,
            180,
            183,
            202,
            210,
            218,
            221,
            223,
            24,
            37,
            46,
            62,
            78,
            84,
            91,
            98,
            104,
            151,
            176,
            185,
            195,
        )
    )
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _ipv6(rng: random.Random) -> str:
    return f"2001:db8:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}"


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randrange(10**n)).zfill(n)


def _phone(rng: random.Random, country: str | None) -> str:
    if country == "CN":
        return f"+86 1{rng.choice('3456789')}{rng.randrange(10)} {_digits(rng, 4)} {_digits(rng, 4)}"
    if country == "US":
        return f"+1 {rng.randrange(201, 990)} 555 01{_digits(rng, 2)}"
    code = W.WESTERN[country][5] if country in W.WESTERN else "65"
    return f"+{code} {rng.randrange(10, 99)} {_digits(rng, 4)} {_digits(rng, 4)}"


def _imei(rng: random.Random) -> str:
    body = _digits(rng, 14)
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def _device_id(rng: random.Random, kind: str) -> str:
    if kind == "IMEI":
        return _imei(rng)
    if kind == "ANDROID_ID":
        return f"{rng.getrandbits(64):016x}"
    if kind == "OPENUDID":
        return f"{rng.getrandbits(160):040x}"
    value = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return value.upper() if kind == "IDFA" else value


def _slug(text: str) -> str:
    return text.split()[0].lower().encode("ascii", "ignore").decode() or "firm"


def _weighted(rng: random.Random, pairs) -> object:
    items, weights = zip(*pairs)
    return rng.choices(items, weights)[0]


class _Person:
    """One user's profile: the users row and what their other rows reuse."""

    def __init__(self, world: World, uid: int, rng: random.Random):
        self.uid = uid
        country = _weighted(rng, W.COUNTRIES)
        self.country = country
        native = W.NATIVE_LOCALE.get(country or "", "en")
        self.locale = native if rng.random() < (0.85 if country == "CN" else 0.4) else "en"
        gender = rng.choice(("male", "female", "female", "male", None))
        if country == "CN":
            sur, given = rng.choice(W.CN_SURNAMES), rng.choice(W.CN_GIVEN)
            place, street = rng.choice(W.CN_PLACES), rng.choice(W.CN_STREETS)
            num = rng.randrange(1, 999)
            self.name = sur[0] + given[0] if self.locale == "zh-CN" else f"{given[1].title()} {sur[1].title()}"
            local = rng.choice((f"{sur[1]}{given[1]}", f"{given[1]}.{sur[1]}", f"{sur[1]}_{given[1]}"))
            domain = rng.choice(W.EMAIL_DOMAINS_CN)
            self.city = place[2]
            self.address = (
                f"{place[0]}{place[1]}{street[0]}路{num}号"
                if self.locale == "zh-CN"
                else f"No. {num} {street[1]} Road, {place[3]} District, {place[2]}, China {place[4]}{_digits(rng, 3)}"
            )
            firm = f"{place[2]} {rng.choice(W.CN_FIRM_WORDS)} {rng.choice(W.FIRM_TAILS)} Co., Ltd."
        else:
            firsts, lasts, cities, streets, suffix, _ = W.WESTERN[country or "US"]
            first, last = rng.choice(firsts), rng.choice(lasts)
            (city, post), street = rng.choice(cities), rng.choice(streets)
            num = rng.randrange(1, 250)
            self.name = f"{first} {last}"
            ascii_last = last.lower().replace(" ", "").encode("ascii", "ignore").decode()
            local = rng.choice(
                (f"{first.lower()}.{ascii_last}", f"{first[0].lower()}{ascii_last}", f"{ascii_last}.{first[0].lower()}")
            )
            local = local.encode("ascii", "ignore").decode()
            domain = rng.choice(W.EMAIL_DOMAINS)
            self.city = city
            self.address = {
                "DE": f"{street}straße {num}, {post} {city}, Germany",
                "FR": f"{num} rue {street}, {post} {city}, France",
                "US": f"{num} {street} St, {city} {post}, USA",
            }.get(country or "", f"{num} {street} Street, {post} {city}")
            firm = f"{last} {rng.choice(W.FIRM_TAILS)} {suffix}"
        self.email = None if rng.random() < 0.07 else f"{local}{uid}@{domain}"
        self.phone = (
            None if (self.email is None and rng.random() < 0.15) or rng.random() < 0.05 else _phone(rng, country)
        )
        has_firm = rng.random() < 0.75
        self.company = firm if has_firm else None
        self.ip = _ipv6(rng) if rng.random() < 0.1 else _ipv4(rng)
        if rng.random() < 0.04:
            age = rng.uniform(3600, 14 * DAY)  # joined in the last two weeks
        else:
            age = max(DAY, 5 * 365 * DAY * rng.random() ** 1.7)
        if uid in world.plan.rich:
            age = max(age, (3 * 365 + 120 + rng.randrange(300)) * DAY)  # old enough for every rule
        self.age = age
        self.media = uid in world.plan.rich or rng.random() < MEDIA_FRACTION
        salt = f"{rng.getrandbits(64):016x}"
        digest = base64.b64encode(hashlib.sha256(f"{world.seed}:{uid}:{salt}".encode()).digest()).decode()
        self.row = {
            "id": uid,
            "account": f"{local.replace('.', '_')[:40]}_{uid}",
            "email": self.email,
            "name": self.name,
            "company": self.company,
            "industry": rng.choice(W.INDUSTRIES) if has_firm else None,
            "gender": gender,
            "website": f"https://www.{_slug(firm)}-{uid}.example.com" if has_firm and rng.random() < 0.35 else None,
            "address": self.address if rng.random() < 0.9 else None,
            "phone": self.phone,
            "fax": _phone(rng, country) if has_firm and rng.random() < 0.25 else None,
            "locale": self.locale,
            "country": country,
            "password_hash": f"pbkdf2_sha256$600000${salt}${digest}",
            "security_answer_hash": hashlib.sha256(f"{salt}:{rng.random()}".encode()).hexdigest()
            if rng.random() < 0.7
            else None,
            "tier": _weighted(rng, (("free", 70), ("gold", 22), ("diamond", 8))),
            "created_at": world.at(age),
            "last_login_ip": self.ip,
        }


def user_rows(world: World, uid: int) -> tuple[dict[str, list[dict]], list[MediaObject]]:
    """Every row and object of user ``uid``: table name -> rows (ids taken in order)."""
    rng = random.Random(f"mic-demo:{world.seed}:user:{uid}")
    p = _Person(world, uid, rng)
    rich = uid in world.plan.rich
    old = world.plan.forced_old(uid)
    rows: dict[str, list[dict]] = {t.name: [] for t in schema.TABLES}
    objects: list[MediaObject] = []
    rows["users"].append(p.row)
    zh = p.locale == "zh-CN"

    # devices (and the user agents of their access logs)
    platforms = []
    for _ in range(max(int(rich), _weighted(rng, ((0, 10), (1, 55), (2, 25), (3, 10))))):
        os_name, models, id_types, ua = rng.choice(W.PLATFORMS)
        platforms.append(ua.format(v=rng.choice(W.APP_VERSIONS)))
        age = _age(rng, world, 180, p.age)
        kind = rng.choice(id_types)
        ios = os_name.startswith("iOS")
        rows["devices"].append(
            {
                "id": world.take_id("devices"),
                "user_id": uid,
                "hardware_model": rng.choice(models),
                "mac_address": "02:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(5)),
                "os": os_name,
                "device_id_type": kind,
                "device_id": _device_id(rng, kind),
                "push_token": (
                    f"{rng.getrandbits(256):064x}" if ios else base64.urlsafe_b64encode(rng.randbytes(105)).decode()
                )
                if rng.random() < 0.8
                else None,
                "created_at": world.at(age),
                "last_seen_at": world.at(age * rng.random() ** 3) if rng.random() < 0.95 else None,
            }
        )
    platforms = platforms or ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0"]

    # access logs: the bulk of the rows, mostly recent
    n_logs = _count(rng, 22) + (5 if rich else 0)
    for i in range(n_logs):
        if "access_logs" in old and i < 3:
            age = min(p.age - DAY, (190 + rng.randrange(60)) * DAY)
        else:
            age = _age(rng, world, 60, p.age)
        action, path, _ = rng.choices(W.ACTIONS, _ACTION_WEIGHTS)[0]
        rows["access_logs"].append(
            {
                "id": world.take_id("access_logs"),
                "user_id": uid,
                "ip": p.ip if rng.random() < 0.6 else (_ipv6(rng) if rng.random() < 0.1 else _ipv4(rng)),
                "action": action,
                "path": path.format(n=rng.randrange(10_000, 999_999), q=rng.choice(W.PRODUCTS).replace(" ", "+")),
                "user_agent": rng.choice(platforms),
                "logged_at": world.at(age),
            }
        )

    # favorites
    for _ in range(_count(rng, 3)):
        rows["favorites"].append(
            {
                "id": world.take_id("favorites"),
                "user_id": uid,
                "product_id": rng.randrange(10_000, 999_999),
                "created_at": world.at(_age(rng, world, 365, p.age)),
            }
        )

    # inquiries (photos in the media bucket)
    for n in range(max(int(rich), _count(rng, 1.5))):
        product, qty = rng.choice(W.PRODUCTS), rng.choice((50, 100, 200, 500, 1000, 5000))
        fill = {"product": product, "qty": qty, "color": rng.choice(W.COLORS), "city": p.city}
        iid = world.take_id("inquiries")
        photo = p.media and (rng.random() < 0.35 or (rich and n == 0))
        rows["inquiries"].append(
            {
                "id": iid,
                "user_id": uid,
                "supplier_id": rng.randrange(1, 50_000),
                "subject": rng.choice(W.INQUIRY_SUBJECTS).format(**fill),
                "body": rng.choice(W.INQUIRY_BODIES_ZH if zh else W.INQUIRY_BODIES).format(**fill),
                "has_photo": photo,
                "created_at": world.at(_age(rng, world, 300, p.age)),
            }
        )
        if photo:
            objects.append(MediaObject(f"inquiries/{uid}/{iid}.jpg", 1, False))

    # conversations and their messages (two hops from the person)
    for n in range(max(int(rich), _count(rng, 1.2))):
        cid = world.take_id("conversations")
        start = _age(rng, world, 150, p.age)
        rows["conversations"].append(
            {
                "id": cid,
                "user_id": uid,
                "supplier_id": rng.randrange(1, 50_000),
                "created_at": world.at(start),
            }
        )
        age = start
        product = rng.choice(W.PRODUCTS)
        for k in range(1 + _count(rng, 5)):
            sender = "buyer" if k % 2 == 0 or rng.random() < 0.3 else "supplier"
            fill = {"product": product, "qty": rng.choice((100, 300, 1000)), "price": f"{rng.uniform(0.5, 80):.2f}"}
            if sender == "buyer":
                body = rng.choice(W.CHAT_BUYER_ZH if zh else W.CHAT_BUYER).format(**fill)
                if rng.random() < 0.03:
                    note = rng.choice(W.CONTACT_NOTE)
                    body += " " + note.format(phone=p.phone or "-", email=p.email or "-", address=p.address)
            else:
                body = rng.choice(W.CHAT_SUPPLIER).format(**fill)
            mid = world.take_id("chat_messages")
            forced = rich and n == 0 and k == 0
            attach = p.media and (rng.random() < 0.12 or forced)
            rows["chat_messages"].append(
                {
                    "id": mid,
                    "conversation_id": cid,
                    "sender": sender,
                    "body": body,
                    "has_attachment": attach,
                    "sent_at": world.at(age),
                }
            )
            if attach:
                objects.append(MediaObject(f"chats/{uid}/{mid}.jpg", 1, rng.random() < 0.1 and not forced))
            age = max(age - rng.uniform(60, 2 * DAY), 30.0)

    # purchase demands
    for _ in range(_weighted(rng, ((0, 70), (1, 20), (2, 7), (3, 3)))):
        created = world.at(_age(rng, world, 120, p.age))
        rows["purchase_demands"].append(
            {
                "id": world.take_id("purchase_demands"),
                "user_id": uid,
                "product": rng.choice(W.PRODUCTS),
                "quantity": rng.choice((10, 50, 100, 500, 1000, 10_000)),
                "needed_by": (created + timedelta(days=rng.randrange(14, 120))).date() if rng.random() < 0.8 else None,
                "created_at": created,
            }
        )

    # orders (transaction records)
    n_orders = max(int(rich), _count(rng, 2))
    currency = W.CURRENCY.get(p.country or "", "USD")
    for i in range(n_orders):
        if "orders" in old and i == 0:
            age = min(p.age - DAY, (3 * 365 + 30 + rng.randrange(200)) * DAY)
        else:
            age = _age(rng, world, 400, p.age)
        recent = age < 10 * DAY
        rows["orders"].append(
            {
                "id": world.take_id("orders"),
                "user_id": uid,
                "amount_cents": int(rng.lognormvariate(10.5, 1.2)) * (100 if currency == "JPY" else 1),
                "currency": currency,
                "shipping_address": p.address if rng.random() < 0.85 else f"Warehouse {rng.randrange(1, 40)}, {p.city}",
                "status": _weighted(
                    rng,
                    (("paid", 40), ("shipped", 60))
                    if recent
                    else (("completed", 80), ("refunded", 8), ("cancelled", 12)),
                ),
                "created_at": world.at(age),
            }
        )

    # consents: marketing e-mail at sign-up, personalised ads, the 2026 expo
    for purpose, share, mean in (
        ("marketing_email", 0.45, None),
        ("personalized_ads", 0.25, None),
        ("expo_2026", 0.2, 90),
    ):
        if not (rng.random() < share or (rich and purpose == "expo_2026")):
            continue
        granted = p.age - rng.uniform(0, min(DAY, p.age / 2)) if mean is None else _age(rng, world, mean, p.age)
        withdrawn = granted * rng.random() if rng.random() < 0.2 else None
        if purpose == "expo_2026" and world.plan.requests.get(uid) == "withdraw_consent":
            withdrawn = None  # in force: the demo's request withdraws it
        rows["consents"].append(
            {
                "id": world.take_id("consents"),
                "user_id": uid,
                "purpose": purpose,
                "granted_at": world.at(granted),
                "withdrawn_at": None if withdrawn is None else world.at(withdrawn),
            }
        )
        if withdrawn is not None and rng.random() < 0.1:  # changed their mind again
            rows["consents"].append(
                {
                    "id": world.take_id("consents"),
                    "user_id": uid,
                    "purpose": purpose,
                    "granted_at": world.at(withdrawn * rng.random()),
                    "withdrawn_at": None,
                }
            )

    # account cancellation requests, placed around the grace period
    status = world.plan.cancellations.get(uid)
    if status:
        grace = GRACE_PERIOD.total_seconds()
        requested = {
            "pending": rng.uniform(DAY, grace - DAY),
            "pending_edge": grace - 3600,
            "withdrawn": rng.uniform(3 * DAY, 60 * DAY),
            "due": rng.uniform(grace + DAY, grace + 14 * DAY),
            "due_edge": grace + 3600,
        }[status]
        withdrawn = requested - rng.uniform(3600, min(grace, requested) - 60) if status == "withdrawn" else None
        rows["account_cancellations"].append(
            {
                "id": world.take_id("account_cancellations"),
                "user_id": uid,
                "requested_at": world.at(requested),
                "withdrawn_at": None if withdrawn is None else world.at(withdrawn),
            }
        )

    # a request about their own information, made a day ago in the app
    kind = world.plan.requests.get(uid)
    if kind:
        rows["privacy_requests"].append(
            {
                "id": world.take_id("privacy_requests"),
                "user_id": uid,
                "kind": kind,
                "categories": "preferences,device_info" if kind == "erase" else None,
                "purpose": "expo_2026" if kind == "withdraw_consent" else None,
                "requested_at": world.at(DAY),
            }
        )

    # avatar: sometimes replaced (2 versions), sometimes removed (a delete marker)
    if p.media and (rich or rng.random() < 0.75):
        objects.append(
            MediaObject(
                f"avatars/{uid}/avatar.jpg", 2 if rich or rng.random() < 0.2 else 1, not rich and rng.random() < 0.08
            )
        )
    return rows, objects

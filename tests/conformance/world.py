"""The world generator: a small application chosen by a seed.

``World(seed)`` is the structure (tables, links and their foreign keys, fields
and strategies, rules, floors, holds, cancellation scenarios, the recipient,
S3 object layouts); ``World.materialize(as_of)`` adds the rows, dated around
every cutoff.  Everything is plain data kept in memory: the oracle computes
expectations from it, ``backends`` writes it to a database and S3, and
``files()`` writes the matching configuration.  Nothing here imports the engine.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tests.conformance import anonymized, traps
from tests.conformance.timeutil import Dur, naive, valid_against_floor

# ------------------------------------------------------------------ vocabulary

SUBJECT_TABLES = ["users", "UserAccounts", "user", "Members", "people"]
CHAIN_TABLES = [
    "order",
    "orderItems",
    "group",
    "select",
    "from",
    "Sessions",
    "access_logs",
    "Devices",
    "payments",
    "chat_messages",
    "Conversations",
    "addresses",
    "Shipments",
    "reviews",
    "tickets",
]
PK_NAMES = ["id", "Id", "key", "select", "ref", "order"]
CREATED_NAMES = ["created_at", "Created", "from", "loggedAt", "ts", "when"]
LINK_NAMES = ["user_id", "owner", "user", "parentId", "group", "select", "ownerRef", "order"]
PERSONAL_POOL = [  # (column, strategy, kind)
    ("email", "hmac", "long"),
    ("ip", "hmac", "long"),
    ("device_id", "hmac", "long"),
    ("select", "hmac", "clob"),
    ("note", "redact", "str"),
    ("address", "redact", "str"),
    ("body", "redact", "clob"),
    ("group", "redact", "str"),
    ("comment", "redact", "str"),
    ("phone", "null", "str"),
    ("lat", "null", "int"),
    ("user", "null", "str"),
    ("order", "null", "str"),
]
PLAIN_POOL = [("amount", "int"), ("tier", "str"), ("status", "str"), ("from", "str")]
CHAIN_CATEGORIES = ["access_records", "transaction_records", "device_info", "content"]
FIELD_CATEGORIES = ["basic_info", "network_identification", "credentials"]
PURPOSES = {"service": {"title": "Run the service people signed up for", "legal_basis": "contract"}}
CATEGORIES = {
    "basic_info": {"title": "Basic information", "purposes": ["service"]},
    "network_identification": {"title": "Network identification information", "purposes": ["service"]},
    "credentials": {"parent": "network_identification"},
    "access_records": {"title": "Personal Internet access records", "purposes": ["service"]},
    "transaction_records": {"title": "Transaction records", "purposes": ["service"]},
    "device_info": {"title": "Common equipment information", "purposes": ["service"]},
    "content": {"title": "Content people wrote", "purposes": ["service"]},
    "consent_records": {"title": "Consents", "purposes": ["service"]},
    "account_records": {"title": "Account cancellation requests", "purposes": ["service"]},
    "media_content": {"title": "Photos and files", "purposes": ["service"]},
}
KEEPS = ["30d", "90d", "6mo", "1y", "18mo", "2y", "400d", "26w"]
FLOORS = ["30d", "90d", "6mo", "1y"]
FIXED_AS_OF = [
    datetime(2026, 8, 31, 12, 0, 0),
    datetime(2028, 2, 29, 0, 0, 0),
    datetime(2027, 3, 31, 23, 59, 59),
    datetime(2026, 12, 31, 6, 30, 0),
    datetime(2027, 5, 31, 18, 0, 0),
    datetime(2026, 10, 1, 0, 0, 0),
]
WORDS = ["alpha", "Zoë", "Ünal", "李二", "o'brien", "Mia", "Nour", "smith", "Jo-Ann", "żółw"]
LOCK_FAR = datetime(2099, 1, 1, tzinfo=UTC)


@dataclass
class Field:
    column: str
    kind: str  # str | long | clob | int | dt
    nullable: bool
    personal: bool = True
    strategy: str | None = None  # null | redact | hmac | None (personal, no strategy)
    text: str | None = None  # redact option
    category: str | None = None  # own category (else the table's)


@dataclass
class Link:
    column: str
    parent: str  # dataset name
    fk: str  # none | noaction | restrict | cascade | setnull
    nullable: bool


@dataclass
class Table:
    dataset: str
    table: str
    role: str  # subject | chain | requests | consents | lookup
    pk: str
    pk_kind: str  # int | bigint | uuid | text | ts
    created: str | None
    created_nullable: bool
    depth: int  # hops to the subject table (0 for it; lookup: -1)
    second_schema: bool = False
    category: str | None = None
    personal: bool = True
    link: Link | None = None
    fields: list[Field] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # role-specific column names
    no_null_link: bool = False  # on the shared dataset's path: every row names its subject
    lake: str | None = None  # iceberg | delta: a lake table (lakes.py), not in the SQL database
    rows: list[dict] = field(default_factory=list)

    @property
    def anonymizable(self) -> bool:
        personal = [f for f in self.fields if f.personal]
        return bool(personal) and all(f.strategy for f in personal)

    def columns(self) -> list[str]:
        out = [self.pk]
        if self.link:
            out.append(self.link.column)
        if self.created:
            out.append(self.created)
        out += list(self.extra.values())
        out += [f.column for f in self.fields]
        return out


@dataclass
class Rule:
    name: str
    action: str
    keep: str
    datasets: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)


@dataclass
class Floor:
    name: str
    minimum: str
    basis: str
    datasets: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)


@dataclass
class Hold:
    subject: str  # as text
    datasets: list[str] | None


@dataclass
class ObjectKey:
    """One key's history: events in upload order, each ("put", phase, lock) or ("marker", phase, None);
    lock is None, ("GOVERNANCE"|"COMPLIANCE", retain_until) or "legal"."""

    key: str
    events: list[tuple]


@dataclass
class ObjectDataset:
    name: str
    prefix: str  # with {subject}


class World:
    def __init__(self, seed: int, *, lakes: bool = False):
        """``lakes``: the world also has lake tables (lakes.py), drawn after everything else."""
        self.seed = seed
        rng = self.rng = random.Random(seed)
        self.tidy = seed % 3 == 1  # no expired row stays referenced through a foreign key
        rng.random()
        self.tight_floor = seed % 10 == 7  # a keep the docs allow that is closest to its floor
        self.second_schema = rng.random() < 0.5
        self.schema_name = rng.choice(["archive", "Archive", "app2"])  # PostgreSQL; MariaDB: a second database
        self.lock_bucket = rng.random() < 0.6
        self.object_retention = rng.random() < 0.45
        self.has_objects = self.object_retention or rng.random() < 0.6
        self.uses_uuid = rng.random() < 0.4
        self.state_system = rng.choice(["state", "state", "ledger"])
        self.hmac_variable = rng.choice([None, None, f"cw_key_{seed}"])
        self.hmac_key = f"conformance-hmac-key-{seed:05d}-0123456789"
        self.tables: dict[str, Table] = {}
        self.lakes: list[Table] = []  # lake tables, also in ``tables`` (lakes.py)
        self.rules: list[Rule] = []
        self.floors: list[Floor] = []
        self.holds: list[Hold] = []
        self.objects: list[ObjectDataset] = []
        self._structure()
        self.time_kind = traps.time_kind(seed)  # every time column's type (traps.py)
        self.outside = traps.outside(self)  # a table outside the lifecycle with a key onto one of ours
        if lakes:
            from tests.conformance import lakes as lake_tables

            lake_tables.add(self)
        self.anonymized = anonymized.choices(self)  # the subject's row and links under anonymize (anonymized.py)

    # ============================================================ structure

    def _pk_kind(self, allow_ts=True) -> str:
        kinds = (
            ["int", "int", "bigint", "text"]
            + (["uuid", "uuid"] if self.uses_uuid else [])
            + (["ts"] if allow_ts else [])
        )
        return self.rng.choice(kinds)

    def _name(self, pool, taken):
        choices = [n for n in pool if n not in taken]
        name = self.rng.choice(choices)
        taken.add(name)
        return name

    def _structure(self) -> None:
        rng = self.rng
        # ---- the subject table
        taken: set[str] = set()
        subject_kind = rng.choice(["int", "bigint", "text"] + (["uuid"] if self.uses_uuid else []))
        name = rng.choice(SUBJECT_TABLES)
        cols: set[str] = set()
        pk = self._name(PK_NAMES, cols)
        created = self._name(CREATED_NAMES, cols)
        subject = Table(
            dataset=_dataset_name(name),
            table=name,
            role="subject",
            pk=pk,
            pk_kind=subject_kind,
            created=created,
            created_nullable=rng.random() < 0.3,
            depth=0,
            second_schema=self.second_schema and rng.random() < 0.25,
        )
        subject.fields = [
            Field("email", "long", False, strategy="hmac", category="basic_info"),
            Field(
                "name",
                "str",
                False,
                strategy="redact",
                category="basic_info",
                text=rng.choice([None, None, "(removed)"]),
            ),
            Field("phone", "str", True, strategy="null", category="basic_info"),
            Field("tier", "str", True, personal=False),
        ]
        self.subject = subject
        self.tables[subject.dataset] = subject
        self.subject_ids = self._subject_ids(subject_kind, rng.randint(7, 10))
        taken.add(name)

        # ---- chains of 1-3 hops
        for _ in range(rng.randint(2, 3)):
            parent = subject
            for depth in range(1, rng.randint(1, 3) + 1):
                child = self._chain_table(parent, depth, taken)
                self.tables[child.dataset] = child
                parent = child

        # ---- cancellation requests (no FK: a request may name a subject that does not exist)
        rname = rng.choice(["account_cancellations", "CancellationRequests"])
        cols = {"id", "requested_at", "withdrawn_at"}
        link_col = rng.choice(["user", "subject_id", "from"])
        self.requests = Table(
            dataset=_dataset_name(rname),
            table=rname,
            role="requests",
            pk="id",
            pk_kind="int",
            created="requested_at",
            created_nullable=False,
            depth=1,
            category="account_records",
            link=Link(link_col, subject.dataset, "none", False),
        )
        self.requests.fields = [Field("withdrawn_at", "dt", True, strategy=None)]  # personal, no strategy
        self.tables[self.requests.dataset] = self.requests
        self.grace = rng.choice(["7d", "15d", "30d"])

        # ---- consents
        self.consent_recipient = rng.random() < 0.5
        self.consents = None
        if self.consent_recipient or rng.random() < 0.3:
            self.consents = Table(
                dataset="consents",
                table=rng.choice(["consents", "Consents"]),
                role="consents",
                pk="id",
                pk_kind="int",
                created="granted_at",
                created_nullable=False,
                depth=1,
                category="consent_records",
                link=Link(
                    rng.choice(["user_id", "owner"]),
                    subject.dataset,
                    rng.choice(["noaction", "cascade", "none"]),
                    False,
                ),
                extra={"purpose": "purpose", "withdrawn": "withdrawn_at"},
            )
            self.tables["consents"] = self.consents

        # ---- a table with nothing personal
        if rng.random() < 0.5:
            lookup = Table(
                dataset="lookup",
                table=rng.choice(["Lookup", "settings", "group_names"]),
                role="lookup",
                pk="id",
                pk_kind="int",
                created=None,
                created_nullable=True,
                depth=-1,
                personal=False,
            )
            lookup.fields = [Field("label", "str", True, personal=False)]
            self.tables["lookup"] = lookup

        # ---- object datasets
        if self.has_objects:
            self.objects.append(ObjectDataset("media", "media/{subject}/"))
            if rng.random() < 0.4:
                self.objects.append(ObjectDataset("avatars", "avatars/{subject}/"))

        self.batch_size = rng.choice([2, 3, 5, 1000])
        self.partitions = rng.choice([1, 2, 4])
        self._rules()
        self._holds()
        self._cancellation()
        self._recipient()
        self._object_layouts()

    def _subject_ids(self, kind: str, n: int) -> list:
        rng, ids = self.rng, []
        if kind == "int":
            start, step = rng.randint(1, 40), rng.choice([1, 3, 7])
            ids = [start + i * step for i in range(n)]
        elif kind == "bigint":
            start = 2**33 + rng.randint(0, 1000)
            ids = [start + i * 11 for i in range(n)]
        elif kind == "text":
            style = rng.choice(["U-{n:04d}", "{c}{n:03d}", "user.{n}"])
            for i in range(n):
                c = "".join(rng.choice("aAbBxXyY") for _ in range(2))
                ids.append(style.format(n=i * 3 + 1, c=c))
        else:
            ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]
        return ids

    def _chain_table(self, parent: Table, depth: int, taken: set) -> Table:
        rng = self.rng
        name = self._name(CHAIN_TABLES, taken)
        cols: set[str] = set()
        pk = self._name(PK_NAMES, cols)
        created = self._name(CREATED_NAMES, cols)
        link_col = self._name(LINK_NAMES, cols)
        fk = rng.choice(["none", "noaction", "restrict", "cascade", "setnull", "setnull"])
        nullable = fk == "setnull" or rng.random() < 0.5
        table = Table(
            dataset=_dataset_name(name),
            table=name,
            role="chain",
            pk=pk,
            pk_kind=self._pk_kind(),
            created=created,
            created_nullable=rng.random() < 0.3,
            depth=depth,
            second_schema=self.second_schema and rng.random() < 0.35,
            category=rng.choice(CHAIN_CATEGORIES),
            link=Link(link_col, parent.dataset, fk, nullable),
        )
        for column, strategy, kind in rng.sample(PERSONAL_POOL, rng.randint(1, 3)):
            if column in cols:
                continue
            cols.add(column)
            table.fields.append(
                Field(
                    column,
                    kind,
                    strategy == "null" or rng.random() < 0.4,
                    strategy=strategy,
                    category=rng.choice(FIELD_CATEGORIES) if rng.random() < 0.25 else None,
                    text="[gone]" if strategy == "redact" and rng.random() < 0.2 else None,
                )
            )
        if rng.random() < 0.15 and "remarks" not in cols:
            cols.add("remarks")
            table.fields.append(Field("remarks", "str", True, strategy=None))
        if rng.random() < 0.6:
            column, kind = rng.choice(PLAIN_POOL)
            if column not in cols:
                cols.add(column)
                table.fields.append(Field(column, kind, True, personal=False))
        return table

    def personal_tables(self) -> list[Table]:
        return [t for t in self.tables.values() if t.personal]

    def _rules(self) -> None:
        rng = self.rng
        covered: set[str] = set()
        # a delete rule by category, covering every dataset whose rows are of it
        if rng.random() < 0.35:
            category = rng.choice(CHAIN_CATEGORIES)
            targets = self.delete_targets_by_category(category)
            if targets and not covered & set(targets):
                self.rules.append(Rule(f"by-category-{category}", "delete", rng.choice(KEEPS), categories=[category]))
                covered |= set(targets)
        for t in self.personal_tables():
            if t.dataset in covered or rng.random() < 0.25:
                continue
            action = "anonymize" if t.anonymizable and rng.random() < 0.35 else "delete"
            self.rules.append(Rule(f"rule-{t.dataset}", action, rng.choice(KEEPS), datasets=[t.dataset]))
            covered.add(t.dataset)
        for o in self.objects:
            if self.object_retention and (o.name == "media" or rng.random() < 0.5):
                self.rules.append(
                    Rule(f"objects-{o.name}", "delete", f"{rng.choice([1, 7, 30, 400])}d", datasets=[o.name])
                )
        # statutory floors on some table datasets; keeps made valid (by the docs' conservative comparison)
        ruled = [r for r in self.rules if not (r.datasets and r.datasets[0] in {o.name for o in self.objects})]
        for i, t in enumerate(rng.sample(self.personal_tables(), min(2, len(self.personal_tables())))):
            if rng.random() < 0.5:
                self.floors.append(
                    Floor(
                        f"floor-{i}", rng.choice(FLOORS), f"Statute {i} art. {rng.randint(1, 99)}", datasets=[t.dataset]
                    )
                )
        if rng.random() < 0.3:
            category = rng.choice(CHAIN_CATEGORIES)
            self.floors.append(
                Floor("floor-category", rng.choice(FLOORS), "Category statute art. 7", categories=[category])
            )
        self.tight_keep = None
        if self.tight_floor:
            for rule in ruled:
                floors = [f for f in self.floors if set(self.rule_targets(rule)) & set(self.floor_targets(f))]
                if floors:
                    # docs: a half year has 181 to 184 days, so 184d is never shorter than 6mo
                    floors[0].minimum = "6mo"
                    rule.keep = f"{int(Dur.parse('6mo').day_bounds()[1])}d"
                    self.tight_keep = (rule.name, rule.keep, floors[0].name)
                    break
        for rule in ruled:
            floors = [f for f in self.floors if set(self.rule_targets(rule)) & set(self.floor_targets(f))]
            if self.tight_keep and rule.name == self.tight_keep[0]:
                if all(valid_against_floor(Dur.parse(rule.keep), Dur.parse(f.minimum)) for f in floors):
                    continue
                self.tight_keep = None
            if floors and not all(_comfortably_valid(rule.keep, f.minimum) for f in floors):
                valid = [k for k in KEEPS if all(_comfortably_valid(k, f.minimum) for f in floors)]
                rule.keep = rng.choice(valid) if valid else "2y"
        self.tight_floor = self.tight_keep is not None

    # the docs' semantics of applies_to, written here for the oracle and the generator
    def _within(self, category: str | None, ancestor: str) -> bool:
        while category:
            if category == ancestor:
                return True
            category = CATEGORIES.get(category, {}).get("parent")
        return False

    def _personal_categories(self, t: Table) -> list[str]:
        return [f.category or t.category for f in t.fields if f.personal]

    def delete_targets_by_category(self, category: str) -> list[str]:
        out = []
        for t in self.personal_tables():
            cats = self._personal_categories(t)
            if self._within(t.category, category) or (cats and all(self._within(c, category) for c in cats)):
                out.append(t.dataset)
        return out

    def rule_targets(self, rule: Rule) -> list[str]:
        names = set(rule.datasets)
        for category in rule.categories:
            names |= set(self.delete_targets_by_category(category))
        return sorted(names)

    def floor_targets(self, floor: Floor) -> list[str]:
        """A floor covers named datasets and every dataset holding a category within its categories."""
        names = set(floor.datasets)
        for category in floor.categories:
            for t in self.personal_tables():
                held = ([t.category] if t.category else []) + self._personal_categories(t)
                if any(self._within(c, category) for c in held):
                    names.add(t.dataset)
            for o in self.objects:
                if self._within("media_content", category):
                    names.add(o.name)
        return sorted(names)

    def _holds(self) -> None:
        rng = self.rng
        names = [t.dataset for t in self.personal_tables()] + [o.name for o in self.objects]
        for s in rng.sample(self.subject_ids, rng.randint(1, 3)):
            datasets = None if rng.random() < 0.5 else sorted(rng.sample(names, rng.randint(1, 2)))
            self.holds.append(Hold(str(s), datasets))

    def _cancellation(self) -> None:
        """Who asked for what: scenario per subject (times come with the rows)."""
        rng = self.rng
        free = [s for s in self.subject_ids if str(s) not in {h.subject for h in self.holds}]
        rng.shuffle(free)
        self.scenarios: list[tuple[object, str]] = []
        for kind in ["due", "due", "pending", "withdrawn_within", "withdrawn_after", "due_twice"]:
            if free and rng.random() < 0.9:
                self.scenarios.append((free.pop(), kind))
        held = [h.subject for h in self.holds]
        subject_by_text = {str(s): s for s in self.subject_ids}
        self.scenarios.append((subject_by_text[held[0]], "due"))  # held: suspended
        self.scenarios.append((self._missing_subject(), "due"))  # no such subject
        overridable = [t for t in self.tables.values() if t.role == "chain" and t.anonymizable and t.link.nullable]
        self.overrides = sorted(t.dataset for t in overridable if rng.random() < 0.5)
        self.cancellation_batch = rng.choice([1, 2, 500])

    def _missing_subject(self):
        kind = self.subject.pk_kind
        if kind in ("int", "bigint"):
            return max(self.subject_ids) + 1000
        if kind == "text":
            return "nobody-9999"
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _recipient(self) -> None:
        rng = self.rng
        candidates = [
            t
            for t in self.tables.values()  # a personal field that may be shared (not a credential)
            if t.role in ("subject", "chain")
            and t.depth <= 2
            and any(f.personal and f.category != "credentials" for f in t.fields)
        ]
        table = rng.choice(candidates)
        shareable = [f.column for f in table.fields if f.category != "credentials"]
        fields = rng.sample(shareable, rng.randint(1, min(3, len(shareable))))
        if rng.random() < 0.4:
            fields.append(table.created)
        if table.role != "subject" and rng.random() < 0.4:
            fields.append(table.pk)
        self.share = (table.dataset, fields)
        self.purpose = rng.choice(["expo", "newsletter_2026"])
        # no NULL link along the shared dataset's path (a record always names its subject)
        t = table
        while t.link:
            t.no_null_link = True
            t = self.tables[t.link.parent]

    def _object_layouts(self) -> None:
        """S3 histories: the retention bucket's events in upload phases 0 (old), 1 (around the
        cutoff), 2 (young); the erasure bucket's in one go."""
        rng = self.rng
        self.retention_objects: list[ObjectKey] = []
        self.erasure_objects: list[ObjectKey] = []
        if not self.objects:
            return

        def lock():
            if not self.lock_bucket or rng.random() > 0.3:
                return None
            return rng.choice([("GOVERNANCE", LOCK_FAR), ("COMPLIANCE", LOCK_FAR), "legal"])

        def history(phases=True) -> list[tuple]:
            events, phase = [], rng.randint(0, 1) if phases else 0
            for _ in range(rng.randint(1, 3)):
                events.append(("put", phase, lock()))
                if phases and rng.random() < 0.5:
                    phase = min(2, phase + 1)
            if rng.random() < 0.3:
                events.append(("marker", min(2, phase + rng.randint(0, 1)) if phases else 0, None))
            return events

        owners = rng.sample(self.subject_ids, min(len(self.subject_ids), rng.randint(4, 6)))
        owners += [s for s in self.subject_ids if str(s) in {h.subject for h in self.holds} and s not in owners]
        for o in self.objects:
            for s in owners:
                for name in rng.sample(["a.jpg", "b/c.png", "clip.mp4"], rng.randint(1, 2)):
                    key = o.prefix.format(subject=s) + name
                    if self.object_retention:
                        self.retention_objects.append(ObjectKey(key, history()))
                    self.erasure_objects.append(ObjectKey(key, history(phases=False)))
        if self.object_retention:
            # the anchor: a key whose newest event is in phase 1; the cutoff falls on it or one second after
            anchor_subject = rng.choice(owners)
            self.retention_objects.append(
                ObjectKey(f"media/{anchor_subject}/anchor.bin", [("put", 0, None), ("put", 1, None)])
            )
            self.retention_objects.append(ObjectKey("media/_orphan.bin", [("put", 0, None)]))
            self.anchor_key = f"media/{anchor_subject}/anchor.bin"
            self.anchor_delta = rng.choice([0, 1])
        self.erasure_objects.append(ObjectKey("media/_orphan.bin", [("put", 0, None)]))

    # ============================================================ time and rows

    def object_keep(self) -> Dur:
        rule = next(r for r in self.rules if r.datasets == ["media"])
        return Dur.parse(rule.keep)

    def fixed_as_of(self) -> datetime:
        base = FIXED_AS_OF[self.seed % len(FIXED_AS_OF)]
        return base.replace(tzinfo=UTC)

    def rule_of(self, dataset: str) -> Rule | None:
        return next((r for r in self.rules if dataset in self.rule_targets(r)), None)

    def cutoffs(self, dataset: str, as_of: datetime) -> tuple[datetime, datetime]:
        """(rule cutoff, effective cutoff): the earlier of the rule's and every covering floor's."""
        rule = self.rule_of(dataset)
        cutoff = Dur.parse(rule.keep).before(as_of)
        floors = [Dur.parse(f.minimum).before(as_of) for f in self.floors if dataset in self.floor_targets(f)]
        return cutoff, min([cutoff, *floors])

    def cutoffs_objects(self, name: str) -> str:
        return Dur.parse(self.rule_of(name).keep).before(self.as_of).isoformat()

    def materialize(self, as_of: datetime) -> World:
        """Rows for every table, dated around the cutoffs at ``as_of`` (aware UTC, whole seconds)."""
        assert as_of.microsecond == 0 and as_of.tzinfo is not None
        self.as_of = as_of
        now = naive(as_of)
        rng = random.Random(self.seed * 7919 + 17)
        self.data_rng = rng
        used_pks: dict[str, set] = {}

        def pk_value(t: Table, n: int):
            seen = used_pks.setdefault(t.dataset, set())
            while True:
                if t.pk_kind == "int":
                    v = n * rng.choice([1, 2]) + rng.randint(1, 5) + len(seen) * 10
                elif t.pk_kind == "bigint":
                    v = 2**40 + rng.randint(0, 2**20)
                elif t.pk_kind == "uuid":
                    v = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                elif t.pk_kind == "text":
                    v = "".join(rng.choice("aBcDeFgH") for _ in range(3)) + f"-{n:03d}"
                else:
                    v = now - timedelta(seconds=rng.randint(1, 10**8))
                key = v.lower() if isinstance(v, str) else v
                if key not in seen:
                    seen.add(key)
                    return v

        def created(t: Table):
            if t.created is None:
                return None
            if t.created_nullable and rng.random() < 0.08:
                return None
            if self.rule_of(t.dataset) is not None:
                _, c = self.cutoffs(t.dataset, as_of)
                c = naive(c)
                pick = rng.choice(["at", "at", "before1", "after1", "old", "old", "old", "young", "young"])
                return {
                    "at": c,
                    "before1": c - timedelta(seconds=1),
                    "after1": c + timedelta(seconds=1),
                    "old": c - timedelta(days=rng.randint(1, 500), seconds=rng.randint(0, 86399)),
                    "young": c + timedelta(days=rng.randint(1, 120), seconds=rng.randint(0, 86399)),
                }[pick]
            return now - timedelta(days=rng.randint(0, 1500), seconds=rng.randint(0, 86399))

        def value(f: Field, n: int):
            if f.nullable and rng.random() < (0.3 if f.strategy == "null" or not f.personal else 0.0):
                return None
            if f.kind == "int":
                return rng.randint(-500, 50000)
            if f.kind == "dt":
                return now - timedelta(days=rng.randint(0, 40))
            word = rng.choice(WORDS)
            if f.strategy == "hmac":
                return f"{word}.{n}@example.com" if f.column == "email" else f"{word}-{n}-{rng.randint(0, 99999)}"
            return f"{word} {f.column} {n}"

        # the subject table
        s = self.subject
        s.rows = []
        for n, sid in enumerate(self.subject_ids):
            row = {s.pk: sid, s.created: created(s)}
            for f in s.fields:
                row[f.column] = value(f, n)
            s.rows.append(row)
        # chains, parents first
        for t in sorted((t for t in self.tables.values() if t.role == "chain"), key=lambda t: t.depth):
            parent = self.tables[t.link.parent]
            parents = [r[parent.pk] for r in parent.rows]
            t.rows = []
            for n in range(rng.randint(5, 14)):
                row = {t.pk: pk_value(t, n), t.created: created(t)}
                row[t.link.column] = (
                    None if t.link.nullable and not t.no_null_link and rng.random() < 0.12 else rng.choice(parents)
                )
                for f in t.fields:
                    row[f.column] = value(f, n)
                t.rows.append(row)
        self._requests_rows(now)
        if self.consents:
            self._consent_rows(now)
        if "lookup" in self.tables:
            lookup = self.tables["lookup"]
            lookup.rows = [{"id": i, "label": rng.choice([None, "gold", "silver"])} for i in range(1, 5)]
        if self.tidy:
            self._tidy()
        self._incident(now)
        if self.outside:
            traps.outside_rows(self, self.outside)
        return self

    def _requests_rows(self, now: datetime) -> None:
        rng, grace = self.data_rng, Dur.parse(self.grace)
        t = self.requests
        t.rows = []
        n = 0

        def add(subject, requested, withdrawn=None):
            nonlocal n
            n += 1
            t.rows.append({"id": n, t.link.column: subject, "requested_at": requested, "withdrawn_at": withdrawn})

        for subject, kind in self.scenarios:
            due_at = grace.before(now)  # requested then: due exactly now
            if kind == "due":
                add(subject, rng.choice([due_at, due_at - timedelta(days=rng.randint(1, 9))]))
            elif kind == "due_twice":
                first = due_at - timedelta(days=2)
                add(subject, first)
                add(subject, first + timedelta(days=1))
            elif kind == "pending":
                add(subject, rng.choice([due_at + timedelta(seconds=1), now - timedelta(days=1)]))
            elif kind == "withdrawn_within":
                requested = due_at - timedelta(days=3)
                add(subject, requested, grace.after(requested) - timedelta(seconds=rng.choice([1, 3600])))
            elif kind == "withdrawn_after":
                requested = due_at - timedelta(days=3)
                add(subject, requested, grace.after(requested) + timedelta(seconds=rng.choice([0, 60])))

    def _consent_rows(self, now: datetime) -> None:
        rng, t = self.data_rng, self.consents
        link, n = t.link.column, 0
        t.rows = []
        for sid in self.subject_ids:
            kind = rng.choice(
                ["granted", "granted", "withdrawn", "withdrawn_later", "future", "other", "regranted", "none"]
            )
            old = now - timedelta(days=rng.randint(30, 300))
            rows = {
                "granted": [(self.purpose, old, None)],
                "withdrawn": [(self.purpose, old, now - timedelta(days=1))],
                "withdrawn_later": [(self.purpose, old, now + timedelta(days=1))],
                "future": [(self.purpose, now + timedelta(seconds=1), None)],
                "other": [("other_purpose", old, None)],
                "regranted": [
                    (self.purpose, old - timedelta(days=10), old - timedelta(days=5)),
                    (self.purpose, old, None),
                ],
                "none": [],
            }[kind]
            for purpose, granted, withdrawn in rows:
                n += 1
                t.rows.append(
                    {"id": n, link: sid, "granted_at": granted, "purpose": purpose, "withdrawn_at": withdrawn}
                )

    def _tidy(self) -> None:
        """Make parents young until no expired row is referenced, through any foreign key, by a row that stays."""
        from tests.conformance.oracle import retention_blocked

        for _ in range(30):
            blocked = retention_blocked(self)
            if not blocked:
                return
            for dataset, pk in blocked:
                t = self.tables[dataset]
                _, c = self.cutoffs(dataset, self.as_of)
                for row in t.rows:
                    if row[t.pk] == pk:
                        row[t.created] = naive(c) + timedelta(days=5)
        raise AssertionError(f"seed {self.seed}: tidy did not converge")

    def _incident(self, now: datetime) -> None:
        rng = self.data_rng
        eligible = [t for t in self.personal_tables() if t.created and any(r[t.created] for r in t.rows)]
        chosen = rng.sample(eligible, min(len(eligible), rng.randint(1, 3)))
        times = sorted(r[t.created] for t in chosen for r in t.rows if r[t.created] is not None)
        a, b = sorted(rng.sample(times, 2)) if len(times) > 1 else (times[0], times[0])
        self.incident = {"datasets": [t.dataset for t in chosen], "from": a, "to": b}

    # ============================================================ schema

    def partitionable(self, backend: str) -> set[str]:
        """Datasets whose table the backend can range-partition on its created column: a chain
        table whose created is never NULL and onto which no declared foreign key points (the key
        would have to hold the partition column); on MariaDB also without a foreign key of its
        own (partitioned InnoDB tables have none)."""
        if backend not in ("postgresql", "mariadb") or not traps.partitions_allowed(self.time_kind, backend):
            return set()
        referred = {t.link.parent for t in self.tables.values() if t.link and t.link.fk != "none"}
        return {
            t.dataset
            for t in self.tables.values()
            if t.role == "chain"
            and not t.lake
            and t.created
            and not t.created_nullable
            and t.dataset not in referred
            and t.created != t.pk
            and (backend == "postgresql" or not (t.link and t.link.fk != "none"))
        }

    def partition_months(self, t: Table) -> list[datetime]:
        """Month starts spanning the table's rows: one range partition per month."""
        dates = [r[t.created] for r in t.rows if r.get(t.created) is not None]
        if not dates:
            return []
        month, last = datetime(min(dates).year, min(dates).month, 1), max(dates)
        months = [month]
        while month <= last:
            month = datetime(month.year + month.month // 12, month.month % 12 + 1, 1)
            months.append(month)
        return months

    def metadata(
        self, backend: str, schema: str | None, default: str | None = None, partitioned: set[str] = frozenset()
    ) -> tuple[sa.MetaData, dict[str, sa.Table]]:
        """Tables as SQLAlchemy Core; ``default`` names the default schema explicitly (MariaDB:
        a foreign key from the second database must name the first one).  ``partitioned``: the
        datasets whose primary key also holds the created column (their tables are partitioned
        on it; PostgreSQL is told here, MariaDB after the table exists)."""
        meta = sa.MetaData()
        tables: dict[str, sa.Table] = {}

        def kind_type(kind: str):
            return {
                "int": sa.Integer(),
                "bigint": sa.BigInteger(),
                "text": sa.String(40),
                "ts": sa.DateTime(),
                "uuid": sa.Uuid(as_uuid=False) if backend == "postgresql" else sa.String(36),
                "str": sa.String(80),
                "long": sa.String(100),
                "dt": traps.time_type(self.time_kind, backend),
            }.get(kind) or sa.Text()

        order = sorted((t for t in self.tables.values() if not t.lake), key=lambda t: (t.depth, t.dataset))
        for t in order:
            columns = [sa.Column(t.pk, kind_type(t.pk_kind), primary_key=True, autoincrement=False)]
            constraints = []
            if t.link:
                parent = self.tables[t.link.parent]
                link_kind = parent.pk_kind
                columns.append(sa.Column(t.link.column, kind_type(link_kind), nullable=t.link.nullable))
                if t.link.fk != "none":
                    ondelete = {"noaction": None, "restrict": "RESTRICT", "cascade": "CASCADE", "setnull": "SET NULL"}[
                        t.link.fk
                    ]
                    constraints.append(
                        sa.ForeignKeyConstraint(
                            [t.link.column], [tables[parent.dataset].c[parent.pk]], ondelete=ondelete
                        )
                    )
            if t.created:
                in_key = t.dataset in partitioned
                columns.append(
                    sa.Column(
                        t.created,
                        traps.time_type(self.time_kind, backend),
                        nullable=t.created_nullable and not in_key,
                        primary_key=in_key,
                    )
                )
            if t.role == "consents":
                columns += [
                    sa.Column("purpose", sa.String(64), nullable=False),
                    sa.Column("withdrawn_at", traps.time_type(self.time_kind, backend)),
                ]
            for f in t.fields:
                columns.append(sa.Column(f.column, kind_type(f.kind), nullable=f.nullable))
            options = (
                {"postgresql_partition_by": 'RANGE ("' + t.created.replace('"', '""') + '")'}
                if t.dataset in partitioned and backend == "postgresql"
                else {}
            )
            tables[t.dataset] = sa.Table(
                t.table,
                meta,
                *columns,
                *constraints,
                schema=schema if (t.second_schema and schema) else default,
                **options,
            )
        return meta, tables

    def qualified(self, t: Table, schema: str | None) -> str:
        return f"{schema}.{t.table}" if (t.second_schema and schema) else t.table

    def insert_order(self) -> list[Table]:
        return sorted(self.tables.values(), key=lambda t: (t.depth, t.dataset))

    # ============================================================ configuration

    def files(
        self,
        *,
        schema: str | None,
        conn: dict[str, str],
        bucket: str | None,
        drop_bucket: str,
        reports: str,
        refused: bool = False,
        lake: dict | None = None,
    ) -> dict[str, dict]:
        """The YAML files, in the vocabulary of docs/configuration.md; ``refused``: with the erasure
        choices even where validation refuses them (else those worlds get ``anonymized.plain``);
        ``lake``: where the lake tables live (``lakes.systems``)."""
        choices = self.anonymized if refused or not self.anonymized.refusals else anonymized.plain(self)
        systems = {
            "app": {"type": "sql", "conn_id": conn["app"]},
            self.state_system: {"type": "sql", "conn_id": conn["state"]},
            "drop": {"type": "s3", "conn_id": conn["s3"], "bucket": drop_bucket},
        }
        if self.objects:
            systems["media_store"] = {"type": "s3", "conn_id": conn["s3"], "bucket": bucket}
        if lake is not None:
            from tests.conformance import lakes as lake_tables

            systems.update(lake_tables.systems(conn["s3"], lake))
        datasets = {}
        for t in sorted(self.tables.values(), key=lambda t: (t.depth, t.dataset)):
            d = {"system": "app", "table": self.qualified(t, schema), "primary_key": t.pk}
            if t.lake:
                d = {"system": f"lake_{t.lake}", "table": lake_tables.table_name(t), "primary_key": t.pk}
            if not t.personal:
                d["personal"] = False
                d["fields"] = {f.column: {"personal": False} for f in t.fields}
                datasets[t.dataset] = d
                continue
            if t.link:
                parent = self.tables[t.link.parent]
                d["subject"] = f"{t.link.column} -> {parent.dataset}.{parent.pk}"
            if t.created:
                d["created"] = t.created
            if self.time_kind in traps.SCALE and not t.lake:
                d["times"] = dict.fromkeys(traps.time_columns(t), self.time_kind)
            if t.category:
                d["category"] = t.category
            if t.role == "consents":
                d["consent"] = {"purpose": "purpose", "granted": "granted_at", "withdrawn": "withdrawn_at"}
            fields = {}
            for f in t.fields:
                if not f.personal:
                    fields[f.column] = {"personal": False}
                    continue
                spec = {}
                if f.category:
                    spec["category"] = f.category
                if f.strategy:
                    spec["anonymize"] = {"strategy": f.strategy, "text": f.text} if f.text else f.strategy
                fields[f.column] = spec
            if fields:
                d["fields"] = fields
            if t.dataset in choices.written:
                d["on_anonymize"] = {"link": choices.links[t.dataset]}
            datasets[t.dataset] = d
        for o in self.objects:
            datasets[o.name] = {
                "system": "media_store",
                "prefix": o.prefix,
                "created": "last_modified",
                "category": "media_content",
            }
        s = self.subject
        catalog = {
            "systems": systems,
            "purposes": PURPOSES,
            "categories": CATEGORIES,
            "subject": {
                "dataset": s.dataset,
                "key": s.pk,
                "contact": {"email": "email", "name": "name", "phone": "phone"},
            },
            "datasets": datasets,
            "reports": {"path": reports},
        }
        if self.state_system != "state":
            catalog["state"] = self.state_system
        if self.hmac_variable:
            catalog["anonymization"] = {"hmac_key_variable": self.hmac_variable}
        retention = {
            "schedule": "0 2 * * *",
            "batch_size": self.batch_size,
            "max_fraction_per_run": 1.0,
            "max_partitions_per_dataset": self.partitions,
            "rules": [_applies(r, {"name": r.name, "keep": r.keep, "action": r.action}) for r in self.rules],
            "statutory": [_applies(f, {"name": f.name, "minimum": f.minimum, "basis": f.basis}) for f in self.floors],
        }
        cancellation = {
            "schedule": "@hourly",
            "requests": {
                "dataset": self.requests.dataset,
                "subject": self.requests.link.column,
                "requested_at": "requested_at",
                "withdrawn_at": "withdrawn_at",
            },
            "grace_period": self.grace,
            "complete_within": "60d",
            "default_action": choices.default,
            "overrides": [{"applies_to": {"datasets": [d]}, "action": a} for d, a in choices.overrides],
            "batch_size": self.cancellation_batch,
        }
        dataset, fields = self.share
        recipient = {
            "id": "partner",
            "name": "Partner Ltd.",
            "contact": "privacy@partner.example",
            "role": "processor",
            "legal_basis": "entrusted_processing",
            "purpose": "Conformance delivery",
            "agreement": {
                "id": f"DPA-{self.seed}",
                "type": "data_processing",
                "signed": "2020-01-01",
                "expires": "2098-12-31",
            },
            "share": {dataset: fields},
            "pseudonymize_subject": False,
            "delivery": {"system": "drop", "prefix": f"w{self.seed}/{{ds}}/", "format": "jsonl", "fetch_rows": 4},
        }
        if self.consent_recipient:
            recipient.update(
                {
                    "role": "marketing_partner",
                    "legal_basis": "consent",
                    "consent": {"dataset": "consents", "purpose": self.purpose},
                }
            )
        notifications = {
            "email": {"conn_id": "smtp_default", "from": "Privacy <privacy@app.example>"},
            "contact": {"name": "Privacy officer", "email": "privacy@app.example"},
            "locales": ["en"],
        }
        return {
            "catalog.yaml": catalog,
            "retention.yaml": retention,
            "cancellation.yaml": cancellation,
            "recipients.yaml": {"signing": {"conn_id": conn["signing"]}, "recipients": [recipient]},
            "incidents.yaml": {"approval": "none"},
            "notifications.yaml": notifications,
            "requests.yaml": {
                "intake": None,
                "access": {"delivery": {"system": "drop", "prefix": f"w{self.seed}/access/{{request_id}}/"}},
                "notify": {"access_ready": None, "erased": None, "consent_withdrawn": None, "deletion_request": None},
            },
        }

    def describe(self) -> dict:
        """A plain summary (for the same-seed check and for failure messages)."""
        return {
            "tables": {
                t.dataset: {
                    "table": t.table,
                    "pk": f"{t.pk}:{t.pk_kind}",
                    "second_schema": t.second_schema,
                    "link": (
                        f"{t.link.column}->{t.link.parent} fk={t.link.fk} null={t.link.nullable}" if t.link else None
                    ),
                    "fields": [(f.column, f.strategy, f.personal) for f in t.fields],
                }
                for t in self.tables.values()
            },
            "rules": [(r.name, r.action, r.keep, r.datasets, r.categories) for r in self.rules],
            "floors": [(f.name, f.minimum, f.datasets, f.categories) for f in self.floors],
            "holds": [(h.subject, h.datasets) for h in self.holds],
            "objects": [(o.name, o.prefix) for o in self.objects],
            "retention_objects": [(k.key, k.events) for k in self.retention_objects],
            "erasure_objects": [(k.key, k.events) for k in self.erasure_objects],
            "scenarios": [(str(s), k) for s, k in self.scenarios],
            "overrides": self.overrides,
            "anonymized": self.anonymized.describe(),
            "share": self.share,
            "consent_recipient": self.consent_recipient,
            "tidy": self.tidy,
            "time_kind": self.time_kind,
            "outside": (
                (self.outside.table, self.outside.parent, self.outside.on_delete, self.outside.cataloged)
                if self.outside
                else None
            ),
        }


def _applies(item, body: dict) -> dict:
    applies = {}
    if item.categories:
        applies["categories"] = list(item.categories)
    if item.datasets:
        applies["datasets"] = list(item.datasets)
    return {**body, "applies_to": applies}


def _dataset_name(table: str) -> str:
    return table


def _comfortably_valid(keep: str, minimum: str) -> bool:
    """Valid by the docs with a month of margin where units mix (away from the conservative edge)."""
    k, m = Dur.parse(keep), Dur.parse(minimum)
    if (k.months == 0) == (m.months == 0):
        return valid_against_floor(k, m)
    return k.day_bounds()[0] >= m.day_bounds()[1] + 31

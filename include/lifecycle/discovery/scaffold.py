"""``init --from <connection>``: a configuration folder from a live database.

Every table becomes a dataset: its primary key, a ``created`` column when one is named so, a
subject link from a foreign key (to the subject's table, or to a table that links to it) or,
without one, from a key's name (``user_id``…); every column a field, classified by the
detectors from a bounded sample (``verdicts``) or by the table's words.  The subject's table
is the one most foreign keys point at.  Categories are GB/T 35273's (Annex A) as the
catalog's starting vocabulary; a table with no path to the subject is ``personal: false``."""

from __future__ import annotations

import re
from datetime import date

from lifecycle.discovery.verdicts import category_for, detectors_at, judge, strategy_for
from lifecycle.stores.contract import LiveColumn, LiveKeys

CATEGORIES = {
    "basic_info": {"title": "Basic information"},
    "identity": {"title": "Identity documents"},
    "network_identification": {"title": "Network identification information"},
    "credentials": {"title": "Passwords and security answers", "parent": "network_identification", "shareable": False},
    "access_records": {"title": "Personal Internet access records"},
    "device_info": {"title": "Common equipment information"},
    "transaction_records": {"title": "Transaction records"},
    "financial": {"title": "Payment card and account information"},
    "user_content": {"title": "Messages, inquiries and photos"},
    "preferences": {"title": "Favorites and purchase demands"},
    "consent_records": {"title": "Consents given and withdrawn"},
    "account_records": {"title": "Account cancellation and privacy requests"},
}
# Every category serves one placeholder purpose, so the scaffold validates; the reviewer replaces it.
PLACEHOLDER_PURPOSE = "placeholder_edit_me"
PURPOSES = {
    PLACEHOLDER_PURPOSE: {
        "title": "PLACEHOLDER: edit me (the purposes this data is processed for)",
        "legal_basis": "contract",
        "description": "Written by init. Replace with the real purposes, each with its legal basis (consent, "
        "contract, legal_obligation, vital_interests, public_task, legitimate_interests), and name them under "
        "categories.<c>.purposes or datasets.<d>.purposes; add controller and security_measures too.",
    }
}
CATEGORIES = {name: {**spec, "purposes": [PLACEHOLDER_PURPOSE]} for name, spec in CATEGORIES.items()}
# a linked table's whole-row category from words of its name, first match wins
TABLE_WORDS = (
    (re.compile(r"consent"), "consent_records"),
    (re.compile(r"cancel|privacy_req|request"), "account_records"),
    (re.compile(r"device|equipment"), "device_info"),
    (re.compile(r"log|visit|session|click|conversation"), "access_records"),
    (re.compile(r"order|payment|transaction|invoice"), "transaction_records"),
    (re.compile(r"favorite|favourite|wish|cart|demand|preference|interest"), "preferences"),
    (re.compile(r"message|chat|inquir|comment|review|post|photo"), "user_content"),
)
CREATED = re.compile(
    r"^(created(_at|_on)?|creat\w*_(time|date)|inserted_at|logged_at|sent_at|requested_at|granted_at)$"
)
SUBJECT_KEY = re.compile(r"^(user|customer|member|account|person|buyer|client)_?id$")
NOT_PERSONAL = re.compile(r"^(locale|language|lang|tier|status|state|kind|type|currency|has_\w+|is_\w+)$")
ROW_PART = ("person_name", "postal_address")  # by name only: in a linked table, part of its row (an order's address)


def subject_table(keys: dict[str, LiveKeys]) -> str:
    """The table most foreign keys point at (the person), a table named for people on a tie."""
    pointed: dict[str, int] = dict.fromkeys(keys, 0)
    for found in keys.values():
        for _, referred, _ in found.foreign:
            pointed[referred] = pointed.get(referred, 0) + 1
    people = re.compile(r"user|customer|member|person|people|account|buyer|client")
    return max(sorted(keys), key=lambda t: (pointed.get(t, 0), bool(people.search(t))))


def links(keys: dict[str, LiveKeys], columns: dict[str, list[LiveColumn]], subject: str) -> dict[str, tuple]:
    """``table -> (column, referred table, referred column)``: a path to the subject, found by
    foreign keys (nearest first), else by a key's name pointing at the subject's key."""
    found: dict[str, tuple] = {}
    reached = {subject}
    while True:
        added = {}
        for table, k in keys.items():
            if table in reached or table in found:
                continue
            for cols, referred, target in k.foreign:
                if len(cols) == 1 and referred in reached:
                    added[table] = (cols[0], referred, target[0])
                    break
        if not added:
            break
        found.update(added)
        reached |= set(added)
    subject_key = keys[subject].primary[0] if len(keys[subject].primary) == 1 else "id"
    for table, cols in columns.items():
        if table not in reached:
            named = next((c.name for c in cols if SUBJECT_KEY.match(c.name.lower())), None)
            if named:
                found[table] = (named, subject, subject_key)
    return found


def table_category(table: str) -> str:
    name = table.rpartition(".")[2].lower()
    return next((category for words, category in TABLE_WORDS if words.search(name)), "basic_info")


def dataset_name(table: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", table.lower())


def created_column(columns: list[LiveColumn]) -> str | None:
    return next((c.name for c in columns if CREATED.match(c.name.lower())), None)


def classify(table: str, column: LiveColumn, values: list, as_of: date, whole_row: str | None) -> dict:
    """A field entry: a detector's kind (its category, strategy), else the dataset's category
    (``{}``) in a linked table, else ``personal: false``."""
    verdict = judge(table, column.name, values, detectors_at(as_of))
    if verdict.kind in ROW_PART and verdict.matched == 0 and whole_row:
        return {}
    if verdict.kind is not None:
        entry = {"category": category_for(verdict.kind, _models())}
        strategy = strategy_for(verdict.kind, column.fits, column.nullable)
        return entry | ({"anonymize": strategy} if strategy else {})
    if NOT_PERSONAL.match(column.name.lower()):
        return {"personal": False}
    return {} if whole_row else {"category": "basic_info"}


def _models() -> dict:
    from lifecycle.catalog.models import Category

    return {name: Category(**spec) for name, spec in CATEGORIES.items()}

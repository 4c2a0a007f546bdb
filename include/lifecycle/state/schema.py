"""The state store's tables as the code uses them today.

The state store is the lifecycle's own SQL system (SQLite by default,
PostgreSQL in production).  Stores are built and upgraded by the numbered,
frozen steps of ``lifecycle.state.migrations``, never from these definitions: a
change here comes with a new step there (``tests/state/test_migrations.py``
replays every step and compares the result with these tables).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

schema_versions = sa.Table(
    "lifecycle_schema_versions",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.String(32), nullable=False),
)

ledger_entries = sa.Table(
    "lifecycle_ledger",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("recorded_at", sa.String(32), nullable=False),  # ISO text: exact on every backend
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("dag_id", sa.String(250)),
    sa.Column("run_id", sa.String(250)),
    sa.Column("idempotency_key", sa.String(255), unique=True),
    sa.Column("payload", sa.Text, nullable=False),  # canonical JSON
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
)

ledger_head = sa.Table(
    "lifecycle_ledger_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
)

legal_holds = sa.Table(
    "lifecycle_legal_holds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subject_id", sa.String(255), nullable=False, index=True),
    sa.Column("datasets", sa.Text),  # JSON list; NULL = every dataset
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("until", sa.Date),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("removed_at", sa.String(32)),
)

erasures = sa.Table(
    "lifecycle_erasures",
    metadata,
    sa.Column("subject_id", sa.String(255), primary_key=True),
    sa.Column("request_ids", sa.Text, nullable=False),  # JSON list of request primary keys
    sa.Column("requested_at", sa.String(32), nullable=False),  # ISO UTC of the request that counts
    sa.Column("grace_end", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("reason", sa.Text),
    sa.Column("batch", sa.String(255), index=True),
    sa.Column("first_seen", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.Column("completed_at", sa.String(32)),
    sa.Column("certificate", sa.Text),
)

sharing_register = sa.Table(
    "lifecycle_sharing_register",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "entry_key", sa.String(255), nullable=False, unique=True
    ),  # recipient and data interval: a rerun updates its entry
    sa.Column("recipient_id", sa.String(64), nullable=False, index=True),
    sa.Column("recipient_name", sa.Text, nullable=False),
    sa.Column("contact", sa.Text, nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("legal_basis", sa.String(32), nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("processing", sa.Text, nullable=False),  # how it is shared (format, pseudonymization, where)
    sa.Column("agreement_id", sa.String(128)),
    sa.Column("categories", sa.Text, nullable=False),  # JSON list
    sa.Column("fields", sa.Text, nullable=False),  # JSON {dataset: [fields]}
    sa.Column("outcome", sa.String(16), nullable=False),  # delivered | refused
    sa.Column("rule", sa.String(64)),  # refusal: the first rule that failed
    sa.Column("reason", sa.Text),  # refusal: every message
    sa.Column("records", sa.BigInteger, nullable=False),
    sa.Column("manifest", sa.Text),
    sa.Column("manifest_sha256", sa.String(64)),
    sa.Column("interval_start", sa.String(32), nullable=False, index=True),
    sa.Column("interval_end", sa.String(32), nullable=False),
    sa.Column("dag_id", sa.String(250)),
    sa.Column("run_id", sa.String(250)),
    sa.Column("recorded_at", sa.String(32), nullable=False),
    sa.Column("ledger_hash", sa.String(64)),
)

# -- incident notification (migration 4) ---------------------------------------
# The register of incidents (GDPR art. 33(5)): one row per incident, one per
# run (initial, update, dry run) with its facts, decisions and figures.
incidents = sa.Table(
    "lifecycle_incidents",
    metadata,
    sa.Column("incident_id", sa.String(64), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("discovered_at", sa.String(32), nullable=False),
    sa.Column("first_run", sa.String(250), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)

incident_runs = sa.Table(
    "lifecycle_incident_runs",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("incident_id", sa.String(64), nullable=False, index=True),
    sa.Column("phase", sa.String(16), nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("as_of", sa.String(32), nullable=False),
    sa.Column("facts", sa.Text, nullable=False),  # JSON: the form as validated
    sa.Column("scope", sa.Text),  # JSON: counts by reach, country, locale, category
    sa.Column("obligations", sa.Text),  # JSON: regulators, deadlines, fallback and why
    sa.Column("approval", sa.Text),  # JSON: decision, by whom, how
    sa.Column("figures", sa.Text),  # JSON: delivery figures, documents
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)

# Affected subjects per run: ids and how they can be reached, never addresses.
incident_subjects = sa.Table(
    "lifecycle_incident_subjects",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("subject_id", sa.String(255), primary_key=True),
    sa.Column("incident_id", sa.String(64), nullable=False),
    sa.Column("new", sa.Boolean, nullable=False),  # not affected in an earlier notified run
    sa.Column("reach", sa.String(8), nullable=False),  # email | phone | post | none
    sa.Column("country", sa.String(8)),
    sa.Column("locale", sa.String(16)),
    sa.Column("batch", sa.Integer, nullable=False),
    # found by an earlier approved run and not yet told: sent to by this run (migration 10)
    sa.Column("owed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_lifecycle_incident_subjects_batch", "run_id", "batch"),
    sa.Index("ix_lifecycle_incident_subjects_incident", "incident_id", "subject_id"),
)

# -- one claim table for every notice (migration 6) -----------------------------
# One row per notice and person, committed as ``sending`` (with the Message-ID
# the mail will carry) before the mail goes out and set to its outcome after;
# the key makes a second mail to the same person impossible, and a row still
# ``sending`` on a rerun becomes ``uncertain`` and is never sent again.
# ``notice`` is ``notice:<template>`` for erasure notices (one per person and
# template) or ``incident:<incident id>`` (one per person and incident).
# Migration 6 moved the rows of lifecycle_notices and
# lifecycle_incident_deliveries here and dropped those tables.
deliveries = sa.Table(
    "lifecycle_deliveries",
    metadata,
    sa.Column("notice", sa.String(128), primary_key=True),
    sa.Column("subject_id", sa.String(255), primary_key=True),
    sa.Column("scope", sa.String(255), nullable=False),  # who claimed it: an erasure batch or run, an incident run
    sa.Column("batch", sa.Integer),  # the incident run's send batch
    sa.Column(
        "status", sa.String(16), nullable=False
    ),  # sending | sent | undeliverable | deferred | skipped | uncertain
    sa.Column("reason", sa.String(255)),  # why skipped or refused (never the server's text: it may name the address)
    sa.Column("code", sa.Integer),  # the SMTP reply code of a refusal
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("locale", sa.String(16)),
    sa.Column("message_id", sa.String(255)),
    sa.Column("claimed_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.Column("ledger_hash", sa.String(64)),  # the ledger entry that summarizes this row's outcome, where one does
    sa.Index("ix_lifecycle_deliveries_scope", "scope", "batch"),
)

# -- a person's own requests (migration 8) --------------------------------------
# One row per request (access, erase, withdraw_consent), from the form or the
# app's requests table, with its due date and state; what each step did is in
# the ledger (``request.*`` entries).  Ids and counts only: no row of the person.
subject_requests = sa.Table(
    "lifecycle_subject_requests",
    metadata,
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(24), nullable=False),  # access | erase | withdraw_consent
    sa.Column("subject_id", sa.String(255), index=True),  # null when no such person was found
    sa.Column("source", sa.String(16), nullable=False),  # form | table
    sa.Column("categories", sa.Text),  # erase: JSON list of category names
    sa.Column("purpose", sa.String(128)),  # withdraw_consent
    sa.Column(
        "state", sa.String(16), nullable=False, index=True
    ),  # received | planned | purging | done | rejected | failed
    sa.Column("reason", sa.Text),  # rejected or failed: why (names datasets and systems, never values)
    sa.Column("received_at", sa.String(32), nullable=False),  # ISO UTC: when the person asked
    sa.Column("due_at", sa.String(32), nullable=False),  # received_at + respond_within
    sa.Column("run_id", sa.String(250)),  # the run that last worked on it
    sa.Column("plan", sa.Text),  # JSON: counts per dataset (what would be done)
    sa.Column("result", sa.Text),  # JSON: counts, package key and hash, certificate
    sa.Column("completed_at", sa.String(32)),
    sa.Column("updated_at", sa.String(32), nullable=False),
)

# Deletion requests sent to recipients that received a person's data (a consent
# withdrawn, an account erased): one row per scope (a request or an erasure
# batch) and recipient, naming people only by the pseudonym the recipient holds.
recipient_deletions = sa.Table(
    "lifecycle_recipient_deletions",
    metadata,
    sa.Column("scope", sa.String(255), primary_key=True),  # request:<id> | erasure:<batch>
    sa.Column("recipient_id", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(32), nullable=False),  # withdraw_consent | cancellation
    sa.Column("purpose", sa.String(128)),
    sa.Column("subjects", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # sending | sent | undeliverable | deferred | uncertain
    sa.Column("message_id", sa.String(255)),
    sa.Column("run_id", sa.String(250)),
    sa.Column("recorded_at", sa.String(32), nullable=False),
    sa.Column("ledger_hash", sa.String(64)),
)

# -- regulator deliveries (migration 7) ------------------------------------------
# One row per run, regulator and channel: how each regulator's report reached it
# (``email``: its claim is the ``regulator:<incident>:<run>`` row of
# lifecycle_deliveries, the Message-ID copied here; ``upload``: the objects put
# in the regulator's system), the SHA-256 of the PDF and JSON sent, the run's
# logical time as the delivery time, and the deadline it was measured against.
# Reports written by approved runs before this table existed get one
# ``register`` row with status ``before_delivery`` each (delivered, if at all,
# outside the lifecycle).
regulator_deliveries = sa.Table(
    "lifecycle_regulator_deliveries",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("regulator_id", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),  # email | upload | register
    sa.Column("incident_id", sa.String(64), nullable=False, index=True),
    sa.Column("phase", sa.String(16), nullable=False),  # initial | update
    sa.Column(
        "status", sa.String(16), nullable=False
    ),  # sent | uploaded | undeliverable | deferred | uncertain | before_delivery
    sa.Column("target", sa.Text),  # the regulator's address, or s3://bucket/prefix of the upload
    sa.Column("message_id", sa.String(255)),
    sa.Column("pdf_sha256", sa.String(64)),
    sa.Column("json_sha256", sa.String(64)),
    sa.Column("delivered_at", sa.String(32)),  # the run's logical time: a rerun records the same
    sa.Column("deadline", sa.String(32), nullable=False),
    sa.Column("late", sa.Boolean, nullable=False),
)

# The next start a mail may take under one rate (``state.rates``): one row per
# scope (an incident run, an erasure run), shared by every process sending in it.
send_rates = sa.Table(
    "lifecycle_send_rates",
    metadata,
    sa.Column("scope", sa.String(255), primary_key=True),
    sa.Column("next_start_us", sa.BigInteger, nullable=False),  # Unix time in microseconds
)

GENESIS = "0" * 64

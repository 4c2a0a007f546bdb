"""Which rows a rule takes, said once for the plan, the apply units and the verification."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from lifecycle.catalog import Catalog
from lifecycle.retention.plan import DatasetPlan
from lifecycle.state import StateStore
from lifecycle.stores.contract import Selection

Holds = dict[str, tuple[str, ...]]  # dataset -> the subjects held there


def held_subjects(state: StateStore, catalog: Catalog, day: date) -> Holds:
    """The subjects under legal hold on the run's day, per dataset (a hold may name datasets)."""
    active = state.holds.active(day)
    return {name: tuple(sorted({h.subject_id for h in active if h.covers(name)})) for name in catalog.datasets}


def held_pairs(holds: Holds) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The holds as a selection carries them: held rows keep what they point at."""
    return tuple((d, h) for d, h in holds.items() if h)


def expired(action: str, fields: tuple[str, ...], older_than: datetime, held: tuple[str, ...] = ()) -> Selection:
    """What a rule takes of a dataset: older than the cutoff, not held, not yet anonymized."""
    return Selection(
        older_than=older_than,
        exclude_subjects=held,
        pending_anonymization=tuple(fields) if action == "anonymize" else (),
    )


def rule_selection(entry: DatasetPlan, held: tuple[str, ...] = (), older_than: datetime | None = None) -> Selection:
    """What the dataset's rule takes, at its effective cutoff unless ``older_than`` says otherwise."""
    return expired(entry.action, entry.fields, older_than or entry.effective_cutoff_at, held)


def keeping_referenced(selection: Selection, holds: Holds, going_with: tuple = ()) -> Selection:
    """What a delete takes: ``selection`` less rows that rows staying behind point at (held rows
    among them, whatever their foreign key would do); rows in ``going_with`` do not stay."""
    return replace(selection, kept_if_referenced=True, going_with=going_with, held=held_pairs(holds))

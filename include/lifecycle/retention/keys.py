"""Ledger keys of a retention run, built here only: a rerun finds what its run recorded by them."""

from __future__ import annotations

KIND = "retention"


def _key(run_id: str, *parts: object) -> str:
    return ":".join([KIND, run_id, *map(str, parts)])


def plan_key(run_id: str) -> str:
    """The run's plan, recorded once: a rerun works from it."""
    return _key(run_id, "plan")


def failure_key(run_id: str, step: str) -> str:
    """A step that stopped the run before it could act."""
    return _key(run_id, "failed", step)


def guardrail_key(run_id: str) -> str:
    return _key(run_id, "guardrail")


def override_key(run_id: str) -> str:
    return _key(run_id, "override")


def batch_key(run_id: str, dataset: str, low: object, high: object) -> str:
    """One applied key range (or chunk of objects) of a dataset."""
    return _key(run_id, dataset, low, high)


def dataset_batches(run_id: str, dataset: str) -> str:
    """The prefix of every batch key of one dataset in the run."""
    return _key(run_id, dataset, "")


def run_records(run_id: str) -> str:
    """The prefix of every key the run recorded."""
    return _key(run_id, "")

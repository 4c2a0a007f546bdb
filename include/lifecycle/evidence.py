"""Every ledger key the lifecycle records under, built here only.

A key makes an append "record once": a rerun finds what its run recorded by
the key, and skips or reuses it.  The formats are part of the evidence (a
regulator's auditor reads them in the ledger), so they change only here, and
deliberately.
"""

from __future__ import annotations


def _key(*parts: object) -> str:
    return ":".join(map(str, parts))


# ---------------------------------------------------------------- retention_expiry


def retention_plan(run_id: str) -> str:
    """The run's plan, recorded once: a rerun works from it."""
    return _key("retention", run_id, "plan")


def retention_failure(run_id: str, step: str) -> str:
    """A step that stopped the run before it could act."""
    return _key("retention", run_id, "failed", step)


def retention_guardrail(run_id: str) -> str:
    return _key("retention", run_id, "guardrail")


def retention_override(run_id: str) -> str:
    return _key("retention", run_id, "override")


def retention_batch(run_id: str, dataset: str, low: object, high: object) -> str:
    """One applied key range (or chunk of objects) of a dataset."""
    return _key("retention", run_id, dataset, low, high)


def retention_partition_drop(run_id: str, dataset: str, partition: str) -> str:
    """One partition of a dataset dropped whole (or, kept at apply, its rows deleted)."""
    return _key("retention", run_id, dataset, "partition", partition)


def partition_mark(dataset: str, partition: str, run_id: str) -> str:
    """A partition about to be detached and dropped, recorded before anything is done to it:
    a later run finds the marks whose drop is not recorded and finishes them."""
    return _key("partition", dataset, partition, run_id)


def partition_marks(dataset: str) -> str:
    """The prefix of every partition mark of one dataset, across runs."""
    return _key("partition", dataset, "")


def retention_dataset_batches(run_id: str, dataset: str) -> str:
    """The prefix of every batch key of one dataset in the run."""
    return _key("retention", run_id, dataset, "")


def retention_run(run_id: str) -> str:
    """The prefix of every key the run recorded."""
    return _key("retention", run_id, "")


# ------------------------------------------------------------ cancellation_erasure


def erasure_intake(run_id: str, counts_digest: str) -> str:
    """One intake outcome of a run (a rerun that finds the same states records nothing new)."""
    return _key("erasure", run_id, "intake", counts_digest)


def erasure_batch(batch: str) -> str:
    """The prefix of every record of one erasure batch."""
    return _key("erasure", batch, "")


def erasure_step(batch: str, dataset: str, what: str) -> str:
    """A batch step's ``plan`` (before its change is committed) or ``done`` record."""
    return _key("erasure", batch, dataset, what)


def erasure_certificates(batch: str) -> str:
    return _key("erasure", batch, "certificates")


# ------------------------------------------------------------------------ notices


def notice_outcomes(template: str, rows_digest: str) -> str:
    """One summary of erasure notices' outcomes (counts and the rows' SHA-256)."""
    return _key("notices", template, rows_digest[:32])


def notice_sent_before(template: str, subject: str) -> str:
    """How versions before the claim table recorded one sent notice; such a notice counts as sent."""
    return _key("notice", template, subject)


# ------------------------------------------------------------ incident_notification


def incident_event(incident_id: str, run_id: str, event: str, part: str | None = None) -> str:
    """A step of an incident run (``registered``, ``resolved``, ``batch`` with its number …)."""
    return _key("incident", incident_id, run_id, event, *([part] if part is not None else []))


def regulator_delivery(incident_id: str, run_id: str, regulator_id: str, channel: str) -> str:
    """One regulator's report of a run, delivered by one channel (``email`` or ``upload``)."""
    return _key("incident", incident_id, run_id, "delivery", regulator_id, channel)


# ------------------------------------------------------------- lifecycle_deadlines


def deadlines_summary(run_id: str) -> str:
    """The summary of a run's findings mailed to the privacy contact (once per run)."""
    return _key("deadlines", run_id, "summary")


# ------------------------------------------------------------------- sharing_<id>


def sharing_extract(entry_key: str, dataset: str) -> str:
    """One dataset's file of a delivery interval, once uploaded: a retried extract finds it here."""
    return _key("sharing", entry_key, "extract", dataset)


def sharing_outcome(entry_key: str, outcome: str, evidence_digest: str) -> str:
    """One distinct outcome of a delivery interval (a manifest's hash or a refusal's text)."""
    return _key("sharing", entry_key, outcome, evidence_digest[:16])


# ---------------------------------------------------------------- subject_request


def request_event(request_id: str, event: str, part: str | None = None) -> str:
    """One step of a person's request (received, rejected, planned, a dataset's change, done):
    recorded once per request, so a rerun of any run finds it."""
    return _key("request", request_id, event) if part is None else _key("request", request_id, event, part)


def request_notice(template: str, request_id: str) -> str:
    """The claim name of the mail that answers a request: one per request and template
    (a person may ask twice; each answer is mailed once)."""
    return _key(template, request_id)


def recipient_deletion(scope: str, recipient_id: str) -> str:
    """A deletion request to one recipient for a request or an erasure batch."""
    return _key("deletion", scope, recipient_id)


# -------------------------------------------------------------- lifecycle_evidence


def pack(period: str) -> str:
    """The prefix of every record of one period's evidence pack (``<from>_<to>``)."""
    return _key("evidence", "pack", period, "")


def pack_built(period: str, manifest_sha256: str) -> str:
    """One distinct pack of a period, once built (a rebuild of the same state records nothing new)."""
    return _key("evidence", "pack", period, "built", manifest_sha256[:16])


def pack_delivery(period: str, recipient_id: str, channel: str) -> str:
    """A period's pack delivered to one recipient by one channel (``email`` or ``upload``): once."""
    return _key("evidence", "pack", period, "delivery", recipient_id, channel)

"""Who must be told beyond the people: each regulator by its deadline, and the public when the fallback fires.

A regulator is told when every condition of its ``when`` holds (no ``when``:
always); its deadline is ``discovered_at`` + ``deadline``.  The fallback's
``affected_at_least`` counts everyone the incident affected so far;
``unreachable_fraction_at_least`` is the share of the people this run
notifies without a working e-mail.  Both compare with >=.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lifecycle.clock import iso_utc
from lifecycle.incident.models import FallbackDecision, Obligations, RegulatorDecision, Run
from lifecycle.incident.register import incident_totals

if TYPE_CHECKING:
    from lifecycle.catalog import Catalog
    from lifecycle.config.incidents import Fallback, Regulator
    from lifecycle.incident.services import Services


def obligations(services: Services, run_id: str) -> dict:
    """Decide the regulators, their deadlines and the fallback (from reach) and keep them in the register."""
    run = services.run(run_id)
    form, scope = run.form, run.scope
    affected, countries = incident_totals(services.state, form.incident_id, run_id)
    regulators = tuple(
        regulator_decision(services.catalog, regulator, run, affected, countries)
        for regulator in services.incidents.regulators
    )
    decided = Obligations(
        affected_total=affected,
        countries=tuple(sorted(countries)),
        regulators=regulators,
        fallback=fallback(
            services.incidents.fallback, affected, scope.without_email, scope.new, "announcement" in form.channels
        ),
        decided_at=run.as_of,
    )
    services.save(run_id, obligations=decided)
    matched = decided.matched
    services.record(
        "obligations",
        {
            "incident": form.incident_id,
            "regulators": [r.id for r in matched],
            "deadlines": {r.id: iso_utc(r.deadline) for r in matched},
            "fallback": decided.fallback.fires,
            "reasons": list(decided.fallback.reasons),
        },
        run,
    )
    return {"regulators": [r.id for r in matched], "fallback": decided.fallback.fires, "affected_total": affected}


def regulator_decision(
    catalog: Catalog, regulator: Regulator, run: Run, affected: int, countries: set[str]
) -> RegulatorDecision:
    """Whether every condition of the regulator's ``when`` holds, with a reason for each."""
    when, checks = regulator.when, []
    if when.affected_at_least is not None:
        checks.append(
            (affected >= when.affected_at_least, f"{affected:,} affected (threshold {when.affected_at_least:,})")
        )
    if when.subject_countries:
        hit = sorted(countries & set(when.subject_countries))
        checks.append(
            (
                bool(hit),
                f"affected people in {', '.join(hit)}"
                if hit
                else f"no affected person in {', '.join(when.subject_countries)}",
            )
        )
    if when.categories:
        hit = sorted(c for c in set(run.scope.categories) if any(catalog.is_within(c, w) for w in when.categories))
        checks.append(
            (
                bool(hit),
                f"categories {', '.join(hit)} involved" if hit else f"none of {', '.join(when.categories)} involved",
            )
        )
    deadline = regulator.deadline.after(run.form.discovered_at)
    return RegulatorDecision(
        id=regulator.id,
        name=regulator.name,
        contact=regulator.contact,
        matched=all(ok for ok, _ in checks),
        reasons=tuple(text for _, text in checks) or ("no condition: always told",),
        deadline=deadline,
        deadline_after_discovery=str(regulator.deadline),
        met_if_notified_now=run.as_of <= deadline,
    )


def fallback(rule: Fallback, affected: int, unreachable: int, notified: int, chosen: bool) -> FallbackDecision:
    """Whether the announcement must stand in for individual notice, and why; ``chosen`` publishes it anyway."""
    reasons = []
    fraction = unreachable / notified if notified else 0.0
    if rule.affected_at_least is not None and affected >= rule.affected_at_least:
        reasons.append(f"{affected:,} people affected, at least fallback.affected_at_least {rule.affected_at_least:,}")
    if rule.unreachable_fraction_at_least is not None and notified and fraction >= rule.unreachable_fraction_at_least:
        reasons.append(
            f"{unreachable:,} of {notified:,} people to notify ({fraction:.1%}) cannot be reached by e-mail, "
            f"at least fallback.unreachable_fraction_at_least {rule.unreachable_fraction_at_least:.1%}"
        )
    fires = bool(reasons)
    if chosen:
        reasons.append("announcement chosen in the trigger form")
    if not reasons:
        reasons.append(f"{affected:,} affected and {fraction:.1%} unreachable: below both fallback thresholds")
    return FallbackDecision(
        fires=fires,
        publish=fires or chosen,
        unreachable=unreachable,
        notified=notified,
        unreachable_fraction=round(fraction, 6),
        reasons=tuple(reasons),
    )

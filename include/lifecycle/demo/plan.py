"""Who plays a special part in the demo world: a function of (users, seed) only.

Some users asked to cancel their account (pending, withdrawn, or due: the
grace period is over); a few are under legal hold; three made a request
about their own information (access, erase, withdraw_consent) a day ago.  The row generator gives
these users data everywhere (every dataset, every bucket prefix) and, for the
held ones, rows old enough that the hold is what keeps them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

REQUEST_KINDS = ("access", "erase", "withdraw_consent")


@dataclass(frozen=True)
class Plan:
    """``cancellations`` maps a user id to ``pending``, ``pending_edge`` (asked
    just inside the grace period), ``withdrawn``, ``due`` or ``due_edge``
    (grace just over).  ``holds`` are (subject id, datasets or None, reason).
    """

    cancellations: dict[int, str]
    holds: tuple[tuple[int, tuple[str, ...] | None, str], ...]
    requests: dict[int, str]  # user id -> the kind of request in the app's privacy_requests table

    @cached_property
    def rich(self) -> frozenset[int]:
        """Users who get data in every dataset and bucket prefix."""
        return frozenset(self.cancellations) | {h[0] for h in self.holds} | set(self.requests)

    def forced_old(self, uid: int) -> tuple[str, ...]:
        """The datasets in which ``uid`` gets rows old enough for the hold to matter."""
        return next((h[1] for h in self.holds if h[0] == uid and h[1]), ())


def plan(users: int, seed: int = 0) -> Plan:
    """About 0.6% of users are due for erasure (at least 4), 0.4% pending, 0.4% withdrawn (at least 2 each)."""
    rng = random.Random(f"mic-demo:{seed}:plan")
    wanted = {
        "due": max(4, round(users * 0.006)),
        "pending": max(2, round(users * 0.004)),
        "withdrawn": max(2, round(users * 0.004)),
    }
    picks = rng.sample(range(1, users + 1), min(users, sum(wanted.values()) + 2 + len(REQUEST_KINDS)))
    cancellations: dict[int, str] = {}
    it = iter(picks)
    for status, count in wanted.items():
        for i, uid in zip(range(count), it):
            cancellations[uid] = f"{status}_edge" if i == 0 and status != "withdrawn" else status
    rest = list(it)
    due = sorted(u for u, s in cancellations.items() if s == "due")
    holds: list[tuple[int, tuple[str, ...] | None, str]] = []
    if due:
        holds.append(
            (due[0], None, "Litigation hold: buyer account named in a pending lawsuit (demo case DEMO-2026-014)")
        )
    if rest:
        holds.append((rest[0], ("orders",), "Tax audit: order records requested by the tax bureau (demo)"))
    if len(rest) > 1:
        holds.append((rest[1], ("access_logs",), "Preservation request from law enforcement (demo)"))
    requests = dict(zip(rest[2:], REQUEST_KINDS, strict=False))
    return Plan(cancellations, tuple(holds), requests)


def demo_holds(users: int, *, seed: int = 0) -> list[tuple[int, list[str] | None, str]]:
    """Legal holds the demo wants: (subject id, datasets or None for all, reason).

    One subject with a due cancellation is held entirely (erasure must skip
    it); one has orders past the 3-year rule held (retention must skip them);
    one has access logs past 6 months held.
    """
    return [(uid, list(ds) if ds else None, reason) for uid, ds, reason in plan(users, seed).holds]

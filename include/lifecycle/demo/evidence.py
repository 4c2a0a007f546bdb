"""The demo's last word: an evidence pack of the demo month, where it is, and its check."""

from __future__ import annotations

from datetime import datetime


def pack_lines(config, as_of: datetime) -> list[str]:
    """Build the pack of the demo's month so far (the 1st to ``as_of``), check it with the
    published public keys as ``evidence verify`` does, and say so in a few lines."""
    from lifecycle.packs import Period, build_pack, verify_pack
    from lifecycle.state import StateStore

    period = Period(as_of.date().replace(day=1), as_of.date())
    built = build_pack(config, StateStore.for_catalog(config.catalog), period.start, period.end)
    checked = verify_pack(config, period)
    return [
        f"\nevidence pack {period.start} – {period.end}: {built.location}index.html ({built.files} files)",
        f"$ python -m lifecycle evidence verify {built.location}",
        *checked.lines(f"  {built.location}manifest.json"),
    ]

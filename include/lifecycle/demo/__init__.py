"""The demo world: the "MIC (for Buyer)" app of the seed privacy policy.

``schema`` describes its database, ``generate`` fills it (and its media
bucket) with deterministic fake data, ``python -m lifecycle.demo seed`` runs
it against the systems named in ``catalog.yaml``.  The lifecycle engine never
imports this package; it only reads the catalog.
"""

from lifecycle.demo.generate import DemoError, demo_holds, plan, reset, seed

__all__ = ["DemoError", "demo_holds", "plan", "reset", "seed"]

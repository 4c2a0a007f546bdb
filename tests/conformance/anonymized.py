"""Two erasure choices as dimensions of the generator: anonymized subject rows, kept or cleared links.

* **The subject's own row anonymized**: ``default_action: anonymize`` (each dataset
  that cannot be anonymized, or is drawn so, deleted by an override) or an override
  naming the subject dataset.  The account row stays under its key, every personal
  field holding its strategy's output.
* **Links kept or cleared** on anonymized child tables (catalog
  ``on_anonymize.link``; ``clear`` written or left to the default): cleared, the row
  reaches nobody (its link NULL); kept, it stays the person's, its fields anonymized.

Some draws are what validation refuses (docs/configuration.md): under
``default_action: anonymize``, a dataset with a personal field without a strategy
(cancellation.yaml ``default_action``); a link kept onto a row the erasure deletes
(catalog.yaml ``datasets.<name>.on_anonymize.link``).  The erasure is then refused at
validation, naming the key, and nothing changes.  A link cleared on a NOT NULL column
is what validation cannot see but the live schema shows: the preflight refuses, naming
the column, and nothing changes.  Drawn from a generator of its own; nothing here
imports the engine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

CATALOG, CANCELLATION = "catalog.yaml", "cancellation.yaml"


@dataclass
class Choices:
    default: str  # cancellation default_action
    actions: dict[str, str]  # every personal table dataset -> delete | anonymize
    overrides: list[tuple[str, str]] = field(default_factory=list)  # (dataset, action), in the file's order
    links: dict[str, str] = field(default_factory=dict)  # dataset -> clear | keep: on_anonymize.link
    written: set[str] = field(default_factory=set)  # datasets whose on_anonymize the catalog states
    refusals: list[tuple[str, str]] = field(default_factory=list)  # (file, key) validation names
    unfit: list[str] = field(default_factory=list)  # datasets whose cleared link is NOT NULL: the preflight refuses
    mode: str | None = None  # None | default | override: how the subject's row comes to be anonymized

    def anonymized(self, dataset: str) -> bool:
        return self.actions.get(dataset) == "anonymize"

    def cleared(self, world, dataset: str) -> bool:
        """Anonymizing ``dataset`` sets its link to NULL (the subject's own row keeps its key)."""
        return dataset != world.subject.dataset and self.links.get(dataset, "clear") == "clear"

    def describe(self):
        return (self.mode, self.default, self.overrides, sorted(self.links.items()), self.refusals, self.unfit)


def plain(world) -> Choices:
    """The configuration without these dimensions: delete, the world's own anonymize overrides."""
    actions = {t.dataset: "delete" for t in world.personal_tables()}
    actions.update(dict.fromkeys(world.overrides, "anonymize"))
    return Choices("delete", actions, [(d, "anonymize") for d in world.overrides])


def choices(world) -> Choices:
    rng = random.Random(f"anonymized-{world.seed}")
    mode = rng.choice([None, None, "default", "override"])
    spoil = rng.random() < 0.25  # under default_action: anonymize, leave the requests to it (refused)
    wild = rng.random() < 0.2  # a kept link may be drawn onto a row the erasure deletes (refused)
    blind = rng.random() < 0.2  # a link may be cleared on a NOT NULL column (refused at the preflight)
    out = plain(world)
    out.mode = mode
    subject = world.subject.dataset
    if mode == "override":
        out.actions[subject] = "anonymize"
        out.overrides.append((subject, "anonymize"))
    elif mode == "default":
        out.default = "anonymize"
        out.actions[subject] = "anonymize"
        for t in sorted(world.personal_tables(), key=lambda t: (t.depth, t.dataset)):
            if t.role == "subject" or t.dataset in world.overrides:
                continue
            if t.role == "requests" and spoil:
                out.actions[t.dataset] = "anonymize"
                out.refusals.append((CANCELLATION, "default_action"))
                continue
            linkable = t.role == "chain" and (t.link.nullable or blind or out.anonymized(t.link.parent))
            if t.anonymizable and linkable and rng.random() < 0.75:
                out.actions[t.dataset] = "anonymize"
            else:
                out.actions[t.dataset] = "delete"
                out.overrides.append((t.dataset, "delete"))
    _links(world, out, rng, wild, blind)
    return out


def _links(world, out: Choices, rng: random.Random, wild: bool, blind: bool) -> None:
    """clear or keep for every anonymized chain dataset (parents first: a kept link needs its row kept)."""
    chains = sorted((t for t in world.tables.values() if t.role == "chain"), key=lambda t: (t.depth, t.dataset))
    for t in chains:
        if not out.anonymized(t.dataset):
            continue
        keep_ok = out.anonymized(t.link.parent)
        options = (["clear"] if t.link.nullable or blind else []) + (["keep"] if keep_ok or wild else [])
        link = rng.choice(options)
        out.links[t.dataset] = link
        if link == "keep" or rng.random() < 0.5:
            out.written.add(t.dataset)
        if link == "keep" and not keep_ok:
            out.refusals.append((CATALOG, f"datasets.{t.dataset}.on_anonymize.link"))
        if link == "clear" and not t.link.nullable:
            out.unfit.append(t.dataset)

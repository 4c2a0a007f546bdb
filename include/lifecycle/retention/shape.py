"""The DAG's shape, from the configuration alone: which systems get apply tasks, and how many stages."""

from __future__ import annotations

from lifecycle.config import Config


def retention_systems(config: Config) -> list[str]:
    """The systems holding datasets a rule covers: they shape the DAG (one pool and
    one apply task per stage each), so this reads the configuration only."""
    catalog = config.catalog
    return sorted(
        {
            catalog.dataset(d).system
            for rule in config.retention.rules
            for d in catalog.rule_targets(rule.applies_to.categories, rule.applies_to.datasets, rule.action)
        }
    )


def stages_of(config: Config, system: str) -> int:
    """How many apply stages a system gets: one per dataset of its longest chain of subject links
    (a row's children go first), at least three for a SQL system; objects need one."""
    catalog = config.catalog
    if catalog.systems[system].type != "sql":
        return 1
    depths = [
        len(catalog.path_to_subject(name))
        for name in catalog.table_datasets
        if catalog.dataset(name).system == system and catalog.dataset(name).personal
    ]
    return max([3] + [depth + 1 for depth in depths])


def unit_group(system: str, stage: int) -> str:
    """The name under which the guardrail hands one system's stage its units (an XCom key)."""
    return f"{system}__stage_{stage}"

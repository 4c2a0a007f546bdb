"""The generator's own checks: a seed makes one world; its configuration loads and classifies every column."""

from __future__ import annotations

import pytest

from tests.conformance import runner
from tests.conformance.backends import Instance
from tests.conformance.suite import seeds
from tests.conformance.world import World


def _rows(world):
    return {name: t.rows for name, t in world.tables.items()}


@pytest.mark.parametrize("seed", seeds(), ids=lambda s: f"seed{s}")
def test_the_same_seed_makes_the_same_world(seed):
    a, b = World(seed), World(seed)
    assert a.describe() == b.describe()
    as_of = a.fixed_as_of()
    assert _rows(a.materialize(as_of)) == _rows(b.materialize(as_of))
    assert a.incident == b.incident


@pytest.mark.parametrize("seed", seeds(), ids=lambda s: f"seed{s}")
def test_the_configuration_loads_and_scan_finds_every_column_classified(seed, tmp_path, monkeypatch, s3_endpoint):
    """``load_config`` accepts what docs/configuration.md allows; ``python -m lifecycle scan`` semantics:
    every table is a dataset, every column structural or under ``fields``, every strategy fits."""
    world = World(seed).materialize(World(seed).fixed_as_of())
    inst = Instance(world, "sqlite", "g", tmp_path, s3_endpoint)
    inst.create()
    inst.write_config()
    for name, value in inst.environment().items():
        monkeypatch.setenv(name, value)
    try:
        try:
            config = runner.load(inst.config_dir)
        except Exception as exc:
            pytest.fail(
                f"world seed {seed}: the generated configuration is refused"
                + (
                    f" (keep {world.tight_keep[1]} against a floor of 6mo: docs/configuration.md says a half "
                    "year has 181 to 184 days, so this keep is never shorter)"
                    if world.tight_floor
                    else ""
                )
                + f":\n{exc}\nreplay: LIFECYCLE_CONFORMANCE_SEED={seed} .venv/bin/python -m pytest "
                "tests/conformance/test_generator.py",
                pytrace=False,
            )
        # a link cleared on a NOT NULL column (anonymized.py) is the one finding a world may draw
        unfit = [f"{world.tables[n].table}.{world.tables[n].link.column}:" for n in world.anonymized.unfit]
        found = runner.scan(config)
        assert [f for f in found if not any(u in f and "NOT NULL" in f for u in unfit)] == [], f"world seed {seed}"
        assert all(any(u in f for f in found) for u in unfit), f"world seed {seed}: {unfit} not found in {found}"
    finally:
        runner.dispose(inst)
        inst.drop()


@pytest.mark.parametrize("seed", seeds(), ids=lambda s: f"seed{s}")
def test_erasure_choices_validation_refuses_are_refused_naming_the_key(seed, tmp_path, s3_endpoint):
    """A world's erasure choices (anonymized.py) load exactly when the world drew none that
    docs/configuration.md says validation refuses; a refusal names each (file, key) drawn."""
    world = World(seed).materialize(World(seed).fixed_as_of())
    inst = Instance(world, "sqlite", "g", tmp_path, s3_endpoint)
    inst.write_config(refused=True)
    from lifecycle.errors import ConfigError

    expected = world.anonymized.refusals
    try:
        runner.load(inst.config_dir)
    except ConfigError as exc:
        named = {(p.file, p.path) for p in exc.problems}
        assert expected and set(expected) <= named, f"world seed {seed}: expected {expected}, refused {named}"
    else:
        assert not expected, f"world seed {seed}: expected a refusal naming {expected}, the configuration loaded"

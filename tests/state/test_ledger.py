"""The ledger: hash chain, idempotent appends, tamper detection on every backend."""

from datetime import UTC, datetime
from threading import Thread

import sqlalchemy as sa

from lifecycle.state import StateStore
from lifecycle.state.ledger import Record
from lifecycle.state.schema import ledger_entries, ledger_head

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _ledger_with(engine, n=4):
    state = StateStore(engine)
    for i in range(n):
        state.ledger.append("test.event", {"i": i, "note": "ünïcode 个人信息"}, dag_id="d", run_id="r", recorded_at=AT)
    return state


def test_hashes_are_fixed_by_content(engine):
    # Fixed expected values: a change to the hashing format must be deliberate.
    state = _ledger_with(engine, 2)
    entries = list(state.ledger.entries())
    assert [e.seq for e in entries] == [1, 2]
    assert entries[0].prev_hash == "0" * 64
    assert entries[0].entry_hash == "79c1fce7d082e02293e593316795e8d7329a4544f4e8c12ac6a39cca4d653452"
    assert entries[1].prev_hash == entries[0].entry_hash
    assert entries[1].entry_hash == "bf9eac83d7c7ff80d08f64943bc797255837a0921b890d565c4f903000651f8f"
    assert state.ledger.verify().ok


def test_append_with_key_is_idempotent(engine):
    state = StateStore(engine)
    first = state.ledger.append("notice.sent", {"n": 1}, key="mail:42")
    again = state.ledger.append("notice.sent", {"n": 2}, key="mail:42")
    assert again == first
    assert [e.seq for e in state.ledger.entries()] == [1]


def test_appending_many_at_once_is_the_same_chain_as_one_by_one(engine, tmp_path):
    records = [
        Record("test.plan", {"step": 1}, "k:1"),
        Record("test.done", {"step": 1}, "k:2"),
        Record("test.note", {"n": 3}),
    ]
    together = StateStore(engine).ledger
    apart = StateStore(sa.create_engine(f"sqlite:///{tmp_path / 'apart.db'}")).ledger
    together.append_many(records, run_id="r", recorded_at=AT)
    for record in records:
        apart.append(record.kind, record.payload, key=record.key, run_id="r", recorded_at=AT)
    assert [e.entry_hash for e in together.entries()] == [e.entry_hash for e in apart.entries()]
    assert together.verify().ok


def test_appending_many_where_a_key_is_recorded_appends_the_others_once(engine):
    ledger = StateStore(engine).ledger
    first = ledger.append("test.plan", {"step": 1}, key="k:1")
    entries = ledger.append_many(
        [Record("test.plan", {"step": "again"}, "k:1"), Record("test.done", {"step": 1}, "k:2")]
    )
    assert entries[0] == first
    again = ledger.append_many([Record("test.done", {"step": "again"}, "k:2")])
    assert again == entries[1:]
    assert [(e.seq, e.idempotency_key) for e in ledger.entries()] == [(1, "k:1"), (2, "k:2")]
    assert ledger.verify().ok


def test_edit_is_detected(engine):
    state = _ledger_with(engine)
    with engine.begin() as conn:
        conn.execute(ledger_entries.update().where(ledger_entries.c.seq == 2).values(payload='{"i":99}'))
    result = state.ledger.verify()
    assert not result.ok
    assert result.problems == ["entry 2: content does not match its hash (edited)"]


def test_delete_in_the_middle_is_detected(engine):
    state = _ledger_with(engine)
    with engine.begin() as conn:
        conn.execute(ledger_entries.delete().where(ledger_entries.c.seq == 3))
    problems = state.ledger.verify().problems
    assert "entry 3 is missing (next is 4)" in problems


def test_delete_at_the_end_is_detected(engine):
    state = _ledger_with(engine)
    with engine.begin() as conn:
        conn.execute(ledger_entries.delete().where(ledger_entries.c.seq == 4))
    problems = state.ledger.verify().problems
    assert problems == [
        "the head records entry 4 but the chain ends at entry 3 (entries removed from the end, or the head edited)"
    ]


def test_reorder_is_detected(engine):
    state = _ledger_with(engine)
    with engine.begin() as conn:
        rows = {r.seq: r._asdict() for r in conn.execute(sa.select(ledger_entries))}
        conn.execute(ledger_entries.delete())
        for seq, other in ((2, 3), (3, 2)):
            conn.execute(ledger_entries.insert().values({**rows[other], "seq": seq}))
        conn.execute(ledger_entries.insert().values(rows[1]))
        conn.execute(ledger_entries.insert().values(rows[4]))
    result = state.ledger.verify()
    assert not result.ok
    assert any("prev_hash does not match" in p for p in result.problems)


def test_rewritten_chain_is_caught_by_the_head(engine):
    state = _ledger_with(engine)
    with engine.begin() as conn:
        conn.execute(ledger_head.update().values(seq=3))
    assert not state.ledger.verify().ok


def test_concurrent_appends_keep_one_chain(engine):
    state = StateStore(engine)

    def writer(w):
        for i in range(10):
            state.ledger.append("test.concurrent", {"writer": w, "i": i})

    threads = [Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = state.ledger.verify()
    assert result.ok, result.problems
    assert result.entries == 40


def test_migration_is_idempotent(engine):
    from lifecycle.state.migrations import migrate

    StateStore(engine)
    assert migrate(engine, now="x") == []

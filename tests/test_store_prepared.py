"""Prepared statements write and read what SQLAlchemy's own execution would, on SQLite and PostgreSQL."""

from __future__ import annotations

import typing
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Table, bindparam, exc, insert, select, update

from apprentice.store import Store
from apprentice.store.assignments import _CONTENT, _HELD
from apprentice.store.prepared import Prepared
from apprentice.store.studio_records import aware
from apprentice.store.tables import Assignment, Comparison
from studio_fixtures import PAIR_GOLD, seed_comparisons

assignments = typing.cast(Table, Assignment.__table__)
ASSIGNMENT_COLUMNS = ("comparison_id", "annotator_id", "order_shown", "status", "leased_at", "lease_expires_at")
INSERT_ASSIGNMENT = insert(assignments).returning(assignments.c.id)


def _normalised(row: typing.Sequence[typing.Any]) -> list[typing.Any]:
    """SQLite hands datetimes back without a zone (both paths alike); compare them as UTC."""
    return [aware(value) if isinstance(value, datetime) else value for value in row]


def test_reads_match_sqlalchemy_for_json_booleans_and_datetimes(store: Store) -> None:
    ids = seed_comparisons(store, pairs=1, rankings=1, ratings=0, gold_pairs=1)
    annotator = store.add_studio_annotator("alice").id
    assert store.next_task(annotator, lease_seconds=60) is not None
    with store.engine.connect() as connection:
        for comparison_id in [*ids["pair"], *ids["ranking"], *ids["gold"]]:
            expected = connection.execute(_CONTENT, {"comparison": comparison_id}).all()
            got = Prepared(_CONTENT, store.engine.dialect).rows(connection, {"comparison": comparison_id})
            assert [list(row) for row in got] == [list(row) for row in expected]
            assert got[0].is_gold is (comparison_id in ids["gold"])
            assert got[0].gold == (PAIR_GOLD if comparison_id in ids["gold"] else None)
            assert isinstance(got[0].messages, list)
        held = Prepared(_HELD, store.engine.dialect).rows(connection, {"annotator": annotator})
        expected_held = connection.execute(_HELD, {"annotator": annotator}).all()
    assert len(held) == 1
    assert [_normalised(row) for row in held] == [_normalised(row) for row in expected_held]
    assert isinstance(held[0].order_shown, list) and isinstance(held[0].lease_expires_at, datetime)


def test_an_insert_stores_what_sqlalchemy_reads_back(store: Store) -> None:
    comparison_id = seed_comparisons(store, pairs=1, rankings=0, ratings=0)["pair"][0]
    annotator = store.add_studio_annotator("bob").id
    leased_at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    values = {
        "comparison_id": comparison_id,
        "annotator_id": annotator,
        "order_shown": [1, 0],
        "status": "leased",
        "leased_at": leased_at,
        "lease_expires_at": leased_at + timedelta(seconds=90),
    }
    with store.engine.begin() as connection:
        assignment_id = Prepared(INSERT_ASSIGNMENT, store.engine.dialect, column_keys=ASSIGNMENT_COLUMNS).scalar(
            connection, values
        )
        renewed = Prepared(
            update(assignments)
            .where(assignments.c.id == bindparam("assignment"))
            .values(lease_expires_at=bindparam("expires", type_=assignments.c.lease_expires_at.type)),
            store.engine.dialect,
        )
        renewed.rows(connection, {"assignment": assignment_id, "expires": leased_at + timedelta(seconds=120)})
    with store.engine.connect() as connection:
        row = connection.execute(select(assignments).where(assignments.c.id == assignment_id)).one()
    assert row.order_shown == [1, 0] and row.status == "leased" and row.skip_reason is None
    assert aware(row.leased_at) == leased_at
    assert aware(row.lease_expires_at) == leased_at + timedelta(seconds=120)
    # SQLAlchemy's own comparison against a parameter sees the stored time as it should.
    later = select(assignments.c.id).where(assignments.c.lease_expires_at > leased_at + timedelta(seconds=119))
    with store.engine.connect() as connection:
        assert connection.execute(later).scalars().all() == [assignment_id]


def test_an_insert_must_name_the_columns_that_have_defaults(store: Store) -> None:
    with pytest.raises(ValueError, match="status"):
        Prepared(INSERT_ASSIGNMENT, store.engine.dialect, column_keys=("comparison_id", "annotator_id"))


def test_driver_errors_are_raised_as_sqlalchemy_errors(store: Store) -> None:
    comparison_id = seed_comparisons(store, pairs=1, rankings=0, ratings=0)["pair"][0]
    annotator = store.add_studio_annotator("carol").id
    moment = datetime.now(UTC)
    values = {
        "comparison_id": comparison_id,
        "annotator_id": annotator,
        "order_shown": [0, 1],
        "status": "leased",
        "leased_at": moment,
        "lease_expires_at": moment,
    }
    prepared = Prepared(INSERT_ASSIGNMENT, store.engine.dialect, column_keys=ASSIGNMENT_COLUMNS)
    with store.engine.begin() as connection:
        prepared.scalar(connection, values)
    with pytest.raises(exc.IntegrityError), store.engine.begin() as connection:
        prepared.scalar(connection, values)  # one assignment per comparison and annotator
    with store.engine.connect() as connection:
        stored = connection.execute(select(assignments.c.id).where(assignments.c.annotator_id == annotator)).all()
    assert len(stored) == 1
    by_id = Prepared(select(Comparison.id).where(Comparison.id == bindparam("comparison")), store.engine.dialect)
    with pytest.raises(exc.ArgumentError, match="comparison"), store.engine.connect() as connection:
        by_id.rows(connection, {})

"""The studio's store queries on SQLite and PostgreSQL: leasing, overlap, order, gold, submit, undo, skip."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from apprentice.store import Store
from apprentice.store.assignments import AssignmentConflict, AssignmentNotFound
from apprentice.studio.answers import canonical_answer
from studio_fixtures import seed_comparisons


def answer(display: dict[str, Any]) -> Any:
    return lambda kind, order: canonical_answer(kind, display, order)


def judge(store: Store, annotator_id: int, key: str, *, lease: float = 60) -> int | None:
    task = store.next_task(annotator_id, lease_seconds=lease)
    if task is None:
        return None
    display: dict[str, Any] = {
        "pair": {"choice": "A"},
        "ranking": {"ranks": list(range(1, len(task.responses) + 1))},
        "rating": {"score": 5},
    }[task.kind]
    store.submit_judgment(
        annotator_id, task.assignment_id, canonical_answer=answer(display), idempotency_key=key, source="api"
    )
    return task.comparison_id


def test_overlap_is_never_exceeded_and_nobody_judges_twice(store: Store) -> None:
    ids = seed_comparisons(store, pairs=4, rankings=0, ratings=0, overlap=2)
    people = [store.add_studio_annotator(f"person{index}").id for index in range(3)]
    seen: dict[int, list[int]] = {person: [] for person in people}
    for round_index in range(6):
        for person in people:
            comparison_id = judge(store, person, f"k{round_index}")
            if comparison_id is not None:
                seen[person].append(comparison_id)
    for person, comparisons in seen.items():
        assert len(comparisons) == len(set(comparisons)), f"annotator {person} judged a comparison twice"
    counts = store.judgment_counts_by_comparison()
    assert {cid: counts[cid] for cid in ids["pair"]} == {cid: (2, 2) for cid in ids["pair"]}
    assert all(store.next_task(person, lease_seconds=60) is None for person in people)
    assert {c.status for c in store.comparisons()} == {"complete"}


def test_a_live_lease_holds_the_slot_and_an_expired_one_returns_it(store: Store) -> None:
    seed_comparisons(store, pairs=1, rankings=0, ratings=0, overlap=1)
    first = store.add_studio_annotator("first").id
    second = store.add_studio_annotator("second").id
    held = store.next_task(first, lease_seconds=1.0)
    assert held is not None
    assert store.next_task(second, lease_seconds=60) is None  # the only slot is leased
    reloaded = store.next_task(first, lease_seconds=1.0)  # a reload gives the same task back
    assert reloaded is not None and reloaded.assignment_id == held.assignment_id
    assert reloaded.order_shown == held.order_shown
    time.sleep(1.2)
    taken_over = store.next_task(second, lease_seconds=60)
    assert taken_over is not None and taken_over.comparison_id == held.comparison_id
    # The first annotator's lease ran out and the slot went to someone else: their late answer is refused.
    with pytest.raises(AssignmentConflict):
        store.submit_judgment(
            first, held.assignment_id, canonical_answer=answer({"choice": "A"}), idempotency_key="late", source="api"
        )
    store.submit_judgment(
        second, taken_over.assignment_id, canonical_answer=answer({"choice": "B"}), idempotency_key="x", source="api"
    )
    assert store.judgment_counts_by_comparison()[held.comparison_id] == (1, 1)


def test_order_is_randomized_per_assignment_recorded_and_answers_stored_canonically(store: Store) -> None:
    ids = seed_comparisons(store, pairs=0, rankings=1, ratings=0, overlap=12, ranking_size=4)
    orders = set()
    for index in range(12):
        person = store.add_studio_annotator(f"p{index}").id
        task = store.next_task(person, lease_seconds=60, rng=random.Random(index))
        assert task is not None and task.comparison_id == ids["ranking"][0]
        orders.add(tuple(task.order_shown))
        assert sorted(task.order_shown) == [0, 1, 2, 3]
        # The person ranks the shown responses by the letter in their text: canonical ranks are then fixed.
        display_ranks = ["ABCD".index(text.split()[1]) + 1 for text in task.responses]
        store.submit_judgment(
            person,
            task.assignment_id,
            canonical_answer=answer({"ranks": display_ranks}),
            idempotency_key="k",
            source="api",
        )
    assert len(orders) > 3, "the display order does not vary between assignments"
    judged = store.judged_comparisons(kinds=["ranking"])
    assert [row.answer for row in judged] == [{"ranks": [1, 2, 3, 4]}] * 12


def test_submission_is_idempotent_and_scoped_to_its_annotator(store: Store) -> None:
    seed_comparisons(store, pairs=2, rankings=0, ratings=0, overlap=2)
    alice = store.add_studio_annotator("alice").id
    bob = store.add_studio_annotator("bob").id
    task = store.next_task(alice, lease_seconds=60)
    assert task is not None
    first = store.submit_judgment(
        alice, task.assignment_id, canonical_answer=answer({"choice": "A"}), idempotency_key="same", source="api"
    )
    again = store.submit_judgment(
        alice, task.assignment_id, canonical_answer=answer({"choice": "B"}), idempotency_key="same", source="api"
    )
    assert first.created and not again.created and again.judgment_id == first.judgment_id
    assert again.answer == first.answer
    with pytest.raises(AssignmentConflict):  # a second, different answer to the same assignment
        store.submit_judgment(
            alice, task.assignment_id, canonical_answer=answer({"choice": "B"}), idempotency_key="other", source="api"
        )
    with pytest.raises(AssignmentNotFound):  # bob cannot answer alice's assignment, even with her key
        store.submit_judgment(
            bob, task.assignment_id, canonical_answer=answer({"choice": "B"}), idempotency_key="same", source="api"
        )
    with pytest.raises(AssignmentNotFound):
        store.task_for(bob, task.assignment_id)
    assert len(store.studio_judgments()) == 1


def test_a_key_used_for_another_assignment_is_refused_and_the_task_stays_open(store: Store) -> None:
    seed_comparisons(store, pairs=2, rankings=0, ratings=0, overlap=1)
    alice = store.add_studio_annotator("alice").id
    first = store.next_task(alice, lease_seconds=60)
    assert first is not None
    store.submit_judgment(
        alice, first.assignment_id, canonical_answer=answer({"choice": "A"}), idempotency_key="k", source="api"
    )
    second = store.next_task(alice, lease_seconds=60)
    assert second is not None and second.assignment_id != first.assignment_id
    with pytest.raises(AssignmentConflict, match="another assignment"):
        store.submit_judgment(
            alice, second.assignment_id, canonical_answer=answer({"choice": "B"}), idempotency_key="k", source="api"
        )
    assert len(store.studio_judgments()) == 1
    retried = store.submit_judgment(
        alice, second.assignment_id, canonical_answer=answer({"choice": "B"}), idempotency_key="k2", source="api"
    )
    assert retried.created and len(store.studio_judgments()) == 2


def test_skip_frees_the_slot_for_others_but_not_for_the_skipper(store: Store) -> None:
    ids = seed_comparisons(store, pairs=1, rankings=0, ratings=0, overlap=1)
    alice = store.add_studio_annotator("alice").id
    bob = store.add_studio_annotator("bob").id
    task = store.next_task(alice, lease_seconds=60)
    assert task is not None
    store.skip_assignment(alice, task.assignment_id, "I cannot read this language")
    assert store.next_task(alice, lease_seconds=60) is None
    other = store.next_task(bob, lease_seconds=60)
    assert other is not None and other.comparison_id == ids["pair"][0]
    assert store.annotator_progress(alice).skipped == 1
    with pytest.raises(AssignmentConflict):
        store.skip_assignment(alice, task.assignment_id, "again")


def test_undo_within_the_window_gives_the_task_back(store: Store) -> None:
    seed_comparisons(store, pairs=2, rankings=0, ratings=0, overlap=1)
    alice = store.add_studio_annotator("alice").id
    comparison_id = judge(store, alice, "first")
    assert store.annotator_progress(alice).judged == 1
    assignment_id = store.undo_last_judgment(alice, window_seconds=30, lease_seconds=60)
    assert assignment_id is not None
    assert store.annotator_progress(alice).judged == 0
    again = store.next_task(alice, lease_seconds=60)
    assert again is not None and again.assignment_id == assignment_id and again.comparison_id == comparison_id
    store.submit_judgment(
        alice, assignment_id, canonical_answer=answer({"choice": "B"}), idempotency_key="second", source="api"
    )
    assert store.undo_last_judgment(alice, window_seconds=0, lease_seconds=60) is None  # the window has passed
    assert len(store.studio_judgments()) == 1


def test_priorities_decide_what_comes_next(store: Store) -> None:
    ids = seed_comparisons(store, pairs=3, rankings=0, ratings=0)
    store.set_priorities({ids["pair"][2]: 5.0, ids["pair"][1]: 1.0})
    alice = store.add_studio_annotator("alice").id
    order = [judge(store, alice, f"k{index}") for index in range(3)]
    assert order == [ids["pair"][2], ids["pair"][1], ids["pair"][0]]


def test_gold_items_are_mixed_in_at_the_rate_and_once_per_annotator(store: Store) -> None:
    ids = seed_comparisons(store, pairs=20, rankings=0, ratings=0, gold_pairs=3)
    alice = store.add_studio_annotator("alice").id
    rng = random.Random(0)
    gold_seen = []
    for index in range(23):
        task = store.next_task(alice, lease_seconds=60, gold_rate=0.5, rng=rng)
        if task is None:
            break
        if task.is_gold:
            gold_seen.append(task.comparison_id)
        store.submit_judgment(
            alice,
            task.assignment_id,
            canonical_answer=answer({"choice": "A"}),
            idempotency_key=f"k{index}",
            source="api",
        )
    assert sorted(gold_seen) == sorted(ids["gold"])  # all three, each once
    # Gold ignores overlap: a second annotator meets the same gold items.
    bob = store.add_studio_annotator("bob").id
    task = store.next_task(bob, lease_seconds=60, gold_rate=1.0, rng=rng)
    assert task is not None and task.is_gold


def test_disabling_returns_leases_and_bumps_the_session_version(store: Store) -> None:
    seed_comparisons(store, pairs=1, rankings=0, ratings=0)
    alice = store.add_studio_annotator("alice")
    bob = store.add_studio_annotator("bob").id
    assert store.next_task(alice.id, lease_seconds=600) is not None
    disabled = store.set_annotator_disabled("alice", True)
    assert disabled.disabled and disabled.session_version == alice.session_version + 1
    assert store.next_task(bob, lease_seconds=60) is not None
    with pytest.raises(Exception, match="exists already"):
        store.add_studio_annotator("alice")


def test_a_signin_link_is_used_once(store: Store) -> None:
    from datetime import UTC, datetime, timedelta

    alice = store.add_studio_annotator("alice")
    store.set_signin_hash(alice.id, "hash-1", datetime.now(UTC) + timedelta(hours=1))
    assert store.consume_signin(alice.id, "hash-1")
    assert not store.consume_signin(alice.id, "hash-1")
    store.set_signin_hash(alice.id, "hash-2", datetime.now(UTC) - timedelta(seconds=1))
    assert not store.consume_signin(alice.id, "hash-2")  # expired


def test_concurrent_leasing_from_threads_keeps_the_overlap(store: Store) -> None:
    seed_comparisons(store, pairs=6, rankings=0, ratings=0, overlap=2)
    people = [store.add_studio_annotator(f"t{index}").id for index in range(6)]
    errors: list[BaseException] = []

    def work(person: int) -> None:
        try:
            for index in range(6):
                if judge(store, person, f"k{index}") is None:
                    return
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(person,)) for person in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert all(count <= overlap for count, overlap in store.judgment_counts_by_comparison().values())
    assert sum(count for count, _ in store.judgment_counts_by_comparison().values()) == 12


# A question about PostgreSQL's planner only.
@pytest.mark.parametrize("store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_leasing_reads_the_queue_in_order_instead_of_sorting_every_open_comparison(store: Store) -> None:
    """PostgreSQL plans the lease on statistics: bulk writes refresh them (without, it sorts the whole queue)."""
    from apprentice.store.assignments import _CANDIDATES
    from apprentice.store.tables import utc_now
    from studio_harness import seed_pairs

    seed_pairs(store, 300)
    statement = _CANDIDATES[("task", "skip")].compile(dialect=store.engine.dialect)
    with store.engine.connect() as connection:
        plan = "\n".join(
            row[0]
            for row in connection.exec_driver_sql(
                "EXPLAIN " + statement.string,
                {**statement.params, "annotator": 1, "now": utc_now()},
            )
        )
    assert "ix_comparisons_queue" in plan and "Sort" not in plan, plan

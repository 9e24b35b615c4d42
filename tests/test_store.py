"""The store on SQLite and PostgreSQL: migrations, round-trips, one transaction per call."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from apprentice.comparisons import ComparisonPlanner
from apprentice.settings import ComparisonsSection
from apprentice.store import Store
from apprentice.store.records import GeneratedResponse, PreferencePairRecord, PromptRecord
from apprentice.store.tables import Base


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_migrations_bring_an_empty_database_to_head_and_match_the_tables(store_url: str) -> None:
    store = Store.open(store_url, migrate=False)
    assert store.schema_revision() is None
    store.migrate()
    assert store.schema_revision() == store.head_revision()
    tables = set(inspect(store.engine).get_table_names())
    assert {table.name for table in Base.metadata.sorted_tables} <= tables
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == [], f"migrations and tables.py disagree: {differences}"
    store.migrate()  # a second upgrade is a no-op, never a rebuild
    store.close()


def test_prompts_round_trip_and_are_stored_once(store: Store) -> None:
    records = [
        PromptRecord(user("Explain rainbows."), category="explanation"),
        PromptRecord([{"role": "system", "content": "Be brief."}, *user("Hi")], held_out=True),
    ]
    first = store.import_prompts(records, [], source="test")
    again = store.import_prompts(records, [], source="test")
    assert (first.prompts_added, first.prompts_existing) == (2, 0)
    assert (again.prompts_added, again.prompts_existing) == (0, 2)
    rows = store.prompts()
    assert [row.text for row in rows] == ["Explain rainbows.", "Hi"]
    assert rows[0].category == "explanation"
    assert rows[1].messages[0] == {"role": "system", "content": "Be brief."}
    assert [row.text for row in store.prompts(held_out=True)] == ["Hi"]
    assert store.summary().prompts == 2


def test_a_failed_import_writes_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything is flushed before the failure; the transaction must roll all of it back."""

    original = store._import_pairs

    def fail_after_the_pairs(*args: Any) -> int:
        original(*args)
        raise RuntimeError("simulated failure after everything was flushed")

    monkeypatch.setattr(store, "_import_pairs", fail_after_the_pairs)
    pair = PreferencePairRecord(prompt=PromptRecord(user("q")), chosen="a", rejected="b")
    with pytest.raises(RuntimeError):
        store.import_prompts([PromptRecord(user("A fine prompt"))], [pair], source="t")
    assert store.summary().prompts == 0
    assert store.summary().responses == 0


def test_imported_pairs_become_judgments_once(store: Store) -> None:
    pair = PreferencePairRecord(prompt=PromptRecord(user("Q?")), chosen="good answer", rejected="bad answer")
    summary = store.import_prompts([], [pair, pair], source="hh")
    assert summary.pairs_added == 1 and summary.pairs_existing == 1
    again = store.import_prompts([], [pair], source="hh")
    assert again.pairs_added == 0 and again.pairs_existing == 1
    judged = store.judged_comparisons()
    assert len(judged) == 1
    winner = judged[0].answer["winner"]
    assert judged[0].responses[winner] == "good answer"
    assert judged[0].responses[1 - winner] == "bad answer"
    assert judged[0].annotator == "import:hh" and judged[0].source == "imported"


def test_generation_stores_identical_responses_once_and_builds_pairs(store: Store) -> None:
    store.import_prompts([PromptRecord(user("p1")), PromptRecord(user("p2"))], [], source="t")
    p1, p2 = (row.id for row in store.prompts())
    policy = store.ensure_policy("tiny", kind="base", model_path="/models/tiny")
    assert store.ensure_policy("tiny", kind="base", model_path="/models/tiny").id == policy.id
    generated = [
        GeneratedResponse(p1, "same", 2, True),
        GeneratedResponse(p1, "same", 2, True),
        GeneratedResponse(p1, "other", 3, False),
        GeneratedResponse(p2, "only", 1, True),
        GeneratedResponse(p2, "only", 1, True),
    ]
    planner = ComparisonPlanner(ComparisonsSection(kind="pair"), seed=0)
    ids, created = store.add_generation(policy.id, generated, {"temperature": 0.7}, planner)
    assert len(set(ids)) == 3
    assert created == 1  # p2's two samples were identical: nothing to compare
    responses = store.responses_for(p1)
    assert [(r.text, r.num_tokens, r.finished) for r in responses] == [("same", 2, True), ("other", 3, False)]
    assert responses[0].sampling == {"temperature": 0.7} and responses[0].policy_id == policy.id
    (comparison,) = store.comparisons()
    assert comparison.kind == "pair" and comparison.prompt_id == p1
    assert [member.response_id for member in comparison.members] == [r.id for r in responses]


def test_judgments_are_idempotent_and_complete_their_comparison(store: Store) -> None:
    store.import_prompts([PromptRecord(user("p"))], [], source="t")
    (prompt,) = store.prompts()
    policy = store.ensure_policy("m", kind="base", model_path=None)
    planner = ComparisonPlanner(ComparisonsSection(kind="pair", overlap=2, high_overlap_share=0.0), seed=0)
    store.add_generation(policy.id, [GeneratedResponse(prompt.id, t, 1, True) for t in "ab"], {}, planner)
    (comparison,) = store.comparisons()
    assert comparison.overlap == 2 and comparison.status == "open"
    alice = store.ensure_annotator("alice")
    bob = store.ensure_annotator("bob")
    answer = {"winner": 1, "tie": False, "both_bad": False}
    first, created = store.record_judgment(
        comparison_id=comparison.id, annotator_id=alice.id, answer=answer, idempotency_key="k1", source="api"
    )
    retry, created_again = store.record_judgment(
        comparison_id=comparison.id, annotator_id=alice.id, answer=answer, idempotency_key="k1", source="api"
    )
    assert created and not created_again and retry.id == first.id
    assert store.comparisons()[0].status == "open"
    store.record_judgment(
        comparison_id=comparison.id, annotator_id=bob.id, answer=answer, idempotency_key="k2", source="api"
    )
    assert store.comparisons()[0].status == "complete"
    assert store.summary().judgments == 2


def test_runs_record_config_and_metrics(store: Store) -> None:
    run = store.start_run("generate", {"model": "tiny", "seed": 3})
    store.finish_run(run.id, metrics={"tokens_per_second": 12.5})
    (stored,) = store.runs("generate")
    assert stored.status == "done" and stored.config["seed"] == 3
    assert stored.metrics == {"tokens_per_second": 12.5} and stored.finished_at is not None


def test_sqlite_store_uses_wal_and_foreign_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store.open(f"sqlite:///{tmp_path / 'a.db'}")
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.close()


def test_background_checkpoints_move_the_wal_into_the_database_off_the_committing_call(tmp_path: Any) -> None:
    import time
    from pathlib import Path

    from studio_harness import seed_pairs

    database = Path(tmp_path) / "store.db"
    store = Store.open(f"sqlite:///{database}")
    try:
        store.start_background_checkpoints(interval=0.05)
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        size_before = database.stat().st_size
        seed_pairs(store, 300)  # committed to the WAL only: these connections do not checkpoint
        deadline = time.monotonic() + 10
        while database.stat().st_size == size_before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert database.stat().st_size > size_before, "the checkpoint thread copied nothing into the database"
        store.stop_background_checkpoints()
        with store.engine.connect() as connection:  # back to SQLite's own checkpoints
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
        assert len(store.comparisons()) == 300
    finally:
        store.close()


def test_migration_0006_drops_the_covered_indexes_and_keeps_the_data(store_url: str) -> None:
    """Upgrading a store with a judgment from 0005 drops three covered indexes and keeps the rows."""
    covered = {
        "judgments": "ix_judgments_comparison_id",
        "assignments": "ix_assignments_comparison_id",
        "comparisons": "ix_comparisons_open",
    }
    store = Store.open(store_url, migrate=False)
    try:
        store.migrate("0005")
        # Plain SQL in the 0005 schema: the ORM's tables describe the newest schema, with columns 0005 lacks.
        with store.engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO prompts (id, content_hash, messages, text, source, held_out, created_at) "
                "VALUES (1, 'h', '[]', 'Q?', 't', false, CURRENT_TIMESTAMP)"
            )
            connection.exec_driver_sql(
                "INSERT INTO policies (id, name, kind, round, created_at) VALUES (1, 'p', 'base', 0, CURRENT_TIMESTAMP)"
            )
            connection.exec_driver_sql(
                "INSERT INTO comparisons (id, kind, prompt_id, round, overlap, priority, status, created_at) "
                "VALUES (1, 'pair', 1, 0, 1, 0, 'complete', CURRENT_TIMESTAMP)"
            )
            connection.exec_driver_sql(
                "INSERT INTO annotators (id, name, role, kind, disabled, session_version, created_at) "
                "VALUES (1, 'person', 'annotator', 'human', false, 0, CURRENT_TIMESTAMP)"
            )
            connection.exec_driver_sql(
                "INSERT INTO judgments (id, comparison_id, annotator_id, answer, idempotency_key, source, weight, "
                "created_at) VALUES (1, 1, 1, '{\"winner\": 0}', 'k', 't', 1.0, CURRENT_TIMESTAMP)"
            )
        comparison_id = 1

        def indexes(table: str) -> set[str]:
            return {str(index["name"]) for index in inspect(store.engine).get_indexes(table)}

        assert all(name in indexes(table) for table, name in covered.items())
        store.migrate("0006")
        assert store.schema_revision() == "0006"
        assert not any(name in indexes(table) for table, name in covered.items())
        assert "ix_comparisons_queue" in indexes("comparisons")
        store.migrate()  # the ORM's tables describe the newest schema
        assert store.summary().judgments == 1
        assert [c.id for c in store.comparisons(status="complete")] == [comparison_id]
    finally:
        store.close()


def test_a_recorded_run_is_done_with_its_metrics_or_failed_on_any_exception(store: Store) -> None:
    with store.recording_run("reward", {"seed": 1}) as run:
        run.metrics = {"accuracy": 0.75}
        run.output_path = "runs/reward-1"  # known only once it ran
    with pytest.raises(KeyboardInterrupt), store.recording_run("policy", {}, output_path="runs/policy-dpo-1") as run:
        run.metrics = {"step": 3}
        raise KeyboardInterrupt
    done, failed = store.runs()
    assert (done.status, done.metrics, done.output_path) == ("done", {"accuracy": 0.75}, "runs/reward-1")
    assert (failed.status, failed.metrics, failed.output_path) == ("failed", {"step": 3}, "runs/policy-dpo-1")
    assert done.finished_at is not None and failed.finished_at is not None


def test_each_quality_run_keeps_the_weights_it_left_and_the_newest_are_current(store: Store) -> None:
    pairs = [
        PreferencePairRecord(prompt=PromptRecord(user(f"Q{i}?")), chosen="good answer", rejected="bad answer")
        for i in range(3)
    ]
    store.import_prompts([], pairs, source="hh")
    ids = [judged.judgment_id for judged in store.judged_comparisons()]
    assert store.current_weights_run() is None
    with store.recording_run("quality", {}) as first:
        store.set_judgment_weights({ids[0]: 0.5, ids[1]: 0.0}, run_id=first.id)
    with store.recording_run("quality", {}) as second:
        store.set_judgment_weights({ids[0]: 0.75}, run_id=second.id)
    # A run keeps every judgment's weight as it stood then, those it did not change included.
    assert store.weights_of_run(first.id) == {ids[0]: 0.5, ids[1]: 0.0, ids[2]: 1.0}
    assert store.weights_of_run(second.id) == {ids[0]: 0.75, ids[1]: 0.0, ids[2]: 1.0}
    assert store.current_weights_run() == second.id
    assert {judged.judgment_id: judged.weight for judged in store.judged_comparisons()} == store.weights_of_run(
        second.id
    )
    store.set_judgment_weights({ids[2]: 0.25})  # without a run: current weights only
    assert store.weights_of_run(second.id)[ids[2]] == 1.0

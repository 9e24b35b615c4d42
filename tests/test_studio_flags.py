"""The admin dashboard's flag list is filled by the quality checks."""

from __future__ import annotations

from apprentice.store import Store
from apprentice.store.records import ComparisonPlan, GeneratedResponse, PromptRecord
from apprentice.studio.context import Flag
from apprentice.studio.dashboard import CachedFlags, build_dashboard, quality_flags


def _judged_panel(store: Store) -> None:
    """30 pairs, each judged by a careful annotator and by one who answers in 0.3 s."""
    prompts = [PromptRecord([{"role": "user", "content": f"question number {i} " * 20}]) for i in range(30)]
    store.import_prompts(prompts, [], source="t")
    policy = store.ensure_policy("base", kind="base", model_path=None)
    generated = [
        GeneratedResponse(prompt.id, f"{side} answer {prompt.id} " * 30, 60, True)
        for prompt in store.prompts()
        for side in ("first", "second")
    ]
    store.add_generation(policy.id, generated, {}, lambda pid, ids: [ComparisonPlan("pair", pid, ids, overlap=2)])
    careful, hasty = store.ensure_annotator("careful"), store.ensure_annotator("hasty")
    for index, comparison in enumerate(store.comparisons()):
        for annotator, duration in ((careful, 40_000), (hasty, 300)):
            store.record_judgment(
                comparison_id=comparison.id,
                annotator_id=annotator.id,
                answer={"winner": index % 2, "tie": False, "both_bad": False},
                idempotency_key=f"{annotator.name}-{comparison.id}",
                source="studio",
                order_shown=[0, 1],
                duration_ms=duration,
            )


def test_a_too_fast_annotator_is_flagged_on_the_dashboard(store: Store) -> None:
    _judged_panel(store)
    flags = quality_flags(store)
    assert {flag.subject for flag in flags} == {"hasty"}
    dashboard = build_dashboard(store, quality_flags)
    assert [flag.subject for flag in dashboard.flags] == [flag.subject for flag in flags]


def test_cached_flags_run_again_only_when_judgments_arrive_and_not_too_often(store: Store) -> None:
    _judged_panel(store)
    runs: list[int] = []

    def counting(checked: Store) -> list[Flag]:
        runs.append(checked.judgment_watermark()[0])
        return [Flag(subject=f"run {len(runs)}", reason="counted")]

    now = [0.0]
    cached = CachedFlags(counting, min_interval=30.0, clock=lambda: now[0])
    assert cached.judgments is None
    assert [flag.subject for flag in cached(store)] == ["run 1"]
    now[0] = 100.0
    assert [flag.subject for flag in cached(store)] == ["run 1"]  # nothing new: no second run however late
    late = store.ensure_annotator("late")

    def judge_one_more(index: int) -> None:
        store.record_judgment(
            comparison_id=store.comparisons()[index].id,
            annotator_id=late.id,
            answer={"winner": 0, "tie": False, "both_bad": False},
            idempotency_key=f"late-{index}",
            source="studio",
            order_shown=[0, 1],
            duration_ms=20_000,
        )

    judge_one_more(0)
    assert [flag.subject for flag in cached(store)] == ["run 2"]  # new judgment, 100 s since the last run
    assert runs == [60, 61] and cached.judgments == 61
    judge_one_more(1)
    now[0] = 129.0
    assert [flag.subject for flag in cached(store)] == ["run 2"]  # new judgment, but only 29 s later
    now[0] = 130.0
    assert [flag.subject for flag in cached(store)] == ["run 3"]
    board = build_dashboard(store, cached)
    assert board.flags_note is not None and "last ran at 62 judgments" in board.flags_note
    assert build_dashboard(store, quality_flags).flags_note is None

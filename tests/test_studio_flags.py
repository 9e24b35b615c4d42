"""The admin dashboard's flag list is filled by the quality checks."""

from __future__ import annotations

from apprentice.store import Store
from apprentice.store.records import ComparisonPlan, GeneratedResponse, PromptRecord
from apprentice.studio.dashboard import build_dashboard, quality_flags


def test_a_too_fast_annotator_is_flagged_on_the_dashboard(store: Store) -> None:
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
    flags = quality_flags(store)
    assert {flag.subject for flag in flags} == {"hasty"}
    dashboard = build_dashboard(store, quality_flags)
    assert [flag.subject for flag in dashboard.flags] == [flag.subject for flag in flags]

"""Which of a loop round's comparisons machine judges label, and which go to people.

Before people (or simulated annotators) collect a round's quota, the judges get the `judge_share` of the
round's open comparisons that the previous reward ensemble is surest about (the lowest priorities: people
get the uncertain ones first). They answer through the studio like anyone. A comparison a judge labelled
with at least `judge_confidence` is settled, except an `judge_audit_share` of them, drawn at random, which
goes to people as well so that the judges' agreement with people stays measured every round; a
comparison a judge abstained on, or labelled without enough confidence, goes back to people. People's
quota counts people's labels only; judges' labels are extra and train with the weight their measured
agreement earns (the quality step).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from apprentice.judges.calibration import confidence_of
from apprentice.judges.jobs import run_judges
from apprentice.project import Project


@dataclass(frozen=True)
class RoutingSettings:
    judges: list[str]
    share: float
    confidence: float
    audit_share: float


@dataclass(frozen=True)
class RoutingOutcome:
    offered: int  # comparisons given to the judges
    settled: int  # settled by a confident judge label: people do not see them
    to_people: int  # abstained, unsure, or audited: people judge them too
    judge_labels: int

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def route_round(project: Project, round_number: int, settings: RoutingSettings, *, seed: int = 0) -> RoutingOutcome:
    store = project.store
    open_ids = store.open_comparison_ids(round_number)
    offered_count = int(len(open_ids) * settings.share)
    if not settings.judges or offered_count == 0:
        return RoutingOutcome(0, 0, 0, 0)
    priorities = store.priorities_of(open_ids)
    surest_first = sorted(open_ids, key=lambda cid: (priorities.get(cid, 0.0), cid))
    offered = surest_first[:offered_count]
    # The studio hands out the highest priority first: lift the offered ones above every other for the judges.
    top = max(priorities.values(), default=0.0)
    store.set_priorities({cid: top + 1.0 + index for index, cid in enumerate(reversed(offered))})
    try:
        stats = run_judges(project, settings.judges, limit=offered_count)
    finally:
        store.set_priorities({cid: priorities.get(cid, 0.0) for cid in offered})
    labels: dict[int, list[float | None]] = {}
    for name in settings.judges:
        for comparison_id, rationale in store.judge_labels(name, offered).items():
            labels.setdefault(comparison_id, []).append(confidence_of(rationale))
    rng = random.Random(f"{seed}:{round_number}")
    settled, to_people = [], []
    for comparison_id in offered:
        confidences = [value for value in labels.get(comparison_id, []) if value is not None]
        sure = bool(confidences) and max(confidences) >= settings.confidence
        if sure and rng.random() >= settings.audit_share:
            settled.append(comparison_id)
        elif comparison_id in labels:  # the judge's label closed it (overlap met): people still get it
            to_people.append(comparison_id)
    if settled:
        store.settle(settled)
    if to_people:
        store.reopen_for_people(to_people)
    # Offered comparisons that no judge labelled (abstained) were never closed: they stay open for people.
    return RoutingOutcome(
        offered=len(offered),
        settled=len(settled),
        to_people=len(offered) - len(settled),
        judge_labels=sum(stat.labelled for stat in stats),
    )

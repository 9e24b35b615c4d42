"""A machine judge at work: it takes tasks from the studio's JSON API and answers them as a person would.

For each pair it is given, it asks its model in both orders (`verdict.combine_orders`). When the orders
agree it submits the preferred answer, with the probabilities in the judgment's rationale (which the
calibration reads); when they disagree it abstains, which the studio records as a skip, never as a label.
Rankings and ratings are skipped: judges answer pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from apprentice.judges.base import JudgeBackend
from apprentice.judges.verdict import Verdict, combine_orders, judge_messages
from apprentice.studio.client import Answer, ApiAnnotator, Skip

ABSTAIN_REASON = "judge abstained: the two orders disagree"
PAIRS_ONLY_REASON = "judges answer pairs only"
# Answers longer than this are cut for the judge's prompt (the studio still shows them whole to people).
MAX_ANSWER_CHARACTERS = 4000


@dataclass
class JudgeRunStats:
    """What one judge did in one run: tasks seen, labels given, abstentions, and tasks of other kinds."""

    name: str
    asked: int = 0
    labelled: int = 0
    abstained: int = 0
    not_pairs: int = 0

    @property
    def position_consistency(self) -> float | None:
        """The share of pairs on which both orders preferred the same answer."""
        return None if self.asked == 0 else self.labelled / self.asked


def rationale_of(verdict: Verdict) -> str:
    """The judgment's rationale: the judge's probabilities, which calibration parses back (`confidence_of`)."""
    return (
        f"judge P(first)={verdict.first_probability:.4f} "
        f"(shown first {verdict.probability_first_shown_first:.4f}, "
        f"shown second {verdict.probability_first_shown_second:.4f})"
    )


def verdict_for(backend: JudgeBackend, task: dict[str, Any]) -> Verdict:
    """Ask the judge about a pair task in the order shown and swapped."""
    request = task["prompt"][-1]["content"]
    first, second = (shown["text"][:MAX_ANSWER_CHARACTERS] for shown in task["responses"])
    in_order, swapped = backend.probabilities_of_a(
        [judge_messages(request, first, second), judge_messages(request, second, first)]
    )
    return combine_orders(in_order, swapped)


class StudioJudge(ApiAnnotator):
    """One judge answering through the studio's JSON API with its API token (`apprentice.studio.client`)."""

    def __init__(self, name: str, backend: JudgeBackend, client: httpx.Client, token: str) -> None:
        super().__init__(name, client, token)
        self.backend = backend
        self.stats = JudgeRunStats(name)

    def respond(self, task: dict[str, Any]) -> Answer | Skip:
        if task["kind"] != "pair":
            self.stats.not_pairs += 1
            return Skip(PAIRS_ONLY_REASON)
        self.stats.asked += 1
        verdict = verdict_for(self.backend, task)
        if verdict.prefers_first is None:
            self.stats.abstained += 1
            return Skip(ABSTAIN_REASON)
        self.stats.labelled += 1
        return Answer({"choice": "A" if verdict.prefers_first else "B"}, rationale=rationale_of(verdict))

    def judge(self, *, limit: int | None = None) -> JudgeRunStats:
        """Answer until nothing is left, or `limit` tasks were handled."""
        self.run(limit=limit)
        return self.stats

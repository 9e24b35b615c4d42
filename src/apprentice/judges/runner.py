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


class StudioJudge:
    """One judge answering through the studio's JSON API with its API token, until nothing is left (or `limit`).

    `client` is an `httpx.Client` whose base URL is the studio (the caller owns and closes it).
    """

    def __init__(self, name: str, backend: JudgeBackend, client: httpx.Client, token: str) -> None:
        self.backend = backend
        self.stats = JudgeRunStats(name)
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(path, json=body, headers=self.headers)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def _skip(self, assignment: int, reason: str) -> dict[str, Any]:
        return self._post(f"/api/v1/assignments/{assignment}/skip", {"reason": reason, "include_next": True})

    def _answer(self, task: dict[str, Any]) -> dict[str, Any]:
        assignment = task["assignment_id"]
        if task["kind"] != "pair":
            self.stats.not_pairs += 1
            return self._skip(assignment, PAIRS_ONLY_REASON)
        self.stats.asked += 1
        verdict = verdict_for(self.backend, task)
        if verdict.prefers_first is None:
            self.stats.abstained += 1
            return self._skip(assignment, ABSTAIN_REASON)
        self.stats.labelled += 1
        body = {
            "answer": {"choice": "A" if verdict.prefers_first else "B"},
            "idempotency_key": f"judge-{self.stats.name}-{assignment}",
            "rationale": rationale_of(verdict),
            "include_next": True,
        }
        return self._post(f"/api/v1/assignments/{assignment}/judgment", body)

    def run(self, *, limit: int | None = None) -> JudgeRunStats:
        response = self.client.get("/api/v1/tasks/next", headers=self.headers)
        response.raise_for_status()
        task = response.json()["task"]
        while task is not None and (limit is None or self.stats.asked + self.stats.not_pairs < limit):
            task = self._answer(task).get("next")
        return self.stats

"""Which comparisons to build from a prompt's fresh candidates, and how many judgments each wants."""

from __future__ import annotations

import itertools
import random

from apprentice.settings import ComparisonsSection
from apprentice.store.records import ComparisonPlan


class ComparisonPlanner:
    """Turns the distinct responses to one prompt into comparisons of the configured kind.

    pair: every two distinct responses (K = 2 gives one pair); ranking: all of them in one
    comparison; rating: one comparison per response. A seeded share of comparisons wants
    `high_overlap` judgments instead of `overlap`, so that agreement can be measured on them.
    """

    def __init__(self, settings: ComparisonsSection, *, seed: int, round_number: int = 0) -> None:
        self.settings = settings
        self.round_number = round_number
        self._rng = random.Random(seed)

    def _overlap(self) -> int:
        if self._rng.random() < self.settings.high_overlap_share:
            return self.settings.high_overlap
        return self.settings.overlap

    def __call__(self, prompt_id: int, response_ids: list[int]) -> list[ComparisonPlan]:
        kind = self.settings.kind
        if kind == "rating":
            groups = [[response_id] for response_id in response_ids]
        elif len(response_ids) < 2:
            groups = []  # every sample came out the same: nothing to compare
        elif kind == "ranking":
            groups = [list(response_ids)]
        else:
            groups = [list(pair) for pair in itertools.combinations(response_ids, 2)]
        return [
            ComparisonPlan(
                kind=kind,
                prompt_id=prompt_id,
                response_ids=group,
                overlap=self._overlap(),
                round=self.round_number,
            )
            for group in groups
        ]

"""Preference data for reward training: pairs, ranking groups and their weights, split by prompt.

Judgments become training examples here, by kind:
- pair: the winner beats the loser; a tie is dropped or kept as a half-win (target 0.5), by option;
  "both bad" says nothing about the order and is dropped.
- ranking: every implied pair (a better rank beats a worse one; equal ranks are ties, as above),
  or one Plackett-Luce group per ranking.
- rating: one response's score; the ratings of the responses to the same prompt are averaged per
  response and every two responses whose mean scores differ by at least `rating_min_gap` become a
  pair, with the score difference as its margin.
For strict pair and ranking wins this yields the same pairs as `apprentice.preferences.preference_pairs`
(the export); it adds ties, ratings, margins, Plackett-Luce groups and per-pair agreement, which the
export does not need.

Each example carries a weight: the judgment's stored weight, or the one a caller passes in a
mapping judgment id -> weight (the hook for annotator reliability from quality control).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from apprentice.errors import ApprenticeError
from apprentice.store import JudgedComparison
from apprentice.store.records import Message, PreferencePairRecord, content_hash
from apprentice.verdicts import ordered_positions

TieHandling = Literal["drop", "half"]
RankingHandling = Literal["pairs", "plackett-luce"]


@dataclass(frozen=True)
class RewardPair:
    """One (chosen, rejected) pair, with the probability that `chosen` wins and how much it should win by."""

    prompt: list[Message]
    chosen: str
    rejected: str
    target: float = 1.0  # 1 for a preference, 0.5 for a tie kept as a half-win
    margin: float = 0.0  # in rating points for pairs from ratings, else 0
    weight: float = 1.0
    judgment_ids: tuple[int, ...] = ()
    annotator_id: int | None = None
    # Share of the comparison's judgments that order these two responses the same way (None: judged once).
    agreement: float | None = None


@dataclass(frozen=True)
class RankingGroup:
    """K responses to one prompt with their ranks (1 is best; equal ranks are ties), for Plackett-Luce."""

    prompt: list[Message]
    responses: list[str]
    ranks: list[int]
    weight: float = 1.0
    judgment_ids: tuple[int, ...] = ()
    annotator_id: int | None = None


@dataclass
class PreferenceData:
    pairs: list[RewardPair] = field(default_factory=list)
    groups: list[RankingGroup] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)  # reason -> judgments that gave no example

    def __len__(self) -> int:
        return len(self.pairs) + len(self.groups)

    @property
    def prompts(self) -> set[str]:
        return {prompt_key(pair.prompt) for pair in self.pairs} | {prompt_key(group.prompt) for group in self.groups}


@dataclass(frozen=True)
class DerivationOptions:
    ties: TieHandling = "drop"
    rankings: RankingHandling = "pairs"
    rating_min_gap: float = 1.0  # mean scores closer than this give no pair


def prompt_key(prompt: Sequence[Message]) -> str:
    return content_hash(list(prompt))


def _why_nothing(judged: JudgedComparison) -> str:
    if judged.kind == "pair" and judged.answer.get("both_bad"):
        return "both bad"
    if judged.kind == "pair" and judged.answer.get("tie"):
        return "tie"
    return f"{judged.kind} without an order"


def derive_preferences(
    judgments: Iterable[JudgedComparison],
    options: DerivationOptions | None = None,
    *,
    weights: Mapping[int, float] | None = None,
) -> PreferenceData:
    """Training examples from judgments (see the module docstring for the rules per kind)."""
    options = options or DerivationOptions()
    judged_list = list(judgments)
    weight_of = {
        judged.judgment_id: float(weights.get(judged.judgment_id, judged.weight) if weights else judged.weight)
        for judged in judged_list
    }
    for judgment_id, weight in weight_of.items():
        if weight < 0:
            raise ApprenticeError(f"judgment {judgment_id} has a negative weight ({weight}); weights must be >= 0")

    # Votes per comparison and ordered response pair, for the agreement of each derived pair.
    votes: dict[tuple[int, str, str], float] = defaultdict(float)
    judged_pairs: dict[tuple[int, frozenset[str]], int] = defaultdict(int)
    for judged in judged_list:
        for better, worse, is_tie in ordered_positions(judged.kind, judged.answer):
            first, second = judged.responses[better], judged.responses[worse]
            judged_pairs[(judged.comparison_id, frozenset((first, second)))] += 1
            if not is_tie:
                votes[(judged.comparison_id, first, second)] += 1

    data = PreferenceData()
    ratings: dict[str, dict[str, list[tuple[float, float, int]]]] = defaultdict(lambda: defaultdict(list))
    prompts_by_key: dict[str, list[Message]] = {}
    for judged in judged_list:
        weight = weight_of[judged.judgment_id]
        if judged.kind == "rating":
            score = judged.answer.get("score")
            if not isinstance(score, int | float) or not judged.responses:
                data.dropped["rating without a score"] += 1
                continue
            key = prompt_key(judged.prompt_messages)
            prompts_by_key[key] = judged.prompt_messages
            ratings[key][judged.responses[0]].append((float(score), weight, judged.judgment_id))
            continue
        if weight == 0:
            # Weighted to nothing (a flagged annotator or machine judge): left out, not kept at weight 0, so
            # that it cannot move the features' scaling or the ensemble's bootstrap draws either.
            data.dropped["weighted to nothing by quality control"] += 1
            continue
        if judged.kind == "ranking" and options.rankings == "plackett-luce":
            ranks = list(judged.answer.get("ranks") or [])
            if len(ranks) != len(judged.responses) or len(set(ranks)) < 2:
                data.dropped["ranking without an order"] += 1
                continue
            data.groups.append(
                RankingGroup(
                    prompt=judged.prompt_messages,
                    responses=list(judged.responses),
                    ranks=ranks,
                    weight=weight,
                    judgment_ids=(judged.judgment_id,),
                    annotator_id=judged.annotator_id,
                )
            )
            continue
        produced = 0
        for better, worse, is_tie in ordered_positions(judged.kind, judged.answer):
            if is_tie and options.ties == "drop":
                continue
            chosen, rejected = judged.responses[better], judged.responses[worse]
            judged_count = judged_pairs[(judged.comparison_id, frozenset((chosen, rejected)))]
            agreement = None
            if judged_count > 1:
                agreeing = votes[(judged.comparison_id, chosen, rejected)]
                if is_tie:  # a tie agrees with neither strict order
                    agreeing = judged_count - agreeing - votes[(judged.comparison_id, rejected, chosen)]
                agreement = agreeing / judged_count
            data.pairs.append(
                RewardPair(
                    prompt=judged.prompt_messages,
                    chosen=chosen,
                    rejected=rejected,
                    target=0.5 if is_tie else 1.0,
                    weight=weight,
                    judgment_ids=(judged.judgment_id,),
                    annotator_id=judged.annotator_id,
                    agreement=agreement,
                )
            )
            produced += 1
        if not produced:
            data.dropped[_why_nothing(judged)] += 1
    data.pairs.extend(_pairs_from_ratings(ratings, prompts_by_key, options.rating_min_gap))
    return data


def _pairs_from_ratings(
    ratings: Mapping[str, Mapping[str, list[tuple[float, float, int]]]],
    prompts_by_key: Mapping[str, list[Message]],
    min_gap: float,
) -> list[RewardPair]:
    pairs = []
    for key, by_response in ratings.items():
        summaries = []
        for response, scored in by_response.items():
            total_weight = sum(weight for _, weight, _ in scored)
            if total_weight <= 0:
                continue
            mean_score = sum(score * weight for score, weight, _ in scored) / total_weight
            summaries.append((response, mean_score, total_weight / len(scored), tuple(j for _, _, j in scored)))
        for index, (first, first_score, first_weight, first_ids) in enumerate(summaries):
            for second, second_score, second_weight, second_ids in summaries[index + 1 :]:
                gap = first_score - second_score
                if abs(gap) < min_gap or gap == 0:
                    continue
                chosen, rejected = (first, second) if gap > 0 else (second, first)
                pairs.append(
                    RewardPair(
                        prompt=prompts_by_key[key],
                        chosen=chosen,
                        rejected=rejected,
                        margin=abs(gap),
                        weight=(first_weight + second_weight) / 2,
                        judgment_ids=first_ids + second_ids,
                    )
                )
    return pairs


def pairs_from_records(records: Iterable[PreferencePairRecord]) -> PreferenceData:
    """Imported pairs (HH-RLHF, TRL files) read by `apprentice.importing`, each with weight 1."""
    return PreferenceData(
        pairs=[
            RewardPair(prompt=record.prompt.messages, chosen=record.chosen, rejected=record.rejected)
            for record in records
        ]
    )


def prompt_folds(prompts: Sequence[Sequence[Message]], folds: int, *, seed: int = 0) -> list[int]:
    """The fold (0 to folds - 1) of each prompt, all of a prompt's examples in one fold: the distinct prompts
    are shuffled by `seed` and dealt out in turn, so the folds differ in size by one prompt at most."""
    if folds < 2:
        raise ApprenticeError(f"cross-validation needs at least 2 folds, got {folds}")
    keys = [prompt_key(prompt) for prompt in prompts]
    distinct = sorted(set(keys))
    random.Random(seed).shuffle(distinct)
    fold_of = {key: position % folds for position, key in enumerate(distinct)}
    return [fold_of[key] for key in keys]


def split_by_prompt(
    data: PreferenceData, *, validation_share: float, seed: int = 0
) -> tuple[PreferenceData, PreferenceData]:
    """Train and validation sets with no prompt in both: prompts, not examples, are drawn for validation."""
    if not 0.0 <= validation_share < 1.0:
        raise ApprenticeError(f"validation share must be in [0, 1), got {validation_share}")
    keys = sorted(data.prompts)
    random.Random(seed).shuffle(keys)
    count = round(validation_share * len(keys))
    if validation_share > 0 and len(keys) >= 2:
        count = min(max(count, 1), len(keys) - 1)
    held = set(keys[:count])
    train = PreferenceData(dropped=Counter(data.dropped))
    validation = PreferenceData()
    for pair in data.pairs:
        (validation if prompt_key(pair.prompt) in held else train).pairs.append(pair)
    for group in data.groups:
        (validation if prompt_key(group.prompt) in held else train).groups.append(group)
    return train, validation


def bootstrap_sample(data: PreferenceData, *, seed: int) -> PreferenceData:
    """A resample with replacement of the same size (examples, not prompts), for ensemble members."""
    rng = random.Random(seed)
    return PreferenceData(
        pairs=[rng.choice(data.pairs) for _ in data.pairs] if data.pairs else [],
        groups=[rng.choice(data.groups) for _ in data.groups] if data.groups else [],
    )


def subsample(data: PreferenceData, *, limit: int | None, seed: int = 0) -> PreferenceData:
    """At most `limit` pairs and groups, drawn without replacement (for benchmarks on slow machines)."""
    if limit is None or len(data) <= limit:
        return data
    rng = random.Random(seed)
    share = limit / len(data)
    pairs = rng.sample(data.pairs, round(len(data.pairs) * share))
    groups = rng.sample(data.groups, round(len(data.groups) * share))
    return replace(data, pairs=pairs, groups=groups)

"""Simulated annotators: noisy, biased judges built on a gold oracle, as in AlpacaFarm.

Each simulated annotator makes Bradley-Terry choices on the oracle's scores: it prefers the response
shown first with probability sigmoid((s_first - s_second) / temperature). The temperature is
calibrated so that two simulated annotators agree about as often as people do (InstructGPT reports
72.6% +/- 1.5% agreement between labelers). On top of that, a profile adds the failure modes that
quality control must catch: label flips, a pull towards the left (first shown) response, a pull
towards the longer response, careless clicking at random, and a speed.

This module holds the decision model and its calibration (pure, tested); the client that judges
through the studio's HTTP API uses them.

Why there are two simulated panels: these annotators judge a real project's comparisons, through the
studio like people, on a gold oracle's scores (for `apprentice simulate`, the loop and the demo).
`quality/synthetic.py` makes judgments in memory, without a store or responses, with a known truth and a
sure-or-guess model that keeps knowing the better response apart from a side preference, so the
quality checks' detection rates can be measured.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from apprentice.errors import ApprenticeError

if TYPE_CHECKING:
    from apprentice.project import Project
    from apprentice.store import Store

from apprentice.rates import describe_rate
from apprentice.studio.client import Answer, ApiAnnotator
from apprentice.verdicts import outcome, raw_agreement_share

HUMAN_AGREEMENT = 0.73  # InstructGPT: labelers agreed 72.6 +/- 1.5% of the time


def sigmoid(value: float) -> float:
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    exp = math.exp(value)
    return exp / (1.0 + exp)


@dataclass(frozen=True)
class AnnotatorProfile:
    """How one simulated annotator judges. All effects are off by default (an honest annotator)."""

    name: str
    temperature: float = 1.0  # Bradley-Terry temperature on oracle score differences
    flip_rate: float = 0.0  # chance the final answer is flipped (AlpacaFarm used 25%)
    left_bias: float = 0.0  # added to the log-odds of choosing the response shown first
    length_bias: float = 0.0  # log-odds per 100 characters of length difference, towards the longer
    careless_rate: float = 0.0  # chance of clicking at random without reading
    seconds_per_judgment: float = 20.0


def prob_first(
    score_first: float, score_second: float, profile: AnnotatorProfile, length_first: int = 0, length_second: int = 0
) -> float:
    """Probability that `profile` picks the response shown first (before careless clicks and flips)."""
    logit = (score_first - score_second) / profile.temperature
    logit += profile.left_bias + profile.length_bias * (length_first - length_second) / 100.0
    return sigmoid(logit)


def answer_prob_first(
    score_first: float, score_second: float, profile: AnnotatorProfile, length_first: int = 0, length_second: int = 0
) -> float:
    """Probability of the answer "first" after careless clicking and label flips are applied."""
    p = prob_first(score_first, score_second, profile, length_first, length_second)
    p = (1 - profile.careless_rate) * p + profile.careless_rate * 0.5
    return (1 - profile.flip_rate) * p + profile.flip_rate * (1 - p)


def choose_first(
    score_first: float,
    score_second: float,
    profile: AnnotatorProfile,
    rng: random.Random,
    length_first: int = 0,
    length_second: int = 0,
) -> bool:
    """One simulated choice: True when the response shown first is preferred."""
    return rng.random() < answer_prob_first(score_first, score_second, profile, length_first, length_second)


def expected_agreement(score_differences: Sequence[float], temperature: float, flip_rate: float = 0.0) -> float:
    """Mean chance that two independent simulated annotators give the same answer to a pair.

    For one pair with winning probability p, two annotators agree with probability p^2 + (1-p)^2.
    """
    if not score_differences:
        raise ValueError("need at least one score difference")
    honest = AnnotatorProfile("a", temperature=temperature, flip_rate=flip_rate)
    total = 0.0
    for difference in score_differences:
        p = answer_prob_first(difference, 0.0, honest)
        total += p * p + (1 - p) * (1 - p)
    return total / len(score_differences)


def calibrate_temperature(
    score_differences: Sequence[float],
    target_agreement: float = HUMAN_AGREEMENT,
    *,
    flip_rate: float = 0.0,
    tolerance: float = 1e-4,
) -> float:
    """The Bradley-Terry temperature at which two simulated annotators agree `target_agreement` of the time.

    Agreement falls monotonically from its noiseless maximum towards 0.5 as the temperature rises, so
    bisection on log-temperature finds it. Raises ValueError when the target is out of reach (above the
    agreement of noiseless annotators with these flips, or at or below chance).
    """
    low, high = 1e-6, 1e6
    ceiling = expected_agreement(score_differences, low, flip_rate)
    if not 0.5 < target_agreement <= ceiling + 1e-12:
        raise ValueError(
            f"target agreement {target_agreement:.3f} is out of reach: with flip rate {flip_rate} "
            f"these scores allow agreement between 0.5 and {ceiling:.3f}"
        )
    for _ in range(200):
        middle = math.sqrt(low * high)
        if expected_agreement(score_differences, middle, flip_rate) > target_agreement:
            low = middle
        else:
            high = middle
        if high / low < 1 + tolerance:
            break
    return math.sqrt(low * high)


# -- answering every kind of task -----------------------------------------------------------------


def choose_ranking(
    scores: Sequence[float], profile: AnnotatorProfile, rng: random.Random, lengths: Sequence[int] | None = None
) -> list[int]:
    """Ranks (1 = best) for responses in display order, drawn from the Plackett-Luce model.

    Adding independent Gumbel noise to each utility and sorting draws a Plackett-Luce ranking; the
    utilities carry the same temperature, left and length pulls as the pairwise choice.
    """
    lengths = lengths or [0] * len(scores)
    utilities = []
    for position, (score, length) in enumerate(zip(scores, lengths, strict=True)):
        utility = score / profile.temperature + profile.length_bias * length / 100.0
        utility += profile.left_bias * (len(scores) - 1 - position) / max(len(scores) - 1, 1)
        utilities.append(utility)
    if rng.random() < profile.careless_rate:
        utilities = [0.0] * len(scores)
    noisy = [utility - math.log(-math.log(rng.random() or 1e-12)) for utility in utilities]
    order = sorted(range(len(scores)), key=lambda index: -noisy[index])
    if rng.random() < profile.flip_rate:
        order.reverse()
    ranks = [0] * len(scores)
    for rank, index in enumerate(order, start=1):
        ranks[index] = rank
    return ranks


def choose_rating(score: float, profile: AnnotatorProfile, rng: random.Random, *, scale: float = 1.0) -> int:
    """A 1-7 rating: 4 + 3 tanh(score / scale) plus logistic noise at the profile's temperature."""
    if rng.random() < profile.careless_rate:
        return rng.randint(1, 7)
    u = min(max(rng.random(), 1e-12), 1 - 1e-12)
    noise = profile.temperature / scale * math.log(u / (1 - u))
    value = 4 + 3 * math.tanh(score / scale) + noise
    return int(min(7, max(1, round(value))))


@dataclass
class SimulationStats:
    name: str
    judged: int = 0
    retries: int = 0


class SimulatedAnnotator(ApiAnnotator):
    """One simulated annotator working through the studio's JSON API, as a script of a real person would.

    It scores the shown responses with the gold oracle (through `scorer`, which caches) and answers by its
    profile, task after task, until nothing is left (`apprentice.studio.client`).
    """

    def __init__(
        self,
        profile: AnnotatorProfile,
        scorer: Callable[[str, Sequence[str]], list[float]],
        base_url: str,
        token: str,
        *,
        seed: int = 0,
        timeout: float = 30.0,
    ) -> None:
        import httpx

        super().__init__(profile.name, httpx.Client(base_url=base_url, timeout=timeout), token)
        self.profile = profile
        self.scorer = scorer
        self.rng = random.Random(f"{seed}:{profile.name}")

    def answer(self, task: dict[str, Any]) -> dict[str, Any]:
        prompt = task["prompt"][-1]["content"]
        texts = [shown["text"] for shown in task["responses"]]
        scores = self.scorer(prompt, texts)
        lengths = [len(text) for text in texts]
        if task["kind"] == "pair":
            first = choose_first(scores[0], scores[1], self.profile, self.rng, lengths[0], lengths[1])
            return {"choice": "A" if first else "B"}
        if task["kind"] == "ranking":
            return {"ranks": choose_ranking(scores, self.profile, self.rng, lengths)}
        return {"score": choose_rating(scores[0], self.profile, self.rng)}

    def respond(self, task: dict[str, Any]) -> Answer:
        seconds = self.profile.seconds_per_judgment * (0.5 + self.rng.random())
        return Answer(self.answer(task), duration_ms=int(1000 * seconds))

    def work(self, *, max_judgments: int | None = None) -> SimulationStats:
        """Judge until nothing is left (or `max_judgments`), then close the connection."""
        try:
            counts = self.run(limit=max_judgments)
        finally:
            self.client.close()
        return SimulationStats(self.profile.name, judged=counts.answered, retries=counts.retries)


class OracleScorer:
    """Oracle scores of (prompt, response) texts, computed once and shared by every simulated annotator."""

    def __init__(self, oracle: Callable[[Sequence[str], Sequence[str]], list[float]]) -> None:
        self.oracle = oracle
        self._cache: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def prefill(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Score many (prompt, response) pairs in one call (the oracle batches), before annotators start."""
        missing = [pair for pair in dict.fromkeys(pairs) if pair not in self._cache]
        if missing:
            scores = self.oracle([prompt for prompt, _ in missing], [response for _, response in missing])
            with self._lock:
                self._cache.update(zip(missing, scores, strict=True))

    def __call__(self, prompt: str, responses: Sequence[str]) -> list[float]:
        with self._lock:  # one oracle call at a time: torch models are not re-entrant across threads
            missing = [(prompt, text) for text in responses if (prompt, text) not in self._cache]
            if missing:
                scores = self.oracle([prompt] * len(missing), [text for _, text in missing])
                self._cache.update(zip(missing, scores, strict=True))
            return [self._cache[(prompt, text)] for text in responses]


def panel(
    count: int,
    *,
    temperature: float,
    flip_rate: float = 0.0,
    careless: int = 0,
    left_leaners: int = 0,
    left_bias: float = math.log(4),
    length_bias: float = 0.0,
    prefix: str = "sim",
) -> list[AnnotatorProfile]:
    """`count` annotators: the first `careless` click at random, the next `left_leaners` lean left, the rest honest."""
    profiles = []
    for index in range(count):
        name = f"{prefix}-{index + 1:02d}"
        profile = AnnotatorProfile(name, temperature=temperature, flip_rate=flip_rate, length_bias=length_bias)
        if index < careless:
            profile = replace(profile, careless_rate=1.0, seconds_per_judgment=3.0)
        elif index < careless + left_leaners:
            profile = replace(profile, left_bias=left_bias)
        profiles.append(profile)
    return profiles


def run_panel(
    profiles: Sequence[AnnotatorProfile],
    tokens: dict[str, str],
    scorer: Callable[[str, Sequence[str]], list[float]],
    base_url: str,
    *,
    seed: int = 0,
    max_judgments_each: int | None = None,
) -> list[SimulationStats]:
    """Run the annotators concurrently (one thread each) until the studio has nothing left for them."""
    annotators = [
        SimulatedAnnotator(profile, scorer, base_url, tokens[profile.name], seed=seed) for profile in profiles
    ]
    with ThreadPoolExecutor(max_workers=max(1, len(annotators))) as pool:
        futures = [pool.submit(annotator.work, max_judgments=max_judgments_each) for annotator in annotators]
        return [future.result() for future in futures]


def register_panel(store: Store, profiles: Sequence[AnnotatorProfile]) -> dict[str, str]:
    """Make (or reuse) a `simulated` annotator per profile and issue each a fresh API token."""
    from apprentice.studio.security import issue_api_token

    tokens = {}
    for profile in profiles:
        annotator = store.ensure_annotator(profile.name, kind="simulated")
        account = store.annotator_account(annotator_id=annotator.id)
        if account is None:  # ensure_annotator has just written it; only a concurrent delete gets here
            raise ApprenticeError(f"the simulated annotator {profile.name!r} vanished from the store")
        tokens[profile.name] = issue_api_token(store, account)
    return tokens


def open_pair_texts(store: Store) -> list[tuple[str, list[str]]]:
    """(prompt text, response texts in canonical order) of every open comparison."""
    prompts = {prompt.id: prompt.text for prompt in store.prompts()}
    texts: dict[int, str] = {}
    result = []
    for comparison in store.comparisons(status="open"):
        if comparison.prompt_id not in prompts:
            continue
        missing = [m.response_id for m in comparison.members if m.response_id not in texts]
        if missing:
            texts.update({r.id: r.text for r in store.responses_for(comparison.prompt_id)})
        result.append((prompts[comparison.prompt_id], [texts[m.response_id] for m in comparison.members]))
    return result


def calibrated_temperature(
    scorer: OracleScorer,
    comparisons: Sequence[tuple[str, list[str]]],
    *,
    target_agreement: float = HUMAN_AGREEMENT,
    flip_rate: float = 0.0,
) -> tuple[float, float | None]:
    """Score the comparisons' responses and calibrate the temperature on their pairwise differences.

    Returns the temperature and the agreement two annotators are then expected to reach (None without
    pairs to calibrate on). When the flips alone make the target unreachable, annotators choose by the
    oracle without further noise (a tiny temperature), the closest they can come to it.
    """
    scorer.prefill([(prompt, text) for prompt, texts in comparisons for text in texts])
    differences = []
    for prompt, texts in comparisons:
        scores = scorer(prompt, texts)
        differences += [a - b for index, a in enumerate(scores) for b in scores[index + 1 :]]
    if not differences:
        return 1.0, None
    temperature = reachable_temperature(differences, target_agreement, flip_rate=flip_rate)
    return temperature, expected_agreement(differences, temperature, flip_rate)


def reachable_temperature(
    differences: Sequence[float], target_agreement: float = HUMAN_AGREEMENT, *, flip_rate: float = 0.0
) -> float:
    """`calibrate_temperature`, or a tiny temperature (choices by the scores without further noise, the closest
    annotators can come) when the flips alone make the target agreement unreachable."""
    try:
        return calibrate_temperature(differences, target_agreement, flip_rate=flip_rate)
    except ValueError:
        return 1e-3


@dataclass(frozen=True)
class SimulationReport:
    temperature: float
    judgments: int
    per_annotator: dict[str, int]
    agreement: float | None  # share of same answers among pairs of annotators on the same pair comparison
    overlapping_pairs: int
    expected_agreement: float | None = None  # what the calibration expects (below the target if out of reach)

    def describe_agreement(self) -> str:
        """The measured agreement beside the expected, with the count it rests on, in a few words."""
        expected = "" if self.expected_agreement is None else f", expected {self.expected_agreement:.0%}"
        if self.agreement is None:
            return f"no pair judged twice yet{expected}"
        measured = describe_rate(self.agreement, self.overlapping_pairs)
        return f"agreement between two answers to the same comparison {measured}{expected}"


def measured_pair_agreement(judged: Sequence[Any], annotators: set[str]) -> tuple[float | None, int]:
    """Raw agreement between every two of `annotators` who answered the same pair comparison."""
    answers: dict[int, list[Any]] = {}
    for row in judged:
        if row.kind == "pair" and row.annotator in annotators:
            answers.setdefault(row.comparison_id, []).append(outcome("pair", row.answer))
    return raw_agreement_share(answers.values())


def simulate_project(
    project: Project,
    *,
    annotators: int = 8,
    oracle: str = "composite",
    flip_rate: float = 0.0,
    careless: int = 0,
    left_leaners: int = 0,
    target_agreement: float = HUMAN_AGREEMENT,
    base_url: str | None = None,
    seed: int = 0,
    prefix: str = "sim",
    max_judgments: int | None = None,
) -> SimulationReport:
    """Judge the project's open comparisons with a calibrated simulated panel through a real studio server.

    With `base_url` the panel uses a running studio; otherwise one is started on the project for the
    duration and stopped after. `max_judgments` caps the panel's total (split evenly between annotators).
    """
    from apprentice.oracles import load_oracle

    scorer = OracleScorer(load_oracle(oracle))
    temperature, expected = calibrated_temperature(
        scorer, open_pair_texts(project.store), target_agreement=target_agreement, flip_rate=flip_rate
    )
    profiles = panel(
        annotators,
        temperature=temperature,
        flip_rate=flip_rate,
        careless=careless,
        left_leaners=left_leaners,
        prefix=prefix,
    )
    tokens = register_panel(project.store, profiles)
    each = None if max_judgments is None else max(1, math.ceil(max_judgments / annotators))
    if base_url is not None:
        stats = run_panel(profiles, tokens, scorer, base_url, seed=seed, max_judgments_each=each)
    else:
        from apprentice.studio.process import StudioServer

        with StudioServer(project.root, cheap_hashes=False) as server:
            stats = run_panel(profiles, tokens, scorer, server.base_url, seed=seed, max_judgments_each=each)
    names = {profile.name for profile in profiles}
    agreement, overlapping = measured_pair_agreement(project.store.judged_comparisons(), names)
    return SimulationReport(
        temperature=temperature,
        judgments=sum(stat.judged for stat in stats),
        per_annotator={stat.name: stat.judged for stat in stats},
        agreement=agreement,
        overlapping_pairs=overlapping,
        expected_agreement=expected,
    )

"""The in-loop selection benchmark's parts on a tiny synthetic table: labels drawn once and shared by every
rule, the loop's margins, the share of random's labels and the t-interval against hand-computed numbers."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from apprentice.oracles import DEFAULT_COMPOSITE_WEIGHTS
from apprentice.simulate import AnnotatorProfile
from reward_features import Experiment
from selection_in_loop import (
    FEATURES,
    RULE_NAMES,
    LoopReward,
    Plan,
    draw_pool_labels,
    run_seed,
    share_cell,
    share_of_random,
    t_interval,
)
from selection_research import CurvePoint

HIDDEN = 6


class RecordingExperiment(Experiment):
    """Remembers every (chosen, rejected) label the heads were fitted on."""

    fitted: list[tuple[int, int]]

    def fit_members(
        self, table: torch.Tensor, chosen: list[int], rejected: list[int], l2: float | torch.Tensor, seed: int
    ) -> np.ndarray:
        self.fitted += zip(chosen, rejected, strict=True)
        return super().fit_members(table, chosen, rejected, l2, seed)


def synthetic_experiment(prompts: int = 30, per_prompt: int = 4) -> RecordingExperiment:
    """Random features in reward_features' cached layout, and a gold that is linear in them."""
    generator = torch.Generator().manual_seed(0)
    texts = prompts * per_prompt
    aware = torch.randn(texts, 2 * HIDDEN + 3, generator=generator)
    gold = aware @ torch.randn(2 * HIDDEN + 3, generator=generator)
    table = {
        "gold": gold.tolist(),
        "mean": torch.randn(texts, HIDDEN, generator=generator),
        "prompt_mean": torch.randn(prompts, HIDDEN, generator=generator),
        "prompt-aware": aware,
        "parts": {name: [0.0] * texts for name in DEFAULT_COMPOSITE_WEIGHTS},
    }
    rows = [{"responses": ["text"] * per_prompt} for _ in range(prompts)]
    experiment = RecordingExperiment(rows, table, heads=5)
    experiment.fitted = []
    return experiment


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Hundreds of tiny L-BFGS fits: threads only slow them down (tenfold on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_every_rule_gets_the_same_start_and_the_same_label_for_each_pair() -> None:
    experiment = synthetic_experiment()
    table = experiment.features(FEATURES, np.arange(len(experiment.gold)))
    annotator = AnnotatorProfile("sim", temperature=1e-3, flip_rate=0.25)
    result = run_seed(experiment, table, annotator, seed=3, rules=RULE_NAMES, plan=Plan(6, 6, 15))
    starts = {tuple(run.labeled[:6]) for run in result.runs.values()}
    assert len(starts) == 1
    assert len({run.curve[0].accuracy for run in result.runs.values()}) == 1  # the same start, the same heads
    for rule, run in result.runs.items():
        assert [point.labels for point in run.curve] == [6, 12, 15], rule
        assert len(set(run.labeled)) == len(run.labeled) == 15, rule  # each pair labeled at most once
    # Every pair the heads saw, under any rule, was shown with one and the same answer.
    answers = {(min(pair), max(pair)): pair for pair in experiment.fitted}
    assert all(answers[(min(pair), max(pair))] == pair for pair in experiment.fitted)
    assert len({tuple(run.labeled) for run in result.runs.values()}) > 1  # the rules did choose differently


def test_noise_free_annotators_give_the_gold_order_and_pool_order_is_kept() -> None:
    gold = np.array([0.1, 0.9, 0.5, 0.3])
    pool = [(0, 1), (0, 2), (2, 3), (1, 3)]
    labels = draw_pool_labels(pool, gold, AnnotatorProfile("exact", temperature=1e-9), seed=0)
    assert labels == [(1, 0), (2, 0), (2, 3), (1, 3)]


def test_the_rules_read_each_heads_margin_of_first_against_second() -> None:
    reward = LoopReward.__new__(LoopReward)
    reward.first, reward.second = np.array([0, 2]), np.array([1, 0])
    members = np.array([[1.0, 0.5, -1.0], [0.0, 2.0, 3.0]])
    assert reward.pool_margins(members).tolist() == [[0.5, -2.0], [-2.0, 3.0]]


RANDOM_CURVE = [CurvePoint(48, 0.60), CurvePoint(96, 0.64), CurvePoint(144, 0.66)]


def test_share_of_random_is_the_rules_labels_over_what_random_needs() -> None:
    # Random reaches 0.65 halfway from 96 to 144 labels: 120; a rule there at 96 labels needs 96 / 120 of it.
    assert share_of_random(96, 0.65, RANDOM_CURVE) == pytest.approx(0.8)
    # 0.62 lies halfway from 48 to 96: random needs 72, a rule that needs 144 for it uses twice as many.
    assert share_of_random(144, 0.62, RANDOM_CURVE) == pytest.approx(2.0)
    assert share_of_random(48, 0.60, RANDOM_CURVE) == pytest.approx(1.0)
    assert share_of_random(96, 0.70, RANDOM_CURVE) is None


def test_share_cells_say_where_the_share_is_only_a_bound() -> None:
    assert share_cell(96, 0.65, RANDOM_CURVE) == "0.80"
    assert share_cell(48, 0.60, RANDOM_CURVE) == "1.00"  # the shared start: exact
    assert share_cell(96, 0.58, RANDOM_CURVE) == ">=2.00"  # random was not measured below 48 labels
    assert share_cell(96, 0.70, RANDOM_CURVE) == "<0.67 (random >144)"


def test_t_interval_over_seeds() -> None:
    interval = t_interval([1.0, 2.0, 3.0])  # sd 1, t(0.975, 2) = 4.3027
    half = 4.302653 / math.sqrt(3)
    assert (interval.mean, interval.low, interval.high) == pytest.approx((2.0, 2.0 - half, 2.0 + half), abs=1e-5)
    assert t_interval([0.7]).low is None

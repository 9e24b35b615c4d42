"""Rates with their counts, and reports that render for the smallest projects (one round, three judgments,
one annotator) and for shares at the edges (0/n and n/n)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from apprentice.cli import app
from apprentice.project import init_project
from apprentice.quality.report import analyse, error_lengths, wrapped_labels
from apprentice.quality.report import write_report as write_quality_report
from apprentice.quality.synthetic import make_panel_annotators, simulate_panel
from apprentice.rates import cluster_bootstrap_mean, describe_rate, wilson_interval
from apprentice.report import accuracy_cell, agreement_cell, rate_cell, step_summary
from apprentice.store.records import ComparisonPlan, GeneratedResponse, PromptRecord
from test_quality_checks import judgment


@pytest.mark.parametrize("trials", [1, 3, 7, 10, 20, 33, 100])
def test_the_wilson_interval_holds_its_share_at_the_edges(trials: int) -> None:
    for successes in (0, trials):
        low, high = wilson_interval(successes, trials)
        share = successes / trials
        assert 0.0 <= low <= share <= high <= 1.0, (successes, trials, low, high)
    assert wilson_interval(0, 3)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_the_cluster_bootstrap_of_two_opposite_clusters_spans_both() -> None:
    # Two clusters worth 1 and 0: a resample of two draws averages 0, 0.5 or 1 with probabilities 1/4, 1/2,
    # 1/4, so both 2.5% tails fall on the extremes.
    assert cluster_bootstrap_mean([1.0, 0.0]) == (0.5, 0.0, 1.0)
    # Three clusters worth 0.5, 0.75 and 0: three draws all 0 (or all 0.75) come 1/27 = 3.7% of the time.
    assert cluster_bootstrap_mean([0.5, 0.75, 0.0]) == pytest.approx((1.25 / 3, 0.0, 0.75))


def test_the_cluster_bootstrap_collapses_on_equal_clusters_and_is_seeded() -> None:
    assert cluster_bootstrap_mean([0.5] * 3) == (0.5, 0.5, 0.5)
    assert cluster_bootstrap_mean([0.7] * 10) == pytest.approx((0.7, 0.7, 0.7))
    values = [0.0, 1.0] * 50
    mean, low, high = cluster_bootstrap_mean(values)
    assert mean == pytest.approx(0.5)
    # The standard error of a mean of 100 fair coins is 0.05: the interval is about 0.5 +- 0.1.
    assert 0.38 < low < 0.45 and 0.55 < high < 0.62
    assert cluster_bootstrap_mean(values) == (mean, low, high)
    with pytest.raises(ValueError, match="no values"):
        cluster_bootstrap_mean([])


def test_a_rate_carries_its_count_and_says_when_it_rests_on_too_little() -> None:
    assert describe_rate(1.0, 2) == "too little data (n=2)"
    assert describe_rate(0.5, 19) == "too little data (n=19)"
    assert describe_rate(None, None) == "too little data (n=0)"
    assert describe_rate(float("nan"), 40) == "too little data (n=40)"
    assert describe_rate(0.75, 40) == "0.75 (95% CI 0.60-0.86, n=40)"
    assert describe_rate(0.429, 35, digits=3) == "0.429 (95% CI 0.280-0.591, n=35)"
    assert describe_rate(0.7, 48, low=0.55, high=0.81) == "0.70 (95% CI 0.55-0.81, n=48)"


def test_the_loop_reports_cells_carry_their_counts() -> None:
    assert accuracy_cell({"reward_accuracy": 1.0, "reward_validation_pairs": 3}) == "too little data (n=3)"
    assert accuracy_cell({"reward_accuracy": 0.429, "reward_validation_pairs": None}) == "too little data (n=0)"
    assert accuracy_cell({"reward_accuracy": 0.6, "reward_validation_pairs": 50}).endswith("n=50)")
    assert rate_cell({"rate": 0.58, "low": 0.39, "high": 0.72, "n": 32}) == "0.58 (95% CI 0.39-0.72, n=32)"
    assert rate_cell({"rate": 1.0, "low": 0.5, "high": 1.0, "n": 4}) == "too little data (n=4)"
    assert agreement_cell({"agreement": 1.0, "alpha": 1.0, "agreement_units": 2}) == "too little data (n=2)"
    assert agreement_cell({"agreement": 0.75, "alpha": 0.5, "agreement_units": 40}) == (
        "0.75 (95% CI 0.60-0.86, n=40); alpha 0.50"
    )
    assert step_summary("reward", {"accuracy": 1.0, "validation_pairs": 2}) == (
        "reward accuracy on the labels, cross-validated over prompts: too little data (n=2)"
    )
    # the loop's reward accuracy with its interval over prompts; a few prompts are too little data however many
    # pairs they hold
    cross_validated = {"accuracy": 0.4, "accuracy_low": 0.3, "accuracy_high": 0.52, "validation_pairs": 48}
    assert step_summary("reward", {**cross_validated, "validation_prompts": 24}) == (
        "reward accuracy on the labels, cross-validated over prompts: 0.400 (95% CI 0.300-0.520, n=48 on 24 prompts)"
    )
    assert step_summary("reward", {**cross_validated, "validation_prompts": 12}).endswith(
        "too little data (n=48 on 12 prompts)"
    )
    row = {"reward_accuracy": 0.4, "reward_accuracy_low": 0.3, "reward_accuracy_high": 0.52}
    assert accuracy_cell({**row, "reward_validation_pairs": 48, "reward_validation_prompts": 24}) == (
        "0.400 (95% CI 0.300-0.520, n=48 on 24 prompts)"
    )
    # the loop's win rates show their stored bootstrap interval over prompts, never a Wilson one on the answers
    over_prompts = {"rate": 0.5, "low": 0.0, "high": 1.0, "n": 40, "prompts": 2}
    assert rate_cell(over_prompts) == "too little data (n=40 on 2 prompts)"  # 2 prompts, however many answers
    over_prompts = {"rate": 0.67, "low": 0.57, "high": 0.76, "n": 96, "prompts": 48}
    assert rate_cell(over_prompts) == "0.67 (95% CI 0.57-0.76, n=96 on 48 prompts)"
    evaluation = {"win_rate_vs_base_gold": {"rate": 0.7, "low": 0.55, "high": 0.81, "n": 48}}
    assert step_summary("evaluate", evaluation) == "win rate vs base by gold 0.70 (95% CI 0.55-0.81, n=48)"


@pytest.mark.parametrize("trials", [3, 10])
@pytest.mark.parametrize("winner", [0, 1])
def test_the_quality_report_renders_for_shares_of_none_and_all(tmp_path: Path, trials: int, winner: int) -> None:
    """One annotator always on one side: left choices 0/n or n/n, whose intervals used to cross the share."""
    judgments = [judgment(index, index, "solo", {"winner": winner}, round=1) for index in range(trials)]
    analysis = analyse(judgments, resamples=20)
    assert analysis["bias"]["position"]["overall"]["share"] == float(winner == 0)
    html_path, _ = write_quality_report(analysis, tmp_path)
    page = html_path.read_text()
    assert "alt='position_bias'" in page
    assert "too small to flag anyone" in page and "(1 annotator here)" in page


def test_error_bars_are_never_negative() -> None:
    assert error_lengths([0.0, 1.0, 0.5], [5.6e-17, 0.72, 0.6], [0.56, 1 - 1e-16, 0.7]) == [
        [0.0, pytest.approx(0.28), 0.0],
        [0.56, 0.0, pytest.approx(0.2)],
    ]


def test_long_category_names_are_wrapped() -> None:
    assert wrapped_labels(["creative writing and poetry", "code"], width=14) == [
        "creative\nwriting and\npoetry",
        "code",
    ]


def test_relative_skill_stays_on_a_readable_scale_on_a_small_panel() -> None:
    """Five annotators sharing few pairs: the panel's median skill was unidentified (1e-15), so an
    annotator's skill relative to it reached 2.5e14."""
    panel = simulate_panel(
        make_panel_annotators(5, clickers=0.34, seed=39), judgments_per_annotator=20, overlap=2, seed=39
    )
    annotators = analyse(panel.judgments, resamples=5)["reliability"]["annotators"]
    relative = [info["relative_skill"] for info in annotators.values() if info.get("relative_skill") is not None]
    assert relative and max(abs(value) for value in relative) < 20


def tiny_project(root: Path) -> Path:
    """A project with one evaluated round and three judgments by one annotator, each for the right-hand
    response (left choices 0/3)."""
    project = init_project(root)
    store = project.store
    store.import_prompts(
        [PromptRecord([{"role": "user", "content": f"write about the {word}"}]) for word in ("sun", "moon", "sea")],
        [],
        source="test",
    )
    policy = store.ensure_policy("base", kind="base", model_path=None)
    for prompt in store.prompts():
        store.add_generation(
            policy.id,
            [GeneratedResponse(prompt.id, "short", 1, True), GeneratedResponse(prompt.id, "a longer one", 3, True)],
            {},
            lambda prompt_id, ids: [ComparisonPlan("pair", prompt_id, ids, overlap=1, round=1)],
        )
    annotator = store.ensure_annotator("solo")
    for comparison in store.comparisons():
        store.record_judgment(
            comparison_id=comparison.id,
            annotator_id=annotator.id,
            answer={"winner": 1, "tie": False, "both_bad": False},
            idempotency_key=f"k-{comparison.id}",
            source="studio",
            order_shown=[0, 1],
            duration_ms=9000,
        )
    scores = {"reward_mean": 0.1, "gold_mean": 0.5, "length_mean": 12.0, "kl_from_base": 0.0}
    store.start_round(1, policy.id)
    outputs = {
        "generate": {},
        "collect": {"judgments": 3, "judgments_in_store": 3},
        "quality": {"judgments": 3, "flagged": [], "agreement": None, "alpha": None, "agreement_units": 0},
        "reward": {"accuracy": 1.0, "validation_pairs": 1, "train_pairs": 2},
        "policy": {},
        "evaluate": {
            "base": scores,
            "previous": scores,
            "new": {**scores, "gold_mean": 0.6, "kl_from_base": 0.2},
            "win_rate_vs_base_gold": {"rate": 1.0, "low": 0.44, "high": 1.0, "n": 3},
        },
    }
    for step, output in outputs.items():
        store.finish_step(1, step, output)
    project.close()
    return root


def test_the_loop_report_renders_for_one_round_and_three_judgments(tmp_path: Path) -> None:
    root = tiny_project(tmp_path / "project")
    result = CliRunner().invoke(app, ["report", "-p", str(root)])
    assert result.exit_code == 0, result.output
    page = (root / "loop" / "report.html").read_text()
    assert "1 round." in page
    assert "too little data (n=1)" in page  # the reward accuracy on one validation pair
    assert "too little data (n=3)" in page  # the win rate on three answers
    assert "1.00 [" not in page  # the win rate as it was shown, on three answers
    quality = (root / "loop" / "quality" / "quality.html").read_text()
    assert "too small to flag anyone" in quality
    result = CliRunner().invoke(app, ["quality", "report", "-p", str(root), "--resamples", "10"])
    assert result.exit_code == 0, result.output
    assert "too little data (n=0)" in result.output
    assert json.loads((root / "reports" / "quality.json").read_text())["judgments"] == 3

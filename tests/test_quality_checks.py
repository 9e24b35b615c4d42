"""Flags (detection power on synthetic panels), bias statistics, correction weights, report, CLI, store read."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit
from typer.testing import CliRunner

from apprentice.quality.bias import coverage, length_bias, rating_harshness, share_test, wilson_interval
from apprentice.quality.correction import CorrectionSettings, correct, length_importance, position_importance
from apprentice.quality.flags import FlagSettings, check_annotators, gated_test, self_consistency
from apprentice.quality.pairs import pair_table
from apprentice.quality.reliability import logistic_fit, simes_p_value
from apprentice.quality.report import analyse, write_report
from apprentice.quality.synthetic import make_panel_annotators, simulate_panel
from apprentice.store.quality_queries import QualityJudgment
from flag_scores import precision_recall


def test_synthetic_panel_is_calibrated() -> None:
    panel = simulate_panel(make_panel_annotators(20, seed=0), seed=0)
    counts: dict[str, int] = {}
    for judgment in panel.judgments:
        counts[judgment.annotator] = counts.get(judgment.annotator, 0) + 1
    assert set(counts.values()) == {50}
    table = pair_table(panel.judgments)
    correct_share = float(
        np.mean(
            [panel.true_winner[table.comparisons[c]] == w for c, w in zip(table.comparison, table.winner, strict=True)]
        )
    )
    assert 0.7 < correct_share < 0.85  # honest people are right about 3 times in 4
    assert abs(table.chose_left.mean() - 0.5) < 0.05


def test_detection_power_on_mixed_panels() -> None:
    """20% random clickers, 30% left-leaners (80% left when unsure), 50 judgments each, four panels pooled.

    The issue asks for precision and recall of 0.9. On these seeds (0-3, which the detector was designed
    on) they are 0.91 and 0.93; benchmarks/quality_detection.py reports fresh seeds, by panel and volume.
    """
    flagged_bad = flagged = bad = 0
    panel_p_values: list[float] = []
    for seed in range(4):
        panel = simulate_panel(make_panel_annotators(40, clickers=0.2, left_leaners=0.3, seed=seed), seed=seed)
        checks = check_annotators(panel.judgments)
        found = checks.flagged
        panel_p_values.append(checks.panel_p_value)
        flagged_bad += len(found & panel.bad_annotators)
        flagged += len(found)
        bad += len(panel.bad_annotators)
    assert flagged_bad / flagged >= 0.9
    assert flagged_bad / bad >= 0.9
    assert max(panel_p_values) < 0.005  # the panel gate passes, far below 0.05 (2e-4 at most on these seeds)


def test_flags_are_mirror_symmetric() -> None:
    """Showing every pair the other way round turns left-leaners into right-leaners: the same annotators
    are flagged, with the other side named (the side test favours no side of its own)."""
    panel = simulate_panel(make_panel_annotators(20, clickers=0.2, left_leaners=0.3, seed=0), seed=0)
    mirrored = [
        dataclasses.replace(item, order_shown=[item.order_shown[1], item.order_shown[0]])
        for item in panel.judgments
        if item.order_shown
    ]
    checks, mirrored_checks = check_annotators(panel.judgments), check_annotators(mirrored)
    position = {flag.annotator: flag for flag in checks.flags if flag.kind == "position_bias"}
    mirrored_position = {flag.annotator: flag for flag in mirrored_checks.flags if flag.kind == "position_bias"}
    assert checks.flagged == mirrored_checks.flagged
    assert set(position) == set(mirrored_position) and any(name.startswith("leaner") for name in position)
    for name, flag in position.items():
        assert "picks the left response" in flag.message
        assert "picks the right response" in mirrored_position[name].message
        assert mirrored_position[name].p_value == pytest.approx(flag.p_value, rel=1e-3)


def test_honest_panel_is_not_flagged() -> None:
    for seed in (0, 1):
        panel = simulate_panel(make_panel_annotators(20, seed=seed), seed=seed)
        assert check_annotators(panel.judgments).flags == []


def test_simes_p_value_by_hand() -> None:
    # four p-values of 0.02: min(4 * 0.02 / 1, 4 * 0.02 / 2, 4 * 0.02 / 3, 4 * 0.02 / 4) = 0.02 (Bonferroni: 0.08)
    assert simes_p_value([0.02, 0.02, 0.02, 0.02]) == pytest.approx(0.02)
    assert simes_p_value([0.5, 0.01]) == pytest.approx(0.02)  # min(2 * 0.01, 2 * 0.5 / 2)
    assert simes_p_value([]) == 1.0


def test_panel_gate_by_hand() -> None:
    """Benjamini-Hochberg alone would flag; the panel's Simes test at 0.05 holds it back, and passes where
    there is more to find."""
    # side: adaptive null share min(1, (1 + 3) / (0.5 * 5)) = 1, BH thresholds 0.02, 0.04, ...: 0.006 is
    # rejected. Simes over all ten: 10 * 0.006 / 1 = 0.06 is the smallest (10 * 0.3 / 2 = 1.5, ...) > 0.05.
    closed = gated_test(
        {"position_bias": [0.006, 0.3, 0.6, 0.7, 0.8], "near_random": [1.0] * 5}, rate=0.1, panel_alpha=0.05
    )
    assert closed.rejected == {"position_bias": [True] + [False] * 4, "near_random": [False] * 5}
    assert closed.panel_p_value == pytest.approx(0.06)
    assert not closed.passed
    # sorted 0.001, 0.002, 0.003, ...: Simes min(10 * 0.001, 10 * 0.002 / 2, 10 * 0.003 / 3) = 0.01 <= 0.05;
    # side rejects 0.001 (<= 0.02) and 0.003 (<= 0.04); careless, null share min(1, 5 / 2.5), 0.002 <= 0.02
    passing = gated_test(
        {"position_bias": [0.001, 0.003, 0.6, 0.7, 0.8], "near_random": [0.002, 1.0, 1.0, 1.0, 1.0]},
        rate=0.1,
        panel_alpha=0.05,
    )
    assert passing.panel_p_value == pytest.approx(0.01)
    assert passing.passed
    assert passing.rejected == {
        "position_bias": [True, True, False, False, False],
        "near_random": [True, False, False, False, False],
    }


def test_gate_holds_back_a_false_flag_on_an_honest_panel() -> None:
    """Seed 101 of the benchmark: without the gate one honest annotator is flagged for a side preference
    (p = 0.00074, rejected by Benjamini-Hochberg); against the 80 p-values of the panel that is no finding."""
    panel = simulate_panel(make_panel_annotators(40, seed=101), judgments_per_annotator=50, overlap=5, seed=101)
    checks = check_annotators(panel.judgments)
    assert checks.flags == []
    assert [(flag.annotator, flag.kind) for flag in checks.held_back] == [("honest-36", "position_bias")]
    assert checks.panel_p_value > 0.05
    ungated = check_annotators(panel.judgments, FlagSettings(panel_alpha=1.0))
    assert ungated.flags == checks.held_back and ungated.held_back == []


def test_honest_panels_are_rarely_flagged() -> None:
    """The chance that a panel of honest annotators gets any flag is at most about panel_alpha (0.05).

    200 small panels (10 annotators, 40 judgments each, seeds 1000-1199): 5 flagged with the gate. The
    flags before the gate (Benjamini-Hochberg per family, no panel test) were on 26 of them (0.13), and
    this test failed on that code.
    """
    flagged = 0
    for seed in range(1000, 1200):
        panel = simulate_panel(make_panel_annotators(10, seed=seed), judgments_per_annotator=40, seed=seed)
        flagged += bool(check_annotators(panel.judgments).flags)
    assert flagged / 200 <= 0.08


def test_precision_recall() -> None:
    assert precision_recall({"a", "b"}, {"a", "c"}) == (0.5, 0.5)
    assert precision_recall(set(), set()) == (1.0, 1.0)


def judgment(judgment_id: int, comparison_id: int, annotator: str, answer: dict, **fields: object) -> QualityJudgment:
    return QualityJudgment(
        judgment_id=judgment_id,
        comparison_id=comparison_id,
        kind=str(fields.pop("kind", "pair")),
        annotator=annotator,
        answer=answer,
        order_shown=fields.pop("order_shown", [0, 1]),  # type: ignore[arg-type]
        response_ids=fields.pop("response_ids", [2 * comparison_id, 2 * comparison_id + 1]),  # type: ignore[arg-type]
        response_lengths=fields.pop("response_lengths", [100, 100]),  # type: ignore[arg-type]
        **fields,  # type: ignore[arg-type]
    )


def test_rule_flags_fast_straight_lining_gold_and_self_consistency() -> None:
    judgments = []
    for index in range(25):
        # "speedy" always answers in 1 s and always picks the left response; the gold says position 1
        judgments.append(judgment(index, index, "speedy", {"winner": 0}, duration_ms=1000, gold={"winner": 1}))
        # two careful colleagues, so that 1 s is fast against the panel too
        for offset, name in ((100, "careful"), (200, "thorough")):
            winner = index % 2
            judgments.append(judgment(index + offset, index + offset, name, {"winner": winner}, duration_ms=30000))
    checks = check_annotators(judgments)
    assert {flag.annotator for flag in checks.flags} == {"speedy"}
    kinds = {flag.kind for flag in checks.flags}
    assert kinds == {"position_bias", "too_fast", "straight_lining", "gold_accuracy"}
    # a whole panel at 1 s is not flagged as too fast: that is the panel's pace, shown in the report
    alone = check_annotators([j for j in judgments if j.annotator == "speedy"])
    assert "too_fast" not in {flag.kind for flag in alone.flags}
    assert correct(judgments[:1], alone).excluded_annotators == []  # never exclude everyone
    assert checks.gold_accuracy["speedy"] == (0.0, 25)
    # same two responses judged twice, once each way: half consistent
    repeated = [
        judgment(1, 1, "x", {"winner": 0}, response_ids=[10, 11]),
        judgment(2, 2, "x", {"winner": 0}, response_ids=[11, 10]),
        judgment(3, 3, "x", {"winner": 0}, response_ids=[10, 11]),
    ]
    # picks: 10, 11, 10 -> pairs (10,11) no, (10,10) yes, (11,10) no -> 1 of 3
    assert self_consistency(repeated) == (pytest.approx(1 / 3), 3)


def test_wilson_and_share_test_by_hand() -> None:
    # 8 of 10 at 95%: centre (0.8 + 1.92/10)/(1 + 3.84/10) = 0.7167, half-width 0.2266 -> 0.490 to 0.943
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3)
    assert high == pytest.approx(0.9433, abs=1e-3)
    test = share_test("x", 8, 10)
    assert test.p_value == pytest.approx(112 / 1024)  # two-sided exact: 2 * P(X >= 8) = 2 * 56/1024
    assert test.cohens_h == pytest.approx(2 * np.arcsin(np.sqrt(0.8)) - np.pi / 2)


def test_length_bias_recovers_slope_and_interval() -> None:
    rng = np.random.default_rng(0)
    length_a = rng.integers(50, 800, 3000)
    length_b = rng.integers(50, 800, 3000)
    chose_a = rng.random(3000) < expit(0.8 * np.log(length_a / length_b))
    result = length_bias(chose_a, length_a, length_b)
    assert result.slope_low < 0.8 < result.slope_high
    assert result.slope_p_value < 1e-6
    assert result.longer_wins.share > 0.6
    assert result.odds_ratio_for_doubling() == pytest.approx(2**result.slope)
    null = length_bias(rng.random(3000) < 0.5, length_a, length_b)
    assert null.slope_low < 0 < null.slope_high


def test_harshness_and_coverage() -> None:
    judgments = [
        judgment(1, 1, "harsh", {"score": 2}, kind="rating"),
        judgment(2, 1, "kind", {"score": 6}, kind="rating"),
        judgment(3, 2, "harsh", {"score": 3}, kind="rating"),
        judgment(4, 2, "kind", {"score": 5}, kind="rating"),
    ]
    by_name = {item.annotator: item for item in rating_harshness(judgments)}
    assert by_name["harsh"].mean_difference == pytest.approx(-3.0)  # (2 - 6 + 3 - 5) / 2
    assert by_name["kind"].mean_difference == pytest.approx(3.0)
    labelled = [
        judgment(1, 1, "a", {"winner": 0}, category="coding"),
        judgment(2, 2, "a", {"winner": 1}, category="coding"),
        judgment(3, 2, "b", {"winner": 1}, category="coding"),
    ]
    result = coverage(labelled, {"coding": 5, "poetry": 3, None: 1})
    assert result.unlabelled_categories == ["(none)", "poetry"]
    assert result.dominant_annotator == "a"
    assert result.judged_by_category == {"coding": 2}


def test_importance_weights_remove_bias_in_expectation() -> None:
    # an annotator with offset 1.2 at margin logit 0.3: E_biased[w * 1(left)] = P_unbiased(left)
    margin, offset = np.array([0.3, 0.3]), np.array([1.2, 1.2])
    weights = position_importance(margin, offset, np.array([True, False]))
    biased_left = expit(1.5)
    assert biased_left * weights[0] == pytest.approx(expit(0.3))
    assert (1 - biased_left) * weights[1] == pytest.approx(1 - expit(0.3))
    length_weights = length_importance(np.array([True]), np.array([np.log(2)]), 0.0, 1.0)
    assert length_weights[0] == pytest.approx(0.5 / expit(np.log(2)))


def test_correction_weights_on_a_panel() -> None:
    panel = simulate_panel(make_panel_annotators(20, clickers=0.2, left_leaners=0.3, seed=0), seed=0)
    checks = check_annotators(panel.judgments)
    correction = correct(panel.judgments, checks, CorrectionSettings(length_controlled=True))
    by_annotator: dict[str, list[float]] = {}
    for item in panel.judgments:
        by_annotator.setdefault(item.annotator, []).append(correction.weights[item.judgment_id])
    excluded = {flag.annotator for flag in checks.flags if flag.kind != "position_bias"}
    assert set(correction.excluded_annotators) == excluded
    for name in excluded:
        assert max(by_annotator[name]) == 0.0
    kept = [w for name, ws in by_annotator.items() if name not in excluded for w in ws]
    # a left-leaner kept in: their left choices weigh less than their right choices
    table = pair_table(panel.judgments)
    leaners = [n for n in by_annotator if n.startswith("leaner") and n not in excluded]
    for name in leaners:
        rows = [i for i, j in enumerate(table.judgments) if j.annotator == name]
        left = [correction.weights[table.judgments[i].judgment_id] for i in rows if table.chose_left[i]]
        right = [correction.weights[table.judgments[i].judgment_id] for i in rows if not table.chose_left[i]]
        assert np.mean(left) < np.mean(right)
    assert np.mean(kept) == pytest.approx(1.0)
    assert len(correction.aggregated) == len({j.comparison_id for j in panel.judgments})
    # on pairs with a clear difference the aggregated label finds the better response
    clear = [c for c in correction.aggregated if abs(panel.margin[c]) > 1.0]
    right = np.mean([(correction.aggregated[c] > 0.5) == (panel.true_winner[c] == 0) for c in clear])
    assert right > 0.9
    # the weighted length regression of the kept judgments has no slope left
    weights = np.array([correction.weights[j.judgment_id] for j in table.judgments])
    ratio = np.log(table.length_left / table.length_right)
    features = np.stack([np.ones(len(ratio)), ratio], 1)
    keep = weights > 0
    repeated = np.repeat(np.arange(len(ratio))[keep], np.round(weights[keep] * 20).astype(int))
    (_, slope), _ = logistic_fit(features[repeated], table.chose_left[repeated].astype(float))
    assert abs(slope) < 0.05


def test_report_writes_html_and_json(tmp_path: Path) -> None:
    panel = simulate_panel(
        make_panel_annotators(10, clickers=0.2, seed=0), seed=0, judgments_per_annotator=30, rounds=2
    )
    analysis = analyse(panel.judgments, prompts_by_category={"writing": 5, "poetry": 2}, resamples=50)
    html_path, json_path = write_report(analysis, tmp_path)
    data = json.loads(json_path.read_text())
    assert set(data["agreement"]["pairs"]["by_round"]) == {"0", "1"}
    assert data["bias"]["coverage"]["unlabelled_categories"] == ["poetry"]
    assert {flag["annotator"] for flag in data["flags"]} >= {"clicker-00", "clicker-01"}
    page = html_path.read_text()
    for figure in ("agreement_over_time", "reliability_vs_volume", "position_bias", "length_bias", "coverage"):
        assert f"alt='{figure}'" in page
    # a project without judgments still gets a report, with nothing to plot
    empty_html, empty_json = write_report(analyse([], resamples=10), tmp_path / "empty")
    assert json.loads(empty_json.read_text())["agreement"]["pairs"]["alpha_nominal"]["value"] is None
    assert "No annotator flagged" in empty_html.read_text()


def test_store_read_and_cli(tmp_path: Path, store_url: str) -> None:
    from apprentice.cli import app
    from apprentice.project import init_project
    from apprentice.store.records import ComparisonPlan, PromptRecord

    project = init_project(tmp_path / "p", store_url=store_url)
    store = project.store
    store.import_prompts([PromptRecord([{"role": "user", "content": "hi"}], category="chat")], [], source="t")
    prompt_id = store.prompts()[0].id
    policy = store.ensure_policy("base", kind="base", model_path=None)
    from apprentice.store.records import GeneratedResponse

    store.add_generation(
        policy.id,
        [GeneratedResponse(prompt_id, "short", 1, True), GeneratedResponse(prompt_id, "a longer answer", 3, True)],
        {},
        lambda pid, ids: [ComparisonPlan("pair", pid, ids, overlap=2, round=1, gold={"winner": 1})],
    )
    comparison_id = store.comparisons()[0].id
    for name, winner in (("ann", 1), ("bob", 0)):
        annotator = store.ensure_annotator(name)
        store.record_judgment(
            comparison_id=comparison_id,
            annotator_id=annotator.id,
            answer={"winner": winner, "tie": False, "both_bad": False},
            idempotency_key=f"k-{name}",
            source="studio",
            order_shown=[1, 0],
            duration_ms=12000,
        )
    rows = store.quality_judgments()
    assert [(r.annotator, r.order_shown, r.response_lengths, r.category, r.round, r.gold) for r in rows] == [
        ("ann", [1, 0], [5, 15], "chat", 1, {"winner": 1}),
        ("bob", [1, 0], [5, 15], "chat", 1, {"winner": 1}),
    ]
    assert store.prompt_categories() == {"chat": 1}
    assert store.set_judgment_weights({rows[0].judgment_id: 0.25}) == 1
    assert store.quality_judgments()[0].weight == 0.25
    project.close()

    runner = CliRunner()
    result = runner.invoke(app, ["quality", "report", "--project", str(tmp_path / "p"), "--resamples", "20"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p" / "reports" / "quality.html").exists()
    result = runner.invoke(app, ["quality", "weights", "--project", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["quality", "flags", "--project", str(tmp_path / "missing")])
    assert result.exit_code == 1


def test_synthetic_panel_with_given_margins() -> None:
    margins = [3.0, -3.0, 0.0, 5.0]
    panel = simulate_panel(
        make_panel_annotators(4, seed=0), judgments_per_annotator=4, overlap=4, margins=margins, lengths=[(1, 2)] * 4
    )
    assert panel.true_winner == {1: 0, 2: 1, 3: 0, 4: 0}  # an exact tie counts for position 0
    assert {tuple(j.response_lengths) for j in panel.judgments} == {(1, 2)}
    with pytest.raises(ValueError, match="too few"):
        simulate_panel(make_panel_annotators(4, seed=0), judgments_per_annotator=5, overlap=4, margins=margins)

"""Agreement statistics against hand-computed numbers, published examples and the `krippendorff` package."""

from __future__ import annotations

import math

import krippendorff
import numpy as np
import pytest

from apprentice.quality.agreement import (
    agreement_by_annotator,
    alpha_with_distance,
    bootstrap_ci,
    cohen_kappa,
    fleiss_kappa,
    kendall_distance,
    krippendorff_alpha,
    pairwise_cohen_kappa,
    raw_agreement,
)

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 4 coders x 12 units example.
NAN = float("nan")
KRIPPENDORFF_EXAMPLE = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]


def units_from_matrix(matrix: list[list[float]]) -> list[dict[str, float]]:
    """Reliability data (coders x units, NaN = missing) as units: annotator -> value."""
    return [
        {f"coder{coder}": row[unit] for coder, row in enumerate(matrix) if not math.isnan(row[unit])}
        for unit in range(len(matrix[0]))
    ]


def test_alpha_hand_computed_nominal() -> None:
    # o_00 = 2, o_11 = 2, o_01 = o_10 = 1; n = 6; D_o = 2/6; D_e = 2*3*3/(6*5) = 0.6; alpha = 1 - (1/3)/0.6
    units = [{"a": 0, "b": 0}, {"a": 1, "b": 1}, {"a": 0, "b": 1}, {"a": 1}]
    assert krippendorff_alpha(units, "nominal") == pytest.approx(1 - (1 / 3) / 0.6)


@pytest.mark.parametrize(("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_alpha_published_example(level: str, published: float) -> None:
    assert krippendorff_alpha(units_from_matrix(KRIPPENDORFF_EXAMPLE), level) == pytest.approx(  # type: ignore[arg-type]
        published, abs=5e-4
    )


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alpha_matches_krippendorff_package(level: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 8, size=60)
    matrix = np.where(rng.random((5, 60)) < 0.6, truth, rng.integers(1, 8, size=(5, 60))).astype(float)
    matrix[rng.random(matrix.shape) < 0.3] = np.nan
    ours = krippendorff_alpha(units_from_matrix(matrix.tolist()), level)  # type: ignore[arg-type]
    theirs = krippendorff.alpha(reliability_data=matrix, level_of_measurement=level)
    assert ours == pytest.approx(theirs, abs=1e-6)


def test_alpha_with_distance_equals_table_form() -> None:
    units = units_from_matrix(KRIPPENDORFF_EXAMPLE)
    nominal = alpha_with_distance(units, lambda a, b: float(a != b))
    interval = alpha_with_distance(units, lambda a, b: (a - b) ** 2)
    assert nominal == pytest.approx(krippendorff_alpha(units, "nominal"))
    assert interval == pytest.approx(krippendorff_alpha(units, "interval"))


def test_alpha_edge_cases() -> None:
    assert math.isnan(krippendorff_alpha([{"a": 1}], "nominal"))
    assert math.isnan(krippendorff_alpha([{"a": 1, "b": 1}, {"a": 1, "b": 1}], "nominal"))  # no variation
    assert krippendorff_alpha([{"a": 1, "b": 1}, {"a": 0, "b": 0}], "nominal") == 1.0


def test_kendall_distance() -> None:
    assert kendall_distance([1, 2, 3], [1, 2, 3]) == 0.0
    assert kendall_distance([1, 2, 3], [3, 2, 1]) == 1.0
    assert kendall_distance([1, 2, 3], [2, 1, 3]) == pytest.approx(1 / 3)
    assert kendall_distance([1, 1, 2], [1, 2, 3]) == pytest.approx(1 / 6)  # one tie against a strict order
    with pytest.raises(ValueError, match="different lengths"):
        kendall_distance([1, 2], [1, 2, 3])


def test_rank_alpha_hand_computed() -> None:
    # Two units, two annotators. Unit 1 identical, unit 2 fully reversed: D_o = (0 + 0 + 1 + 1) / 4 = 0.5.
    # Pairs over all 4 rankings: r1=r2=(1,2) [unit 1], r3=(1,2), r4=(2,1): distances between the three
    # (1,2) are 0 and each against (2,1) is 1: 6 of the 12 ordered pairs -> D_e = 0.5; alpha = 0.
    units = [{"a": (1, 2), "b": (1, 2)}, {"a": (1, 2), "b": (2, 1)}]
    assert alpha_with_distance(units, kendall_distance) == pytest.approx(0.0)


def test_cohen_kappa_hand_computed() -> None:
    # p_o = 3/4; p_e = 0.5*0.75 + 0.5*0.25 = 0.5; kappa = 0.25 / 0.5
    assert cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(0.5)
    assert cohen_kappa([0, 1], [0, 1]) == 1.0
    assert math.isnan(cohen_kappa([1, 1], [1, 1]))


def test_pairwise_cohen_kappa_uses_shared_units() -> None:
    units = [{"a": 1, "b": 1, "c": 0}, {"a": 1, "b": 0}, {"a": 0, "b": 0, "c": 0}, {"a": 0, "b": 0}]
    by_pair = {(pair.annotator_a, pair.annotator_b): pair for pair in pairwise_cohen_kappa(units)}
    assert by_pair[("a", "b")].shared_units == 4
    assert by_pair[("a", "b")].kappa == pytest.approx(0.5)
    assert by_pair[("a", "c")].shared_units == 2
    assert by_pair[("a", "c")].agreement == pytest.approx(0.5)


def test_fleiss_kappa_wikipedia_example() -> None:
    # 10 subjects, 14 raters, 5 categories; Fleiss' kappa = 0.210 (Wikipedia, "Fleiss' kappa").
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    units = []
    for row in table:
        labels = [category for category, count in enumerate(row) for _ in range(count)]
        units.append({f"r{rater}": label for rater, label in enumerate(labels)})
    assert fleiss_kappa(units) == pytest.approx(0.20993, abs=1e-4)


def test_raw_agreement_and_per_annotator() -> None:
    units = [{"a": 1, "b": 1, "c": 0}, {"a": 0, "b": 0}]
    # pairs: (a,b) agree, (a,c) no, (b,c) no, (a,b) agree -> 2 of 4
    assert raw_agreement(units) == pytest.approx(0.5)
    per = agreement_by_annotator(units)
    assert per["a"] == (pytest.approx(2 / 3), 3)
    assert per["c"] == (0.0, 2)


def test_bootstrap_interval_contains_value_and_narrows() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 400)
    units = [{f"a{k}": int(t if rng.random() < 0.8 else 1 - t) for k in range(3)} for t in truth]
    small = bootstrap_ci(units[:50], lambda u: krippendorff_alpha(u), resamples=200)
    large = bootstrap_ci(units, lambda u: krippendorff_alpha(u), resamples=200)
    assert small.low <= small.value <= small.high
    assert large.low <= large.value <= large.high
    assert (large.high - large.low) < (small.high - small.low)
    # 80% accuracy each: agreement 0.68, chance 0.5 -> alpha about 0.36
    assert large.low < 0.36 < large.high

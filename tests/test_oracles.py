"""Gold oracles: built-ins on real scorers (VADER, MiniLM) and plugging in `module:function`."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from apprentice import oracles
from apprentice.errors import ApprenticeError
from apprentice.oracles import concision_score, load_oracle


def test_sentiment_ranks_a_kind_answer_above_a_hostile_one() -> None:
    scores = load_oracle("sentiment")(["q", "q"], ["What a lovely, wonderful idea!", "This is awful and I hate it."])
    assert scores[0] > 0.5 > -0.5 > scores[1]


def test_relevance_prefers_the_answer_about_the_question() -> None:
    prompts = ["How do I bake bread at home?"] * 2
    scores = load_oracle("relevance")(
        prompts, ["Mix flour, water, yeast and salt, knead, rise, bake.", "Jupiter has moons."]
    )
    assert scores[0] > scores[1]
    assert all(-1.0 <= score <= 1.0 for score in scores)


def test_the_released_encoder_is_loaded_again_and_scores_the_same() -> None:
    relevance = load_oracle("relevance")
    prompts, responses = ["How do I bake bread at home?"], ["Mix flour, water, yeast and salt, knead, rise, bake."]
    before = relevance(prompts, responses)
    first = oracles._encoder()
    oracles.release_encoder()
    assert oracles._encoder.cache_info().currsize == 0
    assert relevance(prompts, responses) == pytest.approx(before)
    assert oracles._encoder() is not first


def test_concision_by_hand() -> None:
    assert concision_score(60, 60) == 1.0
    assert concision_score(30, 60) == pytest.approx(math.exp(-0.5))
    assert concision_score(120, 60) == pytest.approx(math.exp(-1.0))


def test_composite_is_the_weighted_sum_of_its_parts() -> None:
    prompts, responses = ["Tell me about cats."], ["Cats are lovely, curious animals."]
    parts = {name: load_oracle(name)(prompts, responses)[0] for name in ("sentiment", "relevance", "concision")}
    expected = 0.4 * parts["sentiment"] + 0.4 * parts["relevance"] + 0.2 * parts["concision"]
    assert load_oracle("composite")(prompts, responses)[0] == pytest.approx(expected, abs=1e-6)


def test_module_function_oracles_and_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_oracles.py").write_text(
        "def count_letters(prompts, responses):\n    return [float(len(r)) for r in responses]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    oracle = load_oracle("my_oracles:count_letters")
    assert oracle(["p"], ["abc"]) == [3.0]
    with pytest.raises(ApprenticeError, match="unknown oracle"):
        load_oracle("sentimental")
    with pytest.raises(ApprenticeError, match="cannot import"):
        load_oracle("no_such_module_x:f")
    with pytest.raises(ApprenticeError, match="no function"):
        load_oracle("math:no_such_function")

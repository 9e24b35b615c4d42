"""The label-to-gain benchmark's figures: per-prompt pairing (the interval over prompts is
`apprentice.rates.cluster_bootstrap_mean`, tested with the rates in test_reports_small.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from label_to_gain import per_prompt


def rows(*pairs: tuple[str, float]) -> list[dict[str, object]]:
    return [{"prompt": prompt, "gold": gold} for prompt, gold in pairs]


def test_per_prompt_pairs_samples_and_averages_within_each_prompt() -> None:
    new = rows(("p1", 0.6), ("p1", 0.2), ("p2", 0.5), ("p2", 0.5))
    base = rows(("p1", 0.4), ("p1", 0.4), ("p2", 0.5), ("p2", 0.1))
    wins, gains = per_prompt(new, base)
    # p1: one win, one loss -> 0.5; gains +0.2 and -0.2 -> 0. p2: a tie and a win -> 0.75; gains 0 and +0.4.
    assert wins == pytest.approx([0.5, 0.75])
    assert gains == pytest.approx([0.0, 0.2])


def test_per_prompt_refuses_unpaired_or_reordered_samples() -> None:
    with pytest.raises(ValueError, match="paired"):
        per_prompt(rows(("p1", 0.1)), rows(("p1", 0.1), ("p1", 0.2)))
    with pytest.raises(ValueError, match="out of order"):
        per_prompt(rows(("p1", 0.1), ("p2", 0.1)), rows(("p2", 0.1), ("p1", 0.1)))


def test_base_samples_are_copied_from_a_run_with_the_same_seed_only(tmp_path: Path) -> None:
    from label_to_gain import reuse_base_samples

    samples = Path("loop") / "eval-base-samples.json"
    for name, text in (("composite-grpo-seed10", "ten"), ("composite-grpo-seed1", "one")):
        (tmp_path / name / samples).parent.mkdir(parents=True)
        (tmp_path / name / samples).write_text(text, encoding="utf-8")
    reuse_base_samples(tmp_path / "composite-dpo-seed1-judge-good", 1)
    assert (tmp_path / "composite-dpo-seed1-judge-good" / samples).read_text(encoding="utf-8") == "one"
    reuse_base_samples(tmp_path / "composite-dpo-seed2", 2)
    assert not (tmp_path / "composite-dpo-seed2" / samples).exists()

"""`apprentice reward train | eval | score` on a project with imported judged pairs, and the ensembles."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from apprentice.cli import app
from apprentice.reward.data import PreferenceData, RewardPair, split_by_prompt
from apprentice.reward.ensemble import (
    SUMMARY_FEATURES,
    SharedBackboneEnsemble,
    feature_penalties,
    fit_head,
    load_ensemble,
    prompt_aware_features,
    summary_first_features,
    train_member_ensemble,
    train_shared_backbone_ensemble,
)
from apprentice.reward.train import RewardTrainingConfig
from test_reward_training import MARKER, synthetic_pairs

runner = CliRunner()


@pytest.fixture(autouse=True)
def one_thread() -> object:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_pairs(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for pair in synthetic_pairs(count, seed=5).pairs:
            row = {"prompt": pair.prompt[0]["content"], "chosen": pair.chosen, "rejected": pair.rejected}
            handle.write(json.dumps(row) + "\n")


def test_train_eval_and_score_from_the_command_line(tiny_model: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    assert runner.invoke(app, ["init", str(project)]).exit_code == 0
    write_pairs(tmp_path / "pairs.jsonl", 240)
    result = runner.invoke(app, ["prompts", "import", str(tmp_path / "pairs.jsonl"), "-p", str(project)])
    assert result.exit_code == 0, result.output

    arguments = ["reward", "train", "-p", str(project), "--model", str(tiny_model), "--epochs", "2"]
    arguments += ["--learning-rate", "3e-3", "--max-length", "64", "--run-dir", str(tmp_path / "run")]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "length-only baseline" in result.output
    assert "reward training: step 1 of" in result.output  # the pace, printed where no progress bar draws
    evaluation = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert evaluation["accuracy"] >= 0.9

    from apprentice.project import open_project

    opened = open_project(project)
    runs = opened.store.runs("reward")
    opened.close()
    assert [run.status for run in runs] == ["done"] and runs[0].metrics["accuracy"] == evaluation["accuracy"]
    assert runs[0].output_path == str(tmp_path / "run")  # so `--reward latest` finds a model in --run-dir

    result = runner.invoke(app, ["reward", "eval", str(tmp_path / "run"), "-p", str(project)])
    assert result.exit_code == 0, result.output
    from apprentice.rates import describe_rate

    shown = describe_rate(evaluation["accuracy"], evaluation["pairs"], digits=3)
    assert f"accuracy {shown}" in " ".join(result.output.split())

    rows = [
        {"prompt": "the sun", "response": f"the cat {MARKER} the dog"},
        {"prompt": "the sun", "response": "the cat"},
    ]
    (tmp_path / "score.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    arguments = ["reward", "score", str(tmp_path / "run"), "--input", str(tmp_path / "score.jsonl")]
    result = runner.invoke(app, [*arguments, "--out", str(tmp_path / "scored.jsonl")])
    assert result.exit_code == 0, result.output
    scored = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    assert scored[0]["response"] == rows[0]["response"] and scored[0]["reward"] > scored[1]["reward"]

    (tmp_path / "bad.jsonl").write_text(json.dumps(rows[0]) + "\n" + '{"prompt": "x"}\n')
    arguments = ["reward", "score", str(tmp_path / "run"), "--input", str(tmp_path / "bad.jsonl")]
    result = runner.invoke(app, [*arguments, "--out", str(tmp_path / "bad-out.jsonl")])
    assert result.exit_code == 1
    assert "bad.jsonl, line 2, field 'response'" in " ".join(result.output.split())
    assert not (tmp_path / "bad-out.jsonl").exists()


def test_train_refuses_a_project_without_judgments(tiny_model: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    assert runner.invoke(app, ["init", str(project)]).exit_code == 0
    result = runner.invoke(app, ["reward", "train", "-p", str(project), "--model", str(tiny_model)])
    assert result.exit_code == 1
    assert "no training examples" in result.output
    result = runner.invoke(app, ["reward", "train", "-p", str(project), "--ties", "maybe"])
    assert result.exit_code == 1 and "--ties" in result.output


def test_member_ensemble_gives_a_mean_and_a_spread(tiny_model: Path, tmp_path: Path) -> None:
    train, validation = split_by_prompt(synthetic_pairs(200, seed=6), validation_share=0.2)
    config = RewardTrainingConfig(model=str(tiny_model), epochs=2, learning_rate=3e-3, max_length=64)
    evaluation = train_member_ensemble(
        train, config, tmp_path / "ens", members=2, validation=validation, show_progress=False
    )
    assert evaluation["accuracy"] >= 0.9 and len(evaluation["member_accuracies"]) == 2
    ensemble = load_ensemble(tmp_path / "ens")
    prompt = [{"role": "user", "content": "the sun"}]
    scores = ensemble.score([prompt, prompt], [f"the {MARKER} cat", "the cat"])
    assert scores.mean[0] > scores.mean[1]
    assert all(spread > 0 for spread in scores.std)  # members trained on different resamples disagree somewhat
    assert scores.mean[0] == pytest.approx((scores.members[0][0] + scores.members[1][0]) / 2)


def test_shared_backbone_heads(tiny_model: Path, tmp_path: Path) -> None:
    from apprentice.reward.model import RewardModel

    train, validation = split_by_prompt(synthetic_pairs(200, seed=7), validation_share=0.2)
    ensemble, evaluation = train_shared_backbone_ensemble(
        train, tmp_path / "heads", model=str(tiny_model), heads=3, max_length=64, validation=validation
    )
    assert len(evaluation["member_accuracies"]) == 3 and evaluation["mean_spread"] > 0
    # a random frozen 16-wide backbone still separates the marker a little; the heads must do better than chance
    assert evaluation["accuracy"] > 0.6, evaluation
    loaded = load_ensemble(tmp_path / "heads")
    prompt = [{"role": "user", "content": "the sun"}]
    texts = [f"the {MARKER} cat", "the cat"]
    assert loaded.score([prompt] * 2, texts).mean == pytest.approx(ensemble.score([prompt] * 2, texts).mean, abs=1e-4)
    # the backbone folder is a reward model whose score is head 0
    member_zero = RewardModel.load(tmp_path / "heads" / "backbone").score([prompt] * 2, texts)
    assert member_zero == pytest.approx(ensemble.score([prompt] * 2, texts).members[0], abs=1e-4)


def test_shared_backbone_heads_on_mean_features(tiny_model: Path, tmp_path: Path) -> None:
    train, validation = split_by_prompt(synthetic_pairs(200, seed=7), validation_share=0.2)
    ensemble, evaluation = train_shared_backbone_ensemble(
        train, tmp_path / "heads", model=str(tiny_model), heads=3, max_length=64, validation=validation, features="mean"
    )
    assert len(evaluation["member_accuracies"]) == 3 and evaluation["mean_spread"] > 0
    # the marker is a token of the chosen response, so its embedding is in the mean the heads read
    assert evaluation["accuracy"] > 0.6, evaluation
    info = json.loads((tmp_path / "heads" / "ensemble.json").read_text(encoding="utf-8"))
    assert info["features"] == "mean"
    loaded = load_ensemble(tmp_path / "heads")
    assert isinstance(loaded, SharedBackboneEnsemble) and loaded.feature_kind == "mean"
    prompt = [{"role": "user", "content": "the sun"}]
    texts = [f"the {MARKER} cat", "the cat"]
    scores = ensemble.score([prompt] * 2, texts)
    assert loaded.score([prompt] * 2, texts).members == [pytest.approx(row, abs=1e-4) for row in scores.members]
    # mean features read the response alone: another prompt changes nothing
    other = [{"role": "user", "content": "a different question entirely"}]
    assert loaded.score([other] * 2, texts).mean == pytest.approx(scores.mean, abs=1e-4)


TOPICS = [["sun", "moon", "tree", "water"], ["cat", "dog", "friend", "love"], ["python", "list", "sort", "number"]]


def similarity_pairs(count: int, seed: int) -> PreferenceData:
    """The response on the prompt's topic wins; every topic wins and loses equally often, lengths are drawn
    alike, so neither the response alone nor its length says which one wins: only the prompt does."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        asked, other = rng.sample(range(len(TOPICS)), 2)
        prompt = [{"role": "user", "content": " ".join(rng.choices(TOPICS[asked], k=4))}]
        on_topic = " ".join(rng.choices(TOPICS[asked], k=rng.randint(3, 6)))
        off_topic = " ".join(rng.choices(TOPICS[other], k=rng.randint(3, 6)))
        pairs.append(RewardPair(prompt, on_topic, off_topic))
    return PreferenceData(pairs=pairs)


def test_prompt_aware_heads_learn_a_preference_for_responses_on_the_prompts_topic(
    tiny_model: Path, tmp_path: Path
) -> None:
    train, validation = split_by_prompt(similarity_pairs(240, seed=3), validation_share=0.25)
    common = {"model": str(tiny_model), "heads": 3, "max_length": 64, "validation": validation, "l2": 10.0}
    ensemble, evaluation = train_shared_backbone_ensemble(train, tmp_path / "aware", features="prompt-aware", **common)
    _, blind = train_shared_backbone_ensemble(train, tmp_path / "blind", features="mean", **common)
    # the response alone cannot tell the winner, the prompt-response product can
    assert blind["accuracy"] < 0.65, blind
    assert evaluation["accuracy"] > 0.8, evaluation

    info = json.loads((tmp_path / "aware" / "ensemble.json").read_text(encoding="utf-8"))
    assert info["features"] == "prompt-aware"
    loaded = load_ensemble(tmp_path / "aware")
    assert isinstance(loaded, SharedBackboneEnsemble) and loaded.feature_kind == "prompt-aware"
    assert tuple(loaded.weights.shape) == (3, 2 * 16 + 3)  # response, product, three length features
    prompts = [pair.prompt for pair in validation.pairs]
    responses = [pair.chosen for pair in validation.pairs]
    scores = ensemble.score(prompts, responses)
    assert loaded.score(prompts, responses).members == [pytest.approx(row, abs=1e-5) for row in scores.members]

    # the same responses score higher under the prompt they answer than under another topic's prompt
    elsewhere = [[{"role": "user", "content": " ".join(TOPICS[(_topic(p) + 1) % len(TOPICS)])}] for p in prompts]
    moved = loaded.score(elsewhere, responses)
    assert sum(a > b for a, b in zip(scores.mean, moved.mean, strict=True)) > 0.8 * len(responses)


def _topic(prompt: list[dict[str, str]]) -> int:
    return next(index for index, words in enumerate(TOPICS) if prompt[-1]["content"].split()[0] in words)


def test_prompt_aware_features_read_the_last_user_message_and_ignore_batching(tiny_model: Path) -> None:
    from apprentice.reward.model import RewardModel

    model = RewardModel.from_backbone(str(tiny_model), max_length=64)
    asked = {"role": "user", "content": "the sun and the moon"}
    responses = ["the moon is water", "a cat", "sort the list of number and the list of sun"]
    alone = prompt_aware_features(model, [[asked]] * 3, responses, batch_size=16)
    conversation = [
        {"role": "system", "content": "help the user"},
        {"role": "user", "content": "a dog"},
        {"role": "assistant", "content": "a cat"},
        asked,
    ]
    assert torch.allclose(prompt_aware_features(model, [conversation] * 3, responses, batch_size=1), alone, atol=1e-5)
    other = prompt_aware_features(model, [[{"role": "user", "content": "python code"}]] * 3, responses)
    assert torch.allclose(other[:, :16], alone[:, :16], atol=1e-5)  # the response's own part
    assert not torch.allclose(other[:, 16:32], alone[:, 16:32], atol=1e-3)  # the product part moves with the prompt
    assert alone[:, :16].norm(dim=1) == pytest.approx([1.0] * 3, abs=1e-5)
    words = torch.tensor([4.0, 2.0, 10.0])
    assert torch.allclose(alone[:, 32:], torch.stack([torch.log1p(words), words / 100, (words / 100) ** 2], 1))


def test_the_loop_setting_offers_every_feature_kind() -> None:
    from typing import get_args

    from apprentice.reward.ensemble import FEATURE_KINDS
    from apprentice.settings import LoopSection

    assert get_args(LoopSection.model_fields["reward_features"].annotation) == FEATURE_KINDS
    assert LoopSection().reward_features in FEATURE_KINDS


def test_a_reward_run_keeps_the_weights_it_trained_on_after_the_next_quality_run(
    tiny_model: Path, tmp_path: Path
) -> None:
    from apprentice.project import open_project

    project = tmp_path / "project"
    assert runner.invoke(app, ["init", str(project)]).exit_code == 0
    write_pairs(tmp_path / "pairs.jsonl", 40)
    assert runner.invoke(app, ["prompts", "import", str(tmp_path / "pairs.jsonl"), "-p", str(project)]).exit_code == 0
    result = runner.invoke(app, ["quality", "weights", "-p", str(project)])
    assert result.exit_code == 0, result.output

    arguments = ["reward", "train", "-p", str(project), "--model", str(tiny_model), "--epochs", "1"]
    result = runner.invoke(app, [*arguments, "--max-length", "32", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output

    opened = open_project(project)
    try:
        (first_quality,) = opened.store.runs("quality")
        (reward_run,) = opened.store.runs("reward")
        assert reward_run.config["quality_run"] == first_quality.id
        trained_on = opened.store.weights_of_run(first_quality.id)
        judgment_ids = [judged.judgment_id for judged in opened.store.judged_comparisons()]
        assert sorted(trained_on) == sorted(judgment_ids)

        # The quality step run again with other weights: the finished reward run's record stays as it was.
        with opened.store.recording_run("quality", {"source": "test"}) as second:
            opened.store.set_judgment_weights({judgment_id: 0.25 for judgment_id in judgment_ids}, run_id=second.id)
        assert opened.store.current_weights_run() == second.id
        assert {judged.weight for judged in opened.store.judged_comparisons()} == {0.25}
        assert opened.store.weights_of_run(first_quality.id) == trained_on
        assert set(opened.store.weights_of_run(second.id).values()) == {0.25}
        assert 0.25 not in trained_on.values()
    finally:
        opened.close()


def test_reward_options_lists_every_option_with_its_meaning() -> None:
    result = runner.invoke(app, ["reward", "options"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "label_smoothing = 0.0" in output and "toward 0.5" in output
    assert "shared_heads = 0" in output and "ties = drop" in output


def test_reward_options_come_from_the_file_then_the_flags_then_set(tmp_path: Path) -> None:
    from apprentice.reward.cli import reward_options_from

    options_file = tmp_path / "reward.toml"
    options_file.write_text('epochs = 3\nlabel_smoothing = 0.1\nties = "half"\n')
    config = reward_options_from(options_file, {"epochs": 2, "seed": None}, ["label_smoothing=0.2", "rankings=pairs"])
    assert (config.epochs, config.label_smoothing, config.ties, config.seed) == (2, 0.2, "half", 0)


def test_a_bad_reward_option_is_named_with_where_it_came_from(tmp_path: Path) -> None:
    project = tmp_path / "project"
    assert runner.invoke(app, ["init", str(project)]).exit_code == 0
    result = runner.invoke(app, ["reward", "train", "-p", str(project), "--set", "label_smoothing=0.7"])
    assert result.exit_code == 1
    assert "reward option label_smoothing (from --set)" in " ".join(result.output.split())
    (tmp_path / "bad.json").write_text('{"train_mode": "half"}')
    result = runner.invoke(app, ["reward", "train", "-p", str(project), "--config", str(tmp_path / "bad.json")])
    assert result.exit_code == 1
    assert "train_mode (from" in result.output and "bad.json" in result.output
    result = runner.invoke(app, ["reward", "train", "-p", str(project), "--set", "no_such_option=1"])
    assert result.exit_code == 1 and "no_such_option" in result.output


def test_summary_first_features_lead_with_the_cosine_and_the_length_then_prompt_awares_parts(
    tiny_model: Path,
) -> None:
    from apprentice.reward.model import RewardModel

    model = RewardModel.from_backbone(str(tiny_model), max_length=64)
    prompts = [[{"role": "user", "content": "the sun and the moon"}]] * 2
    responses = ["the moon is water", "a cat and a dog and a friend"]
    summary = summary_first_features(model, prompts, responses)
    aware = prompt_aware_features(model, prompts, responses)
    hidden = 16
    response, product, length = aware[:, :hidden], aware[:, hidden : 2 * hidden], aware[:, 2 * hidden :]
    assert summary.shape == (2, SUMMARY_FEATURES + 2 * hidden)
    assert summary[:, 0] == pytest.approx(product.sum(1), abs=1e-6)  # the cosine of unit embeddings
    assert summary[:, 1:SUMMARY_FEATURES] == pytest.approx(length, abs=1e-6)
    assert summary[:, SUMMARY_FEATURES:] == pytest.approx(torch.cat([response, product], 1), abs=1e-6)


def test_summary_features_are_penalized_at_a_share_of_the_l2() -> None:
    penalties = feature_penalties("summary-first", 10, 10.0)
    assert penalties.tolist() == pytest.approx([0.1] * SUMMARY_FEATURES + [10.0] * 6)
    assert feature_penalties("prompt-aware", 3, 10.0).tolist() == [10.0] * 3


def test_a_lightly_penalized_feature_carries_the_preference_that_strong_l2_spreads_thin() -> None:
    """One informative feature among 50 noise features: with one strong penalty the head's scores barely
    separate the pairs; the light penalty on that feature lets 40 pairs give it its weight."""
    generator = torch.Generator().manual_seed(0)
    chosen, rejected = torch.randn(40, 51, generator=generator), torch.randn(40, 51, generator=generator)
    chosen[:, 0] += 1.0  # the winner is higher on feature 0, nothing else tells
    pairs = [RewardPair([], "", "")] * 40
    uniform = fit_head(chosen, rejected, pairs, l2=10.0, steps=100, seed=0)
    penalties = torch.full((51,), 10.0)
    penalties[0] = 0.1
    led = fit_head(chosen, rejected, pairs, l2=penalties, steps=100, seed=0)
    assert led[0] > 5 * uniform[0] > 0
    # the share of the head's weight on the informative feature
    assert led[0] / led.abs().sum() > 0.5 > uniform[0] / uniform.abs().sum()

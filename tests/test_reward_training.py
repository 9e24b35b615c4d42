"""Reward training on a tiny model: a learnable synthetic preference, and resuming a killed run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from apprentice.reward.data import PreferenceData, RankingGroup, RewardPair, split_by_prompt
from apprentice.reward.model import RewardModel
from apprentice.reward.train import RewardTrainingConfig, latest_checkpoint, train_reward_model

WORDS = [
    "the",
    "a",
    "and",
    "to",
    "of",
    "in",
    "on",
    "for",
    "with",
    "is",
    "it",
    "this",
    "that",
    "you",
    "we",
    "they",
    "sun",
    "moon",
    "cat",
    "dog",
    "tree",
    "water",
    "friend",
    "help",
]
MARKER = "great"


def synthetic_pairs(count: int, seed: int) -> PreferenceData:
    """Random word responses; the one containing the marker word wins. Lengths are random, so length says nothing."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        prompt = [{"role": "user", "content": " ".join(rng.choices(WORDS, k=6))}]
        winner = rng.choices(WORDS, k=rng.randint(3, 10))
        winner.insert(rng.randrange(len(winner) + 1), MARKER)
        loser = rng.choices(WORDS, k=rng.randint(4, 11))  # one word longer: the marker adds one to the winner
        pairs.append(RewardPair(prompt, " ".join(winner), " ".join(loser)))
    return PreferenceData(pairs=pairs)


def tiny_config(model: Path, **changes: object) -> RewardTrainingConfig:
    settings: dict[str, object] = {
        "model": str(model),
        "epochs": 2,
        "batch_size": 8,
        "learning_rate": 3e-3,
        "max_length": 64,
        "log_every": 5,
        "checkpoint_every": 1000,
    } | changes
    return RewardTrainingConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def one_thread() -> object:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_learnable_preference_is_learned(tiny_model: Path, tmp_path: Path) -> None:
    train, validation = split_by_prompt(synthetic_pairs(300, seed=0), validation_share=0.2)
    config = tiny_config(tiny_model)
    result = train_reward_model(train, config, tmp_path / "run", validation=validation, show_progress=False)
    assert result.evaluation["accuracy"] >= 0.9, result.evaluation
    assert result.evaluation["pairs"] == len(validation.pairs)
    assert 0.3 < result.evaluation["length_baseline_accuracy"] < 0.7  # length carries no signal here
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == result.steps and rows[-1]["loss"] < rows[0]["loss"]
    assert list((tmp_path / "run" / "tensorboard").glob("events.*"))
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["accuracy"] == result.evaluation["accuracy"]
    # normalized on the training responses: mean 0, std 1 there
    model = RewardModel.load(result.model_dir)
    responses = [(pair.prompt, text) for pair in train.pairs for text in (pair.chosen, pair.rejected)]
    scores = torch.tensor(model.score([p for p, _ in responses], [r for _, r in responses]))
    assert abs(scores.mean().item()) < 0.15 and 0.85 < scores.std().item() < 1.15


def test_ranking_groups_train_with_plackett_luce(tiny_model: Path, tmp_path: Path) -> None:
    pairs = synthetic_pairs(240, seed=1).pairs
    groups = [
        RankingGroup(first.prompt, [second.rejected, first.chosen, first.rejected], ranks=[2, 1, 2])
        for first, second in zip(pairs[::2], pairs[1::2], strict=True)
    ]
    train, validation = split_by_prompt(PreferenceData(groups=groups), validation_share=0.2)
    result = train_reward_model(
        train, tiny_config(tiny_model, epochs=3), tmp_path / "run", validation=validation, show_progress=False
    )
    assert result.evaluation["accuracy"] >= 0.9, result.evaluation


CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
from pathlib import Path
from test_reward_training import synthetic_pairs, tiny_config
from apprentice.reward.train import train_reward_model
config = tiny_config(Path({model!r}), epochs=1, batch_size=4, checkpoint_every=5)
train_reward_model(synthetic_pairs(240, seed=2), config, Path({run!r}), show_progress=False,
                   on_step=lambda step: time.sleep(0.15))
"""


def test_a_killed_training_resumes_from_its_checkpoint(tiny_model: Path, tmp_path: Path) -> None:
    killed_run = tmp_path / "killed"
    code = CHILD.format(tests=str(Path(__file__).parent), model=str(tiny_model), run=str(killed_run))
    child = subprocess.Popen([sys.executable, "-c", code], env=os.environ | {"OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            checkpoint = latest_checkpoint(killed_run)
            if checkpoint is not None and checkpoint.name >= "step-0000015":
                break
            time.sleep(0.05)
        assert child.poll() is None, "the training ended before it could be killed"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    checkpoint = latest_checkpoint(killed_run)
    assert checkpoint is not None
    killed_at = int(checkpoint.name.removeprefix("step-"))
    assert not (killed_run / "model").exists()

    config = tiny_config(tiny_model, epochs=1, batch_size=4, checkpoint_every=5)
    resumed = train_reward_model(synthetic_pairs(240, seed=2), config, killed_run, show_progress=False)
    assert resumed.resumed_from_step == killed_at and 15 <= killed_at < resumed.steps == 60
    uninterrupted = train_reward_model(synthetic_pairs(240, seed=2), config, tmp_path / "whole", show_progress=False)
    assert uninterrupted.resumed_from_step == 0
    resumed_weights = load_file(resumed.model_dir / "model.safetensors")
    whole_weights = load_file(uninterrupted.model_dir / "model.safetensors")
    for name, tensor in whole_weights.items():
        torch.testing.assert_close(resumed_weights[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    steps_logged = [json.loads(line)["step"] for line in (killed_run / "metrics.jsonl").read_text().splitlines()]
    assert steps_logged[-1] == 60

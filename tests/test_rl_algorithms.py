"""One step and a short learning run of each algorithm on the tiny random model.

One step: the loss is finite, the policy's parameters changed, the reference did not. Learning: the
toy reward (share of single-letter words, about 0.2 at the start) rises within a bounded number of
steps, with the seeds fixed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from apprentice.models import load_policy
from apprentice.rl.config import build_config
from apprentice.rl.dpo import train_dpo
from apprentice.rl.grpo import train_grpo
from apprentice.rl.metrics import read_metrics
from apprentice.rl.ppo import train_ppo
from apprentice.rl.rewards import CallableReward
from apprentice.rl.rloo import train_rloo
from apprentice.rl.session import TrainResult
from rl_toy import PROMPTS, letter_fraction

TRAINERS = {"grpo": train_grpo, "rloo": train_rloo, "ppo": train_ppo}
REWARD = CallableReward(letter_fraction, "rl_toy:letter_fraction")


def online_config(algorithm: str, output_dir: Path, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "output_dir": output_dir,
        "steps": 1,
        "prompts_per_step": 4,
        "max_new_tokens": 8,
        "temperature": 1.0,
        "learning_rate": 2e-2,
        "lr_schedule": "constant",
        "tensorboard": False,
        "no_eos_penalty": None,
        "kl_coef": 0.01,
    }
    if algorithm == "grpo":
        values["kl_coef"] = 0.01
    return build_config(algorithm, values | overrides)


def parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def assert_changed(before: dict[str, torch.Tensor], folder: Path) -> None:
    after, _ = load_policy(str(folder))
    changed = [name for name, value in after.state_dict().items() if not torch.equal(value, before[name])]
    assert changed, "no parameter changed"


def assert_reference_unchanged(result: TrainResult, before: dict[str, torch.Tensor]) -> None:
    reference = result.run.reference
    assert reference is not None
    assert all(torch.equal(value, before[name]) for name, value in reference.state_dict().items())
    assert not any(parameter.requires_grad for parameter in reference.parameters())


@pytest.mark.parametrize("algorithm", ["grpo", "rloo", "ppo"])
def test_one_online_step(algorithm: str, tiny_model: Path, tmp_path: Path) -> None:
    before = parameters(load_policy(str(tiny_model))[0])
    config = online_config(algorithm, tmp_path / "run")
    result = TRAINERS[algorithm](config, str(tiny_model), PROMPTS, REWARD, show_progress=False)
    assert math.isfinite(result.metrics["loss"])
    assert result.metrics["kl"] == pytest.approx(0.0, abs=1e-4)  # sampled from the reference itself
    assert_changed(before, result.policy_path)
    assert_reference_unchanged(result, before)
    logged = read_metrics(config.output_dir)
    assert [row["step"] for row in logged] == [1]
    assert {"reward", "reward_std", "length", "entropy", "tokens_per_second", "time/generate", "time/train"} <= set(
        logged[0]
    )
    assert (config.output_dir / "checkpoints" / "step-1" / "state.pt").is_file()
    assert (config.output_dir / "samples.jsonl").is_file()


def test_ppo_step_logs_value_statistics_and_saves_the_value_head(tiny_model: Path, tmp_path: Path) -> None:
    config = online_config("ppo", tmp_path / "run", minibatches=2, ppo_epochs=2)
    result = train_ppo(config, str(tiny_model), PROMPTS, REWARD, show_progress=False)
    for key in ("vf_loss", "clip_fraction", "explained_variance", "kl_coef", "approx_kl"):
        assert key in result.metrics
    assert (result.policy_path / "value_head.pt").is_file()
    # The value head starts at zero and is trained: after 4 minibatch steps it is no longer zero.
    head = torch.load(result.policy_path / "value_head.pt")
    assert head["weight"].abs().sum() > 0


def test_one_dpo_step(tiny_model: Path, tmp_path: Path) -> None:
    from apprentice.preferences import PreferencePair

    before = parameters(load_policy(str(tiny_model))[0])
    pairs = [
        PreferencePair(prompt, "a b c d", "the sun is good", "ann", 1, 1.0, index, index, "human")
        for index, prompt in enumerate(PROMPTS)
    ]
    config = build_config("dpo", {"output_dir": tmp_path / "run", "steps": 1, "batch_size": 4, "tensorboard": False})
    result = train_dpo(config, str(tiny_model), pairs, show_progress=False)
    assert result.metrics["loss"] == pytest.approx(math.log(2), abs=1e-4)  # policy == reference at the start
    assert_changed(before, result.policy_path)
    assert_reference_unchanged(result, before)


def test_dpo_log_probs_read_only_the_completion_logits_and_match_the_full_pass(tiny_model: Path) -> None:
    """Logits are computed from the earliest completion on; the sums equal those of every position's logits."""
    from apprentice.rl.core import token_logprobs
    from apprentice.rl.dpo import TokenizedPair, collate, sequence_logps

    model, _tokenizer = load_policy(str(tiny_model))
    pairs = [  # prompts of different lengths, answers of different lengths: padding everywhere
        TokenizedPair([5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15]),
        TokenizedPair([5, 6], [16, 17, 18], [19]),
    ]
    batch = collate(pairs, pad_id=0)
    logps, lengths = sequence_logps(model, batch)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    full = token_logprobs(logits[:, :-1], batch["input_ids"][:, 1:])
    mask = batch["completion_mask"][:, 1:]
    assert lengths.tolist() == [2.0, 3.0, 4.0, 1.0]
    torch.testing.assert_close(logps.detach(), (full * mask).sum(dim=1), rtol=1e-5, atol=1e-5)


def test_lora_reference_is_the_base_model_with_the_adapter_off(tiny_model: Path, tmp_path: Path) -> None:
    from apprentice.rl.rollout import adapter_disabled

    base, tokenizer = load_policy(str(tiny_model))
    config = online_config("grpo", tmp_path / "run", lora_rank=4, learning_rate=5e-2, steps=2)
    result = train_grpo(config, str(tiny_model), PROMPTS, REWARD, show_progress=False)
    assert result.run.reference is None  # one copy of the model in memory
    policy = result.run.policy
    inputs = tokenizer("hello the sun", return_tensors="pt")
    with torch.no_grad():
        expected = base(**inputs).logits
        with adapter_disabled(policy):
            disabled = policy(**inputs).logits
        enabled = policy(**inputs).logits
    torch.testing.assert_close(disabled, expected)
    assert not torch.allclose(enabled, expected)
    # The saved policy has the adapter merged in: a plain transformers folder.
    merged, _ = load_policy(str(result.policy_path))
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).logits, enabled, atol=1e-5, rtol=0)


def mean_reward(rows: list[dict[str, Any]]) -> float:
    return sum(row["reward"] for row in rows) / len(rows)


@pytest.mark.parametrize(
    ("algorithm", "steps", "overrides"),
    [
        ("grpo", 16, {"kl_coef": 0.0}),
        ("rloo", 16, {}),
        ("ppo", 16, {"prompts_per_step": 8, "minibatches": 2, "ppo_epochs": 2}),
    ],
)
def test_online_algorithms_learn_the_toy_reward(
    algorithm: str, steps: int, overrides: dict[str, Any], tiny_model: Path, tmp_path: Path
) -> None:
    config = online_config(algorithm, tmp_path / "run", steps=steps, checkpoint_every=1000, **overrides)
    TRAINERS[algorithm](config, str(tiny_model), PROMPTS, REWARD, show_progress=False)
    rows = read_metrics(config.output_dir)
    start, end = mean_reward(rows[:4]), mean_reward(rows[-4:])
    assert end > start + 0.2, f"{algorithm}: reward {start:.3f} -> {end:.3f}"


def test_dpo_learns_the_preferences(tiny_model: Path, tmp_path: Path) -> None:
    from apprentice.preferences import PreferencePair

    pairs = [
        PreferencePair(prompt, chosen, rejected, "ann", 1, 1.0, index, index, "human")
        for index, prompt in enumerate(PROMPTS)
        for chosen, rejected in (("a b c", "the sun"), ("x y z", "good dog"))
    ]
    config = build_config(
        "dpo",
        {
            "output_dir": tmp_path / "run",
            "steps": 15,
            "batch_size": 4,
            "learning_rate": 1e-2,
            "beta": 0.5,
            "lr_schedule": "constant",
            "tensorboard": False,
        },
    )
    result = train_dpo(config, str(tiny_model), pairs, show_progress=False)
    rows = read_metrics(config.output_dir)
    assert rows[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert result.metrics["loss"] < 0.3
    assert result.metrics["rewards/accuracy"] == 1.0


def test_a_kl_budget_stops_the_run_after_the_step_that_passes_it(tiny_model: Path, tmp_path: Path) -> None:
    config = online_config("grpo", tmp_path / "run", steps=20, kl_budget=1e-3, kl_budget_window=1)
    result = train_grpo(config, str(tiny_model), PROMPTS, REWARD, show_progress=False)
    logged = read_metrics(config.output_dir)
    assert len(logged) < 20
    assert all(row["kl"] <= 1e-3 for row in logged[:-1])
    assert logged[-1]["kl"] > 1e-3
    assert (config.output_dir / "checkpoints" / f"step-{logged[-1]['step']}" / "state.pt").is_file()
    assert result.policy_path.is_dir()


def test_value_head_learning_rate_scale_gives_the_head_its_own_group(tiny_model: Path, tmp_path: Path) -> None:
    config = online_config("ppo", tmp_path / "run", value_lr_scale=50.0)
    result = train_ppo(config, str(tiny_model), PROMPTS, REWARD, show_progress=False)
    groups = result.run.optimizer.param_groups
    assert len(groups) == 2
    assert groups[1]["lr"] == pytest.approx(50 * groups[0]["lr"])
    head = {id(parameter) for parameter in result.run.unwrapped.value_head.parameters()}
    assert {id(parameter) for parameter in groups[1]["params"]} == head
    assert head.isdisjoint(id(parameter) for parameter in groups[0]["params"])


def test_a_time_limit_stops_the_run_after_the_step_that_passes_it(tiny_model: Path, tmp_path: Path) -> None:
    config = online_config("grpo", tmp_path / "run", steps=5, time_limit_minutes=1e-6)
    train_grpo(config, str(tiny_model), PROMPTS, REWARD, show_progress=False)
    assert [row["step"] for row in read_metrics(config.output_dir)] == [1]
    assert (config.output_dir / "checkpoints" / "step-1" / "state.pt").is_file()


@pytest.mark.parametrize(
    ("algorithm", "micro_batch_size", "overrides"),
    [
        ("grpo", 2, {}),
        ("grpo", 3, {"loss_aggregation": "token_mean", "epochs": 2}),  # a 1-row remainder; ratios off 1
        ("grpo", 5, {"variant": "dr_grpo"}),
        ("rloo", 3, {"epochs": 2}),
        ("ppo", 3, {"prompts_per_step": 8, "minibatches": 2, "ppo_epochs": 2}),  # micro-batches of 3 and 1
    ],
)
def test_micro_batches_give_the_whole_batch_update(
    algorithm: str, micro_batch_size: int, overrides: dict[str, Any], tiny_model: Path, tmp_path: Path
) -> None:
    # The sampling-time passes (old log-probs, values, the reference's log-probs) go in the same micro-batches.
    # GRPO, RLOO: 4 prompts x 4 completions = 16 rows, with the KL to the reference on (GRPO: in the loss;
    # RLOO: in the reward). PPO: 8 rows, 4 optimizer steps on minibatches of 4. Adam's epsilon far above the
    # gradients makes its first step lr * g / (|g| + eps) ~ g, so the parameters compare the gradients
    # themselves, scale included (the default epsilon divides it away).
    results = {
        size: TRAINERS[algorithm](
            online_config(
                algorithm,
                tmp_path / f"run-{size}",
                micro_batch_size=size,
                learning_rate=1.0,
                adam_eps=1.0,
                **overrides,
            ),
            str(tiny_model),
            PROMPTS,
            REWARD,
            show_progress=False,
        )
        for size in (16, micro_batch_size)
    }
    whole, chunked = results[16], results[micro_batch_size]
    for key in ("loss", "clip_fraction", "entropy", "grad_norm", "reward", "kl"):
        assert chunked.metrics[key] == pytest.approx(whole.metrics[key], rel=1e-5, abs=1e-7), key
    assert whole.metrics["grad_norm"] > 0
    start = parameters(load_policy(str(tiny_model))[0])
    # The step moves parameters by up to about 1e-2; the two updates agree to float32 rounding: 1e-7 for the
    # update's own rounding, plus two units in the last place of the parameter (a parameter near 1 is spaced
    # 1.2e-7 from its neighbours, so one rounding step there alone is above 1e-7).
    moved = max(float((value - start[name]).abs().max()) for name, value in whole.run.policy.state_dict().items())
    assert moved > 1e-3
    whole_state = whole.run.unwrapped.state_dict()  # PPO's value head included
    chunked_state = chunked.run.unwrapped.state_dict()
    for name, value in whole_state.items():
        torch.testing.assert_close(chunked_state[name], value, atol=1e-7, rtol=2.4e-7)

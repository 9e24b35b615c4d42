"""Checkpoints: a run killed mid-way and resumed ends where an uninterrupted run ends; a diverging run stops
with a clear message and keeps its last good checkpoint."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from apprentice.models import load_policy
from apprentice.rl.checkpoint import latest_checkpoint
from apprentice.rl.config import build_config
from apprentice.rl.grpo import train_grpo
from apprentice.rl.metrics import read_metrics
from apprentice.rl.rewards import CallableReward
from apprentice.rl.session import TrainingDiverged
from rl_toy import PROMPTS

TESTS = Path(__file__).parent
OPTIONS = {
    "steps": 5,
    "prompts_per_step": 2,
    "minibatches": 2,
    "ppo_epochs": 2,
    "max_new_tokens": 6,
    "temperature": 1.0,
    "learning_rate": 1e-2,
    "no_eos_penalty": None,
    "checkpoint_every": 1,
    "keep_checkpoints": 2,
    "tensorboard": False,
}


def test_killed_and_resumed_run_ends_where_an_uninterrupted_run_ends(tiny_model: Path, tmp_path: Path) -> None:
    prompts_file = tmp_path / "prompts.jsonl"
    prompts_file.write_text("".join(json.dumps({"prompt": p[0]["content"]}) + "\n" for p in PROMPTS))

    # Both runs go through the CLI in child processes, so they share nothing with this test process
    # (other tests in it may have touched process-wide state such as accelerate's singletons).
    def command(output: Path, reward: str) -> list[str]:
        line = [sys.executable, "-m", "apprentice", "policy", "train", "--algo", "ppo", "--policy", str(tiny_model)]
        line += ["--prompts", str(prompts_file), "--reward", reward, "--output", str(output), "--no-progress"]
        line += ["--project", str(tmp_path / "no-project"), "--keep-checkpoints"]
        for key, value in OPTIONS.items():
            line += ["--set", f"{key}={json.dumps(value)}"]
        return line

    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    uninterrupted = subprocess.run(
        command(full_dir, "rl_toy:letter_fraction"), env=env, capture_output=True, text=True, timeout=300
    )
    assert uninterrupted.returncode == 0, uninterrupted.stdout[-2000:] + uninterrupted.stderr[-2000:]

    # The same run (the same scores, given slowly), killed with SIGKILL after its second checkpoint.
    killed_command = command(killed_dir, "rl_toy:slow_letter_fraction")
    child = subprocess.Popen(killed_command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while not (killed_dir / "checkpoints" / "step-2").exists():
        assert child.poll() is None, child.stdout.read().decode()[-2000:] if child.stdout else ""
        assert time.monotonic() < deadline, "the child never wrote its second checkpoint"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not (killed_dir / "policy").exists(), "the run finished before it was killed; the test proved nothing"
    stopped_at = latest_checkpoint(killed_dir)
    assert stopped_at is not None and int(stopped_at.name.split("-")[1]) < OPTIONS["steps"]

    resumed = subprocess.run([*killed_command, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]

    expected, _ = load_policy(str(full_dir / "policy"))
    actual, _ = load_policy(str(killed_dir / "policy"))
    for name, value in expected.state_dict().items():
        torch.testing.assert_close(actual.state_dict()[name], value, atol=1e-6, rtol=0, msg=name)
    expected_head = torch.load(full_dir / "policy" / "value_head.pt")
    actual_head = torch.load(killed_dir / "policy" / "value_head.pt")
    torch.testing.assert_close(actual_head["weight"], expected_head["weight"], atol=1e-6, rtol=0)
    # One continuous log: every step once, with the same rewards and KL coefficients.
    full_log, resumed_log = read_metrics(full_dir), read_metrics(killed_dir)
    assert [row["step"] for row in resumed_log] == list(range(1, OPTIONS["steps"] + 1))
    for ours, theirs in zip(resumed_log, full_log, strict=True):
        assert ours["reward"] == pytest.approx(theirs["reward"], abs=1e-6)
        assert ours["kl_coef"] == pytest.approx(theirs["kl_coef"], abs=1e-9)
    assert len(list((killed_dir / "checkpoints").glob("step-*"))) == OPTIONS["keep_checkpoints"]


def test_resume_refuses_changed_options(tiny_model: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from apprentice.cli import app

    prompts_file = tmp_path / "prompts.jsonl"
    prompts_file.write_text(json.dumps({"prompt": "hello"}) + "\n")
    base = ["policy", "train", "--algo", "grpo", "--policy", str(tiny_model), "--prompts", str(prompts_file)]
    base += ["--reward", "rl_toy:letter_fraction", "--output", str(tmp_path / "run"), "--no-progress"]
    base += ["--project", str(tmp_path), "--set", "max_new_tokens=4", "--set", "prompts_per_step=1", "--steps", "1"]
    base += ["--keep-checkpoints"]  # to extend the run once it has succeeded
    runner = CliRunner()
    first = runner.invoke(app, base)
    assert first.exit_code == 0, first.output
    changed = runner.invoke(app, [*base, "--resume", "--set", "kl_coef=0.5"])
    assert changed.exit_code == 1
    assert "option kl_coef was 0.04 when the run started and is 0.5 now" in " ".join(changed.output.split())
    # The micro-batch size changes memory, not the update: a run may resume with another (after an OOM, say).
    smaller = runner.invoke(app, [*base, "--resume", "--steps", "2", "--set", "micro_batch_size=1"])
    assert smaller.exit_code == 0, smaller.output
    assert [row["step"] for row in read_metrics(tmp_path / "run")] == [1, 2]
    other = runner.invoke(app, [*base, "--resume", "--algo", "rloo"])
    assert other.exit_code == 1
    assert "holds a grpo run, not rloo" in " ".join(other.output.split())


def test_a_diverging_run_stops_and_keeps_the_last_good_checkpoint(tiny_model: Path, tmp_path: Path) -> None:
    calls = {"count": 0}

    def breaks_on_third_step(prompts: list[str], completions: list[str]) -> list[float]:
        calls["count"] += 1
        return [math.nan if calls["count"] == 3 else 0.5 + 0.1 * i for i in range(len(completions))]

    config = build_config(
        "grpo",
        {
            "output_dir": tmp_path / "run",
            "steps": 5,
            "prompts_per_step": 2,
            "max_new_tokens": 4,
            "checkpoint_every": 1,
            "tensorboard": False,
        },
    )
    with pytest.raises(TrainingDiverged, match=r"step 3: the loss is nan .* last good checkpoint is .*step-2"):
        train_grpo(config, str(tiny_model), PROMPTS, CallableReward(breaks_on_third_step, "nan"), show_progress=False)  # type: ignore[arg-type]
    assert latest_checkpoint(config.output_dir) == config.output_dir / "checkpoints" / "step-2"
    assert torch.load(config.output_dir / "checkpoints" / "step-2" / "state.pt", weights_only=False)["step"] == 2
    assert not (config.output_dir / "policy").exists()


def test_micro_batch_losses_are_guarded_as_one_loss(tiny_model: Path, tmp_path: Path) -> None:
    from apprentice.rl.session import TrainingRun

    config = build_config("grpo", {"output_dir": tmp_path / "run", "tensorboard": False, "max_loss": 10.0})
    run = TrainingRun(config, str(tiny_model), total_steps=1, updates_per_step=1, need_reference=False)
    before = {name: value.detach().clone() for name, value in run.model.named_parameters()}
    weight = run.trainable[0]

    def share(value: float) -> torch.Tensor:  # a micro-batch loss of this value with a real gradient
        return weight.sum() * 1e-3 - float(weight.sum().detach()) * 1e-3 + value

    # A good micro-batch, then a non-finite one: the run stops and the good one's gradient is dropped too.
    with run.micro_batch(last=False):
        run.backward(share(1.0))
    assert weight.grad is not None
    with pytest.raises(TrainingDiverged, match="the loss is nan"), run.micro_batch(last=True):
        run.backward(share(math.nan))
    assert all(parameter.grad is None for parameter in run.trainable)
    # Shares of 6 and 6 are a loss of 12, over max_loss 10, though each share is under it.
    with run.micro_batch(last=False):
        run.backward(share(6.0))
    with pytest.raises(TrainingDiverged, match="the loss is 12"), run.micro_batch(last=True):
        run.backward(share(6.0))
    assert all(parameter.grad is None for parameter in run.trainable)
    # Stepping with a micro-batch still to come would apply a partial (unsynchronized) gradient.
    with run.micro_batch(last=False):
        run.backward(share(1.0))
    with pytest.raises(RuntimeError, match="before the last micro-batch"):
        run.step_optimizer()
    with run.micro_batch(last=True):
        run.backward(share(1.0))
    assert run.step_optimizer() > 0
    changed = [name for name, value in run.model.named_parameters() if not torch.equal(value, before[name])]
    assert changed

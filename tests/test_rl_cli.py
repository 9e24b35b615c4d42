"""`apprentice policy ...` through the CLI runner: DPO from a pairs file into a project, options, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from apprentice.cli import app
from apprentice.errors import ApprenticeError
from apprentice.project import init_project, open_project
from apprentice.rl.training import latest_reward_folder

runner = CliRunner()


def test_dpo_from_a_pairs_file_is_stored_as_a_trained_policy(tiny_model: Path, tmp_path: Path) -> None:
    init_project(tmp_path / "proj").close()
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {
            "prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": "a b c"}],
            "rejected": [{"role": "assistant", "content": "the sun"}],
        }
        for prompt in ("hello", "write a poem", "why is the moon sad")
    ]
    pairs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = runner.invoke(
        app,
        [
            *("policy", "train", "--algo", "dpo", "-p", str(tmp_path / "proj"), "--policy", str(tiny_model)),
            *("--pairs", str(pairs), "--steps", "2", "--set", "batch_size=2", "--name", "dpo-tiny", "--no-progress"),
        ],
    )
    assert result.exit_code == 0, result.output
    project = open_project(tmp_path / "proj")
    try:
        runs = project.store.runs("policy")
        assert [run.status for run in runs] == ["done"]
        assert runs[0].config["algorithm"] == "dpo" and runs[0].config["beta"] == 0.1
        from sqlalchemy import select

        from apprentice.store.tables import Policy

        with project.store._transaction() as session:
            policies = {policy.name: policy for policy in session.scalars(select(Policy))}
        trained = policies["dpo-tiny"]
        assert trained.kind == "trained"
        assert trained.parent_id == policies[str(tiny_model)].id
        folder = Path(trained.model_path or "")
        assert folder == (tmp_path / "proj" / "runs" / "policy-dpo-1" / "policy").resolve()
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(folder)  # loads as it is
        assert isinstance(model.lm_head.weight, torch.Tensor)
    finally:
        project.close()


def test_options_lists_every_field_with_its_help() -> None:
    result = runner.invoke(app, ["policy", "options", "ppo"])
    assert result.exit_code == 0, result.output
    assert "kl_target = 6.0" in result.output and "GAE lambda" in result.output


def test_errors_are_one_sentence_and_exit_1(tiny_model: Path, tmp_path: Path) -> None:
    base = ["policy", "train", "-p", str(tmp_path), "--policy", str(tiny_model), "--output", str(tmp_path / "r")]
    cases = [
        (["--algo", "a2c"], "unknown algorithm 'a2c'"),
        (["--algo", "grpo", "--set", "nonsense"], "write it as KEY=VALUE"),
        (["--algo", "grpo", "--set", "completions_per_prompt=1"], "completions_per_prompt"),
        (["--algo", "grpo", "--set", "micro_batch_size=0"], "option micro_batch_size: Input should be greater than"),
        (["--algo", "grpo", "--reward", "rl_toy:letter_fraction"], "no prompts: give --prompts FILE"),
        (["--algo", "ppo", "--prompts", str(tmp_path / "missing.jsonl"), "--reward", "x:y"], "no such file"),
        (["--algo", "ppo", "--resume", "--output", str(tmp_path / "fresh"), "--reward", "x:y"], "no checkpoint under"),
    ]
    (tmp_path / "prompts.jsonl").write_text(json.dumps({"prompt": "hello"}) + "\n")
    cases.append((["--algo", "rloo", "--prompts", str(tmp_path / "prompts.jsonl")], "rloo needs a reward"))
    for extra, message in cases:
        result = runner.invoke(app, base + extra + ["--no-progress"])
        assert result.exit_code == 1, (extra, result.output)
        assert message in " ".join(result.output.split()), (extra, result.output)


def test_reward_latest_is_the_newest_finished_reward_run_with_a_folder(tmp_path: Path) -> None:
    project = init_project(tmp_path / "project")
    try:
        with pytest.raises(ApprenticeError, match="no finished reward model yet"):
            latest_reward_folder(project)
        default = project.store.start_run("reward", {})
        (project.root / "runs" / f"reward-{default.id}").mkdir(parents=True)
        project.store.finish_run(default.id, metrics={})  # an older run, in the default folder, path not recorded
        assert latest_reward_folder(project) == str(project.root / "runs" / f"reward-{default.id}")
        elsewhere = project.store.start_run("reward", {})
        (tmp_path / "mine").mkdir()
        project.store.finish_run(elsewhere.id, metrics={}, output_path=str(tmp_path / "mine"))  # --run-dir
        assert latest_reward_folder(project) == str(tmp_path / "mine")
        failed = project.store.start_run("reward", {})
        (tmp_path / "broken").mkdir()
        project.store.finish_run(failed.id, metrics={}, status="failed", output_path=str(tmp_path / "broken"))
        assert latest_reward_folder(project) == str(tmp_path / "mine")
        # A loop round's reward run from before runs recorded their folders.
        looped = project.store.start_run("reward", {"loop_round": 3})
        (project.root / "loop" / "round-3" / "reward").mkdir(parents=True)
        project.store.finish_run(looped.id, metrics={})
        assert latest_reward_folder(project) == str(project.root / "loop" / "round-3" / "reward")
    finally:
        project.close()

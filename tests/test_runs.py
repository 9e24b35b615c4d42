"""Run folders through the CLI: one numbered folder per run, nothing overwritten unless asked, files shared per
the umask, checkpoints gone once a run succeeds, `apprentice runs [prune]` and `apprentice policies`."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from apprentice.cli import app
from apprentice.project import init_project, open_project
from apprentice.run_folders import claim_numbered_folder, human_size, newest_numbered_folder
from test_reward_cli import write_pairs

runner = CliRunner()


@pytest.fixture
def shared_umask() -> Iterator[None]:
    """The usual umask of a shared machine: group and others may read."""
    before = os.umask(0o022)
    yield
    os.umask(before)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    init_project(tmp_path / "project").close()
    write_pairs(tmp_path / "pairs.jsonl", 40)
    result = runner.invoke(app, ["prompts", "import", str(tmp_path / "pairs.jsonl"), "-p", str(tmp_path / "project")])
    assert result.exit_code == 0, result.output
    return tmp_path / "project"


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables on one line whatever width the shared console took when it was made."""
    from apprentice.cli_common import console

    monkeypatch.setattr(console, "width", 250)


def invoke(*args: object) -> str:
    result = runner.invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def fails(*args: object) -> str:
    result = runner.invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 1, result.output
    return " ".join(result.output.split())


def assert_shared(folder: Path) -> None:
    """Folders 0755 and files 0644, as mkdir and open give under umask 022."""
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755, folder
    for path in folder.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path


def test_each_policy_run_has_its_own_folder_and_name(project: Path, tiny_model: Path, shared_umask: None) -> None:
    common = [
        "policy",
        "train",
        "--algo",
        "dpo",
        "-p",
        project,
        "--steps",
        "1",
        "--set",
        "batch_size=2",
        "--no-progress",
    ]
    dpo = [*common, "--policy", tiny_model]
    assert "Stored as policy 'policy-dpo-1'" in invoke(*dpo)
    assert "Stored as policy 'policy-dpo-2'" in invoke(*dpo)
    runs = project / "runs"
    for number in (1, 2):
        folder = runs / f"policy-dpo-{number}"
        assert json.loads((folder / "config.json").read_text())["algorithm"] == "dpo"
        assert not (folder / "checkpoints").exists()  # deleted once the run succeeded
        assert_shared(folder / "policy")  # teammates can load it
    opened = open_project(project)
    try:
        paths = {name: opened.store.policy_named(name).model_path for name in ("policy-dpo-1", "policy-dpo-2")}
        assert paths == {f"policy-dpo-{n}": str((runs / f"policy-dpo-{n}" / "policy").resolve()) for n in (1, 2)}
    finally:
        opened.close()

    # An occupied folder is replaced only when asked; a name in use is refused.
    assert "holds a run already" in fails(*dpo, "--output", runs / "policy-dpo-1")
    assert "exists already" in fails(*dpo, "--name", "policy-dpo-1")
    from_stored = [*common, "--policy", "policy-dpo-2"]  # a stored policy's name as the starting policy
    invoke(*from_stored, "--output", runs / "policy-dpo-1", "--overwrite", "--name", "again", "--keep-checkpoints")
    assert (runs / "policy-dpo-1" / "checkpoints").is_dir()

    # A failed command leaves no folder and no config.json behind.
    assert "DPO learns from preference pairs" in fails(*dpo, "--reward", "rl_toy:letter_fraction")
    assert sorted(path.name for path in runs.iterdir()) == ["policy-dpo-1", "policy-dpo-2"]

    # A stored policy's name works where a model is named.
    generated = invoke("generate", "-p", project, "--model", "policy-dpo-2", "--limit", "2", "--max-new-tokens", "4")
    assert "with policy-dpo-2" in generated
    opened = open_project(project)
    try:
        second = opened.store.policy_named("policy-dpo-2")
        assert opened.store.response_counts()[second.id] > 0
        assert opened.store.policy_named("again").parent_id == second.id
    finally:
        opened.close()

    listed = invoke("policies", "-p", project)
    assert all(name in listed for name in ("policy-dpo-1", "policy-dpo-2", "again", "trained", "1 step"))
    listed = invoke("runs", "-p", project)
    assert "policy dpo" in listed and "failed" in listed and "generate" in listed


def test_reward_runs_are_numbered_per_kind_and_their_checkpoints_pruned(
    project: Path, tiny_model: Path, shared_umask: None
) -> None:
    opened = open_project(project)
    for _ in range(3):  # other kinds of run first: the global run id is not the reward run's number
        with opened.store.recording_run("generate", {}):
            pass
    opened.close()
    reward = ["reward", "train", "-p", project, "--model", tiny_model, "--max-length", "32", "--seed", "1"]
    assert "Reward model in" in invoke(*reward)
    invoke(*reward, "--keep-checkpoints")
    runs = project / "runs"
    assert sorted(path.name for path in runs.iterdir()) == ["reward-1", "reward-2"]
    assert not (runs / "reward-1" / "checkpoints").exists()
    assert (runs / "reward-2" / "checkpoints").is_dir()
    assert_shared(runs / "reward-1" / "model")
    assert "holds a run already" in fails(*reward, "--run-dir", runs / "reward-1")

    # --reward takes a reward run's folder, as `reward eval` and `reward score` do.
    grpo = ["policy", "train", "--algo", "grpo", "-p", project, "--policy", tiny_model, "--steps", "1"]
    grpo += ["--set", "prompts_per_step=1", "--set", "completions_per_prompt=2", "--set", "max_new_tokens=4"]
    assert "Stored as policy 'policy-grpo-1'" in invoke(*grpo, "--reward", runs / "reward-1", "--no-progress")

    listed = invoke("runs", "-p", project)
    assert "reward" in listed and "too little data" in listed and "runs/reward-2" in listed
    size = sum(path.stat().st_size for path in (runs / "reward-2" / "checkpoints").rglob("*") if path.is_file())
    assert human_size(size) in listed
    assert f"Would delete the checkpoints of 1 run, freeing {human_size(size)}" in invoke(
        "runs", "prune", "-p", project, "--dry-run"
    )
    assert (runs / "reward-2" / "checkpoints").is_dir()
    assert f"freed {human_size(size)}" in invoke("runs", "prune", "-p", project)
    assert not (runs / "reward-2" / "checkpoints").exists() and (runs / "reward-2" / "model").is_dir()
    assert "nothing to prune" in invoke("runs", "prune", "-p", project)


def test_numbers_are_not_reused_after_a_folder_is_deleted(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    (runs / "policy-dpo-3").mkdir(parents=True)
    (runs / "policy-dpo").mkdir()  # an unnumbered folder from before is left alone
    assert claim_numbered_folder(runs, "policy-grpo").name == "policy-grpo-1"
    assert claim_numbered_folder(runs, "policy-dpo").name == "policy-dpo-4"
    recorded = [str(runs / "policy-dpo-7"), str(tmp_path / "elsewhere" / "policy-dpo-9")]
    assert claim_numbered_folder(runs, "policy-dpo", recorded).name == "policy-dpo-8"
    assert newest_numbered_folder(runs, "policy-dpo") == runs / "policy-dpo-8"  # what --resume carries on
    assert newest_numbered_folder(runs, "policy-ppo") is None


@pytest.mark.parametrize(("size", "shown"), [(950, "950 B"), (12_345_678, "12.3 MB"), (2_100_000_000, "2.1 GB")])
def test_sizes_read_as_people_write_them(size: int, shown: str) -> None:
    assert human_size(size) == shown


def test_saved_models_follow_the_umask(tiny_model: Path, tmp_path: Path, shared_umask: None) -> None:
    from apprentice.reward.model import RewardModel

    RewardModel.from_backbone(str(tiny_model), max_length=32).save(tmp_path / "reward")
    assert_shared(tmp_path / "reward")
    dpo = ["policy", "train", "--algo", "dpo", "-p", tmp_path / "no-project", "--policy", tiny_model]
    write_pairs(tmp_path / "pairs.jsonl", 4)
    invoke(*dpo, "--pairs", tmp_path / "pairs.jsonl", "--steps", "1", "--output", tmp_path / "run", "--no-progress")
    assert_shared(tmp_path / "run")


def test_a_reward_run_folder_is_a_reward(tiny_model: Path, tmp_path: Path) -> None:
    from apprentice.reward.model import RewardModel
    from apprentice.rl.rewards import parse_reward

    model = RewardModel.from_backbone(str(tiny_model), max_length=32)
    model.save(tmp_path / "run" / "model")  # as `apprentice reward train` lays out its run folder
    prompt = [{"role": "user", "content": "hello"}]
    scores = parse_reward([str(tmp_path / "run")], batch_size=2)([prompt, prompt], ["the sun", "the moon"])
    assert scores.tolist() == pytest.approx(model.score([prompt, prompt], ["the sun", "the moon"]), abs=1e-5)

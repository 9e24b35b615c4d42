"""Messages that help: user text printed as written, how to resume after Ctrl-C, the pace of long runs,
readable --help, plain option values, what `prompts import --held-out` did with prompts already stored."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from apprentice.cli import app
from apprentice.pace import Pace, duration
from apprentice.project import init_project, open_project
from apprentice.store.records import GeneratedResponse, PromptRecord

runner = CliRunner()


def one_line(output: str) -> str:
    return " ".join(output.split())


def test_a_typo_in_a_section_name_is_printed_with_its_brackets(tmp_path: Path) -> None:
    init_project(tmp_path / "p").close()
    settings = tmp_path / "p" / "apprentice.toml"
    settings.write_text(settings.read_text().replace("[generation]", "[generaton]"))
    result = runner.invoke(app, ["status", "-p", str(tmp_path / "p")])
    assert result.exit_code == 1
    assert "unknown section [generaton]" in one_line(result.output)


def test_a_file_name_with_brackets_is_printed_as_written(tmp_path: Path) -> None:
    init_project(tmp_path / "p").close()
    data = tmp_path / "data[v2].jsonl"
    data.write_text(json.dumps({"prompt": "hello there"}) + "\n")
    result = runner.invoke(app, ["prompts", "import", str(data), "-p", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert "data[v2].jsonl" in one_line(result.output)
    missing = runner.invoke(app, ["prompts", "import", str(tmp_path / "gone[1].jsonl"), "-p", str(tmp_path / "p")])
    assert missing.exit_code == 1 and "gone[1].jsonl" in one_line(missing.output)


def test_ctrl_c_in_policy_training_says_how_to_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import apprentice.rl.training

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(apprentice.rl.training, "train_policy", interrupted)
    arguments = ["policy", "train", "--algo", "dpo", "--output", str(tmp_path / "run"), "--no-progress"]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 130
    assert "nothing to resume; run the same command again" in one_line(result.output)
    (tmp_path / "run" / "checkpoints" / "step-4").mkdir(parents=True)
    result = runner.invoke(app, [*arguments, "--resume"])  # a folder holding a run is carried on, never reused
    assert result.exit_code == 130
    assert f"the checkpoint at step 4 in {tmp_path / 'run'}, run the same command with --resume." in one_line(
        result.output
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_pace_estimates_the_whole_run_after_the_first_step_and_reports_each_minute_off_a_terminal() -> None:
    clock = Clock()
    output = io.StringIO()
    pace = Pace("GRPO training", 100, console=Console(file=output, width=200), hint="fewer steps", clock=clock)
    clock.now = 80.0
    pace.update(1, "reward 0.1")
    for step in range(2, 101):
        clock.now += 80.0
        pace.update(step, "reward 0.2")
    lines = output.getvalue().splitlines()
    assert lines[0] == (
        "GRPO training: step 1 of 100 took 80 s; the remaining 99 steps take about 2 h 12 min at this pace "
        "(fewer steps)"
    )
    assert lines[1] == "GRPO training: step 2 of 100, reward 0.2; 3 min so far, about 2 h 11 min to go"
    assert lines[-1] == "GRPO training: step 100 of 100, reward 0.2; 2 h 13 min so far"
    assert len(lines) == 1 + 99  # one line a minute: every 80-second step here


def test_pace_resumed_and_on_a_terminal_prints_the_estimate_only() -> None:
    clock = Clock()
    output = io.StringIO()
    terminal = Console(file=output, force_terminal=True, width=200)
    pace = Pace("reward training", 10, start=4, console=terminal, clock=clock)
    for step in range(5, 11):
        clock.now += 120.0
        pace.update(step)
    assert output.getvalue().splitlines() == [
        "reward training: step 5 of 10 took 2 min; the remaining 5 steps take about 10 min at this pace"
    ]
    assert duration(30) == "30 s" and duration(3600 * 2 + 60 * 38) == "2 h 38 min"


def test_help_shows_flags_as_pairs_and_is_not_cut_off() -> None:
    result = runner.invoke(app, ["policy", "train", "--help"])
    assert result.exit_code == 0
    assert "<bool>" not in result.output and "…" not in result.output
    assert "--resume / --no-resume" in result.output
    assert "Run folder (default: the next PROJECT/runs/policy-ALGO-N)." in result.output


def test_policy_options_prints_plain_values() -> None:
    result = runner.invoke(app, ["policy", "options", "grpo"])
    assert result.exit_code == 0
    assert "PosixPath" not in result.output
    lines = result.output.splitlines()
    assert any(line.startswith("output_dir = policy-run ") for line in lines)
    assert any(line.startswith("tensorboard = true ") for line in lines)
    assert any(line.startswith("lr_schedule = linear ") for line in lines)


def test_importing_held_out_prompts_moves_unused_training_prompts_and_says_what_it_kept(tmp_path: Path) -> None:
    project = init_project(tmp_path / "p")
    store = project.store
    texts = ["unused one", "unused two", "answered already"]
    store.import_prompts([PromptRecord([{"role": "user", "content": text}]) for text in texts], [], source="t")
    answered = next(prompt for prompt in store.prompts() if prompt.messages[0]["content"] == "answered already")
    policy = store.ensure_policy("base", kind="base", model_path=None)
    store.add_generation(policy.id, [GeneratedResponse(answered.id, "an answer", 2, True)], {}, lambda *_: [])
    project.close()
    data = tmp_path / "eval.jsonl"
    data.write_text("".join(json.dumps({"prompt": text}) + "\n" for text in [*texts, "brand new"]))
    result = runner.invoke(app, ["prompts", "import", str(data), "--held-out", "-p", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    shown = one_line(result.output)
    assert "1 new prompts, 3 already present" in shown
    assert "2 of the prompts already present were training prompts not yet used; now they are held out" in shown
    assert "1 of the prompts already present stay training prompts: responses were generated for them" in shown
    project = open_project(tmp_path / "p")
    held = {prompt.messages[0]["content"] for prompt in project.store.prompts(held_out=True)}
    project.close()
    assert held == {"unused one", "unused two", "brand new"}


def test_pace_off_a_terminal_prints_a_line_a_minute_however_short_the_steps() -> None:
    clock = Clock()
    output = io.StringIO()
    pace = Pace("reward training", 30, console=Console(file=output, width=200), clock=clock)
    for step in range(1, 31):
        clock.now += 10.0
        pace.update(step, "loss 0.5")
    steps = [int(line.split("step ")[1].split(" ")[0]) for line in output.getvalue().splitlines()]
    assert steps == [1, 7, 13, 19, 25, 30]


def test_policy_training_estimates_its_time_after_the_first_step(tiny_model: Path, tmp_path: Path) -> None:
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
    arguments = ["policy", "train", "--algo", "dpo", "--policy", str(tiny_model), "--pairs", str(pairs)]
    result = runner.invoke(
        app, [*arguments, "--output", str(tmp_path / "run"), "--steps", "3", "--set", "batch_size=2"]
    )
    assert result.exit_code == 0, result.output
    assert "DPO training: step 1 of 3 took" in one_line(result.output)
    assert "the remaining 2 steps take about" in one_line(result.output)


def test_ctrl_c_in_the_loop_says_how_to_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import apprentice.loop

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    init_project(tmp_path / "p").close()
    monkeypatch.setattr(apprentice.loop, "run_loop", interrupted)
    result = runner.invoke(app, ["loop", "-p", str(tmp_path / "p")])
    assert result.exit_code == 130
    assert f"Run `apprentice loop -p {tmp_path / 'p'}` again to resume" in one_line(result.output)

"""`apprentice eval` and `apprentice report` on a project trained by hand (no loop rounds), on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner, Result

from apprentice.cli import app
from apprentice.policy_eval import rate_text
from apprentice.project import init_project, open_project
from apprentice.settings import Settings
from apprentice.store.records import PromptRecord
from apprentice.studio.security import CHEAP_HASHES_ENV

runner = CliRunner()
WORDS = ["sun", "moon", "cat", "dog", "tree", "water", "friend", "code", "python", "list", "number", "poem"]


@pytest.fixture(autouse=True)
def one_thread() -> object:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def invoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(arg) for arg in args])


def ok(*args: str | Path) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return " ".join(result.stdout.split())


@pytest.fixture
def trained_by_hand(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with 10 held-out prompts, judged pairs, a reward run and a DPO policy: no loop round."""
    monkeypatch.setenv(CHEAP_HASHES_ENV, "1")
    settings = Settings()
    settings.model.policy = str(tiny_model)
    settings.loop.oracle = "concision"  # the project simulates its annotators, so evaluation has a gold score
    project = init_project(tmp_path / "project", settings=settings)
    held_out = [PromptRecord([{"role": "user", "content": f"a poem about the {word}"}]) for word in WORDS[:10]]
    project.store.import_prompts(held_out, [], source="held-out")
    project.store.hold_out_prompts([prompt.id for prompt in project.store.prompts()])
    project.close()
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"prompt": f"why is the {word} sad", "chosen": f"the {word} is happy", "rejected": "no"} for word in WORDS]
    pairs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    folder = tmp_path / "project"
    ok("prompts", "import", pairs, "-p", folder)
    ok("reward", "train", "-p", folder, "--model", tiny_model, "--max-length", "64", "--run-dir", tmp_path / "rm")
    ok(
        *("policy", "train", "--algo", "dpo", "-p", folder, "--steps", "2", "--set", "batch_size=2"),
        *("--set", "learning_rate=0.05", "--name", "tuned", "--no-progress"),
    )
    return folder


def test_eval_compares_stored_policies_with_the_base_and_the_report_shows_them(
    trained_by_hand: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apprentice.cli_common import console

    monkeypatch.setattr(console, "width", 240)  # the table's cells unwrapped, as on a wide terminal
    arguments = ["eval", tiny_model, "tuned", "-p", trained_by_hand, "--max-new-tokens", "6"]
    output = ok(*arguments, "--out", tmp_path / "eval.json")
    results = json.loads((tmp_path / "eval.json").read_text())
    assert results == json.loads((trained_by_hand / "runs" / "eval-1" / "eval.json").read_text())
    assert results["prompts"] == 10 and results["answers_per_policy"] == 20
    assert results["reward"] == [str(tmp_path / "rm")] and results["oracle"] == "concision"
    base, tuned = results["results"]
    assert (base["name"], tuned["name"]) == (str(tiny_model), "tuned")
    assert base["kl_from_base"] == 0.0 and tuned["kl_from_base"] != 0.0
    assert base["win_rate_vs_base_reward"] is None
    for kind in ("reward", "gold"):
        assert tuned[f"{kind}_mean"] is not None
        rate = tuned[f"win_rate_vs_base_{kind}"]
        assert rate["comparisons"] == 20 and 0.0 <= rate["rate"] <= 1.0
        assert rate_text(rate) in output  # the table shows each rate with its interval and count
    assert f"{tuned['reward_mean']:.3f} (n=20)" in output
    assert "base: " in output and "gold oracle concision" in output

    # a second evaluation gets its own folder; the answers of each policy are kept beside the results
    ok(*arguments, "--oracle", "none", "--limit", "3", "--reward", "2*latest")
    second = json.loads((trained_by_hand / "runs" / "eval-2" / "eval.json").read_text())
    assert second["reward"] == [f"2*{tmp_path / 'rm'}"] and second["results"][1]["reward_mean"] is not None
    assert second["oracle"] is None and second["results"][1]["win_rate_vs_base_gold"] is None
    assert "too little data (" in rate_text(second["results"][1]["win_rate_vs_base_reward"])
    assert len((trained_by_hand / "runs" / "eval-1" / "answers-2.jsonl").read_text().splitlines()) == 20
    opened = open_project(trained_by_hand)
    assert [run.status for run in opened.store.runs("eval")] == ["done", "done"]
    opened.close()

    output = ok("report", "-p", trained_by_hand)
    page = (trained_by_hand / "report" / "report.html").read_text()
    assert str(trained_by_hand / "report" / "report.html") in output.replace(" ", "")
    assert "tuned" in page and "dpo, 2 steps" in page and str(tmp_path / "rm") in page
    assert rate_text(tuned["win_rate_vs_base_reward"]) in page and "data:image/png;base64," in page
    assert "Sample answers" in page
    figures = json.loads((trained_by_hand / "report" / "report.json").read_text())
    assert [evaluation["run"] for evaluation in figures["evaluations"]] == [
        run.id for run in open_project(trained_by_hand).store.runs("eval")
    ]
    assert {policy["name"] for policy in figures["policies"]} == {"tuned", str(tiny_model)}


def test_the_report_before_any_evaluation_shows_the_runs_and_says_what_to_run(trained_by_hand: Path) -> None:
    page_path = trained_by_hand / "report" / "report.html"
    ok("report", "-p", trained_by_hand)
    page = page_path.read_text()
    assert "held-out accuracy" in page and "apprentice eval BASE POLICY" in page


def test_eval_errors_are_one_sentence(tmp_path: Path, tiny_model: Path) -> None:
    init_project(tmp_path / "empty").close()
    cases = [
        (["eval", tiny_model], "no held-out prompts to evaluate on"),
        (["eval", "no-such-policy"], "model 'no-such-policy' is neither a local folder"),
        (["eval", tiny_model, tiny_model], "named twice"),
        (["eval", tiny_model, "--temperature", "0"], "--temperature must be above 0"),
    ]
    for arguments, message in cases:
        result = invoke(*arguments, "-p", tmp_path / "empty")
        assert result.exit_code == 1, (arguments, result.output)
        assert message in " ".join(result.output.split()), (arguments, result.output)
    result = invoke("report", "-p", tmp_path / "empty")
    assert result.exit_code == 1 and "nothing to report yet" in " ".join(result.output.split())


def test_rates_carry_their_count_and_interval_or_say_too_little_data() -> None:
    assert rate_text(None) == "-"
    assert rate_text({"wins": 3, "comparisons": 3, "rate": 1.0, "low": 0.44, "high": 1.0000000000000002}) == (
        "too little data (3/3)"
    )
    shown = rate_text({"wins": 20, "comparisons": 20, "rate": 1.0, "low": 0.839, "high": 1.0000000000000002})
    assert shown == "1.00 [0.84, 1.00] (20/20)"


def test_a_stopped_evaluation_leaves_no_folder_and_a_failed_run(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = init_project(tmp_path / "project")
    project.store.import_prompts([PromptRecord([{"role": "user", "content": "hi"}])], [], source="test")
    project.store.hold_out_prompts([prompt.id for prompt in project.store.prompts()])
    project.close()

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("apprentice.evaluation.sample_policy", interrupted)
    result = invoke("eval", tiny_model, "-p", tmp_path / "project", "--oracle", "none")
    assert result.exit_code != 0
    assert not (tmp_path / "project" / "runs" / "eval-1").exists()
    opened = open_project(tmp_path / "project")
    assert [run.status for run in opened.store.runs("eval")] == ["failed"]
    opened.close()
    # A number the store recorded is not handed out again, though its folder is gone.
    assert invoke("eval", tiny_model, "-p", tmp_path / "project", "--oracle", "none").exit_code != 0
    opened = open_project(tmp_path / "project")
    assert [Path(run.output_path or "").name for run in opened.store.runs("eval")] == ["eval-1", "eval-2"]
    opened.close()

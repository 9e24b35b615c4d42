"""Simulated annotators judging through a real studio server over HTTP."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from apprentice.cli import app
from apprentice.project import init_project, open_project
from apprentice.settings import Settings
from apprentice.simulate import HUMAN_AGREEMENT
from apprentice.store.records import ComparisonPlan, GeneratedResponse, PromptRecord
from apprentice.studio.security import CHEAP_HASHES_ENV

ORACLE_MODULE = '''
def score_in_text(prompts, responses):
    """The oracle reads the quality written into the synthetic response: 'quality 0.42 ...'."""
    return [float(response.split()[1]) for response in responses]
'''


@pytest.fixture
def scored_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """500 pair comparisons, each wanting 4 judgments, whose responses carry their oracle score in the text."""
    import random

    (tmp_path / "sim_oracle.py").write_text(ORACLE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{':'.join(sys.path)}")
    monkeypatch.setenv(CHEAP_HASHES_ENV, "1")
    folder = tmp_path / "project"
    project = init_project(folder, settings=Settings())
    store = project.store
    store.import_prompts(
        [PromptRecord([{"role": "user", "content": f"question {i}"}]) for i in range(500)], [], source="t"
    )
    policy = store.ensure_policy("synthetic", kind="base", model_path=None)
    rng = random.Random(0)
    generated = []
    for prompt in store.prompts():
        for side in ("a", "b"):
            generated.append(GeneratedResponse(prompt.id, f"quality {rng.gauss(0, 0.6):.4f} {side}", 3, True))

    def one_pair(prompt_id: int, response_ids: list[int]) -> list[ComparisonPlan]:
        return [ComparisonPlan("pair", prompt_id, response_ids, overlap=4)]

    store.add_generation(policy.id, generated, {}, one_pair)
    project.close()
    return folder


def test_a_calibrated_panel_agrees_like_people_and_fills_every_overlap(scored_project: Path) -> None:
    result = CliRunner().invoke(
        app, ["simulate", "-p", str(scored_project), "--annotators", "4", "--oracle", "sim_oracle:score_in_text"]
    )
    assert result.exit_code == 0, result.output
    project = open_project(scored_project)
    judged = project.store.judged_comparisons()
    assert len(judged) == 2000  # 500 comparisons x overlap 4, each annotator once per comparison
    per_comparison: dict[int, set[str]] = {}
    for row in judged:
        per_comparison.setdefault(row.comparison_id, set()).add(row.annotator)
        assert row.source == "api"
    assert all(len(names) == 4 for names in per_comparison.values())
    assert {project.store.annotator_account(name=f"sim-0{i}").kind for i in range(1, 5)} == {"simulated"}
    assert all(comparison.status == "complete" for comparison in project.store.comparisons())
    from apprentice.rates import describe_rate
    from apprentice.simulate import measured_pair_agreement

    agreement, overlapping = measured_pair_agreement(judged, {f"sim-0{i}" for i in range(1, 5)})
    assert overlapping == 3000
    assert agreement == pytest.approx(HUMAN_AGREEMENT, abs=0.03), agreement
    shown = describe_rate(agreement, 3000)
    measured = f"agreement between two answers to the same comparison {shown}, expected 73%"
    assert f"{measured} (target 73%)" in " ".join(result.output.split())  # as one line, however rich wraps it
    project.close()


def test_a_careless_panel_agrees_at_chance(scored_project: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "-p",
            str(scored_project),
            "--annotators",
            "4",
            "--careless",
            "4",
            "--oracle",
            "sim_oracle:score_in_text",
        ],
    )
    assert result.exit_code == 0, result.output
    project = open_project(scored_project)
    from apprentice.simulate import measured_pair_agreement

    agreement, _ = measured_pair_agreement(project.store.judged_comparisons(), {f"sim-0{i}" for i in range(1, 5)})
    assert agreement == pytest.approx(0.5, abs=0.04)
    project.close()


def test_simulate_refuses_a_panel_larger_than_itself(scored_project: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "-p", str(scored_project), "--annotators", "2", "--careless", "3"])
    assert result.exit_code == 1 and "exceed --annotators" in result.output

"""`apprentice demo` on a tiny model: the whole loop for one round, a report, instructions for people."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from apprentice.cli import app
from apprentice.project import open_project
from apprentice.studio.security import CHEAP_HASHES_ENV


def test_demo_runs_a_round_and_writes_the_report(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CHEAP_HASHES_ENV, "1")
    monkeypatch.setenv("COLUMNS", "200")  # the final table one line per row, so that a row can be read back
    folder = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", str(folder), "--model", str(tiny_model), "--rounds", "1"])
    assert result.exit_code == 0, result.output
    assert (folder / "loop" / "report.html").is_file()
    assert "[loop] annotators = 0" in result.output and "apprentice studio" in result.output
    shown = " ".join(result.output.split())
    # the round's rates on a handful of items say so, with their counts, here and in the final table
    # the reward's accuracy rests on every label of the round (cross-validated): a figure with its interval and
    # its count
    reward = re.search(
        r"reward accuracy on the labels, cross-validated over prompts: "
        r"(\d\.\d{3} \(95% CI [\d.]+-[\d.]+, |too little data \()n=(\d+) on \d+ prompts\)",
        shown,
    )
    assert reward and int(reward.group(2)) >= 20
    assert "agreement between two answers to the same comparison" in shown
    assert not re.search(r"agreement \d+%", shown)
    # the labels column counts every judgment the loop cost, as the store holds them
    judgments = open_project(folder).store.summary().judgments
    row = next(line for line in result.output.splitlines() if re.match(r"\W*1\s*│", line))
    assert "labels so far" in result.output and row.split("│")[2].strip() == str(judgments)
    result = CliRunner().invoke(app, ["demo", str(folder), "--model", str(tiny_model)])
    assert result.exit_code == 1 and "already" in result.output  # never overwrites a project

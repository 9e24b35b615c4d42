"""`apprentice export preferences | ratings | kto | rankings` on projects judged by ratings, rankings or pairs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from apprentice.cli import app
from apprentice.comparisons import ComparisonPlanner
from apprentice.project import init_project
from apprentice.settings import ComparisonsSection
from apprentice.store.records import GeneratedResponse, PromptRecord

runner = CliRunner()


def judged_project(folder: Path, kind: str, answers: list[dict[str, Any]], texts: str = "abc") -> Path:
    """A project whose one prompt has responses `texts` (one letter each), with comparisons of `kind`, and
    the answers given to its comparisons in turn (one annotator each)."""
    project = init_project(folder)
    store = project.store
    store.import_prompts([PromptRecord([{"role": "user", "content": "say a letter"}])], [], source="test")
    (prompt,) = store.prompts()
    policy = store.ensure_policy("m", kind="base", model_path=None)
    planner = ComparisonPlanner(ComparisonsSection(kind=kind, high_overlap_share=0.0), seed=0)  # type: ignore[arg-type]
    store.add_generation(policy.id, [GeneratedResponse(prompt.id, text, 1, True) for text in texts], {}, planner)
    comparisons = store.comparisons()
    for index, answer in enumerate(answers):
        annotator = store.ensure_annotator(f"person-{index}")
        comparison = comparisons[index % len(comparisons)]
        store.record_judgment(
            comparison_id=comparison.id,
            annotator_id=annotator.id,
            answer=answer,
            idempotency_key=f"k{index}",
            source="studio",
        )
    project.close()
    return folder


def export(kind: str, project: Path, out: Path, *extra: str) -> Result:
    result = runner.invoke(app, ["export", kind, "-p", str(project), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def flat(text: str) -> str:
    return " ".join(text.split())


RATINGS = [{"score": 6, "criteria": {"helpful": 7}}, {"score": 2, "criteria": {}}, {"score": 4, "criteria": {}}]


def test_ratings_export_as_per_response_labels_and_as_kto_rows(tmp_path: Path) -> None:
    project = judged_project(tmp_path / "rated", "rating", RATINGS)
    result = export("ratings", project, tmp_path / "ratings.jsonl")
    assert "Exported 3 ratings" in flat(result.stdout)
    rows = read(tmp_path / "ratings.jsonl")
    assert [(row["completion"], row["score"]) for row in rows] == [
        ([{"role": "assistant", "content": letter}], score) for letter, score in zip("abc", (6, 2, 4), strict=True)
    ]
    assert rows[0]["prompt"] == [{"role": "user", "content": "say a letter"}]
    assert rows[0]["criteria"] == {"helpful": 7, "honest": None, "harmless": None}
    assert rows[0]["annotator"] == "person-0" and rows[0]["weight"] == 1.0

    result = export("kto", project, tmp_path / "kto.jsonl")
    assert "Exported 2 KTO rows (1 desirable, 1 undesirable)" in flat(result.stdout)
    assert "1 ratings at the threshold 4" in flat(result.stdout)
    assert [(row["completion"][0]["content"], row["label"]) for row in read(tmp_path / "kto.jsonl")] == [
        ("a", True),
        ("b", False),
    ]
    export("kto", project, tmp_path / "kto-3.jsonl", "--threshold", "3")
    assert [row["label"] for row in read(tmp_path / "kto-3.jsonl")] == [True, False, True]


def test_kto_rows_load_as_a_dataset_trl_reads(tmp_path: Path) -> None:
    from datasets import load_from_disk

    project = judged_project(tmp_path / "rated", "rating", RATINGS)
    export("kto", project, tmp_path / "kto.jsonl", "--dataset", str(tmp_path / "kto-ds"))
    dataset = load_from_disk(str(tmp_path / "kto-ds"))
    assert {"prompt", "completion", "label"} <= set(dataset.column_names) and dataset["label"] == [True, False]
    export("ratings", project, tmp_path / "r.jsonl", "--dataset", str(tmp_path / "ratings-ds"))
    unrated = {"helpful": None, "honest": None, "harmless": None}
    assert load_from_disk(str(tmp_path / "ratings-ds"))["criteria"][1] == unrated


def test_a_rating_project_exported_as_preferences_warns_and_says_which_export_fits(tmp_path: Path) -> None:
    project = judged_project(tmp_path / "rated", "rating", RATINGS)
    result = export("preferences", project, tmp_path / "prefs.jsonl")
    assert "Exported 0 preference pairs" in flat(result.stdout)
    assert "warning: nothing exported: this project's judgments are 3 ratings: use `apprentice export ratings`" in flat(
        result.stderr
    )
    assert "rankings" in runner.invoke(app, ["export", "--help"]).output


def test_rankings_export_as_every_implied_pair_and_as_the_full_order(tmp_path: Path) -> None:
    # positions a, b, c ranked 2, 1, 2: b beats a and c, and a and c tie
    project = judged_project(tmp_path / "ranked", "ranking", [{"ranks": [2, 1, 2]}, {"ranks": [3, 1, 2]}])
    export("rankings", project, tmp_path / "rankings.jsonl")
    rows = read(tmp_path / "rankings.jsonl")
    assert [[item[0]["content"] for item in row["completions"]] for row in rows] == [["b", "a", "c"], ["b", "c", "a"]]
    assert [row["ranks"] for row in rows] == [[1, 2, 2], [1, 2, 3]]

    export("preferences", project, tmp_path / "pairs.jsonl")
    pairs = [(row["chosen"][0]["content"], row["rejected"][0]["content"]) for row in read(tmp_path / "pairs.jsonl")]
    assert sorted(pairs) == sorted([("b", "a"), ("b", "c"), ("b", "a"), ("b", "c"), ("c", "a")])


@pytest.mark.parametrize(
    ("kind", "answers", "command", "reason"),
    [
        ("pair", [], "preferences", "the store holds no judgments yet"),
        ("pair", [{"winner": None, "tie": True, "both_bad": False}], "preferences", "1 ties or 'both bad'"),
        ("pair", [{"winner": 0, "tie": False, "both_bad": False}], "ratings", "use `apprentice export preferences`"),
        ("rating", [{"score": 4}], "kto", "1 ratings at the threshold 4"),
        ("ranking", [{"ranks": [1, 1]}], "preferences", "1 rankings with every response tied"),
    ],
)
def test_an_empty_export_says_why(
    tmp_path: Path, kind: str, answers: list[dict[str, Any]], command: str, reason: str
) -> None:
    project = judged_project(tmp_path / "p", kind, answers, texts="ab")
    result = export(command, project, tmp_path / "out.jsonl")
    assert "warning: nothing exported" in flat(result.stderr) and reason in flat(result.stderr), result.stderr
    assert (tmp_path / "out.jsonl").read_text() == ""

"""`apprentice prompts import` and `export preferences` through the command line, on a real project."""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from apprentice.cli import app
from apprentice.importing import parse_hh_dialogue
from apprentice.project import open_project
from apprentice.store import StoreSummary
from shared_data import HH_RLHF_HARMLESS

HH_FILE = HH_RLHF_HARMLESS

runner = CliRunner()


def hh_lines(count: int) -> list[str]:
    """The first `count` lines of the real HH-RLHF file, as text."""
    with gzip.open(HH_FILE, "rt", encoding="utf-8") as handle:
        return [next(handle) for _ in range(count)]


def invoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(arg) for arg in args])


def ok(*args: str | Path) -> str:
    """Run a command that must succeed; its output with line wrapping undone."""
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return " ".join(result.stdout.split())


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    ok("init", folder)
    return folder


def summary(folder: Path) -> StoreSummary:
    opened = open_project(folder)
    try:
        return opened.store.summary()
    finally:
        opened.close()


def stored_prompts(folder: Path, *, held_out: bool | None = None) -> list[tuple[list[Any], str | None, str, bool]]:
    opened = open_project(folder)
    try:
        return [
            (prompt.messages, prompt.category, prompt.source, prompt.held_out)
            for prompt in opened.store.prompts(held_out=held_out)
        ]
    finally:
        opened.close()


def status_counts(folder: Path) -> dict[str, int]:
    output = invoke("status", "--project", folder).stdout
    return {name: int(value) for name, value in re.findall(r"^\s+(\w+)\s+(\d+)$", output, re.MULTILINE)}


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def user(content: str) -> dict[str, str]:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict[str, str]:
    return {"role": "assistant", "content": content}


# -- each format into a project ---------------------------------------------------------------------


def test_jsonl_prompts(project: Path, tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "prompts.jsonl",
        [
            {"prompt": "Why is the sky blue?", "category": "explanation"},
            {"messages": [{"role": "system", "content": "Be brief."}, user("Write a haiku.")]},
        ],
    )
    output = ok("prompts", "import", path, "--project", project)
    assert "(jsonl): 2 new prompts, 0 already present; 0 judged pairs" in output
    assert stored_prompts(project) == [
        ([user("Why is the sky blue?")], "explanation", "prompts.jsonl", False),
        ([{"role": "system", "content": "Be brief."}, user("Write a haiku.")], None, "prompts.jsonl", False),
    ]
    assert status_counts(project) == {
        "prompts": 2,
        "policies": 0,
        "responses": 0,
        "comparisons": 0,
        "judgments": 0,
        "annotators": 0,
    }
    assert status_counts(project) == asdict(summary(project))


def test_jsonl_gz_with_held_out(project: Path, tmp_path: Path) -> None:
    path = tmp_path / "eval.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"prompt": "Held out one"}) + "\n" + json.dumps({"prompt": "Held out two"}) + "\n")
    ok("prompts", "import", path, "--project", project, "--held-out")
    assert [messages for messages, *_ in stored_prompts(project, held_out=True)] == [
        [user("Held out one")],
        [user("Held out two")],
    ]
    assert stored_prompts(project, held_out=False) == []


def test_csv_prompts(project: Path, tmp_path: Path) -> None:
    path = tmp_path / "prompts.csv"
    path.write_text('prompt,category\nSay hi.,greeting\n"Two\nlines",creative\n', encoding="utf-8")
    output = ok("prompts", "import", path, "--project", project)
    assert "(csv): 2 new prompts" in output
    assert [(messages, category) for messages, category, *_ in stored_prompts(project)] == [
        ([user("Say hi.")], "greeting"),
        ([user("Two\nlines")], "creative"),
    ]
    assert summary(project).prompts == 2


def test_datasets_folder(project: Path, tmp_path: Path) -> None:
    from datasets import Dataset

    folder = tmp_path / "saved"
    Dataset.from_dict({"prompt": ["From a dataset", "Another"], "category": ["x", "y"]}).save_to_disk(str(folder))
    output = ok("prompts", "import", folder, "--project", project)
    assert "(datasets folder): 2 new prompts" in output
    assert [(messages, category) for messages, category, *_ in stored_prompts(project)] == [
        ([user("From a dataset")], "x"),
        ([user("Another")], "y"),
    ]


def test_trl_conversational_pairs_become_imported_judgments(project: Path, tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "trl.jsonl",
        [
            {"prompt": [user("Is water wet?")], "chosen": [assistant("In everyday terms, yes.")], "rejected": "No."},
            {"prompt": "Plain text pair", "chosen": "good", "rejected": "bad"},
        ],
    )
    output = ok("prompts", "import", path, "--project", project)
    assert "2 new prompts, 0 already present; 2 judged pairs" in output
    assert asdict(summary(project)) == {
        "prompts": 2,
        "policies": 1,  # the "imported" policy the responses belong to
        "responses": 4,
        "comparisons": 2,
        "judgments": 2,
        "annotators": 1,  # one annotator per imported source
    }
    out = tmp_path / "prefs.jsonl"
    ok("export", "preferences", "--project", project, "--out", out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    got = sorted(json.dumps([row["prompt"], row["chosen"], row["rejected"]]) for row in rows)
    assert got == sorted(
        [
            json.dumps([[user("Is water wet?")], [assistant("In everyday terms, yes.")], [assistant("No.")]]),
            json.dumps([[user("Plain text pair")], [assistant("good")], [assistant("bad")]]),
        ]
    )
    assert {row["annotator"] for row in rows} == {"import:trl.jsonl"}


def test_importing_the_same_file_twice_stores_it_once(project: Path, tmp_path: Path) -> None:
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "one"}, {"prompt": "two"}, {"prompt": "three"}])
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "one", "chosen": "a", "rejected": "b"}])
    ok("prompts", "import", prompts, "--project", project)
    ok("prompts", "import", pairs, "--project", project)
    before = summary(project)
    assert (before.prompts, before.judgments) == (3, 1)

    assert "0 new prompts, 3 already present; 0 judged pairs" in ok("prompts", "import", prompts, "--project", project)
    again = ok("prompts", "import", pairs, "--project", project)
    assert "0 new prompts, 1 already present; 0 judged pairs, 1 already present" in again
    assert summary(project) == before


def test_skipped_rows_are_reported(project: Path, tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "pairs.jsonl",
        [{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "q", "chosen": "same", "rejected": "same"}],
    )
    output = ok("prompts", "import", path, "--project", project)
    assert "Skipped 1 rows: line 2: chosen and rejected are the same text" in output
    assert summary(project).judgments == 1


# -- HH-RLHF in, TRL preferences out ----------------------------------------------------------------


def test_hh_rlhf_import_and_export_round_trip(project: Path, tmp_path: Path) -> None:
    from datasets import load_from_disk

    # The first 90 lines of the real file: line 87 has an empty final answer and is skipped.
    lines = hh_lines(90)
    source = tmp_path / "hh.jsonl.gz"
    with gzip.open(source, "wt", encoding="utf-8") as handle:
        handle.write("".join(lines))
    output = ok("prompts", "import", source, "--project", project)
    assert "(hh-rlhf):" in output and "89 judged pairs" in output
    assert "Skipped 1 rows: line 87: an empty final assistant turn" in output

    expected = []
    for number, line in enumerate(lines, start=1):
        if number == 87:
            continue
        row = json.loads(line)
        chosen, rejected = parse_hh_dialogue(row["chosen"]), parse_hh_dialogue(row["rejected"])
        expected.append((json.dumps(chosen[:-1]), chosen[-1]["content"], rejected[-1]["content"]))

    stored = summary(project)
    assert stored.judgments == stored.comparisons == 89
    assert stored.prompts == len({prompt for prompt, _, _ in expected})
    assert status_counts(project)["judgments"] == 89

    out, dataset_folder = tmp_path / "exports" / "prefs.jsonl", tmp_path / "prefs-dataset"
    exported = ok("export", "preferences", "--project", project, "--out", out, "--dataset", dataset_folder)
    assert "Exported 89 preference pairs" in exported
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    dataset = load_from_disk(str(dataset_folder))
    assert len(rows) == len(dataset) == 89
    for column in ("prompt", "chosen", "rejected", "annotator", "annotator_id", "weight"):
        assert column in dataset.column_names
    for exported_rows in (rows, list(dataset)):
        got = []
        for row in exported_rows:
            assert row["prompt"][-1]["role"] == "user"
            assert [message["role"] for message in row["chosen"]] == ["assistant"]
            assert [message["role"] for message in row["rejected"]] == ["assistant"]
            assert (row["annotator"], row["weight"]) == ("import:hh.jsonl.gz", 1.0)
            assert isinstance(row["annotator_id"], int)
            prompt = [{"role": message["role"], "content": message["content"]} for message in row["prompt"]]
            got.append((json.dumps(prompt), row["chosen"][0]["content"], row["rejected"][0]["content"]))
        assert sorted(got) == sorted(expected)


def test_a_bad_line_after_the_whole_hh_rlhf_file_writes_nothing(project: Path, tmp_path: Path) -> None:
    """A bad last line after all 2,312 real rows: the command fails and stores none of them."""
    source = tmp_path / "hh-broken.jsonl"
    with gzip.open(HH_FILE, "rt", encoding="utf-8") as handle:
        source.write_text(handle.read() + '{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: hello"}\n', encoding="utf-8")
    result = invoke("prompts", "import", source, "--project", project)
    assert result.exit_code == 1
    assert "line 2313, field 'rejected'" in " ".join(result.stderr.split())
    assert summary(project) == StoreSummary(0, 0, 0, 0, 0, 0)


def test_export_of_an_empty_store_still_has_the_columns(project: Path, tmp_path: Path) -> None:
    from datasets import load_from_disk

    out, dataset_folder = tmp_path / "empty.jsonl", tmp_path / "empty-dataset"
    assert "Exported 0 preference pairs" in ok(
        "export", "preferences", "--project", project, "--out", out, "--dataset", dataset_folder
    )
    assert out.read_text(encoding="utf-8") == ""
    dataset = load_from_disk(str(dataset_folder))
    assert len(dataset) == 0
    assert {"prompt", "chosen", "rejected", "annotator", "annotator_id", "weight"} <= set(dataset.column_names)


# -- bad input: one sentence with file and line, a non-zero exit, nothing written -------------------


BAD_INPUTS: dict[str, tuple[str, bytes, str]] = {
    # name: (file name, content, what the message must contain)
    "malformed json": (
        "bad.jsonl",
        b'{"prompt": "one"}\n{"prompt": "two"}\n{"prompt": "oops",\n{"prompt": "four"}\n{"prompt": "five"}\n',
        "bad.jsonl, line 3: not valid JSON",
    ),
    "json array": ("array.jsonl", b'{"prompt": "ok"}\n["a", "list"]\n', "array.jsonl, line 2: expected a JSON object"),
    "csv without prompt": ("q.csv", b"question\nWhy?\n", "q.csv, line 1: the CSV has no 'prompt' column"),
    "empty prompt": (
        "e.jsonl",
        b'{"prompt": "ok"}\n{"prompt": ""}\n',
        "e.jsonl, line 2, field 'prompt': the prompt is empty",
    ),
    "whitespace prompt": ("w.csv", b'prompt\nok\n"   "\n', "w.csv, line 3, field 'prompt': the prompt is empty"),
    "non-utf-8": ("l.jsonl", b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n', "l.jsonl, line 2: not UTF-8"),
    "unknown role": (
        "r.jsonl",
        b'{"prompt": "ok"}\n{"prompt": "ok2"}\n{"messages": [{"role": "bot", "content": "x"}]}\n',
        "r.jsonl, line 3, field 'messages[0]': unknown role 'bot'",
    ),
    "pair missing rejected": (
        "p.jsonl",
        b'{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": "q2", "chosen": "a2"}\n',
        "p.jsonl, line 2: a pair needs both 'chosen' and 'rejected'; 'rejected' is missing",
    ),
    "unknown extension": ("prompts.txt", b"Why?\n", "prompts.txt: unknown file type"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_sentence_and_writes_nothing(project: Path, tmp_path: Path, case: str) -> None:
    name, content, expected = BAD_INPUTS[case]
    ok("prompts", "import", write_jsonl(tmp_path / "existing.jsonl", [{"prompt": "already here"}]), "-p", project)
    before = summary(project)
    path = tmp_path / name
    path.write_bytes(content)

    result = invoke("prompts", "import", path, "--project", project)

    assert result.exit_code == 1
    assert result.stdout == ""
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith("error: " + str(tmp_path))
    assert expected in message
    assert summary(project) == before


def test_missing_file(project: Path, tmp_path: Path) -> None:
    result = invoke("prompts", "import", tmp_path / "nowhere.jsonl", "--project", project)
    assert result.exit_code == 1
    assert f"{tmp_path / 'nowhere.jsonl'}: no such file or folder" in result.stderr
    assert summary(project).prompts == 0


def test_a_bad_last_line_after_many_good_ones_writes_nothing(project: Path, tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    rows = "".join(f"prompt number {index},bulk\n" for index in range(1, 1001))
    path.write_bytes(b"prompt,category\n" + rows.encode() + "the last one is latin-1: caf\xe9,bulk\n".encode("latin-1"))
    result = invoke("prompts", "import", path, "--project", project)
    assert result.exit_code == 1
    assert "long.csv, line 1002: not UTF-8" in result.stderr
    assert summary(project).prompts == 0


def test_a_failure_while_storing_rolls_back_the_whole_import(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apprentice.store import Store

    path = write_jsonl(
        tmp_path / "pairs.jsonl",
        [{"prompt": f"p{index}", "chosen": f"good {index}", "rejected": f"bad {index}"} for index in range(5)],
    )
    original = Store._import_pairs

    def fail_after_writing_the_pairs(self: Store, *args: Any) -> int:
        original(self, *args)  # prompts, responses, comparisons and judgments are flushed by now
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(Store, "_import_pairs", fail_after_writing_the_pairs)
    result = invoke("prompts", "import", path, "--project", project)
    assert isinstance(result.exception, RuntimeError)
    assert summary(project) == StoreSummary(0, 0, 0, 0, 0, 0)

"""Reading prompts and preference pairs from files: every format, and every kind of bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from apprentice.errors import InputError
from apprentice.importing import parse_hh_dialogue, read_import_file
from shared_data import HH_RLHF_HARMLESS

HH_FILE = HH_RLHF_HARMLESS


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def hh_lines(count: int) -> list[str]:
    """The first `count` lines of the real HH-RLHF file, as text."""
    with gzip.open(HH_FILE, "rt", encoding="utf-8") as handle:
        return [next(handle) for _ in range(count)]


def user(content: str) -> dict[str, str]:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict[str, str]:
    return {"role": "assistant", "content": content}


# -- prompts ----------------------------------------------------------------------------------------


def test_jsonl_prompts_as_text_messages_and_category(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "prompts.jsonl",
        [
            {"prompt": "  Why is the sky blue?  ", "category": "explanation"},
            {"messages": [{"role": "system", "content": "Be brief."}, user("Write a haiku.")]},
            {"prompt": [user("Hi"), assistant("Hello!"), user("Tell me a joke.")], "category": "creative"},
        ],
    )
    parsed = read_import_file(path)

    assert parsed.format == "jsonl"
    assert parsed.pairs == [] and parsed.skipped == []
    assert [prompt.messages for prompt in parsed.prompts] == [
        [user("Why is the sky blue?")],
        [{"role": "system", "content": "Be brief."}, user("Write a haiku.")],
        [user("Hi"), assistant("Hello!"), user("Tell me a joke.")],
    ]
    assert [prompt.category for prompt in parsed.prompts] == ["explanation", None, "creative"]
    assert [prompt.text for prompt in parsed.prompts] == ["Why is the sky blue?", "Write a haiku.", "Tell me a joke."]
    assert not any(prompt.held_out for prompt in parsed.prompts)


def test_held_out_marks_every_prompt(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "eval.jsonl", [{"prompt": "one"}, {"prompt": "two"}])
    assert [prompt.held_out for prompt in read_import_file(path, held_out=True).prompts] == [True, True]


def test_blank_lines_in_jsonl_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "gaps.jsonl"
    path.write_text('{"prompt": "one"}\n\n   \n{"prompt": "two"}\n', encoding="utf-8")
    assert [prompt.text for prompt in read_import_file(path).prompts] == ["one", "two"]


def test_jsonl_gz(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"prompt": "Name a prime number.", "category": "maths"}) + "\n")
        handle.write(json.dumps({"prompt": "Ünïcödé survives gzip ✓"}) + "\n")
    parsed = read_import_file(path)
    assert [(prompt.text, prompt.category) for prompt in parsed.prompts] == [
        ("Name a prime number.", "maths"),
        ("Ünïcödé survives gzip ✓", None),
    ]


def test_csv_with_category_and_a_quoted_multiline_cell(tmp_path: Path) -> None:
    path = tmp_path / "prompts.csv"
    path.write_text(
        'prompt,category\nSay hello.,greeting\n"Write a poem\nwith two lines, and a comma",creative\n'
        "No category here,\n",
        encoding="utf-8",
    )
    parsed = read_import_file(path)
    assert parsed.format == "csv"
    assert [(prompt.messages, prompt.category) for prompt in parsed.prompts] == [
        ([user("Say hello.")], "greeting"),
        ([user("Write a poem\nwith two lines, and a comma")], "creative"),
        ([user("No category here")], None),
    ]


def test_csv_and_jsonl_with_a_byte_order_mark(tmp_path: Path) -> None:
    # Excel's "CSV UTF-8" and Windows Notepad start the file with a BOM.
    csv_path = tmp_path / "excel.csv"
    csv_path.write_bytes("\ufeffprompt,category\nHello there,greeting\n".encode())
    jsonl_path = tmp_path / "notepad.jsonl"
    jsonl_path.write_bytes('\ufeff{"prompt": "Hello there"}\n'.encode())
    assert [prompt.text for prompt in read_import_file(csv_path).prompts] == ["Hello there"]
    assert [prompt.text for prompt in read_import_file(jsonl_path).prompts] == ["Hello there"]


def test_datasets_folder(tmp_path: Path) -> None:
    from datasets import Dataset

    folder = tmp_path / "saved"
    Dataset.from_dict({"prompt": ["First prompt", "Second prompt"], "category": ["a", "b"]}).save_to_disk(str(folder))
    parsed = read_import_file(folder)
    assert parsed.format == "datasets folder"
    assert [(prompt.text, prompt.category) for prompt in parsed.prompts] == [
        ("First prompt", "a"),
        ("Second prompt", "b"),
    ]


def test_datasets_dict_uses_the_train_split(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    folder = tmp_path / "saved-dict"
    DatasetDict(
        {
            "train": Dataset.from_dict({"messages": [[user("From train")]]}),
            "test": Dataset.from_dict({"messages": [[user("From test")]]}),
        }
    ).save_to_disk(str(folder))
    assert [prompt.messages for prompt in read_import_file(folder).prompts] == [[user("From train")]]


def test_datasets_dict_without_train_is_an_error(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    folder = tmp_path / "only-test"
    DatasetDict({"test": Dataset.from_dict({"prompt": ["x"]})}).save_to_disk(str(folder))
    with pytest.raises(InputError, match="without a 'train' split") as caught:
        read_import_file(folder)
    assert caught.value.path == folder


def test_a_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    folder = tmp_path / "just-a-folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(InputError, match="not a folder saved by `datasets`") as caught:
        read_import_file(folder)
    assert str(folder) in str(caught.value)


# -- preference pairs -------------------------------------------------------------------------------


def test_trl_conversational_preference_rows(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "trl.jsonl",
        [
            {
                "prompt": [{"role": "system", "content": "Be kind."}, user("Is the earth flat?")],
                "chosen": [assistant("No, it is roughly a sphere.")],
                "rejected": [assistant("Yes.")],
            },
            {"prompt": [user("2+2?")], "chosen": [assistant("4")], "rejected": [assistant("5")], "category": "maths"},
        ],
    )
    parsed = read_import_file(path)
    assert parsed.prompts == []
    assert len(parsed.pairs) == 2
    first, second = parsed.pairs
    assert first.prompt.messages == [{"role": "system", "content": "Be kind."}, user("Is the earth flat?")]
    assert (first.chosen, first.rejected) == ("No, it is roughly a sphere.", "Yes.")
    assert (second.prompt.messages, second.prompt.category) == ([user("2+2?")], "maths")
    assert (second.chosen, second.rejected) == ("4", "5")


def test_plain_string_pairs(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"prompt": "Say something nice.", "chosen": "You did well today.", "rejected": "Whatever."},
            {"prompt": "Same answers", "chosen": "same", "rejected": "same"},
        ],
    )
    parsed = read_import_file(path)
    assert [(pair.prompt.messages, pair.chosen, pair.rejected) for pair in parsed.pairs] == [
        ([user("Say something nice.")], "You did well today.", "Whatever.")
    ]
    assert parsed.skipped == ["line 2: chosen and rejected are the same text"]


def test_csv_pairs(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text("prompt,chosen,rejected\nGreet me,Hello!,Go away.\n", encoding="utf-8")
    (pair,) = read_import_file(path).pairs
    assert (pair.prompt.messages, pair.chosen, pair.rejected) == ([user("Greet me")], "Hello!", "Go away.")


def test_hh_dialogue_with_two_turns_is_split_precisely(tmp_path: Path) -> None:
    shared = "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: How do I boil an egg?"
    path = write_jsonl(
        tmp_path / "hh.jsonl",
        [
            {
                "chosen": shared + "\n\nAssistant: Put it in boiling water for nine minutes.",
                "rejected": shared + "\n\nAssistant: Why would you want that?",
            }
        ],
    )
    parsed = read_import_file(path)
    assert parsed.format == "hh-rlhf"
    (pair,) = parsed.pairs
    assert pair.prompt.messages == [
        user("Hi there"),
        assistant("Hello! How can I help?"),
        user("How do I boil an egg?"),
    ]
    assert pair.chosen == "Put it in boiling water for nine minutes."
    assert pair.rejected == "Why would you want that?"


def test_parse_hh_dialogue_keeps_multiline_content() -> None:
    text = "\n\nHuman: List two things.\n\nAssistant: 1. one\n2. two\n\nHuman: Thanks"
    assert parse_hh_dialogue(text) == [
        user("List two things."),
        assistant("1. one\n2. two"),
        user("Thanks"),
    ]
    with pytest.raises(ValueError, match="before the first"):
        parse_hh_dialogue("preamble\n\nHuman: hi")


def test_hh_rows_whose_dialogues_differ_early_are_skipped_with_a_reason(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "hh.jsonl",
        [
            {"chosen": "\n\nHuman: A\n\nAssistant: good", "rejected": "\n\nHuman: A\n\nAssistant: bad"},
            {"chosen": "\n\nHuman: A\n\nAssistant: x", "rejected": "\n\nHuman: B\n\nAssistant: y"},
            {"chosen": "\n\nHuman: A\n\nAssistant: fine", "rejected": "\n\nHuman: A\n\nAssistant:"},
        ],
    )
    parsed = read_import_file(path)
    assert [(pair.chosen, pair.rejected) for pair in parsed.pairs] == [("good", "bad")]
    assert parsed.skipped == [
        "line 2: the two dialogues differ before the last assistant turn",
        "line 3: an empty final assistant turn",
    ]


def test_a_few_real_hh_rlhf_lines(tmp_path: Path) -> None:
    lines = hh_lines(3)
    path = tmp_path / "hh-sample.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    parsed = read_import_file(path)
    assert len(parsed.pairs) == 3 and parsed.skipped == []
    for line, pair in zip(lines, parsed.pairs, strict=True):
        row = json.loads(line)
        chosen = parse_hh_dialogue(row["chosen"])
        rejected = parse_hh_dialogue(row["rejected"])
        assert pair.prompt.messages == chosen[:-1] == rejected[:-1]
        assert pair.prompt.messages[0]["role"] == "user" and pair.prompt.messages[-1]["role"] == "user"
        assert [message["role"] for message in pair.prompt.messages][::2] == ["user"] * len(pair.prompt.messages[::2])
        assert (pair.chosen, pair.rejected) == (chosen[-1]["content"], rejected[-1]["content"])
        # The final answers are the dialogue's last Assistant turns, verbatim but stripped.
        assert row["chosen"].rstrip().endswith(pair.chosen)
        assert row["rejected"].rstrip().endswith(pair.rejected)
    assert parsed.pairs[0].prompt.messages[0] == user("what are some pranks with a pen i can do?")


def test_the_whole_hh_rlhf_test_file() -> None:
    parsed = read_import_file(HH_FILE)
    assert parsed.format == "hh-rlhf"
    assert len(parsed.pairs) == 2303
    assert parsed.prompts == []
    assert parsed.skipped == [
        "line 87: an empty final assistant turn",
        "line 517: an empty final assistant turn",
        "line 926: an empty final assistant turn",
        "line 1104: an empty final assistant turn",
        "line 1255: the two dialogues differ before the last assistant turn",
        "line 1689: the two dialogues differ before the last assistant turn",
        "line 1951: the two dialogues differ before the last assistant turn",
        "line 1953: the two dialogues differ before the last assistant turn",
        "line 2037: the two dialogues differ before the last assistant turn",
    ]
    assert len(parsed.pairs) + len(parsed.skipped) == 2312
    for pair in parsed.pairs:
        assert pair.chosen and pair.rejected and pair.chosen != pair.rejected
        assert pair.prompt.messages[-1]["role"] == "user"
        assert all(message["content"] for message in pair.prompt.messages)


# -- bad input: each names the file, the line and (where it applies) the field ------------------------


def assert_input_error(path: Path, *, line: int | None, field: str | None, reason: str) -> InputError:
    with pytest.raises(InputError) as caught:
        read_import_file(path)
    error = caught.value
    assert (error.path, error.line, error.field) == (path, line, field)
    assert reason in error.reason
    message = str(error)
    assert str(path) in message
    if line is not None:
        assert f"line {line}" in message
    if field is not None:
        assert f"'{field}'" in message
    return error


GOOD = json.dumps({"prompt": "fine"})


def test_malformed_jsonl_line_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([GOOD, GOOD, '{"prompt": "oops",', GOOD, GOOD]) + "\n", encoding="utf-8")
    assert_input_error(path, line=3, field=None, reason="not valid JSON")


def test_json_array_instead_of_object(tmp_path: Path) -> None:
    path = tmp_path / "array.jsonl"
    path.write_text(GOOD + '\n["a prompt in a list"]\n', encoding="utf-8")
    assert_input_error(path, line=2, field=None, reason="expected a JSON object, got list")


def test_csv_without_prompt_column(tmp_path: Path) -> None:
    path = tmp_path / "noprompt.csv"
    path.write_text("question,category\nWhy?,x\n", encoding="utf-8")
    error = assert_input_error(path, line=1, field=None, reason="no 'prompt' column")
    assert "question, category" in error.reason


@pytest.mark.parametrize("value", ["", "   \t  "], ids=["empty", "whitespace"])
def test_empty_prompt_in_jsonl(tmp_path: Path, value: str) -> None:
    path = write_jsonl(tmp_path / "empty.jsonl", [{"prompt": "ok"}, {"prompt": "ok too"}, {"prompt": value}])
    assert_input_error(path, line=3, field="prompt", reason="the prompt is empty")


@pytest.mark.parametrize("value", ["", '"   "'], ids=["empty", "whitespace"])
def test_empty_prompt_in_csv(tmp_path: Path, value: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(f"prompt,category\nfine,a\n{value},b\n", encoding="utf-8")
    assert_input_error(path, line=3, field="prompt", reason="the prompt is empty")


def test_csv_errors_after_and_in_a_multiline_cell_name_the_starting_line(tmp_path: Path) -> None:
    after = tmp_path / "after.csv"
    after.write_text('prompt\n"line one\nline two\nline three"\n"  "\n', encoding="utf-8")
    assert_input_error(after, line=5, field="prompt", reason="the prompt is empty")
    within = tmp_path / "within.csv"
    within.write_text('prompt\nfine\r\n"  \r\n\r\n  "\r\n', encoding="utf-8")
    assert_input_error(within, line=3, field="prompt", reason="the prompt is empty")


def test_empty_message_content(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [{"messages": [user("hi"), assistant("yo"), user("  ")]}])
    assert_input_error(path, line=1, field="messages[2]", reason="the message content is empty")


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    for name in ("latin1.jsonl", "latin1.csv"):
        path = tmp_path / name
        first = b'{"prompt": "fine"}\n' if name.endswith("jsonl") else b"prompt\n"
        path.write_bytes(first + '{"prompt": "café crème"}\n'.encode("latin-1") + b'{"prompt": "after"}\n')
        assert_input_error(path, line=2, field=None, reason="not UTF-8")


def test_non_utf8_in_gzip(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b'{"prompt": "fine"}\n' + '{"prompt": "naïve"}\n'.encode("latin-1"))
    assert_input_error(path, line=2, field=None, reason="not UTF-8")


def test_unknown_role(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "roles.jsonl",
        [{"prompt": "ok"}, {"messages": [{"role": "system", "content": "x"}, {"role": "human", "content": "hi"}]}],
    )
    error = assert_input_error(path, line=2, field="messages[1]", reason="unknown role 'human'")
    assert "system, user, assistant" in error.reason


def test_prompt_ending_with_the_assistant(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ends.jsonl", [{"messages": [user("hi"), assistant("hello")]}])
    assert_input_error(path, line=1, field="messages", reason="must end with a user message")


def test_message_without_content(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "nocontent.jsonl", [{"prompt": [{"role": "user"}]}])
    assert_input_error(path, line=1, field="prompt[0]", reason="'role' and 'content'")


def test_pair_missing_rejected(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "half.jsonl",
        [{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a2", "chosen": "b2"}],
    )
    assert_input_error(path, line=2, field=None, reason="'rejected' is missing")


def test_hh_row_missing_rejected(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "hh-half.jsonl", [{"chosen": "\n\nHuman: hi\n\nAssistant: hello"}])
    assert_input_error(path, line=1, field="rejected", reason="expected a whole dialogue")


def test_hh_row_that_is_not_a_dialogue(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "hh-bad.jsonl", [{"chosen": "just text", "rejected": "\n\nHuman: a\n\nAssistant: b"}])
    assert_input_error(path, line=1, field="chosen", reason="not an HH-RLHF dialogue")


def test_trl_chosen_must_end_with_the_assistant(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "trl-bad.jsonl", [{"prompt": [user("q")], "chosen": [user("a")], "rejected": "b"}])
    assert_input_error(path, line=1, field="chosen", reason="the assistant's")


def test_row_without_prompt(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "noprompt.jsonl", [{"question": "why?"}])
    assert_input_error(path, line=1, field=None, reason="no 'prompt' or 'messages' field (fields: question)")


def test_category_must_be_text(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "cat.jsonl", [{"prompt": "p", "category": 7}])
    assert_input_error(path, line=1, field="category", reason="expected text, got int")


def test_category_longer_than_the_store_column(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "cat.jsonl", [{"prompt": "p", "category": "c" * 64}, {"prompt": "q", "category": "c" * 65}]
    )
    assert_input_error(path, line=2, field="category", reason="at most 64 characters (this one has 65)")


def test_unknown_file_extension(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text("Why is the sky blue?\n", encoding="utf-8")
    assert_input_error(path, line=None, field=None, reason="unknown file type")


def test_missing_file(tmp_path: Path) -> None:
    assert_input_error(tmp_path / "nowhere.jsonl", line=None, field=None, reason="no such file")


def test_file_with_no_prompts(tmp_path: Path) -> None:
    path = tmp_path / "blank.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    assert_input_error(path, line=None, field=None, reason="no prompts found")

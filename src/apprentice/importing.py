"""Reading prompts and outside preference data from files, before anything is stored.

Formats, detected per file and per row:
- JSONL (optionally .gz): rows with `prompt` (text or a list of chat messages) or `messages`, and an
  optional `category`; rows that also carry `chosen` and `rejected` are judged pairs, as plain text
  or in TRL's conversational format (lists of messages); rows with only `chosen` and `rejected`
  holding whole `\\n\\nHuman: ... \\n\\nAssistant: ...` dialogues are HH-RLHF pairs.
- CSV with a `prompt` column (optional `category`, `chosen`, `rejected`).
- A folder saved by `datasets` (`Dataset.save_to_disk`) with the same columns.

Everything is parsed and checked first; the caller stores the result in one transaction, so a file
with one bad line leaves nothing behind. Errors name the file, the line (or row) and the field.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apprentice.errors import InputError
from apprentice.store.records import Message, PreferencePairRecord, PromptRecord

ROLES = ("system", "user", "assistant")
CATEGORY_MAX_CHARS = 64  # the width of prompts.category in the store; PostgreSQL refuses longer text
_HH_TURN = re.compile(r"\n\n(Human|Assistant):[ ]?")
_NEWLINE = re.compile(r"\r\n|\r|\n")


@dataclass
class ParsedImport:
    prompts: list[PromptRecord] = field(default_factory=list)
    pairs: list[PreferencePairRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why rows were left out, one entry each
    format: str = ""


def read_import_file(path: Path, *, held_out: bool = False) -> ParsedImport:
    """Parse `path` into prompts and judged pairs; raise `InputError` on the first bad row."""
    if not path.exists():
        raise InputError("no such file or folder", path=path)
    if path.is_dir():
        return _read_rows(path, _dataset_rows(path), held_out, "datasets folder")
    name = path.name.lower()
    if name.endswith(".csv"):
        return _read_rows(path, _csv_rows(path), held_out, "csv")
    if name.endswith((".jsonl", ".jsonl.gz", ".json", ".ndjson")):
        return _read_rows(path, _jsonl_rows(path), held_out, "jsonl")
    raise InputError("unknown file type; expected .jsonl, .jsonl.gz, .csv or a datasets folder", path=path)


# -- row sources: (line or row number, dict) ------------------------------------------------------


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                # utf-8-sig on the first line: Excel and Notepad start "UTF-8" files with a byte-order mark.
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                raise InputError(
                    f"not UTF-8 text (byte {error.start} of the line); save the file as UTF-8",
                    path=path,
                    line=number,
                ) from None


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in _text_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"not valid JSON: {error.msg} at column {error.colno}", path=path, line=number) from None
        if not isinstance(row, dict):
            raise InputError(f"expected a JSON object, got {type(row).__name__}", path=path, line=number)
        yield number, row


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    text = "".join(line for _, line in _text_lines(path))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    if "prompt" not in columns:
        raise InputError(f"the CSV has no 'prompt' column (columns: {', '.join(columns) or 'none'})", path=path, line=1)
    for row in reader:
        # DictReader counts physical lines up to the row's end; a row with quoted multi-line cells
        # is reported at the line where it starts.
        cells = [cell for value in row.values() for cell in (value if isinstance(value, list) else [value])]
        inner_newlines = sum(len(_NEWLINE.findall(cell)) for cell in cells if isinstance(cell, str))
        # An empty prompt cell stays, so that it is reported as an empty prompt rather than a missing column.
        yield (
            reader.line_num - inner_newlines,
            {key: value for key, value in row.items() if key is not None and (value != "" or key == "prompt")},
        )


def _dataset_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    from datasets import Dataset, DatasetDict, load_from_disk

    try:
        loaded = load_from_disk(str(path))
    except FileNotFoundError:
        raise InputError("not a folder saved by `datasets` (save_to_disk)", path=path) from None
    if isinstance(loaded, DatasetDict):
        if "train" not in loaded:
            raise InputError(f"a DatasetDict without a 'train' split (splits: {', '.join(loaded)})", path=path)
        loaded = loaded["train"]
    assert isinstance(loaded, Dataset)
    for number, row in enumerate(loaded, start=1):
        yield number, dict(row)


# -- row interpretation ---------------------------------------------------------------------------


def _read_rows(
    path: Path, rows: Iterator[tuple[int, dict[str, Any]]], held_out: bool, file_format: str
) -> ParsedImport:
    parsed = ParsedImport(format=file_format)
    for number, row in rows:
        _read_row(path, number, row, held_out, parsed)
    if not parsed.prompts and not parsed.pairs:
        raise InputError("no prompts found in the file", path=path)
    return parsed


def _read_row(path: Path, number: int, row: dict[str, Any], held_out: bool, parsed: ParsedImport) -> None:
    category = _optional_text(path, number, row, "category")
    if category is not None and len(category) > CATEGORY_MAX_CHARS:
        raise InputError(
            f"a category is at most {CATEGORY_MAX_CHARS} characters (this one has {len(category)})",
            path=path,
            line=number,
            field="category",
        )
    has_pair = "chosen" in row or "rejected" in row
    if has_pair and "prompt" not in row and "messages" not in row:
        pair = _hh_pair(path, number, row, category, held_out)
        if isinstance(pair, str):
            parsed.skipped.append(pair)
        else:
            parsed.pairs.append(pair)
            parsed.format = "hh-rlhf"
        return
    prompt_key = "prompt" if "prompt" in row else "messages"
    if prompt_key not in row:
        keys = ", ".join(sorted(row)) or "none"
        raise InputError(f"no 'prompt' or 'messages' field (fields: {keys})", path=path, line=number)
    messages = _messages(path, number, row[prompt_key], prompt_key, default_role="user")
    if messages[-1]["role"] != "user":
        raise InputError("the prompt must end with a user message", path=path, line=number, field=prompt_key)
    prompt = PromptRecord(messages=messages, category=category, held_out=held_out)
    if not has_pair:
        parsed.prompts.append(prompt)
        return
    chosen = _completion(path, number, row, "chosen")
    rejected = _completion(path, number, row, "rejected")
    if chosen == rejected:
        parsed.skipped.append(f"line {number}: chosen and rejected are the same text")
        return
    parsed.pairs.append(PreferencePairRecord(prompt=prompt, chosen=chosen, rejected=rejected))


def _optional_text(path: Path, number: int, row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"expected text, got {type(value).__name__}", path=path, line=number, field=key)
    return value.strip() or None


def _messages(path: Path, number: int, value: Any, key: str, *, default_role: str) -> list[Message]:
    if isinstance(value, str):
        if not value.strip():
            raise InputError("the prompt is empty", path=path, line=number, field=key)
        return [{"role": default_role, "content": value.strip()}]
    if not isinstance(value, list) or not value:
        raise InputError("expected text or a non-empty list of messages", path=path, line=number, field=key)
    messages: list[Message] = []
    for index, message in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise InputError("expected a message with 'role' and 'content'", path=path, line=number, field=where)
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise InputError(
                f"unknown role {role!r}; expected one of {', '.join(ROLES)}",
                path=path,
                line=number,
                field=where,
            )
        if not isinstance(content, str) or not content.strip():
            raise InputError("the message content is empty", path=path, line=number, field=where)
        messages.append({"role": role, "content": content.strip()})
    return messages


def _completion(path: Path, number: int, row: dict[str, Any], key: str) -> str:
    """The assistant's answer in a pair: plain text, or TRL's list with one assistant message."""
    if key not in row:
        raise InputError(f"a pair needs both 'chosen' and 'rejected'; '{key}' is missing", path=path, line=number)
    value = row[key]
    if isinstance(value, list):
        messages = _messages(path, number, value, key, default_role="assistant")
        if messages[-1]["role"] != "assistant":
            raise InputError("expected the last message to be the assistant's", path=path, line=number, field=key)
        return messages[-1]["content"]
    if not isinstance(value, str) or not value.strip():
        raise InputError("the response is empty", path=path, line=number, field=key)
    return value.strip()


def parse_hh_dialogue(text: str) -> list[Message]:
    """`\\n\\nHuman: ...\\n\\nAssistant: ...` -> chat messages (user / assistant)."""
    parts = _HH_TURN.split(text)
    if parts[0].strip():
        raise ValueError("text before the first 'Human:' turn")
    messages: list[Message] = []
    for speaker, content in zip(parts[1::2], parts[2::2], strict=True):
        messages.append({"role": "user" if speaker == "Human" else "assistant", "content": content.strip()})
    if not messages:
        raise ValueError("no 'Human:' or 'Assistant:' turns")
    return messages


def _hh_pair(
    path: Path, number: int, row: dict[str, Any], category: str | None, held_out: bool
) -> PreferencePairRecord | str:
    """An HH-RLHF row as a pair, or the reason it was skipped (dialogues that differ before the end)."""
    dialogues: dict[str, list[Message]] = {}
    for key in ("chosen", "rejected"):
        value = row.get(key)
        if not isinstance(value, str) or not value.strip():
            raise InputError("expected a whole dialogue as text", path=path, line=number, field=key)
        try:
            dialogues[key] = parse_hh_dialogue(value)
        except ValueError as error:
            raise InputError(f"not an HH-RLHF dialogue: {error}", path=path, line=number, field=key) from None
        if dialogues[key][-1]["role"] != "assistant":
            raise InputError("the dialogue does not end with an Assistant turn", path=path, line=number, field=key)
    chosen, rejected = dialogues["chosen"], dialogues["rejected"]
    if chosen[:-1] != rejected[:-1]:
        return f"line {number}: the two dialogues differ before the last assistant turn"
    if not chosen[-1]["content"] or not rejected[-1]["content"]:
        return f"line {number}: an empty final assistant turn"
    if chosen[-1]["content"] == rejected[-1]["content"]:
        return f"line {number}: chosen and rejected are the same text"
    if any(not message["content"] for message in chosen[:-1]):
        return f"line {number}: an empty turn in the dialogue"
    prompt = PromptRecord(messages=chosen[:-1], category=category, held_out=held_out)
    return PreferencePairRecord(prompt=prompt, chosen=chosen[-1]["content"], rejected=rejected[-1]["content"])

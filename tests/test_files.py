"""Files written whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from apprentice.files import write_jsonl_atomically, write_text_atomically


def test_jsonl_is_written_one_object_a_line_in_utf8(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "rows.jsonl"
    write_jsonl_atomically(path, [{"text": "café"}, {"n": 2}])
    assert path.read_text(encoding="utf-8") == '{"text": "café"}\n{"n": 2}\n'


def test_a_bad_row_midway_leaves_the_previous_file_and_no_partial(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    write_text_atomically(path, "the previous contents\n")
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_jsonl_atomically(path, ({"row": value} for value in (1, 2, object())))
    assert path.read_text(encoding="utf-8") == "the previous contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]

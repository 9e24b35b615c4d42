"""A saved reward model scores the same in plain `transformers`, following the README's lines, as in
`apprentice reward score`: on a tiny BERT-like encoder (no chat template, the prompt is a first segment
`user: ...`) and on the tiny chat model (its chat template)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from apprentice.cli import app
from apprentice.reward.model import Normalization, RewardModel

README = Path(__file__).resolve().parents[1] / "README.md"
# The README's lines, word for word (the test checks they are there, then runs them).
LOAD = "tok, rm = AutoTokenizer.from_pretrained(folder), AutoModelForSequenceClassification.from_pretrained(folder)"
RAW = 'raw = rm(**tok(f"user: {prompt}", response, return_tensors="pt")).logits[0, 0].item()  # unnormalized'
NORMALIZE = 'norm = rm.config.apprentice_reward["normalization"]; reward = (raw - norm["mean"]) / norm["std"]'
CHAT = (
    'tok.apply_chat_template([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], '
    'return_dict=True, return_tensors="pt")'
)
PAIRS = [("write a poem about the sun", "the sun is happy and good"), ("why is the cat sad", "no")]


def tiny_bert_folder(folder: Path) -> Path:
    """A random 2-layer BERT encoder with a word-piece tokenizer and no chat template, like all-MiniLM."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = [
        "the",
        "a",
        "is",
        "and",
        "sun",
        "cat",
        "poem",
        "write",
        "about",
        "why",
        "sad",
        "happy",
        "good",
        "no",
        "user",
        ":",
        "!",
        "?",
        ".",
    ]
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
        initializer_range=0.5,  # wide weights: a random encoder whose score moves with its input
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def saved_reward_model(backbone: Path, folder: Path) -> RewardModel:
    model = RewardModel.from_backbone(str(backbone), max_length=64, seed=1)
    model.normalization = Normalization(mean=0.25, std=2.0, measured_on="a test")  # so leaving it out shows
    model.save(folder)
    return model


def cli_scores(folder: Path, tmp_path: Path, *extra: str) -> list[float]:
    rows = [{"prompt": prompt, "response": response} for prompt, response in PAIRS]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    arguments = ["reward", "score", str(folder), "--input", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*arguments, *extra])
    assert result.exit_code == 0, result.output
    return [json.loads(line)["reward"] for line in (tmp_path / "o").read_text().splitlines()]


def run_readme_lines(folder: Path, prompt: str, response: str, *, chat: bool = False) -> dict[str, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    scope: dict[str, Any] = {
        "AutoTokenizer": AutoTokenizer,
        "AutoModelForSequenceClassification": AutoModelForSequenceClassification,
        "folder": str(folder),
        "prompt": prompt,
        "response": response,
    }
    raw_line = RAW.replace('tok(f"user: {prompt}", response, return_tensors="pt")', CHAT) if chat else RAW
    exec("\n".join([LOAD, raw_line, NORMALIZE]), scope)  # the README's own lines
    return scope


def test_the_readme_shows_the_lines() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    for line in (LOAD, RAW, NORMALIZE, CHAT):
        assert " ".join(line.split()) in text, line


def test_plain_transformers_scores_an_encoder_reward_model_as_apprentice_does(tmp_path: Path) -> None:
    backbone = tiny_bert_folder(tmp_path / "bert")
    saved_reward_model(backbone, tmp_path / "rm")
    config = json.loads((tmp_path / "rm" / "config.json").read_text())["apprentice_reward"]
    assert config["input_format"]["kind"] == "text_pair" and "'user: '" in config["input_format"]["text"]
    normalized, raw = cli_scores(tmp_path / "rm", tmp_path), cli_scores(tmp_path / "rm", tmp_path, "--raw")
    for index, (prompt, response) in enumerate(PAIRS):
        scope = run_readme_lines(tmp_path / "rm", prompt, response)
        assert scope["raw"] == pytest.approx(raw[index], abs=1e-5)
        assert scope["reward"] == pytest.approx(normalized[index], abs=1e-5)
    # the prompt's rendering matters: the bare prompt scores differently
    scope = run_readme_lines(tmp_path / "rm", PAIRS[0][0], PAIRS[0][1])
    bare = scope["rm"](**scope["tok"](PAIRS[0][0], PAIRS[0][1], return_tensors="pt")).logits[0, 0].item()
    assert abs(bare - raw[0]) > 1e-4


def test_plain_transformers_scores_a_chat_model_reward_model_with_its_template(
    tiny_model: Path, tmp_path: Path
) -> None:
    saved_reward_model(tiny_model, tmp_path / "rm")
    config = json.loads((tmp_path / "rm" / "config.json").read_text())["apprentice_reward"]
    assert config["input_format"]["kind"] == "chat_template"
    normalized = cli_scores(tmp_path / "rm", tmp_path)
    for index, (prompt, response) in enumerate(PAIRS):
        scope = run_readme_lines(tmp_path / "rm", prompt, response, chat=True)
        assert scope["reward"] == pytest.approx(normalized[index], abs=1e-5)

"""The reward model: tokens that keep the response, and an export that transformers loads and scores the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from apprentice.errors import ApprenticeError
from apprentice.reward.model import Normalization, RewardModel

PROMPT = [{"role": "user", "content": "please write a poem about the sun and the moon"}]
LONG_PROMPT = [{"role": "user", "content": "hello " * 200 + "write a poem"}]


@pytest.fixture(autouse=True)
def one_thread() -> object:
    """Tiny models run faster on one thread, above all when other jobs share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_chat_template_encoding_keeps_the_response(tiny_model: Path) -> None:
    model = RewardModel.from_backbone(str(tiny_model), max_length=40)
    short = model.tokenizer.decode(model.encode(PROMPT, "the sun is happy").input_ids)
    assert short.startswith("<|im_start|> user")
    assert short.rstrip().endswith("assistant the sun is happy <|im_end|>")
    encoded = model.encode(LONG_PROMPT, "the cat is good and the dog is good")
    assert len(encoded.input_ids) == 40
    text = model.tokenizer.decode(encoded.input_ids)
    assert "write a poem" in text and text.rstrip().endswith("the cat is good and the dog is good <|im_end|>")
    # a response longer than the window keeps its beginning and some prompt before it
    long_response = " ".join(["cat"] * 30 + ["dog"] * 30)
    cut = model.tokenizer.decode(model.encode(LONG_PROMPT, long_response).input_ids)
    assert "assistant cat cat" in cut and "dog" not in cut


def test_segment_encoding_for_tokenizers_without_a_chat_template() -> None:
    from transformers import AutoTokenizer

    from apprentice.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm"), local_files_only=True)
    model = RewardModel(None, tokenizer, max_length=40)
    encoded = model.encode(LONG_PROMPT, "the cat is good")
    assert len(encoded.input_ids) == 40
    text = tokenizer.decode(encoded.input_ids)
    assert text.startswith("[CLS]") and text.endswith("write a poem [SEP] the cat is good [SEP]")
    assert encoded.token_type_ids is not None
    assert encoded.token_type_ids[-5:] == [1] * 5 and encoded.token_type_ids[-6] == 0  # "the cat is good [SEP]"


def test_scores_do_not_depend_on_padding(tiny_model: Path) -> None:
    model = RewardModel.from_backbone(str(tiny_model), max_length=64)
    responses = ["the sun", "the moon is happy and the sun is sad"]
    together = model.score([PROMPT, PROMPT], responses, normalized=False)
    alone = [model.score([PROMPT], [text], normalized=False)[0] for text in responses]
    assert together == pytest.approx(alone, abs=1e-5)


@pytest.mark.parametrize("train_mode", ["full", "lora"])
def test_export_loads_as_sequence_classification_and_scores_the_same(
    tiny_model: Path, tmp_path: Path, train_mode: str
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = RewardModel.from_backbone(str(tiny_model), max_length=64, train_mode=train_mode, lora_rank=4)  # type: ignore[arg-type]
    if train_mode == "lora":  # make the adapters matter, as after training
        for name, parameter in model.model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(parameter, std=0.5)
    responses = ["the sun is happy", "no", "the cat and the dog are friend"]
    before = model.score([PROMPT] * 3, responses, normalized=False)
    model.normalization = Normalization(mean=0.25, std=2.0, measured_on="test")
    model.save(tmp_path / "rm")

    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm", local_files_only=True)
    assert loaded.config.num_labels == 1
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "rm", local_files_only=True)
    loaded.eval()
    with torch.no_grad():
        for response, expected in zip(responses, before, strict=True):
            text = tokenizer.apply_chat_template([*PROMPT, {"role": "assistant", "content": response}], tokenize=False)
            ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")
            assert loaded(**ids).logits.item() == pytest.approx(expected, abs=1e-5)

    ours = RewardModel.load(tmp_path / "rm")
    assert ours.score([PROMPT] * 3, responses, normalized=False) == pytest.approx(before, abs=1e-5)
    assert ours.score([PROMPT] * 3, responses) == pytest.approx([(b - 0.25) / 2.0 for b in before], abs=1e-5)
    saved = json.loads((tmp_path / "rm" / "config.json").read_text())
    assert saved["apprentice_reward"]["normalization"]["std"] == 2.0


def test_load_refuses_a_folder_that_is_not_a_reward_model(tmp_path: Path) -> None:
    with pytest.raises(ApprenticeError, match="not a reward model folder"):
        RewardModel.load(tmp_path)


def test_max_length_beyond_the_backbone_is_refused(tiny_model: Path) -> None:
    with pytest.raises(ApprenticeError, match="max_length 1024 is more than"):
        RewardModel.from_backbone(str(tiny_model), max_length=1024)

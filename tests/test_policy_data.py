"""The data the loop's preference algorithms train on, and fine-tuning on demonstrations, on tiny inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from apprentice.errors import InputError
from apprentice.policy_data import RankedResponses, best_against_worst, best_responses, judged_pairs, load, save
from apprentice.rl.config import SFTConfig
from apprentice.rl.dpo import TextPair
from apprentice.rl.metrics import read_metrics
from apprentice.rl.sft import Demonstration, train_sft
from apprentice.rl.training import TrainingData
from apprentice.settings import load_settings
from apprentice.store import Store
from apprentice.store.records import ComparisonPlan, GeneratedResponse, PromptRecord
from rl_toy import PROMPTS

QUESTION = [{"role": "user", "content": "Q?"}]


def test_each_prompt_gives_its_best_against_its_worst_and_ties_give_nothing() -> None:
    ranked = [
        RankedResponses(QUESTION, ["a", "b", "c"], [0.1, 0.7, -0.2]),
        RankedResponses(QUESTION, ["d", "e"], [0.3, 0.3]),
    ]
    assert best_against_worst(ranked) == [TextPair(QUESTION, "b", "c")]
    assert best_responses(ranked) == [Demonstration(QUESTION, "b"), Demonstration(QUESTION, "d")]


def test_saved_data_reads_back_with_its_counts(tmp_path: Path) -> None:
    data = TrainingData(pairs=[TextPair(QUESTION, "b", "c")], demonstrations=[Demonstration(QUESTION, "é")])
    save(tmp_path / "data.jsonl", data, {"reward_pairs": 1, "demonstrations": 1})
    loaded, counts = load(tmp_path / "data.jsonl")
    assert (list(loaded.pairs), list(loaded.demonstrations)) == (list(data.pairs), list(data.demonstrations))
    assert counts == {"reward_pairs": 1, "demonstrations": 1}


def test_judged_pairs_are_the_rounds_own_and_skip_zero_weights(store: Store) -> None:
    store.import_prompts([PromptRecord(QUESTION)], [], source="t")
    prompt_id = store.prompts()[0].id
    policy = store.ensure_policy("p", kind="base", model_path=None)
    for number, texts in ((1, "AB"), (2, "CD")):
        store.add_generation(
            policy.id,
            [GeneratedResponse(prompt_id, text, 1, True) for text in texts],
            {},
            lambda prompt_id, ids, number=number: [ComparisonPlan("pair", prompt_id, ids, overlap=3, round=number)],
        )
    first, second = store.comparisons()
    judgments = {}
    for name, comparison, winner in (("x", first, 0), ("x", second, 1), ("y", second, 0), ("z", second, 1)):
        annotator = store.ensure_annotator(name)
        judgment, _ = store.record_judgment(
            comparison_id=comparison.id,
            annotator_id=annotator.id,
            answer={"winner": winner},
            idempotency_key=f"{name}{comparison.id}",
            source="simulated",
        )
        judgments[name, comparison.id] = judgment.id
    store.set_judgment_weights({judgments["y", second.id]: 0.0})
    assert judged_pairs(store, 2) == [TextPair(QUESTION, "D", "C")] * 2  # x and z; y is weighted out
    assert judged_pairs(store, 1) == [TextPair(QUESTION, "A", "B")]


def test_fine_tuning_on_demonstrations_makes_them_likelier(tiny_model: Path, tmp_path: Path) -> None:
    demonstrations = [Demonstration(prompt, "the sun is good") for prompt in PROMPTS]
    config = SFTConfig(
        output_dir=tmp_path / "run",
        steps=8,
        batch_size=4,
        learning_rate=1e-2,
        lr_schedule="constant",
        tensorboard=False,
    )
    train_sft(config, str(tiny_model), demonstrations, show_progress=False)
    rows = read_metrics(config.output_dir)
    assert len(rows) == 8
    assert rows[-1]["loss"] < 0.7 * rows[0]["loss"]  # about 4.7 to 2.9 nats a token
    assert rows[0]["length"] > 4  # the response's tokens, and the end of turn after them


def test_label_smoothing_belongs_to_the_sigmoid_loss(tmp_path: Path) -> None:
    path = tmp_path / "apprentice.toml"
    path.write_text('[loop]\nalgorithm = "dpo"\ndpo_loss = "ipo"\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"dpo_label_smoothing \(0.15\) applies to the sigmoid loss only"):
        load_settings(path)
    path.write_text('[loop]\nalgorithm = "dpo"\ndpo_loss = "ipo"\ndpo_label_smoothing = 0\n', encoding="utf-8")
    assert load_settings(path).loop.dpo_loss == "ipo"

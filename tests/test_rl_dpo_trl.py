"""Our DPO loss equals TRL's DPOTrainer loss on the same tiny models and batch (TRL is a test-only dependency)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from apprentice.models import load_policy
from apprentice.preferences import PreferencePair
from apprentice.rl.config import DPOConfig
from apprentice.rl.dpo import collate, dpo_batch_loss, tokenize_pair
from conftest import build_tiny_model_folder

ROWS = [
    ("write a poem about the sun", "the sun is good and happy", "bad"),
    ("hello", "hi friend !", "no"),
    ("explain why the cat is sad", "the cat is sad because it is wet with water", "i hate cat"),
    ("what is python ?", "python is a good code list", "a dog"),
]


@pytest.fixture(autouse=True)
def accelerate_state_reset() -> Iterator[None]:
    """TRL's trainer leaves accelerate's process-wide state set to bf16 mixed precision, which every later
    `Accelerator()` in this process would inherit (the GRPO update test then computes in bf16): undo it."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_loss_matches_trl(tiny_model: Path, tmp_path: Path, beta: float) -> None:
    from datasets import Dataset
    from trl import DPOConfig as TrlDPOConfig
    from trl import DPOTrainer

    # A reference that differs from the policy, so the log-ratios (and the loss) are not trivially log 2.
    reference_folder = build_tiny_model_folder(tmp_path / "reference", seed=1)
    policy, tokenizer = load_policy(str(tiny_model))
    reference, _ = load_policy(str(reference_folder))
    tokenizer.padding_side = "right"
    pairs = [
        PreferencePair([{"role": "user", "content": p}], c, r, "ann", 1, 1.0, i, i, "human")
        for i, (p, c, r) in enumerate(ROWS)
    ]
    dataset = Dataset.from_list([pair.to_trl() for pair in pairs]).select_columns(["prompt", "chosen", "rejected"])
    args = TrlDPOConfig(
        output_dir=str(tmp_path / "trl"),
        beta=beta,
        per_device_eval_batch_size=len(ROWS),
        report_to=[],
        max_length=None,
        use_cpu=True,
    )
    trainer = DPOTrainer(
        model=policy,
        ref_model=reference,
        args=args,
        train_dataset=dataset,
        eval_dataset=dataset,
        processing_class=tokenizer,
    )
    trl_loss = trainer.evaluate()["eval_loss"]

    tokenized = [tokenize_pair(tokenizer, pair, max_length=512) for pair in pairs]
    # The same tokens as TRL's own tokenization of the conversational rows.
    for ours, theirs in zip(tokenized, trainer.eval_dataset, strict=True):
        assert (ours.prompt_ids, ours.chosen_ids, ours.rejected_ids) == (
            theirs["prompt_ids"],
            theirs["chosen_ids"],
            theirs["rejected_ids"],
        )
    batch = collate(tokenized, tokenizer.pad_token_id)
    with torch.no_grad():
        ours, _ = dpo_batch_loss(trainer.model, trainer.ref_model, trainer.model, batch, DPOConfig(beta=beta))
    assert abs(float(ours) - trl_loss) < 1e-5, (float(ours), trl_loss)
    assert abs(trl_loss - 0.6931) > 1e-3  # the comparison is not between two copies of log 2

"""Rollouts (padding, EOS, log-probs), reward sources and config validation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from apprentice.errors import ApprenticeError
from apprentice.models import load_policy
from apprentice.rl.config import build_config
from apprentice.rl.rewards import CallableReward, EnsembleReward, ModelReward, parse_reward
from apprentice.rl.rollout import (
    Rollout,
    completion_mask_after_eos,
    forward_completions,
    prompt_groups,
    sample_rollout,
)
from apprentice.tokens import left_pad, position_ids
from rl_toy import PROMPTS


def test_completion_mask_stops_after_the_first_eos() -> None:
    eos = 9
    completions = torch.tensor([[5, 9, 0, 0], [5, 6, 7, 8], [9, 9, 0, 0]])
    mask, finished = completion_mask_after_eos(completions, [eos])
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert finished.tolist() == [True, False, True]


def test_left_padding() -> None:
    ids, mask = left_pad([[1, 2, 3], [4]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_rollout_shapes_groups_and_eos(tiny_model: Path) -> None:
    model, tokenizer = load_policy(str(tiny_model))
    torch.manual_seed(0)
    rollout = sample_rollout(
        model, tokenizer, PROMPTS[:3], completions_per_prompt=4, max_new_tokens=12, temperature=1.0
    )
    assert rollout.completion_ids.shape[0] == 12
    assert [messages[0]["content"] for messages in rollout.prompts[:5]] == [PROMPTS[0][0]["content"]] * 4 + [
        PROMPTS[1][0]["content"]
    ]
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    for row, mask, finished in zip(rollout.completion_ids, rollout.completion_mask, rollout.finished, strict=True):
        length = int(mask.sum())
        if finished:
            assert row[length - 1] == eos and eos not in row[: length - 1].tolist()
        assert all(token == pad for token in row[length:].tolist())  # padded with pad, never EOS
    # The prompt's padding sits on the left: every prompt ends in the last prompt column.
    assert bool(rollout.prompt_mask[:, -1].all())


def test_left_padded_logprobs_equal_unpadded_ones(tiny_model: Path) -> None:
    """Left padding must not change a row's log-probs: positions are counted over real tokens only."""
    model, tokenizer = load_policy(str(tiny_model))
    torch.manual_seed(1)
    rollout = sample_rollout(model, tokenizer, PROMPTS[:4], completions_per_prompt=1, max_new_tokens=6, temperature=1.0)
    with torch.no_grad():
        batched = forward_completions(model, rollout, temperature=0.7).logprobs
        for row in range(4):
            real = rollout.prompt_mask[row].bool()
            alone = Rollout(
                prompt_ids=rollout.prompt_ids[row : row + 1, real],
                prompt_mask=rollout.prompt_mask[row : row + 1, real],
                completion_ids=rollout.completion_ids[row : row + 1],
                completion_mask=rollout.completion_mask[row : row + 1],
                finished=rollout.finished[row : row + 1],
                prompts=rollout.prompts[row : row + 1],
                completion_texts=rollout.completion_texts[row : row + 1],
            )
            single = forward_completions(model, alone, temperature=0.7).logprobs
            mask = rollout.completion_mask[row]
            torch.testing.assert_close(batched[row] * mask, single[0] * mask, atol=1e-5, rtol=0)


def test_prompt_groups_are_runs_of_the_same_prompt() -> None:
    ids = torch.tensor([[0, 5, 6], [0, 5, 6], [7, 8, 9], [7, 8, 9], [0, 5, 6]])
    mask = torch.tensor([[0, 1, 1]] * 2 + [[1, 1, 1]] * 3)
    assert prompt_groups(ids, mask).tolist() == [0, 0, 1, 1, 2]  # type: ignore[union-attr]
    assert prompt_groups(ids[1:4], mask[1:4]).tolist() == [0, 1, 1]  # type: ignore[union-attr]
    assert prompt_groups(ids[1:3], mask[1:3]) is None


def test_completions_of_a_prompt_share_its_pass_with_the_full_passs_logprobs_and_gradients(tiny_model: Path) -> None:
    model, tokenizer = load_policy(str(tiny_model))
    torch.manual_seed(2)
    sampled = sample_rollout(model, tokenizer, PROMPTS[:3], completions_per_prompt=3, max_new_tokens=7, temperature=1.0)
    # completions of several lengths, right-padded (the tiny model never says EOS by itself)
    lengths = torch.tensor([7, 3, 5, 2, 7, 4, 6, 1, 7]).unsqueeze(1)
    completion_mask = (torch.arange(7).unsqueeze(0) < lengths).float()
    rollout = dataclasses.replace(
        sampled,
        completion_mask=completion_mask,
        completion_ids=sampled.completion_ids.masked_fill(completion_mask == 0, tokenizer.pad_token_id),
    )
    batch_sizes: list[int] = []
    hook = model.register_forward_pre_hook(
        lambda _m, _a, kwargs: batch_sizes.append(kwargs["inputs_embeds"].shape[0]), with_kwargs=True
    )
    lookups: list[int] = []
    embeddings = model.get_input_embeddings().register_forward_hook(lambda _m, _a, _o: lookups.append(1))
    shared = forward_completions(model, rollout, temperature=0.7)
    hook.remove()
    embeddings.remove()
    assert batch_sizes == [3, 9]  # the 3 prompts once, then the 9 completions on their keys and values
    assert len(lookups) == 1  # both passes' tokens embedded at once: one vocabulary-sized gradient
    weights = torch.randn(shared.logprobs.shape, generator=torch.Generator().manual_seed(0)) * rollout.completion_mask
    (shared.logprobs * weights).sum().backward()
    shared_gradients = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    mask = rollout.attention_mask
    width = rollout.completion_ids.shape[1]
    logits = model(
        input_ids=rollout.input_ids, attention_mask=mask, position_ids=position_ids(mask), logits_to_keep=width + 1
    ).logits[:, :-1]
    full = torch.log_softmax(logits / 0.7, dim=-1).gather(-1, rollout.completion_ids.unsqueeze(-1)).squeeze(-1)
    (full * weights).sum().backward()
    real = rollout.completion_mask.bool()
    torch.testing.assert_close(shared.logprobs[real], full[real], atol=1e-5, rtol=1e-5)
    assert shared_gradients.keys() == {name for name, p in model.named_parameters() if p.grad is not None}
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(shared_gradients[name], parameter.grad, atol=1e-6, rtol=1e-4)


def test_logprobs_match_the_sampling_distribution(tiny_model: Path) -> None:
    """forward_completions gives the log-probs of generate's own (tempered) distribution."""
    model, tokenizer = load_policy(str(tiny_model))
    torch.manual_seed(2)
    rollout = sample_rollout(model, tokenizer, PROMPTS[:2], completions_per_prompt=2, max_new_tokens=5, temperature=0.5)
    with torch.no_grad():
        output = model.generate(
            input_ids=rollout.prompt_ids,
            attention_mask=rollout.prompt_mask,
            max_new_tokens=1,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=tokenizer.pad_token_id,
        )
        first = torch.log_softmax(output.logits[0] / 0.5, dim=-1)  # (B, V), the first new token
        expected = first.gather(1, rollout.completion_ids[:, :1]).squeeze(1)
        ours = forward_completions(model, rollout, temperature=0.5).logprobs[:, 0]
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def _tiny_reward_model(folder: Path) -> Path:
    """A sequence classifier with one label and a tokenizer of its own (character level, no chat template)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1} | {c: i + 2 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz !?.\n")}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]")
    torch.manual_seed(3)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_labels=1,
        pad_token_id=0,
    )
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_model_reward_retokenizes_text_with_its_own_tokenizer(tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = _tiny_reward_model(tmp_path / "rm")
    reward = ModelReward(folder, batch_size=2)
    prompts = [[{"role": "user", "content": "hello"}]] * 3
    completions = ["hi there!", "no", "a longer answer."]
    scores = reward(prompts, completions)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        for score, completion in zip(scores, completions, strict=True):
            encoded = tokenizer("hello\n\n" + completion, return_tensors="pt")
            assert float(score) == pytest.approx(float(model(**encoded).logits[0, 0]), abs=1e-5)
    assert parse_reward([str(folder)]).name == str(folder)  # type: ignore[attr-defined]


def test_model_reward_refuses_a_classifier_with_several_labels(tmp_path: Path) -> None:
    folder = _tiny_reward_model(tmp_path / "rm")
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    config.num_labels = 3
    config.save_pretrained(folder)
    with pytest.raises(ApprenticeError, match="num_labels=3"):
        ModelReward(folder)


def test_ensemble_and_weighted_sum() -> None:
    one = CallableReward(lambda prompts, completions: [1.0, 0.0], "one")
    three = CallableReward(lambda prompts, completions: [3.0, 0.0], "three")
    prompts = [[{"role": "user", "content": "x"}]] * 2
    # mean 2, population std 1 -> 2 - 0.5 * 1 = 1.5; second: 0.
    scores = EnsembleReward([one, three], spread_penalty=0.5)(prompts, ["a", "b"])
    assert scores.tolist() == pytest.approx([1.5, 0.0])
    summed = parse_reward(["rl_toy:letter_fraction", "0.5*rl_toy:letter_fraction"])
    assert summed(prompts, ["a b", "the sun"]).tolist() == pytest.approx([1.5, 0.0])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuchmodule_xyz:f", "cannot import module"),
        ("rl_toy:nope", "has no function 'nope'"),
        ("nothing-here", "neither a folder nor module:function"),
        ("x*rl_toy:letter_fraction", "must be a number"),
    ],
)
def test_bad_reward_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ApprenticeError, match=message):
        parse_reward([spec])


def test_callable_returning_the_wrong_number_of_scores() -> None:
    reward = CallableReward(lambda prompts, completions: [1.0], "short")
    with pytest.raises(ApprenticeError, match=r"returned \(1,\) scores for 2 completions"):
        reward([[{"role": "user", "content": "x"}]] * 2, ["a", "b"])


def test_configs_validate_themselves_with_a_sentence() -> None:
    with pytest.raises(ApprenticeError, match=r"must be divisible by minibatches \(4\); change one of them"):
        build_config("ppo", {"prompts_per_step": 6, "minibatches": 4})
    with pytest.raises(ApprenticeError, match="grpo option completions_per_prompt"):
        build_config("grpo", {"completions_per_prompt": 1})
    with pytest.raises(ApprenticeError, match="label_smoothing applies to the sigmoid loss only"):
        build_config("dpo", {"loss": "ipo", "label_smoothing": 0.1})
    with pytest.raises(ApprenticeError, match="unknown algorithm 'a2c'"):
        build_config("a2c", {})
    dr = build_config("grpo", {"variant": "dr_grpo"})
    assert dr.scale_rewards is False and dr.loss_aggregation == "constant"  # type: ignore[union-attr]


def test_reward_models_trained_by_apprentice_are_read_with_normalization(tiny_model: Path, tmp_path: Path) -> None:
    from apprentice.reward.model import RewardModel
    from apprentice.rl.rewards import TrainedRewardModel, reward_model_source

    reward_model = RewardModel.from_backbone(str(tiny_model), max_length=64)
    reward_model.save(tmp_path / "rm")
    source = reward_model_source(tmp_path / "rm", batch_size=4)
    assert isinstance(source, TrainedRewardModel)
    prompts = [[{"role": "user", "content": "hello"}]] * 2
    expected = RewardModel.load(tmp_path / "rm").score(prompts, ["good", "bad dog"])
    assert source(prompts, ["good", "bad dog"]).tolist() == pytest.approx(expected, abs=1e-6)


def test_ppo_value_head_can_start_from_a_reward_models_head(tiny_model: Path, tmp_path: Path) -> None:
    from apprentice.reward.model import RewardModel, head_module
    from apprentice.rl.ppo import PolicyWithValueHead

    reward_model = RewardModel.from_backbone(str(tiny_model), max_length=64, seed=5)
    reward_model.save(tmp_path / "rm")
    model = PolicyWithValueHead(load_policy(str(tiny_model))[0])
    assert model.value_head.weight.abs().sum() == 0  # zero-initialized by default
    model.init_value_head_from(str(tmp_path / "rm"))
    torch.testing.assert_close(model.value_head.weight, head_module(reward_model.model).weight)


def test_the_entropy_carries_a_gradient_only_when_asked(tiny_model: Path) -> None:
    """PPO's entropy bonus must train the policy; as a metric the entropy stays out of the graph."""
    model, tokenizer = load_policy(str(tiny_model))
    torch.manual_seed(2)
    rollout = sample_rollout(model, tokenizer, PROMPTS[:2], completions_per_prompt=1, max_new_tokens=4, temperature=1.0)
    metric = forward_completions(model, rollout, temperature=1.0, with_entropy=True).entropy
    assert metric is not None and not metric.requires_grad
    bonus = forward_completions(model, rollout, temperature=1.0, entropy_gradient=True).entropy
    assert bonus is not None and bonus.requires_grad
    (bonus * rollout.completion_mask).sum().backward()
    gradients = [parameter.grad for parameter in model.parameters() if parameter.grad is not None]
    assert gradients and any(float(gradient.abs().sum()) > 0 for gradient in gradients)
    torch.testing.assert_close(bonus.detach(), metric)

"""The sampling loop against `model.generate`: the same greedy tokens, rows leaving the batch as they stop."""

from __future__ import annotations

from pathlib import Path

import torch

from apprentice.decoding import Sampling, decode
from apprentice.models import load_policy
from apprentice.tokens import encode_prompts, left_pad, pad_token_id
from conftest import randomize_weights

PROMPTS = [
    [{"role": "user", "content": "write a poem about the sun"}],
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "be good"}, {"role": "user", "content": "explain why the moon"}],
    [{"role": "user", "content": "a b c d e f g"}],
]


def batch(tokenizer: object) -> tuple[torch.Tensor, torch.Tensor]:
    return left_pad(encode_prompts(tokenizer, PROMPTS, max_prompt_tokens=256), pad_token_id(tokenizer))


def generate_completions(model: object, input_ids: torch.Tensor, mask: torch.Tensor, stops: list[int], pad: int):
    output = model.generate(  # type: ignore[attr-defined]
        input_ids=input_ids,
        attention_mask=mask,
        do_sample=False,
        max_new_tokens=24,
        eos_token_id=stops,
        pad_token_id=pad,
    )
    return output[:, input_ids.shape[1] :]


def first(row: list[int], token: int) -> int:
    return row.index(token) if token in row else len(row)


def lively_model(folder: Path) -> tuple[object, object]:
    model, tokenizer = load_policy(str(folder))
    return randomize_weights(model), tokenizer


def test_greedy_decoding_gives_generates_tokens_with_rows_stopping_early(tiny_model: Path) -> None:
    model, tokenizer = lively_model(tiny_model)
    input_ids, mask = batch(tokenizer)
    pad = pad_token_id(tokenizer)
    # A random model rarely says EOS: make a token that one row produces early a stop token too, so that
    # rows leave the batch at different steps.
    free_run = generate_completions(model, input_ids, mask, [tokenizer.eos_token_id], pad).tolist()
    uneven = [
        token for token in {t for row in free_run for t in row} if len({first(row, token) for row in free_run}) > 1
    ]
    early_token = min(uneven, key=lambda token: min(first(row, token) for row in free_run))
    stops = [tokenizer.eos_token_id, early_token]
    expected = generate_completions(model, input_ids, mask, stops, pad)
    ours = decode(model, input_ids, mask, Sampling(max_new_tokens=24, temperature=0), stop_ids=stops, pad_id=pad)
    assert ours.tolist() == expected.tolist()
    lengths = [min(first(row, token) for token in stops) for row in expected.tolist()]
    assert len(set(lengths)) > 1, lengths  # rows stopped at different steps


def test_sampling_is_reproducible_and_pads_after_the_stop_token(tiny_model: Path) -> None:
    model, tokenizer = lively_model(tiny_model)
    input_ids, mask = batch(tokenizer)
    pad = pad_token_id(tokenizer)
    sampling = Sampling(max_new_tokens=16, temperature=1.0, top_p=0.9, top_k=20)
    stops = [tokenizer.eos_token_id, int(input_ids[0, -1])]
    torch.manual_seed(3)
    first = decode(model, input_ids, mask, sampling, stop_ids=stops, pad_id=pad)
    torch.manual_seed(3)
    second = decode(model, input_ids, mask, sampling, stop_ids=stops, pad_id=pad)
    assert first.tolist() == second.tolist()
    for row in first.tolist():
        ends = [index for index, token in enumerate(row) if token in stops]
        if ends:
            assert all(token == pad for token in row[ends[0] + 1 :])


def test_repeated_prompts_are_run_once_and_decode_as_generate_does(tiny_model: Path) -> None:
    model, tokenizer = lively_model(tiny_model)
    input_ids, mask = batch(tokenizer)
    input_ids, mask = input_ids.repeat_interleave(3, dim=0), mask.repeat_interleave(3, dim=0)  # G = 3 a prompt
    pad = pad_token_id(tokenizer)
    stops = [tokenizer.eos_token_id]
    expected = generate_completions(model, input_ids, mask, stops, pad)
    batch_sizes: list[int] = []
    hook = model.get_input_embeddings().register_forward_pre_hook(  # type: ignore[attr-defined]
        lambda _module, args: batch_sizes.append(args[0].shape[0])
    )
    ours = decode(model, input_ids, mask, Sampling(max_new_tokens=24, temperature=0), stop_ids=stops, pad_id=pad)
    hook.remove()
    assert ours.tolist() == expected.tolist()
    assert batch_sizes[0] == len(PROMPTS)  # the prompt pass: each distinct prompt once
    assert batch_sizes[1] == len(PROMPTS) * 3

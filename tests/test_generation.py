"""Candidate generation on a tiny random model: batching, seeds, EOS, and what lands in the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from apprentice.cli import app
from apprentice.generation import PromptToAnswer, _completion_length, generate_candidates
from apprentice.models import load_policy
from apprentice.project import open_project
from apprentice.settings import GenerationSection
from apprentice.tokens import left_pad

PROMPTS = [
    PromptToAnswer(1, [{"role": "user", "content": "write a poem about the sun"}]),
    PromptToAnswer(2, [{"role": "user", "content": "hi"}]),
    PromptToAnswer(3, [{"role": "system", "content": "be good"}, {"role": "user", "content": "explain why the moon"}]),
]
runner = CliRunner()


def texts(result: object) -> list[tuple[int, str]]:
    return [(response.prompt_id, response.text) for response in result.responses]  # type: ignore[attr-defined]


def test_completion_length_stops_at_the_first_stop_token() -> None:
    assert _completion_length([5, 6, 2, 7, 2], {2}) == (3, True)
    assert _completion_length([5, 6, 7], {2}) == (3, False)
    assert _completion_length([2], {2, 9}) == (1, True)


def test_left_padding_puts_prompts_against_the_right_edge() -> None:
    input_ids, attention_mask = left_pad([[7, 8, 9], [5]], pad_id=0)
    assert input_ids.tolist() == [[7, 8, 9], [0, 0, 5]]
    assert attention_mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_k_candidates_per_prompt_in_prompt_order(tiny_model: Path) -> None:
    model, tokenizer = load_policy(str(tiny_model))
    settings = GenerationSection(candidates=3, max_new_tokens=6, seed=1, batch_size=2)
    result = generate_candidates(model, tokenizer, PROMPTS, settings, show_progress=False)
    assert [prompt_id for prompt_id, _ in texts(result)] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    for response in result.responses:
        assert 1 <= response.num_tokens <= 6
        assert response.finished or response.num_tokens == 6  # unfinished means cut at the limit
    assert result.new_tokens == sum(response.num_tokens for response in result.responses)


def test_the_same_seed_gives_the_same_responses_and_another_seed_differs(tiny_model: Path) -> None:
    model, tokenizer = load_policy(str(tiny_model))
    settings = GenerationSection(candidates=2, max_new_tokens=8, seed=7, batch_size=2)
    first = generate_candidates(model, tokenizer, PROMPTS, settings, show_progress=False)
    second = generate_candidates(model, tokenizer, PROMPTS, settings, show_progress=False)
    other = generate_candidates(model, tokenizer, PROMPTS, settings.model_copy(update={"seed": 8}), show_progress=False)
    assert texts(first) == texts(second)
    assert texts(first) != texts(other)


def test_batched_left_padded_greedy_matches_one_prompt_at_a_time(tiny_model: Path) -> None:
    model, tokenizer = load_policy(str(tiny_model))
    greedy = GenerationSection(candidates=2, temperature=0.0, max_new_tokens=8)
    batched = generate_candidates(
        model, tokenizer, PROMPTS, greedy.model_copy(update={"batch_size": 3}), show_progress=False
    )
    single = generate_candidates(
        model, tokenizer, PROMPTS, greedy.model_copy(update={"batch_size": 1}), show_progress=False
    )
    assert texts(batched) == texts(single)
    # Greedy decoding gives one text per prompt, repeated K times (the store keeps it once).
    assert texts(batched)[0] == texts(batched)[1]


def _project_with_prompts(tmp_path: Path, prompts: int = 4) -> Path:
    folder = tmp_path / "project"
    assert runner.invoke(app, ["init", str(folder)]).exit_code == 0
    source = tmp_path / "prompts.jsonl"
    words = ["sun", "moon", "cat", "dog", "tree", "water"]
    source.write_text("".join(f'{{"prompt": "write a poem about the {w}"}}\n' for w in words[:prompts]))
    result = runner.invoke(app, ["prompts", "import", str(source), "-p", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


@pytest.mark.parametrize(("kind", "per_prompt"), [("pair", 3), ("ranking", 1), ("rating", 3)])
def test_generate_command_stores_responses_and_comparisons(
    tmp_path: Path, tiny_model: Path, kind: str, per_prompt: int
) -> None:
    folder = _project_with_prompts(tmp_path)
    toml = folder / "apprentice.toml"
    toml.write_text(toml.read_text().replace('kind = "pair"', f'kind = "{kind}"'))
    args = ["generate", "-p", str(folder), "--model", str(tiny_model), "--candidates", "3"]
    result = runner.invoke(app, [*args, "--max-new-tokens", "8", "--seed", "3", "--limit", "3"])
    assert result.exit_code == 0, result.output
    project = open_project(folder)
    comparisons = project.store.comparisons()
    # Distinct samples from a random model: every prompt gets the full set of comparisons.
    assert len(comparisons) == 3 * per_prompt
    assert {comparison.kind for comparison in comparisons} == {kind}
    sizes = {"pair": 2, "ranking": 3, "rating": 1}
    assert all(len(comparison.members) == sizes[kind] for comparison in comparisons)
    responses = [r for prompt in project.store.prompts() for r in project.store.responses_for(prompt.id)]
    assert len(responses) == 9
    assert responses[0].sampling["seed"] == 3 and responses[0].sampling["max_new_tokens"] == 8
    (run,) = project.store.runs("generate")
    assert run.status == "done" and run.metrics["comparisons"] == 3 * per_prompt
    project.close()


def test_generate_is_reproducible_across_projects(tmp_path: Path, tiny_model: Path) -> None:
    stored = []
    for name in ("a", "b"):
        folder = _project_with_prompts(tmp_path / name)
        result = runner.invoke(app, ["generate", "-p", str(folder), "--model", str(tiny_model), "--seed", "5"])
        assert result.exit_code == 0, result.output
        project = open_project(folder)
        stored.append([r.text for p in project.store.prompts() for r in project.store.responses_for(p.id)])
        project.close()
    assert stored[0] == stored[1] and len(stored[0]) == 8


def test_generate_refuses_bad_options_and_unknown_models(tmp_path: Path, tiny_model: Path) -> None:
    folder = _project_with_prompts(tmp_path)
    result = runner.invoke(app, ["generate", "-p", str(folder), "--model", str(tiny_model), "--candidates", "9"])
    assert result.exit_code == 1 and "--candidates" in result.output
    result = runner.invoke(app, ["generate", "-p", str(folder), "--model", str(tmp_path / "no-such-model")])
    assert result.exit_code == 1 and "no-such-model" in result.output
    assert "never downloads" in result.output
    assert open_project(folder).store.summary().responses == 0


def test_generate_without_prompts_says_what_to_do(tmp_path: Path, tiny_model: Path) -> None:
    folder = tmp_path / "empty"
    runner.invoke(app, ["init", str(folder)])
    result = runner.invoke(app, ["generate", "-p", str(folder), "--model", str(tiny_model)])
    assert result.exit_code == 1 and "prompts import" in result.output

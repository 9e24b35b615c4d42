"""The simulated judge over real HTTP, as the loop's EndpointJudge asks it, and label_to_gain's judge runs.

The oracles here are a word count and the built-in `concision`: no model is loaded."""

from __future__ import annotations

import argparse
import contextlib
import itertools
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from apprentice.judges.endpoint import EndpointJudge
from apprentice.judges.jobs import backend_for
from apprentice.judges.runner import verdict_for
from apprentice.judges.verdict import judge_messages, read_judge_messages
from apprentice.project import open_project
from apprentice.store.rounds import RoundState
from label_to_gain import judge_name, labels_at, open_run, register_judge, run_folder_name, serve_judge
from oracle_judge import FLIP_RATE, OracleJudge, OracleJudgeServer, is_flipped

REQUEST = "Tell me about the sun"
ANSWERS = [f"the sun is {'good ' * (index % 4)}today {index}" for index in range(40)]


def good_count(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """A gold oracle without a model: the more "good" in an answer, the better."""
    return [float(response.split().count("good")) for response in responses]


def pair_task(request: str, first: str, second: str) -> dict[str, object]:
    return {"prompt": [{"role": "user", "content": request}], "responses": [{"text": first}, {"text": second}]}


def gold_pairs(flipped: bool) -> tuple[str, str]:
    """A (better, worse) pair on `good_count` whose flip under seed 0 is `flipped`."""
    for better, worse in itertools.product(ANSWERS, ANSWERS):
        decisive = good_count([], [better])[0] > good_count([], [worse])[0]
        if decisive and is_flipped(0, REQUEST, better, worse, FLIP_RATE) == flipped:
            return better, worse
    raise AssertionError("no such pair among the answers")


# -- the judge chat read back ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_text", "answer_a", "answer_b"),
    [
        ("write a poem", "the sun is good", "bad"),
        ("two\n\nparagraphs [Request]", "", "line one\n\nline two [Answer A]"),
        ("é ünïcode ☀", "A", "B\n"),
    ],
)
def test_the_chat_parser_round_trips_what_the_judge_builds(request_text: str, answer_a: str, answer_b: str) -> None:
    assert read_judge_messages(judge_messages(request_text, answer_a, answer_b)) == (request_text, answer_a, answer_b)


def test_the_chat_parser_refuses_other_chats() -> None:
    built = judge_messages("q", "a", "b")
    with pytest.raises(ValueError, match="one user message"):
        read_judge_messages([*built, {"role": "assistant", "content": "A"}])
    with pytest.raises(ValueError, match="instructions"):
        read_judge_messages([{"role": "user", "content": "Which is better, a or b?"}])
    cut = built[0]["content"].replace("\n\n[Answer B]\n", "\n\n")
    with pytest.raises(ValueError, match="missing"):
        read_judge_messages([{"role": "user", "content": cut}])


# -- over real HTTP, through EndpointJudge ----------------------------------------------------------


def test_the_good_judge_follows_the_gold_and_reverses_a_flipped_pair_in_both_orders() -> None:
    plain_better, plain_worse = gold_pairs(flipped=False)
    flip_better, flip_worse = gold_pairs(flipped=True)
    with OracleJudgeServer(OracleJudge("good", oracle=good_count, seed=0)) as server:
        endpoint = EndpointJudge(server.url, judge_name("good"))
        for first, second, first_wins in (
            (plain_better, plain_worse, True),
            (plain_worse, plain_better, False),
            (flip_better, flip_worse, False),  # flipped: the gold-worse answer wins, whichever is shown first
            (flip_worse, flip_better, True),
        ):
            verdict = verdict_for(endpoint, pair_task(REQUEST, first, second))
            assert verdict.consistent and verdict.prefers_first is first_wins
            assert verdict.confidence == pytest.approx(0.8)  # above the loop's judge_confidence of 0.5
        assert server.requests == 8  # each pair asked in both orders


def test_the_longer_judge_prefers_the_longer_answer_and_abstains_on_equal_lengths() -> None:
    with OracleJudgeServer(OracleJudge("longer")) as server:
        endpoint = EndpointJudge(server.url, judge_name("longer"))
        longer = verdict_for(endpoint, pair_task(REQUEST, "short", "a much longer answer"))
        assert longer.consistent and longer.prefers_first is False and longer.confidence == pytest.approx(0.8)
        assert verdict_for(endpoint, pair_task(REQUEST, "a much longer answer", "short")).prefers_first is True
        assert verdict_for(endpoint, pair_task(REQUEST, "abc", "xyz")).prefers_first is None


def test_the_server_refuses_a_chat_that_is_not_a_judge_chat() -> None:
    with OracleJudgeServer(OracleJudge("longer")) as server:
        body = {"model": "x", "messages": [{"role": "user", "content": "hello"}]}
        response = httpx.post(f"{server.url}/chat/completions", json=body)
    assert response.status_code == 400 and "not a judge chat" in response.text


# -- the flips, over many pairs ---------------------------------------------------------------------


def test_the_good_judge_flips_about_its_share_and_is_the_same_in_both_orders() -> None:
    judge = OracleJudge("good", oracle="concision", flip_rate=FLIP_RATE, seed=3)  # the built-in word-count oracle
    answers = [" ".join(["word"] * (59 + index)) + f" {index}" for index in range(100)]
    pairs = list(itertools.combinations(answers, 2))  # 4950; 60 to 159 words, so concision ranks them all
    flips = 0
    for first, second in pairs:
        prefers_first = judge.prefers_a(REQUEST, first, second)
        assert judge.prefers_a(REQUEST, second, first) is (not prefers_first)
        gold_first, gold_second = judge.gold(REQUEST, [first, second])
        flips += prefers_first != (gold_first > gold_second)
    # Binomial(4950, 0.15): standard deviation 0.005; the hashes are fixed, so this does not vary between runs.
    assert abs(flips / len(pairs) - FLIP_RATE) < 0.02
    other_seed = OracleJudge("good", oracle="concision", seed=4)
    assert any(judge.prefers_a(REQUEST, a, b) != other_seed.prefers_a(REQUEST, a, b) for a, b in pairs[:200])


# -- label_to_gain's judge runs ---------------------------------------------------------------------


def run_args(judge: str) -> argparse.Namespace:
    return argparse.Namespace(
        model="default",
        labels_per_round=48,
        prompts_per_round=24,
        policy_steps=10,
        eval_prompts=48,
        policy_learning_rate=None,
        rounds=2,
        judge=judge,
        judge_share=0.5,
    )


def test_label_to_gain_registers_the_endpoint_judge_in_the_store_and_the_settings(tmp_path: Path) -> None:
    assert run_folder_name("composite", "grpo", 0, "none") == "composite-grpo-seed0"
    folder = tmp_path / run_folder_name("composite", "grpo", 0, "good")
    assert folder.name == "composite-grpo-seed0-judge-good"
    project = open_run(folder, "grpo", "concision", 0, run_args("good"))
    try:
        with contextlib.ExitStack() as stack:
            server = serve_judge(stack, project, "good", "concision", 0)
            assert server is not None
            url = server.url
        assert register_judge(project, "good", "http://elsewhere/v1").url == url  # registered once
    finally:
        project.close()
    reopened = open_project(folder)
    try:
        assert reopened.settings.loop.judges == ["oracle-good"] and reopened.settings.loop.judge_share == 0.5
        assert reopened.settings.loop.labels_per_round == 48 and reopened.settings.loop.algorithm == "grpo"
        record = reopened.store.judge("oracle-good")
        assert (record.backend, record.model, record.url) == ("endpoint", "oracle-good", url)
        account = reopened.store.annotator_account(annotator_id=record.annotator_id)
        assert account is not None and account.kind == "ai"
        backend = backend_for(record)  # what the loop's routing builds
        assert isinstance(backend, EndpointJudge) and backend.url == url
        # A resumed run serves the judge again at the URL the project stored.
        with contextlib.ExitStack() as stack:
            again = serve_judge(stack, reopened, "good", "concision", 0)
            assert again is not None and again.url == url
            (probability,) = backend.probabilities_of_a([judge_messages("q", "one two", "one")])
            assert min(abs(probability - 0.9), abs(probability - 0.1)) < 1e-9
    finally:
        reopened.close()
    plain = open_run(tmp_path / "plain", "grpo", "concision", 0, run_args("none"))
    try:
        assert plain.settings.loop.judges == [] and plain.store.judges() == []
    finally:
        plain.close()


def test_people_and_judge_labels_are_counted_apart() -> None:
    def collected(number: int, in_store: int, judge_labels: int | None) -> RoundState:
        routing = None if judge_labels is None else {"offered": 12, "settled": 9, "judge_labels": judge_labels}
        outputs = {"collect": {"judgments": 48, "judgments_in_store": in_store, "judges": routing}}
        return RoundState(number, "done", 1, "base", None, None, outputs)

    states = [collected(1, 48 + 11, 11), collected(2, 96 + 11 + 10 + 2, 10)]
    assert labels_at(states, 1) == (48, 11)
    assert labels_at(states, 2) == (98, 21)  # two late people's labels on round 1's comparisons count as people's
    assert labels_at([collected(1, 50, None)], 1) == (50, 0)  # no judge: every label is people's

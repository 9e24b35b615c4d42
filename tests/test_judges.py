"""Machine judges: the logit readout, the order swap, an OpenAI-compatible endpoint over real HTTP,
abstentions, keys kept out of everything, and judges kept out of people's figures."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from apprentice.cli import app
from apprentice.judges.calibration import MIN_SHARED, calibrate_judge, confidence_of
from apprentice.judges.endpoint import EndpointJudge, probability_from_choice
from apprentice.judges.local import LocalJudge, letter_token_ids
from apprentice.judges.runner import ABSTAIN_REASON, StudioJudge, rationale_of, verdict_for
from apprentice.judges.verdict import combine_orders, judge_messages, two_way_probability
from apprentice.project import init_project, open_project
from apprentice.settings import Settings
from apprentice.store import Store
from apprentice.store.quality_queries import QualityJudgment
from apprentice.store.records import Message
from oracle_judge import ThreadedServer
from studio_fixtures import api_token, seed_comparisons, studio_client

# -- the maths, by hand ----------------------------------------------------------------------------


def test_two_way_probability_is_a_softmax_over_the_two_letters() -> None:
    assert two_way_probability(math.log(3), 0.0) == pytest.approx(0.75)
    assert two_way_probability(-1.0, -1.0) == pytest.approx(0.5)


def test_both_orders_must_agree_or_the_judge_abstains() -> None:
    # First shown as A: P(A) = 0.8; first shown as B: P(A) = 0.3, so P(first) = 0.7 there. Consistent.
    verdict = combine_orders(0.8, 0.3)
    assert verdict.consistent and verdict.prefers_first is True
    assert verdict.first_probability == pytest.approx(0.75)
    assert verdict.confidence == pytest.approx(0.5)
    # A judge that says "A" whatever is shown (position bias) prefers the first, then the second: it abstains.
    biased = combine_orders(0.8, 0.8)
    assert not biased.consistent and biased.prefers_first is None and biased.confidence == 0.0
    assert combine_orders(0.2, 0.9).prefers_first is False


def test_the_rationale_carries_the_confidence_back() -> None:
    assert confidence_of(rationale_of(combine_orders(0.8, 0.3))) == pytest.approx(0.5, abs=1e-3)
    assert confidence_of("a person's reason") is None


# -- a local model, read from its logits -----------------------------------------------------------


@pytest.fixture(scope="module")
def local_judge(tiny_model: Path) -> LocalJudge:
    return LocalJudge(str(tiny_model), batch_size=2)


def _manual_letter_logits(judge: LocalJudge, chat: list[Message]) -> tuple[float, float]:
    ids = judge.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
    if hasattr(ids, "keys"):
        ids = ids["input_ids"]
    with torch.no_grad():
        logits = judge.model(input_ids=torch.tensor([list(ids)])).logits[0, -1]
    return float(logits[judge.letter_a]), float(logits[judge.letter_b])


def test_the_local_readout_is_the_next_token_logits_of_a_and_b(local_judge: LocalJudge) -> None:
    chats = [
        judge_messages("write a poem", "the sun is good", "bad"),
        judge_messages("hello", "hi", "the cat and the dog love the tree and the water"),
        judge_messages("why", "because", "no"),
    ]
    batched = local_judge.letter_logits(chats)  # left-padded batches of two
    for row, chat in enumerate(chats):
        logit_a, logit_b = _manual_letter_logits(local_judge, chat)
        assert batched[row, 0].item() == pytest.approx(logit_a, abs=1e-4)
        assert batched[row, 1].item() == pytest.approx(logit_b, abs=1e-4)
    probability = local_judge.probabilities_of_a(chats[:1])[0]
    assert probability == pytest.approx(two_way_probability(*_manual_letter_logits(local_judge, chats[0])), abs=1e-5)
    assert letter_token_ids(local_judge.tokenizer)[0] != letter_token_ids(local_judge.tokenizer)[1]


def test_the_judge_asks_in_both_orders(local_judge: LocalJudge) -> None:
    task = {"prompt": [{"role": "user", "content": "write a poem"}], "responses": [{"text": "good"}, {"text": "bad"}]}
    verdict = verdict_for(local_judge, task)
    in_order = two_way_probability(*_manual_letter_logits(local_judge, judge_messages("write a poem", "good", "bad")))
    swapped = two_way_probability(*_manual_letter_logits(local_judge, judge_messages("write a poem", "bad", "good")))
    assert verdict.probability_first_shown_first == pytest.approx(in_order, abs=1e-5)
    assert verdict.probability_first_shown_second == pytest.approx(1 - swapped, abs=1e-5)
    assert verdict.first_probability == pytest.approx((in_order + 1 - swapped) / 2, abs=1e-5)


# -- an OpenAI-compatible endpoint over real HTTP --------------------------------------------------


class TinyModelServer(ThreadedServer):
    """A small OpenAI-compatible chat-completions server that runs the tiny model (not a mock of the client)."""

    def __init__(self, judge: LocalJudge, *, api_key: str | None = None) -> None:
        from fastapi import FastAPI, Header, HTTPException

        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        api = FastAPI()
        tokenizer = judge.tokenizer

        @api.post("/v1/chat/completions")
        def completions(body: dict[str, Any], authorization: str | None = Header(None)) -> dict[str, Any]:
            self.requests.append(body)
            self.authorizations.append(authorization)
            if api_key is not None and authorization != f"Bearer {api_key}":
                raise HTTPException(401, "bad key")
            ids = tokenizer.apply_chat_template(body["messages"], add_generation_prompt=True, tokenize=True)
            if hasattr(ids, "keys"):
                ids = ids["input_ids"]
            with torch.no_grad():
                logits = judge.model(input_ids=torch.tensor([list(ids)])).logits[0, -1]
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            top = torch.topk(logprobs, int(body.get("top_logprobs", 0)) or 1)
            tokens = [tokenizer.decode([int(index)]) for index in top.indices]
            # The tiny tokenizer lowercases: it decodes "A" as "a", as a real server would decode its own token.
            return {
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": tokens[0]},
                        "logprobs": {
                            "content": [
                                {
                                    "token": tokens[0],
                                    "logprob": float(top.values[0]),
                                    "top_logprobs": [
                                        {"token": token, "logprob": float(value)}
                                        for token, value in zip(tokens, top.values, strict=True)
                                    ],
                                }
                            ]
                        },
                    }
                ]
            }

        super().__init__(api, name="tiny-model-judge")


@pytest.fixture
def tiny_server(local_judge: LocalJudge) -> Iterator[TinyModelServer]:
    with TinyModelServer(local_judge) as server:
        yield server


def test_an_endpoint_judge_reads_the_same_probability_as_the_local_one(
    local_judge: LocalJudge, tiny_server: TinyModelServer
) -> None:
    chats = [judge_messages("write a poem", "the sun is good", "bad"), judge_messages("hello", "hi", "no")]
    vocabulary = len(local_judge.tokenizer)
    endpoint = EndpointJudge(tiny_server.url, "tiny", top_logprobs=vocabulary)
    assert endpoint.probabilities_of_a(chats) == pytest.approx(local_judge.probabilities_of_a(chats), abs=1e-4)
    assert tiny_server.requests[0]["max_tokens"] == 1 and tiny_server.requests[0]["logprobs"] is True
    # With only the top token's log-probability the other letter is bounded by it: still a probability.
    narrow = EndpointJudge(tiny_server.url, "tiny", top_logprobs=1).probabilities_of_a(chats)
    assert all(0.0 <= value <= 1.0 for value in narrow)


def test_a_choice_without_logprobs_counts_as_near_certain() -> None:
    assert probability_from_choice({"message": {"content": "B"}}) == pytest.approx(0.01)
    assert probability_from_choice({"message": {"content": "I think"}}) is None
    choice = {
        "logprobs": {"content": [{"top_logprobs": [{"token": " A", "logprob": -0.1}, {"token": "B", "logprob": -2.4}]}]}
    }
    assert probability_from_choice(choice) == pytest.approx(two_way_probability(-0.1, -2.4))


# -- judges in a project ---------------------------------------------------------------------------


class FixedJudge:
    """A judge whose answers are given: P("A") by the chat's first answer text."""

    description = "fixed"

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def probabilities_of_a(self, chats: Sequence[list[Message]]) -> list[float]:
        return [self.answer(chat) for chat in chats]


def _first_answer(chat: list[Message]) -> str:
    return chat[0]["content"].split("[Answer A]\n", 1)[1].split("\n\n[Answer B]", 1)[0]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    project = init_project(tmp_path / "project", settings=Settings())
    yield project.store
    project.close()


def test_abstentions_are_skips_never_labels(store: Store) -> None:
    seed_comparisons(store, pairs=6, rankings=2, ratings=0)
    record = store.add_judge("always-a", backend="local", model="unused")
    account = store.annotator_account(annotator_id=record.annotator_id)
    assert account is not None and account.kind == "ai"
    from apprentice.studio.security import issue_api_token

    token = issue_api_token(store, account)
    with studio_client(store) as client:
        stats = StudioJudge("always-a", FixedJudge(lambda chat: 0.9), client, token).judge()
    assert (stats.asked, stats.labelled, stats.abstained, stats.not_pairs) == (6, 0, 6, 2)
    assert store.judged_comparisons() == []  # not one label from eight tasks


def test_a_consistent_judge_labels_through_the_api_with_its_probabilities(store: Store) -> None:
    seed_comparisons(store, pairs=4, rankings=0, ratings=0)
    record = store.add_judge("prefers-a", backend="local", model="unused")
    from apprentice.studio.security import issue_api_token

    token = issue_api_token(store, store.annotator_account(annotator_id=record.annotator_id))  # type: ignore[arg-type]
    # Prefers the answer mentioning "Answer A" (canonical first) whichever side it is shown on.
    judge = FixedJudge(lambda chat: 0.9 if _first_answer(chat).startswith("Answer A") else 0.1)
    with studio_client(store) as client:
        stats = StudioJudge("prefers-a", judge, client, token).judge()
    assert stats.labelled == 4 and stats.abstained == 0
    judged = store.judged_comparisons()
    assert len(judged) == 4 and all(j.annotator_kind == "ai" and j.answer["winner"] == 0 for j in judged)
    assert all(confidence_of(j.rationale) == pytest.approx(0.8, abs=1e-3) for j in judged)


def _pair(comparison: int, annotator: str, winner: int, lengths: tuple[int, int], kind: str) -> QualityJudgment:
    return QualityJudgment(
        judgment_id=comparison * 10 + (1 if kind == "ai" else 2),
        comparison_id=comparison,
        kind="pair",
        annotator=annotator,
        answer={"winner": winner},
        order_shown=[0, 1],
        response_ids=[comparison * 2, comparison * 2 + 1],
        response_lengths=list(lengths),
        duration_ms=1000,
        prompt_id=comparison,
        category=None,
        round=0,
        gold=None,
        annotator_kind=kind,
        rationale="judge P(first)=0.9000" if kind == "ai" else None,
    )


def test_calibration_weights_a_good_judge_and_zeroes_a_length_biased_one() -> None:
    import random

    rng = random.Random(0)
    people, good, biased = [], [], []
    for comparison in range(80):
        lengths = (rng.randint(10, 100), rng.randint(101, 200))[:: rng.choice([1, -1])]
        truth = rng.randint(0, 1)
        people.append(_pair(comparison, "alice", truth, lengths, "human"))
        good.append(_pair(comparison, "good", truth if rng.random() < 0.9 else 1 - truth, lengths, "ai"))
        biased.append(_pair(comparison, "long", 0 if lengths[0] > lengths[1] else 1, lengths, "ai"))
    calibrated = calibrate_judge("good", good, people, asked=85, consistent=80)
    assert calibrated.agreement.trials == 80 and calibrated.kappa_low > 0.5
    assert calibrated.flags == [] and 0.5 < calibrated.weight <= 1.0
    assert calibrated.position_consistency is not None and calibrated.position_consistency.trials == 85
    long_judge = calibrate_judge("long", biased, people)
    assert any("length bias" in flag for flag in long_judge.flags) and long_judge.weight == 0.0
    few = calibrate_judge("good", good[: MIN_SHARED - 1], people)
    assert few.weight == 0.0 and "too little data" in few.flags[0]


def test_judges_stay_out_of_peoples_figures(store: Store) -> None:
    ids = seed_comparisons(store, pairs=3, rankings=0, ratings=0, overlap=2)
    _, person_token = api_token(store, "alice")
    record = store.add_judge("judge", backend="local", model="unused")
    from apprentice.studio.security import issue_api_token

    judge_token = issue_api_token(store, store.annotator_account(annotator_id=record.annotator_id))  # type: ignore[arg-type]
    with studio_client(store) as client:
        StudioJudge(
            "judge", FixedJudge(lambda chat: 0.9 if "Answer A" in _first_answer(chat) else 0.1), client, judge_token
        ).run()
        headers = {"Authorization": f"Bearer {person_token}"}
        task = client.get("/api/v1/tasks/next", headers=headers).json()["task"]
        while task is not None:
            body = {"answer": {"choice": "A"}, "idempotency_key": f"k{task['assignment_id']}", "include_next": True}
            task = client.post(
                f"/api/v1/assignments/{task['assignment_id']}/judgment", json=body, headers=headers
            ).json()["next"]
    assert len(store.judged_comparisons()) == 6
    people = store.quality_judgments()
    assert {j.annotator for j in people} == {"alice"} and len(people) == 3
    machine = store.quality_judgments(annotator_kinds=["ai"])
    assert {j.annotator for j in machine} == {"judge"} and {j.comparison_id for j in machine} == set(ids["pair"])


def test_the_cli_keeps_the_api_key_out_of_the_project(
    tmp_path: Path, local_judge: LocalJudge, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-never-stored-7f3a9c"
    monkeypatch.setenv("APPRENTICE_TEST_JUDGE_KEY", secret)
    folder = tmp_path / "keyed"
    project = init_project(folder, settings=Settings())
    seed_comparisons(project.store, pairs=3, rankings=0, ratings=0)
    project.close()
    runner = CliRunner()
    with TinyModelServer(local_judge, api_key=secret) as server:
        added = runner.invoke(
            app,
            [
                "judges",
                "add",
                "remote",
                "-p",
                str(folder),
                "--endpoint",
                server.url,
                "--model-name",
                "tiny",
                "--api-key-env",
                "APPRENTICE_TEST_JUDGE_KEY",
            ],
        )
        assert added.exit_code == 0, added.output
        project = open_project(folder)
        record = project.store.judge("remote")
        from apprentice.judges.jobs import backend_for
        from apprentice.studio.security import issue_api_token

        token = issue_api_token(project.store, project.store.annotator_account(annotator_id=record.annotator_id))  # type: ignore[arg-type]
        with studio_client(project.store) as client:
            stats = StudioJudge("remote", backend_for(record), client, token).judge()
        project.close()
        assert stats.asked == 3 and server.authorizations[0] == f"Bearer {secret}"  # the key was used
    reported = runner.invoke(app, ["judges", "report", "-p", str(folder)])
    assert reported.exit_code == 0, reported.output
    listed = runner.invoke(app, ["judges", "list", "-p", str(folder)])
    assert listed.exit_code == 0 and "remote" in listed.output
    reopened = open_project(folder)
    assert reopened.store.judge("remote").api_key_env == "APPRENTICE_TEST_JUDGE_KEY"  # the variable's name only
    reopened.close()
    for output in (added.output, reported.output, listed.output):
        assert secret not in output
    for path in folder.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_adding_a_judge_says_what_is_wrong(tmp_path: Path) -> None:
    init_project(tmp_path / "p", settings=Settings()).close()
    runner = CliRunner()
    neither = runner.invoke(app, ["judges", "add", "j", "-p", str(tmp_path / "p")])
    assert neither.exit_code == 1 and "--model" in neither.output
    nameless = runner.invoke(app, ["judges", "add", "j", "-p", str(tmp_path / "p"), "--endpoint", "http://x/v1"])
    assert nameless.exit_code == 1 and "--model-name" in nameless.output
    run = runner.invoke(app, ["judges", "run", "-p", str(tmp_path / "p")])
    assert run.exit_code == 1 and "no judges yet" in run.output


def test_abstain_reason_is_stated() -> None:
    assert "disagree" in ABSTAIN_REASON


def test_the_loop_report_shows_the_judges_by_round(tmp_path: Path) -> None:
    from apprentice.report import judges_section
    from apprentice.store.rounds import RoundState

    outputs = {
        "collect": {"judgments": 48, "judges": {"offered": 20, "settled": 14, "to_people": 6, "judge_labels": 18}},
        "quality": {
            "judges": {
                "j": {
                    "labels": 18,
                    "shared_with_people": 12,
                    "agreement": 0.9,
                    "weight": 0.0,
                    "flags": ["too little data"],
                }
            }
        },
    }
    state = RoundState(1, "done", 1, "base", None, None, outputs)
    html = judges_section([state], tmp_path)
    assert "Machine judges" in html and "<td>14</td>" in html and "too little data (n=12)" in html
    assert judges_section([RoundState(1, "done", 1, "base", None, None, {})], tmp_path) == ""

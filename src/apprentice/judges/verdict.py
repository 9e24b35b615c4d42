"""The judge's question and the reading of its answers: pure functions, tested against hand-computed values.

A judge reads the prompt and two answers labelled A and B and is asked for one letter. Its preference is
P(A) = p_A / (p_A + p_B), the next-token probabilities of "A" and "B" renormalized over the two. It is
asked twice, with the answers swapped, so a judge that always says "A" (position bias) is caught: the
verdict counts only when both orders prefer the same answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from apprentice.store.records import Message

INSTRUCTIONS = (
    "You are comparing two answers to the same request. Decide which answer a careful person would "
    "prefer: the one that is more helpful, correct, relevant and clear. Reply with one letter: A or B."
)


# The judge chat's parts between and after the texts, shared by `judge_messages` and `read_judge_messages`.
REQUEST_MARK = "\n\n[Request]\n"
ANSWER_A_MARK = "\n\n[Answer A]\n"
ANSWER_B_MARK = "\n\n[Answer B]\n"
QUESTION = "\n\nWhich answer is better? Reply with A or B."


def judge_messages(request: str, answer_a: str, answer_b: str) -> list[Message]:
    """The chat the judge reads: the instructions, the request and the two answers, asking for one letter."""
    content = INSTRUCTIONS + REQUEST_MARK + request + ANSWER_A_MARK + answer_a + ANSWER_B_MARK + answer_b + QUESTION
    return [{"role": "user", "content": content}]


def read_judge_messages(messages: list[Message]) -> tuple[str, str, str]:
    """(request, answer A, answer B) back from a chat `judge_messages` built, for a judge served over HTTP.

    A text that itself holds a mark (a line "[Answer A]" or "[Answer B]" between blank lines) makes the split
    ambiguous: the first mark of each is taken. A chat of another shape raises ValueError.
    """
    if len(messages) != 1 or messages[0].get("role") != "user":
        raise ValueError("a judge chat is one user message")
    content = messages[0].get("content", "")
    head = INSTRUCTIONS + REQUEST_MARK
    if not content.startswith(head) or not content.endswith(QUESTION):
        raise ValueError("not a judge chat: its instructions or its question differ")
    request, mark_a, answers = content[len(head) : len(content) - len(QUESTION)].partition(ANSWER_A_MARK)
    answer_a, mark_b, answer_b = answers.partition(ANSWER_B_MARK)
    if not mark_a or not mark_b:
        raise ValueError("not a judge chat: answer A or answer B is missing")
    return request, answer_a, answer_b


def two_way_probability(logit_a: float, logit_b: float) -> float:
    """P(A) from the log-probabilities (or logits) of the tokens "A" and "B": a softmax over the two."""
    return 1.0 / (1.0 + math.exp(logit_b - logit_a))


@dataclass(frozen=True)
class Verdict:
    """What a judge concluded about (first, second) after asking in both orders.

    `first_probability`: the mean over the two orders of P(first is better); `consistent`: both orders
    prefer the same answer. `prefers_first` is None when the judge abstains (inconsistent, or exactly 50/50).
    """

    first_probability: float
    probability_first_shown_first: float
    probability_first_shown_second: float
    consistent: bool

    @property
    def prefers_first(self) -> bool | None:
        if not self.consistent:
            return None
        return self.first_probability > 0.5

    @property
    def confidence(self) -> float:
        """How far from a coin: |P(first) - 0.5| x 2, in [0, 1]; 0 when the judge abstains."""
        return 0.0 if self.prefers_first is None else abs(self.first_probability - 0.5) * 2


def combine_orders(p_a_first_shown_first: float, p_a_first_shown_second: float) -> Verdict:
    """The verdict from both orders.

    `p_a_first_shown_first`: P("A") when the first answer was shown as A; `p_a_first_shown_second`: P("A")
    when the first answer was shown as B (so P(first is better) there is 1 minus it).
    """
    first_when_a = p_a_first_shown_first
    first_when_b = 1.0 - p_a_first_shown_second
    consistent = (first_when_a > 0.5 and first_when_b > 0.5) or (first_when_a < 0.5 and first_when_b < 0.5)
    return Verdict(
        first_probability=(first_when_a + first_when_b) / 2,
        probability_first_shown_first=first_when_a,
        probability_first_shown_second=first_when_b,
        consistent=consistent,
    )

"""A simulated machine judge behind a real OpenAI-compatible chat-completions endpoint.

The loop asks it exactly as it would ask vLLM: the judge is added with `apprentice judges add NAME
--endpoint URL --model-name NAME`, and `EndpointJudge` posts each judge chat (`verdict.judge_messages`) to
`{URL}/chat/completions`, reading P("A") from the first token's `top_logprobs`. The server reads the
request and the two answers back from the chat (`verdict.read_judge_messages`) and answers the letter it
prefers with probability `PREFERRED_PROBABILITY` (confidence |2P - 1| = 0.8, above the loop's default
`judge_confidence` of 0.5). Two kinds, as in `ai_feedback.py`:

- `good`: prefers the answer with the higher score under a gold oracle (`apprentice.oracles.load_oracle`,
  a built-in name or `module:function`, or a callable), with `flip_rate` of its verdicts reversed. Whether a
  pair is flipped (and which answer wins a tie) is a hash of (seed, request, the unordered pair of answers),
  so both orders of one pair get the same verdict: a flipped pair consistently prefers the gold-worse answer,
  and the judge's both-order check passes on it. The oracle scores the answers as the judge shows them (cut
  at `runner.MAX_ANSWER_CHARACTERS`, far above the loop's answers) against the request it shows.
- `longer`: prefers the longer answer in characters; on equal lengths it answers P("A") = 0.5 in both
  orders, which the judge reads as an abstention.

    with OracleJudgeServer(OracleJudge("good", oracle="composite", flip_rate=0.15, seed=0)) as server:
        project.store.add_judge("oracle-good", backend="endpoint", model="oracle-good", url=server.url)

The server runs uvicorn in a background thread on a free loopback port (or on `port`, so that a resumed
project finds its judge at the URL it stored).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Sequence
from typing import Any, Self

from apprentice.judges.verdict import read_judge_messages
from apprentice.oracles import Oracle, load_oracle

KINDS = ("good", "longer")
FLIP_RATE = 0.15  # the good judge's share of reversed verdicts, as in ai_feedback.py
PREFERRED_PROBABILITY = 0.9  # P of the preferred letter: confidence |2P - 1| = 0.8


def unit_hash(*parts: object) -> float:
    """A number in [0, 1) fixed by `parts` (their JSON, so no two different lists collide)."""
    digest = hashlib.sha256(json.dumps(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_flipped(seed: int, request: str, first: str, second: str, flip_rate: float) -> bool:
    """Whether the good judge reverses its verdict on this pair: the same in both orders."""
    low, high = sorted((first, second))
    return unit_hash("flip", seed, request, low, high) < flip_rate


class OracleJudge:
    """The simulated judge's decision, without HTTP: P("A") for a request and its answers A and B."""

    def __init__(
        self,
        kind: str,
        *,
        oracle: str | Oracle = "composite",
        flip_rate: float = FLIP_RATE,
        seed: int = 0,
        probability: float = PREFERRED_PROBABILITY,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown judge kind {kind!r}; use one of {', '.join(KINDS)}")
        if not 0.5 < probability < 1.0:
            raise ValueError("the preferred letter's probability must lie in (0.5, 1)")
        self.kind = kind
        self.flip_rate = flip_rate
        self.seed = seed
        self.probability = probability
        self._oracle_spec = oracle
        self._oracle: Oracle | None = None
        self._scores: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()  # one oracle call at a time: torch models are not re-entrant across threads

    def gold(self, request: str, answers: Sequence[str]) -> list[float]:
        """The oracle's scores of the answers to `request`, each computed once (the oracle loads on first use)."""
        with self._lock:
            if self._oracle is None:
                spec = self._oracle_spec
                self._oracle = load_oracle(spec) if isinstance(spec, str) else spec
            missing = [text for text in dict.fromkeys(answers) if (request, text) not in self._scores]
            if missing:
                for text, score in zip(missing, self._oracle([request] * len(missing), missing), strict=True):
                    self._scores[(request, text)] = float(score)
            return [self._scores[(request, text)] for text in answers]

    def prefers_a(self, request: str, answer_a: str, answer_b: str) -> bool | None:
        """True for A, False for B, None for no preference (the `longer` judge on equal lengths)."""
        if self.kind == "longer":
            return None if len(answer_a) == len(answer_b) else len(answer_a) > len(answer_b)
        score_a, score_b = self.gold(request, [answer_a, answer_b])
        if score_a != score_b:
            better = answer_a if score_a > score_b else answer_b
        else:  # a tie on gold: a fixed coin for the unordered pair
            low, high = sorted((answer_a, answer_b))
            better = low if unit_hash("tie", self.seed, request, low, high) < 0.5 else high
        if is_flipped(self.seed, request, answer_a, answer_b, self.flip_rate):
            better = answer_b if better == answer_a else answer_a
        return better == answer_a

    def probability_of_a(self, request: str, answer_a: str, answer_b: str) -> float:
        preference = self.prefers_a(request, answer_a, answer_b)
        if preference is None:
            return 0.5
        return self.probability if preference else 1.0 - self.probability


def completion(model: str, probability_of_a: float) -> dict[str, Any]:
    """A chat-completions response of one token, with the log-probabilities of "A" and "B" as its top two."""
    letters = sorted((("A", probability_of_a), ("B", 1.0 - probability_of_a)), key=lambda item: -item[1])
    top = [{"token": letter, "logprob": math.log(probability), "bytes": None} for letter, probability in letters]
    return {
        "id": f"chatcmpl-oracle-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": letters[0][0]},
                "logprobs": {"content": [{**top[0], "top_logprobs": top}]},
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 1, "total_tokens": 1},
    }


class ThreadedServer:
    """A FastAPI app served by uvicorn in a background thread on a loopback port, as a context manager; the
    judges' tests serve their tiny model through it too."""

    def __init__(self, api: Any, *, name: str, port: int | None = None) -> None:
        import uvicorn

        from apprentice.studio.process import free_port

        self.port = port or free_port()
        config = uvicorn.Config(api, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=name, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            self.__exit__()
            raise RuntimeError(f"the server {self.thread.name} did not start on port {self.port} (is it taken?)")
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class OracleJudgeServer(ThreadedServer):
    """`OracleJudge` served at `{url}/chat/completions`."""

    def __init__(self, judge: OracleJudge, *, port: int | None = None) -> None:
        from fastapi import FastAPI, HTTPException

        self.judge = judge
        self.requests = 0
        api = FastAPI()

        @api.post("/v1/chat/completions")
        def completions(body: dict[str, Any]) -> dict[str, Any]:
            try:
                request, answer_a, answer_b = read_judge_messages(body.get("messages") or [])
            except ValueError as error:
                raise HTTPException(400, str(error)) from None
            self.requests += 1
            return completion(str(body.get("model", judge.kind)), judge.probability_of_a(request, answer_a, answer_b))

        super().__init__(api, name=f"oracle-judge-{judge.kind}", port=port)

"""Simulated annotators that load a studio server over HTTP, for the load benchmark and the crash tests.

`run_load` drives a `apprentice.studio.process.StudioServer` with concurrent annotators and records what
was acknowledged. The annotators speak plain HTTP/1.1 on keep-alive connections over asyncio streams
rather than through a client library: on a small machine the load client shares the CPU with the server it
measures, and a full client costs more per request than the server does.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from apprentice.store import Store
from apprentice.store.records import ComparisonPlan, GeneratedResponse, PromptRecord
from apprentice.studio.security import issue_api_token


@dataclass
class LoadResult:
    """What a load run saw from the client's side."""

    seconds: float
    judgments: int  # acknowledged (HTTP 200) submissions that created a judgment
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0  # refused or failed requests (a crash's lost connections included)
    acknowledged: dict[str, set[str]] = field(default_factory=dict)  # annotator token -> acknowledged keys
    client_cpu_seconds: float = 0.0  # CPU the simulated annotators used in the measured window
    server_cpu_seconds: float = 0.0  # filled in by callers that can see the server process

    @property
    def judgments_per_second(self) -> float:
        return self.judgments / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _display_answer(task: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    if task["kind"] == "pair":
        return {"choice": rng.choice(["A", "A", "B", "B", "tie", "both_bad"])}
    if task["kind"] == "ranking":
        ranks = list(range(1, len(task["responses"]) + 1))
        rng.shuffle(ranks)
        return {"ranks": ranks}
    return {"score": rng.randint(1, 7)}


class TransportFailure(Exception):
    """No usable answer on the connection: refused, reset, closed early, timed out or malformed."""


_TRANSPORT_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    TimeoutError,
)


class AnnotatorConnection:
    """One annotator's keep-alive HTTP/1.1 connection, authenticated with their API token.

    Requests go one at a time, as a person's script would send them. A failed request closes the
    connection; the next one opens a new connection.
    """

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"the load client speaks plain http to a host, not {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout = timeout
        self._fixed_headers = (
            f"Host: {parts.netloc}\r\nAuthorization: Bearer {token}\r\nAccept: application/json\r\n"
        ).encode("latin-1")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """Status and decoded JSON body of one request; raises TransportFailure when there is no answer."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(method, path, body)
        except (*_TRANSPORT_ERRORS, TransportFailure) as error:
            self.close()
            raise TransportFailure(f"{method} {path}: {error!r}") from error

    async def _exchange(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        payload = json.dumps(body).encode() if body is not None else b""
        content = f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n" if body is not None else ""
        self._writer.write(
            f"{method} {path} HTTP/1.1\r\n".encode("latin-1")
            + self._fixed_headers
            + content.encode("latin-1")
            + b"\r\n"
            + payload
        )
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
            raise TransportFailure(f"not an HTTP/1.x status line: {status_line!r}")
        length = None
        keep_alive = True
        for line in header_lines:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                keep_alive = False
            elif name == "transfer-encoding":
                raise TransportFailure(f"unexpected transfer encoding {value.strip()!r}")
        if length is None:
            raise TransportFailure("the response has no Content-Length")
        raw = await self._reader.readexactly(length)
        if not keep_alive:
            self.close()
        try:
            return int(rest[:3]), json.loads(raw) if raw else None
        except ValueError as error:
            raise TransportFailure(f"the response body is not JSON: {raw[:80]!r}") from error

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def _annotate(
    connection: AnnotatorConnection,
    token: str,
    deadline: float,
    result: LoadResult,
    *,
    measure_from: float,
    retry_seconds: float,
    seed: int,
    stop: threading.Event | None = None,
) -> None:
    """One simulated annotator: take a task, answer it (getting the next in the same call), repeat.

    A failed request is retried with the same idempotency key, as a careful client would after a crash.
    """
    rng = random.Random(seed)
    acknowledged = result.acknowledged.setdefault(token, set())
    task: dict[str, Any] | None = None
    count = 0

    def running() -> bool:
        return time.monotonic() < deadline and not (stop is not None and stop.is_set())

    while running():
        if task is None:
            try:
                status, reply = await connection.request("GET", "/api/v1/tasks/next")
            except TransportFailure:
                result.errors += 1
                await asyncio.sleep(retry_seconds)
                continue
            if status != 200:
                result.errors += 1
                await asyncio.sleep(retry_seconds)
                continue
            task = reply["task"]
            if task is None:
                return
        key = f"{seed}-{count}"
        count += 1
        body = {"answer": _display_answer(task, rng), "idempotency_key": key, "include_next": True}
        path = f"/api/v1/assignments/{task['assignment_id']}/judgment"
        while running():
            started = time.perf_counter()
            try:
                status, reply = await connection.request("POST", path, body)
            except TransportFailure:
                result.errors += 1
                await asyncio.sleep(retry_seconds)
                continue  # the same key again: stored once whether or not the first attempt landed
            if status == 200:
                acknowledged.add(key)
                if time.monotonic() >= measure_from:
                    result.latencies_ms.append(1000 * (time.perf_counter() - started))
                    result.judgments += int(reply["created"])
                task = reply["next"]
            else:
                result.errors += 1
                task = None
            break


async def _run_load(
    base_url: str,
    tokens: list[str],
    seconds: float,
    warmup: float,
    retry_seconds: float,
    stop: threading.Event | None,
) -> LoadResult:
    result = LoadResult(seconds=seconds, judgments=0)
    # One connection per annotator, as separate people would have.
    connections = [AnnotatorConnection(base_url, token) for token in tokens]
    cpu_at_start = time.process_time()
    try:
        start = time.monotonic()
        deadline = start + warmup + seconds
        await asyncio.gather(
            *(
                _annotate(
                    connection,
                    token,
                    deadline,
                    result,
                    measure_from=start + warmup,
                    retry_seconds=retry_seconds,
                    seed=index,
                    stop=stop,
                )
                for index, (connection, token) in enumerate(zip(connections, tokens, strict=True))
            )
        )
    finally:
        for connection in connections:
            connection.close()
    result.client_cpu_seconds = (time.process_time() - cpu_at_start) * seconds / (seconds + warmup)
    return result


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where installed (as for the server): a cheaper event loop leaves more CPU to the server."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_load(
    base_url: str,
    tokens: list[str],
    *,
    seconds: float,
    warmup: float = 0.0,
    retry_seconds: float = 0.2,
    stop: threading.Event | None = None,
) -> LoadResult:
    """Simulated annotators, one per token, judging as fast as the server answers for `warmup + seconds`.

    Throughput and latency count only the last `seconds`; acknowledged keys cover the whole run. Setting
    `stop` ends the run early (requests in flight still finish).
    """
    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        return runner.run(_run_load(base_url, tokens, seconds, warmup, retry_seconds, stop))


def seed_pairs(store: Store, count: int, *, overlap: int = 1, prefix: str = "load") -> None:
    """`count` pair comparisons on fresh prompts, in one transaction (fast enough for tens of thousands)."""
    records = [
        PromptRecord([{"role": "user", "content": f"{prefix} prompt {index}: explain item {index}."}])
        for index in range(count)
    ]
    store.import_prompts(records, [], source=prefix)
    wanted = {f"{prefix} prompt {index}: explain item {index}." for index in range(count)}
    prompts = [prompt for prompt in store.prompts() if prompt.text in wanted]
    policy = store.ensure_policy(f"{prefix}-policy", kind="base", model_path=None)
    responses = [
        GeneratedResponse(prompt.id, f"Answer {letter} to {prompt.id}: `code {letter}`", 6, True)
        for prompt in prompts
        for letter in "AB"
    ]
    store.add_generation(
        policy.id, responses, {}, lambda prompt_id, ids: [ComparisonPlan("pair", prompt_id, ids, overlap=overlap)]
    )


def make_tokens(store: Store, count: int, *, prefix: str = "sim") -> list[str]:
    """`count` new annotators with API tokens."""
    tokens = []
    for index in range(count):
        account = store.add_studio_annotator(f"{prefix}-{index}-{secrets.token_hex(3)}")
        tokens.append(issue_api_token(store, account))
    return tokens

"""A real studio server in a child process and simulated annotators to load it, for tests and benchmarks.

`StudioServer(project_dir)` runs `uvicorn` with the app factory on a free loopback port; `kill()` sends
SIGKILL to the whole process group (no shutdown hooks, no flushing), as a crash would. `run_load` drives
it with concurrent annotators over HTTP (httpx, asyncio) and records what was acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from apprentice.store import Store
from apprentice.store.records import ComparisonPlan, GeneratedResponse, PromptRecord
from apprentice.studio.security import CHEAP_HASHES_ENV, issue_api_token
from apprentice.studio.server import PROJECT_ENV


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class StudioServer:
    """`uvicorn` serving a project's studio on 127.0.0.1 in its own process group.

    `cheap_hashes=True` hashes new credentials with argon2's cheapest profile: for tests only (the server
    also inherits APPRENTICE_TEST_CHEAP_HASHES from the environment, as the test suite sets it).
    """

    def __init__(
        self, project_dir: Path, *, workers: int = 1, port: int | None = None, cheap_hashes: bool = False
    ) -> None:
        self.project_dir = Path(project_dir)
        self.workers = workers
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.cheap_hashes = cheap_hashes
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> StudioServer:
        env = {**os.environ, PROJECT_ENV: str(self.project_dir.resolve())}
        if self.cheap_hashes:
            env[CHEAP_HASHES_ENV] = "1"
        command = [sys.executable, "-m", "uvicorn", "apprentice.studio.server:app_from_environment", "--factory"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)]
        command += ["--log-level", "warning", "--no-access-log"]
        self.process = subprocess.Popen(command, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the studio server exited with status {self.process.returncode}")
            try:
                if httpx.get(f"{self.base_url}/api/openapi.json", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"the studio server did not answer within {timeout} s")

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server and its workers (Linux /proc; 0 elsewhere)."""
        if self.process is None:
            return 0.0
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # After the name: state, ppid, pgrp, ... utime and stime are fields 14 and 15 of the whole line.
            if int(fields[2]) == self.process.pid:
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def _signal(self, number: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it died between the check and the signal
                os.killpg(self.process.pid, number)

    def kill(self) -> None:
        """SIGKILL the server and its workers: what was committed must survive on its own."""
        self._signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)
        if self.process is not None:
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> StudioServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


# -- simulated annotators under load --------------------------------------------------------------


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


async def _annotate(
    client: httpx.AsyncClient,
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
    headers = {"Authorization": f"Bearer {token}"}
    acknowledged = result.acknowledged.setdefault(token, set())
    task: dict[str, Any] | None = None
    count = 0

    def running() -> bool:
        return time.monotonic() < deadline and not (stop is not None and stop.is_set())

    while running():
        if task is None:
            try:
                response = await client.get("/api/v1/tasks/next", headers=headers)
            except httpx.TransportError:
                result.errors += 1
                await asyncio.sleep(retry_seconds)
                continue
            if response.status_code != 200:
                result.errors += 1
                await asyncio.sleep(retry_seconds)
                continue
            task = response.json()["task"]
            if task is None:
                return
        key = f"{seed}-{count}"
        count += 1
        body = {"answer": _display_answer(task, rng), "idempotency_key": key, "include_next": True}
        path = f"/api/v1/assignments/{task['assignment_id']}/judgment"
        while running():
            started = time.perf_counter()
            try:
                response = await client.post(path, json=body, headers=headers)
            except httpx.TransportError:
                result.errors += 1
                await asyncio.sleep(retry_seconds)
                continue  # the same key again: stored once whether or not the first attempt landed
            if response.status_code == 200:
                reply = response.json()
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
    # One client (one keep-alive connection) per annotator, as separate people would have: a single
    # client's shared pool costs more CPU per request as concurrency grows. They share one TLS context
    # (unused over plain HTTP, but each client would otherwise load the certificate store).
    tls = ssl.create_default_context()
    clients = [
        httpx.AsyncClient(
            base_url=base_url, timeout=httpx.Timeout(30.0), limits=httpx.Limits(max_connections=1), verify=tls
        )
        for _ in tokens
    ]
    cpu_at_start = time.process_time()
    try:
        start = time.monotonic()
        deadline = start + warmup + seconds
        await asyncio.gather(
            *(
                _annotate(
                    client,
                    token,
                    deadline,
                    result,
                    measure_from=start + warmup,
                    retry_seconds=retry_seconds,
                    seed=index,
                    stop=stop,
                )
                for index, (client, token) in enumerate(zip(clients, tokens, strict=True))
            )
        )
    finally:
        for client in clients:
            await client.aclose()
    result.client_cpu_seconds = (time.process_time() - cpu_at_start) * seconds / (seconds + warmup)
    return result


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
    return asyncio.run(_run_load(base_url, tokens, seconds, warmup, retry_seconds, stop))


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

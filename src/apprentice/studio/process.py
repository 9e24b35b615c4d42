"""A real studio server in a child process: what `apprentice simulate` and `apprentice judges run` judge through.

`StudioServer(project_dir)` runs `uvicorn` with the app factory on a free loopback port, in its own process
group; `stop()` ends it, `kill()` sends SIGKILL to the whole group (no shutdown hooks, no flushing), as a
crash would, which the crash tests use.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from apprentice.studio.security import CHEAP_HASHES_ENV
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

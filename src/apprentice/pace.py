"""Plain lines on how a long run is going, beside (or instead of) Rich's progress bar.

A progress bar draws nothing when the output is not a terminal (a log file, `nohup`, CI), so a reward
run printed nothing for minutes; and a bar's remaining time is easy to miss when the first step shows that
the run will take hours. `Pace` prints, on the main process only: after the first step, how long it took and
the time the whole run will take at that pace; and where the output is not a terminal, a line a minute
(and one at the end) with the step, what the caller says of it, the time so far and the time to go.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console


def duration(seconds: float) -> str:
    """'45 s', '12 min', '2 h 38 min'."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


class Pace:
    """Reports the pace of a run of `total` steps, of which `start` were done before (a resumed run)."""

    def __init__(
        self,
        what: str,
        total: int,
        *,
        start: int = 0,
        enabled: bool = True,
        console: Console | None = None,
        every_seconds: float = 60.0,
        hint: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.total = total
        self.start = start
        self.enabled = enabled
        self.console = console or Console(markup=False, highlight=False)
        self.every_seconds = every_seconds
        self.hint = hint  # how to shorten the run, shown with the estimate
        self.clock = clock
        self.started = clock()
        self.last_line = self.started

    def update(self, done: int, status: str = "") -> None:
        """Call after each step with the steps done so far (counting those before a resume)."""
        if not self.enabled or done <= self.start:
            return
        now = self.clock()
        elapsed = now - self.started
        remaining = elapsed / (done - self.start) * (self.total - done)
        if done == self.start + 1 and done < self.total:
            self._print(
                f"{self.what}: step {done} of {self.total} took {duration(elapsed)}; the remaining "
                f"{self.total - done} steps take about {duration(remaining)} at this pace"
                + (f" ({self.hint})" if self.hint else "")
            )
            self.last_line = now
        elif not self.console.is_terminal and (now - self.last_line >= self.every_seconds or done == self.total):
            self._print(
                f"{self.what}: step {done} of {self.total}"
                + (f", {status}" if status else "")
                + f"; {duration(elapsed)} so far"
                + (f", about {duration(remaining)} to go" if done < self.total else "")
            )
            self.last_line = now

    def _print(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

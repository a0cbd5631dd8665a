"""Progress display shared by the training log, the sweep log, prepare, synth and the bench: a text bar, h:mm:ss, a
throttled status line (for work whose end is not known in advance, such as reading a stream), and on it the progress
of work of a known size (tokens generated, val tokens evaluated, items scored) with its rate and ETA."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

Lines = Callable[[], "StatusLine"]
"""Where a long phase shows its progress: a new status line per phase (`functools.partial(StatusLine, log, 30)`)."""


def progress_bar(frac: float, width: int = 20) -> str:
    n = int(round(frac * width))
    return "[" + "#" * n + "." * (width - n) + "]"


def format_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class StatusLine:
    """A line redrawn at most every `every` seconds. It goes to `sink` when one is given, else it is rewritten
    in place on stderr when stderr is a terminal, else nowhere: logs, pipes and tests stay quiet."""

    def __init__(self, sink: Callable[[str], None] | None = None, every: float = 0.5) -> None:
        self.sink, self.every = sink, every
        self.tty = sink is None and sys.stderr.isatty()
        self.last = float("-inf")
        self.drawn = False

    def update(self, text: Callable[[], str], force: bool = False) -> None:
        """Show `text()` if the last line is old enough (or `force`); `text` is only called then, so a caller
        in a hot loop pays one clock read."""
        if self.sink is None and not self.tty:
            return
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        if self.sink is not None:
            self.sink(text())
        else:
            sys.stderr.write("\r" + text() + "\x1b[K")  # \x1b[K clears what a longer earlier line left
            sys.stderr.flush()
            self.drawn = True

    def close(self) -> None:
        """End the terminal line, so what is printed next starts on its own line."""
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.drawn = False


class Progress:
    """Work of a known size on a status line: `what`, a bar, done/total, the rate and the ETA. Nothing for the first
    `line.every` seconds, so a short phase adds no line to a log; then at most a line every `line.every` seconds,
    and the last one when the work is done."""

    def __init__(self, line: StatusLine, what: str, total: int, unit: str = "tokens", done: int = 0) -> None:
        self.line, self.what, self.total, self.unit = line, what, max(total, 1), unit
        self.done, self.new, self.t0, self.shown = done, 0, time.perf_counter(), False

    def add(self, n: int) -> None:
        self.done += n
        self.new += n
        if self.shown or time.perf_counter() - self.t0 >= self.line.every:
            self.shown = True
            self.line.update(self.text, force=self.done >= self.total)

    def text(self) -> str:
        rate = self.new / max(time.perf_counter() - self.t0, 1e-9)
        eta = max(self.total - self.done, 0) / max(rate, 1e-9)
        return (f"{self.what} {progress_bar(min(self.done / self.total, 1.0))} {self.done:,}/{self.total:,} "
                f"{self.unit}  {rate:,.0f} {self.unit}/s  ETA {format_seconds(eta)}")

    def close(self) -> None:
        self.line.close()


def silent(_: str) -> None:
    """A sink that shows nothing (quiet work)."""

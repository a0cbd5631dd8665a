"""Progress display shared by the training log, the sweep log and prepare: a text bar, h:mm:ss, and a
throttled status line for work whose end is not known in advance (reading a stream)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


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

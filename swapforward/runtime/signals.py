"""Interrupts for the command line: Ctrl-C (SIGINT) and a scheduler's SIGTERM both stop a run the same clean way.

`install()` makes both raise `Interrupted`, a `KeyboardInterrupt`, so every `finally` runs and the atomic writers
remove their temporary files; the command line then exits with 128 + the signal's number (130 or 143). Inside
`deferred()` (writing a result) a signal is held until the block ends, so a result is written whole or not at all.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_held: list[int] = []
_depth = [0]


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; `status` is the exit status a shell expects (128 + its number)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def status(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def install() -> None:
    """Raise `Interrupted` on SIGINT and SIGTERM (main thread only; elsewhere Python keeps its handlers)."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _on_signal)


def _on_signal(signum: int, frame: object) -> None:
    if _depth[0]:
        _held.append(signum)
        return
    raise Interrupted(signum)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the length of the block (writing a result), then act on the first one held."""
    _depth[0] += 1
    try:
        yield
    finally:
        _depth[0] -= 1
        if not _depth[0] and _held:
            signum = _held[0]
            _held.clear()
            raise Interrupted(signum)

"""One progress line for the whole search, with its ETA, beside each phase's own bar.

The line counts planned seconds of work (``hetero.search._budget``): a phase advances it with the
time it runs, up to the seconds planned for it, and jumps to its planned end when it finishes (at
once, when a resumed run finds it done). tqdm's rate is then planned work per second of wall time,
so its ETA grows when phases run slower than measured and shrinks when they are skipped.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from hetero.runtime import progress

__all__ = ["SearchProgress"]

#: Seconds between updates of the line while a phase runs.
TICK_S = 1.0


class SearchProgress:
    """The whole search's progress line.

    Args:
        phases: Planned seconds of each phase, in the order they run.
    """

    def __init__(self, phases: dict[str, float]) -> None:
        self.phases = {name: max(0.0, float(s)) for name, s in phases.items()}
        total = max(1, round(sum(self.phases.values())))
        self.bar = progress(total=total, desc="whole search", unit="s", position=0,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| ETA {remaining} ({elapsed} so far){postfix}")
        self.done = 0.0

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Advance the line while the block runs ``name``; at its end, by what was planned for it."""
        planned = self.phases.get(name, 0.0)
        self.bar.set_postfix_str(name, refresh=False)
        stop = threading.Event()
        start = time.monotonic()

        def tick() -> None:
            while not stop.wait(TICK_S):
                self._show(self.done + min(time.monotonic() - start, 0.99 * planned))

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()
            self.done += planned
            self._show(self.done)

    def _show(self, value: float) -> None:
        self.bar.n = min(round(value), self.bar.total)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()

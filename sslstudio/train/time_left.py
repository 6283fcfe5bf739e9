"""How long a piece of long work still needs, from its recent progress.

For work that reports only (done, total): the classifier stage, in the CLI's progress
bars and on the Classifier page (pretraining computes its own ETA from its step plan).
The rate comes from the last `window` seconds only, and from the slower of that window
and its recent half, so that a burst of fast progress (a stage that went quicker than
its share of the bar) soon stops promising too little time. Erring long is kinder than
erring short. No progress for half the window: no estimate.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class TimeLeft:
    """Feed it (done, total) as work advances; update() returns seconds left, or None
    while it cannot tell yet."""

    def __init__(self, window: float = 20.0, min_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window, self.min_seconds, self.clock = window, min_seconds, clock
        self._samples: deque[tuple[float, float]] = deque()

    def update(self, done: float, total: float) -> float | None:
        now = self.clock()
        if self._samples and done < self._samples[-1][1]:
            self._samples.clear()            # progress went back: a new piece of work
        self._samples.append((now, float(done)))
        # keep one sample older than the window, so the rate always spans the whole window
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()
        start, start_done = self._samples[0]
        if total <= 0:
            return None
        if done >= total:
            return 0.0
        if now - start < self.min_seconds or done <= start_done:
            return None
        rate = (done - start_done) / (now - start)
        recent = next(((t, d) for t, d in self._samples if now - t <= self.window / 2), None)
        if recent is not None and now - recent[0] >= self.min_seconds / 2:
            rate = min(rate, (done - recent[1]) / (now - recent[0]))
        return (total - done) / rate if rate > 0 else None

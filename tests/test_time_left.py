"""The time-left estimate of the classifier stage's progress (CLI bars, Classifier page)."""

from __future__ import annotations

import io

import pytest

from sslstudio.train.time_left import TimeLeft


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def feed(estimator: TimeLeft, clock: Clock, points) -> float | None:
    left = None
    for t, done, total in points:
        clock.now = t
        left = estimator.update(done, total)
    return left


def test_steady_work_is_estimated_from_its_rate_and_not_before_a_few_seconds():
    clock = Clock()
    estimator = TimeLeft(clock=clock)
    assert feed(estimator, clock, [(t / 10, t, 1000) for t in range(0, 40)]) is None  # < 5 s
    left = feed(estimator, clock, [(t / 10, t, 1000) for t in range(40, 300)])
    assert left == pytest.approx((1000 - 299) / 10, rel=0.01)     # 10 units a second
    assert estimator.update(1000, 1000) == 0.0
    assert TimeLeft(clock=clock).update(0, 0) is None


def test_a_fast_first_stage_does_not_make_the_slow_one_look_short():
    """Features in 5 s (half the bar), then training at 5 units a second."""
    clock = Clock()
    estimator = TimeLeft(clock=clock)
    fast = [(t / 10, t * 10, 1000) for t in range(51)]               # 0 → 500 in 5 s
    slow = [(5 + t / 10, 500 + t / 2, 1000) for t in range(1, 121)]  # 12 s at 5 a second
    left = feed(estimator, clock, fast + slow)
    truth = (1000 - 560) / 5
    assert left == pytest.approx(truth, rel=0.05)
    overall = 560 / 17                                              # the rate since the start
    assert (1000 - 560) / overall < truth / 5                       # what it would have said


def test_progress_that_starts_again_starts_a_new_estimate():
    clock = Clock()
    estimator = TimeLeft(clock=clock)
    feed(estimator, clock, [(t, t * 10, 100) for t in range(8)])
    assert feed(estimator, clock, [(8 + t, t, 100) for t in range(3)]) is None


def test_cli_progress_bar_shows_the_time_left():
    from sslstudio.commands.predict import ProgressBar

    clock = Clock()
    stream = io.StringIO()
    bar = ProgressBar("fitting", stream=stream)
    bar.time_left = TimeLeft(clock=clock)
    for t in range(0, 100):
        clock.now = t
        bar._last = -1.0               # draw every call (the bar itself redraws ~10×/s)
        bar(t, 200)
    last = stream.getvalue().split("\r")[-1]
    assert last.startswith("fitting [") and "99/200" in last and "ETA 01:41" in last

"""Backend metrics over a sliding hour, on a fake clock."""

from __future__ import annotations

from nexus.backends.metrics import BackendMetrics, recent


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_counts_leave_the_window_an_hour_later() -> None:
    clock = FakeClock()
    metrics = BackendMetrics(clock)
    metrics.error()
    metrics.error()
    clock.now += 30 * 60
    metrics.success()
    assert metrics.window() == (1, 2)
    assert metrics.error_rate(1) == 2 / 3
    clock.now += 31 * 60  # the first minute's errors are now over an hour old
    assert metrics.window() == (1, 0)
    clock.now += 5 * 3600  # long silence: everything is gone
    assert metrics.window() == (0, 0)
    assert metrics.error_rate(1) is None


def test_no_verdict_below_the_minimum_number_of_requests() -> None:
    metrics = BackendMetrics(FakeClock())
    for _ in range(3):
        metrics.error()
    assert metrics.error_rate(4) is None
    metrics.success()
    assert metrics.error_rate(4) == 0.75


def test_time_to_first_token_is_a_moving_average() -> None:
    metrics = BackendMetrics(FakeClock())
    metrics.first_token(100.0)
    metrics.first_token(200.0)
    assert metrics.ttft_ema_ms == 120.0


def test_published_minute_buckets_merge_over_the_readers_hour() -> None:
    clock = FakeClock()
    metrics = BackendMetrics(clock)
    metrics.error()
    clock.now += 40 * 60
    metrics.success()
    metrics.success()
    minute, successes, errors = metrics.buckets()
    assert (len(successes), sum(successes), sum(errors)) == (60, 2, 1)
    assert successes[-1] == 2  # newest minute last
    assert recent(minute, errors, minute) == 1
    assert recent(minute, errors, minute + 25) == 0   # read 25 minutes later: aged out
    assert recent(minute, successes, minute + 25) == 2

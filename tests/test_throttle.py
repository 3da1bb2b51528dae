"""FailedLoginThrottle with a fake clock: how long someone who keeps failing has to wait."""

import pytest

from condorhub.auth.throttle import FailedLoginThrottle


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


def fail(throttle, key, times):
    for _ in range(times):
        throttle.record_failure(key)


def test_the_first_failures_are_free(clock):
    throttle = FailedLoginThrottle(free_failures=5, clock=clock)
    fail(throttle, "alice", 4)
    assert throttle.retry_after("alice") == 0
    fail(throttle, "alice", 1)
    assert throttle.retry_after("alice") == 2.0


def test_the_wait_doubles_with_each_further_failure_up_to_the_cap(clock):
    throttle = FailedLoginThrottle(free_failures=5, initial_delay=2, max_delay=60, clock=clock)
    fail(throttle, "alice", 5)
    waits = []
    for _ in range(7):
        wait = throttle.retry_after("alice")
        waits.append(wait)
        clock.advance(wait)  # the attacker waits exactly as long as told, then fails again
        assert throttle.retry_after("alice") == 0
        throttle.record_failure("alice")
    assert waits == [2, 4, 8, 16, 32, 60, 60]


def test_the_wait_counts_from_the_latest_failure(clock):
    throttle = FailedLoginThrottle(free_failures=1, initial_delay=2, clock=clock)
    fail(throttle, "alice", 1)
    clock.advance(1.5)
    assert throttle.retry_after("alice") == pytest.approx(0.5)
    assert throttle.retry_after_seconds("alice") == 1


def test_a_success_resets_the_count(clock):
    throttle = FailedLoginThrottle(free_failures=2, clock=clock)
    fail(throttle, "alice", 3)
    assert throttle.retry_after("alice") > 0
    throttle.reset("alice")
    assert throttle.retry_after("alice") == 0
    fail(throttle, "alice", 1)  # a later typo is free again
    assert throttle.retry_after("alice") == 0


def test_other_keys_are_not_affected(clock):
    throttle = FailedLoginThrottle(free_failures=1, clock=clock)
    fail(throttle, "mallory-target", 10)
    assert throttle.retry_after("mallory-target") > 0
    assert throttle.retry_after("bob") == 0


def test_failures_are_forgotten_after_the_window(clock):
    throttle = FailedLoginThrottle(free_failures=2, max_delay=60, window=300, clock=clock)
    fail(throttle, "alice", 10)
    clock.advance(299)
    assert throttle.failures("alice") == 10
    clock.advance(2)
    assert throttle.failures("alice") == 0
    assert throttle.retry_after("alice") == 0
    assert len(throttle) == 0


def test_memory_is_bounded_and_eviction_drops_the_oldest(clock):
    throttle = FailedLoginThrottle(free_failures=0, max_keys=100, clock=clock)
    fail(throttle, "victim", 1)
    for i in range(1000):
        clock.advance(0.001)
        throttle.record_failure(f"made-up-{i}")
    assert len(throttle) == 100
    # The oldest entry was evicted: eviction can only make the throttle more lenient.
    assert throttle.failures("victim") == 0
    assert throttle.failures("made-up-999") == 1


def test_expired_entries_are_dropped_when_the_table_is_touched(clock):
    throttle = FailedLoginThrottle(window=60, clock=clock)
    for i in range(50):
        throttle.record_failure(f"user{i}")
    clock.advance(61)
    throttle.record_failure("fresh")
    assert len(throttle) == 1


def test_huge_failure_counts_do_not_overflow(clock):
    throttle = FailedLoginThrottle(free_failures=0, max_delay=60, clock=clock)
    assert throttle.delay_after(100_000) == 60


@pytest.mark.parametrize(
    "kwargs",
    [{"free_failures": -1}, {"initial_delay": 0}, {"max_delay": 1, "initial_delay": 2},
     {"window": 0}, {"max_keys": 0}],
)
def test_nonsense_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        FailedLoginThrottle(**kwargs)

"""Failed-login throttling: slow down password guessing without locking real users out for long.

:class:`FailedLoginThrottle` is pure bookkeeping (no I/O, injectable clock). The authenticator
keeps one per username and one per client address. For each key it counts failures:

* the first ``free_failures`` failures cost nothing (people mistype);
* after that, each further attempt must wait ``initial_delay`` seconds after the latest
  failure, doubling with every further failure, up to ``max_delay``;
* a key whose latest failure is older than ``window`` is forgotten (counter back to zero);
* a success resets the key (the authenticator does that for the username only).

Only answered failures are recorded (:meth:`record_failure` once LDAP said "wrong password"),
never attempts still in flight: counting attempts up front refused a class whose 100 students
logged in at once with the right passwords from one NAT address. That parallel guesses cannot
all slip past the check before the first failure is recorded is the authenticator's job: it
lets attempts for one username take turns and re-checks when an attempt gets an LDAP thread.

Memory stays bounded: at most ``max_keys`` keys are tracked; expired keys are dropped as the
table is touched, and when it is full the key with the oldest failure is evicted. Eviction only
ever makes the throttle more lenient, never stricter, so a flood of random usernames cannot
lock anyone out.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["FailedLoginThrottle"]


@dataclass
class _Failures:
    count: int
    last: float  # clock time of the latest failure


class FailedLoginThrottle:
    """Counts failed logins per key and tells how long the next attempt must wait.

    :param free_failures: failures allowed within ``window`` before any delay applies.
    :param initial_delay: seconds the first delayed attempt must wait after the latest failure.
    :param max_delay: cap of the doubling delay, in seconds.
    :param window: seconds after the latest failure at which a key is forgotten.
    :param max_keys: most keys tracked at once (bounded memory).
    :param clock: monotonic time source in seconds (tests pass a fake one).
    """

    def __init__(
        self,
        free_failures: int = 5,
        initial_delay: float = 2.0,
        max_delay: float = 60.0,
        window: float = 900.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if free_failures < 0 or initial_delay <= 0 or max_delay < initial_delay or window <= 0:
            raise ValueError("need free_failures >= 0, initial_delay > 0, max_delay >= initial_delay and window > 0")
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.free_failures = free_failures
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        # Ordered by time of the latest failure (oldest first), so expiry and eviction only
        # ever look at the front.
        self._keys: OrderedDict[Hashable, _Failures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def failures(self, key: Hashable) -> int:
        """Failures currently counted for ``key`` (0 once forgotten)."""
        entry = self._live(key, self.clock())
        return entry.count if entry else 0

    def delay_after(self, failures: int) -> float:
        """Seconds an attempt must wait after the latest of ``failures`` failures."""
        extra = failures - self.free_failures
        if extra < 0:
            return 0.0
        # min() before the power: 2.0 ** 2000 would overflow a float.
        return min(self.max_delay, self.initial_delay * 2.0 ** min(extra, 64))

    def retry_after(self, key: Hashable) -> float:
        """Seconds until ``key`` may try again; 0.0 means it may try now."""
        now = self.clock()
        entry = self._live(key, now)
        if entry is None:
            return 0.0
        wait = entry.last + self.delay_after(entry.count) - now
        return max(0.0, wait)

    def retry_after_seconds(self, key: Hashable) -> int:
        """:meth:`retry_after` rounded up to whole seconds, for messages and Retry-After headers."""
        return math.ceil(self.retry_after(key))

    def record_failure(self, key: Hashable) -> None:
        """Count one failed attempt for ``key``."""
        now = self.clock()
        entry = self._live(key, now)
        if entry is None:
            entry = _Failures(0, now)
        entry.count += 1
        entry.last = now
        self._keys[key] = entry
        self._keys.move_to_end(key)
        self._prune(now)

    def reset(self, key: Hashable) -> None:
        """Forget ``key`` entirely (a successful login)."""
        self._keys.pop(key, None)

    def _live(self, key: Hashable, now: float) -> _Failures | None:
        entry = self._keys.get(key)
        if entry is not None and now - entry.last > self.window:
            del self._keys[key]
            return None
        return entry

    def _prune(self, now: float) -> None:
        while self._keys:
            oldest_key, oldest = next(iter(self._keys.items()))
            if now - oldest.last > self.window or len(self._keys) > self.max_keys:
                del self._keys[oldest_key]
            else:
                break

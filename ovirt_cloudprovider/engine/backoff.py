"""The auth-backoff gate (stdlib only): after a failed login, no engine call contacts the engine for a while.

One :class:`AuthGate` per :class:`~.client.EngineClient`, i.e. per process: sweeps, event polls, targeted
fetches and checks all pass through it. After the n-th consecutive failed login the gate stays closed for
``min(maximum, base * 2 ** (n - 1))`` seconds (no jitter: the schedule is the bound); while it is closed every
call is refused with an :class:`~.errors.EngineLoginBackoff` (an ``EngineAuthError``) without contacting the
engine. A successful login closes the account of failures (``succeeded``); a rotated password file opens the
gate at once (``open``, from ``EngineClient.reset``).

With the defaults (base 5 s, ``[controller] backoff_max`` 300 s) a wrong password costs logins at
0, 5, 15, 35, 75, 155, 315 s: 7 failed logins in the first 10 minutes, then 2 per 10 minutes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .errors import EngineLoginBackoff

DEFAULT_BASE = 5.0


class AuthGate:
    """Exponential backoff after failed logins, shared by every engine call of one client. Thread-safe."""

    def __init__(self, *, base: float = DEFAULT_BASE, maximum: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base = max(0.0, base)
        self.maximum = max(self.base, maximum)
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._until = 0.0

    @property
    def failures(self) -> int:
        """Consecutive failed logins since the last success (or ``open``)."""
        with self._lock:
            return self._failures

    def remaining(self) -> float:
        """Seconds until the next login may be attempted (0 when the gate is open)."""
        with self._lock:
            return max(0.0, self._until - self._clock()) if self._failures else 0.0

    def check(self, what: str) -> None:
        """Raise EngineLoginBackoff (``what`` names the login) while the gate is closed; return otherwise."""
        with self._lock:
            failures, wait = self._failures, self._until - self._clock()
        if failures and wait > 0:
            shown = f"{wait:.0f}" if wait >= 10 or wait == int(wait) else f"{wait:.1f}"
            raise EngineLoginBackoff(f"{what} failed {failures} times; next attempt in {shown} s "
                                     "(the engine is not contacted until then)")

    def failed(self) -> float:
        """Record a failed login; returns how long the gate stays closed."""
        with self._lock:
            self._failures += 1
            delay: float = min(self.maximum, self.base * 2.0 ** min(self._failures - 1, 60))
            self._until = self._clock() + delay
            return delay

    def succeeded(self) -> None:
        with self._lock:
            self._failures, self._until = 0, 0.0

    open = succeeded  # a rotated password file: try at once, with a fresh schedule


__all__ = ["DEFAULT_BASE", "AuthGate"]

"""A client-side token bucket for the Kubernetes API writes, like client-go's ``flowcontrol`` rate limiter.

:class:`TokenBucket` holds up to ``burst`` tokens and refills ``qps`` tokens per second; every request
takes one. A caller that finds the bucket empty *reserves* the next token (the count goes negative) and
waits for it, so concurrent callers are served in arrival order and the long-run rate never exceeds
``qps``. Waiting is interruptible: :meth:`TokenBucket.acquire` returns False when ``stop`` is set
meanwhile. The clock and the wait are injectable, which makes the limiter deterministic in tests.

kube-controller-manager's defaults are ``--kube-api-qps 20 --kube-api-burst 30``; the controller reads
``[controller] kube_api_qps`` and ``kube_api_burst`` with the same defaults.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """``qps`` tokens per second (more than 0), at most ``burst`` (at least 1) stored; starts full.

    ``clock`` is a monotonic clock in seconds; ``wait(seconds, stop)`` sleeps and returns True when it was
    interrupted (the default waits on ``stop``, or sleeps when there is none).
    """

    def __init__(self, qps: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 wait: Callable[[float, threading.Event | None], bool] | None = None) -> None:
        if not qps > 0:
            raise ValueError("qps must be more than 0")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.qps = float(qps)
        self.burst = int(burst)
        self._clock = clock
        self._wait = wait or _wait
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._last = clock()

    def reserve(self) -> float:
        """Take a token now: the seconds until it is really available (0: at once)."""
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._last)
            self._last = now
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.qps)
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Wait for a token; False when ``stop`` was set before it came (the token is then forfeited)."""
        if stop is not None and stop.is_set():
            return False
        delay = self.reserve()
        if delay <= 0:
            return True
        return not self._wait(delay, stop)


def _wait(seconds: float, stop: threading.Event | None) -> bool:
    if stop is not None:
        return stop.wait(seconds)
    time.sleep(seconds)
    return False

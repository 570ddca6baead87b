"""One time budget for a whole stop (or read), passed explicitly to every call it makes.

Time spent queued in an account's limiter does not count: in a storm the queue can be long,
and the provider has not been asked anything yet. It still counts in `elapsed_ms`, which is
what the person waited.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

MIN_CALL_TIMEOUT = 0.05


@dataclass
class Budget:
    """`deadline` seconds of work (limiter queueing excluded), at most `timeout` seconds per call."""

    deadline: float
    timeout: float
    started: float = field(default_factory=time.monotonic)
    queued: float = 0.0

    def left(self) -> float:
        """Seconds of work left before the deadline."""
        return self.deadline - (time.monotonic() - self.started - self.queued)

    def call_timeout(self, reserve: float = 0.0) -> float:
        """The timeout of the next call: the per-call timeout, cut so `reserve` seconds stay left."""
        return max(MIN_CALL_TIMEOUT, min(self.timeout, self.left() - reserve))

    def allows(self, seconds: float) -> bool:
        """True when `seconds` more of work still fit inside the deadline."""
        return self.left() >= seconds

    @property
    def elapsed_ms(self) -> int:
        """Milliseconds since the budget started, queueing included."""
        return int((time.monotonic() - self.started) * 1000)

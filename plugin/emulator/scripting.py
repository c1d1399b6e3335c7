"""Staged answers that tests put in front of the emulator's default behaviour.

Each route key (an IP's raw path segment, the token endpoint, discovery) has a FIFO of
`Answer`s; a request takes the next one if any, else gets the default behaviour.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Hashable, Iterable


@dataclass(frozen=True)
class Answer:
    """One staged response.

    `body=None` with status 200 means "the default behaviour" (after `delay`); with any
    other status it means a realistic error body for that status. A dict is sent as JSON;
    str and bytes are sent as they are (Content-Type application/json unless `headers`
    says otherwise), which is how tests stage malformed responses.
    """

    status: int = 200
    body: dict | list | str | bytes | None = None
    headers: dict[str, str] | None = field(default=None)
    delay: float = 0.0

    @property
    def is_default(self) -> bool:
        """True when the answer only delays the default behaviour."""
        return self.status == 200 and self.body is None


class Scripts:
    """Thread-safe FIFOs of answers per key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[Hashable, deque[Answer]] = {}

    def add(self, key: Hashable, answers: Iterable[Answer]) -> None:
        """Append answers to the key's queue."""
        staged = list(answers)
        if not all(isinstance(a, Answer) for a in staged):
            raise TypeError("answers must be Answer instances")
        with self._lock:
            self._queues.setdefault(key, deque()).extend(staged)

    def take(self, *keys: Hashable) -> Answer | None:
        """Pop the next answer of the first key that has one."""
        with self._lock:
            for key in keys:
                queue = self._queues.get(key)
                if queue:
                    return queue.popleft()
        return None

    def pending(self, key: Hashable) -> int:
        """How many answers are still staged for the key."""
        with self._lock:
            return len(self._queues.get(key, ()))

    def clear(self) -> None:
        """Drop every staged answer."""
        with self._lock:
            self._queues.clear()

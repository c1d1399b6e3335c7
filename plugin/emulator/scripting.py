"""Staged answers that tests put in front of the emulator's default behaviour.

Each route key (an IP's raw path segment, every IP, the token endpoint, discovery) has a
FIFO of `Answer`s that are used once each, and may have one "forever" answer that is used
by every request until it is cleared. A request looks at its keys in order and, for each
key, at the FIFO before the forever answer; the first answer found is used, else the
request gets the default behaviour.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

#: Transport faults an Answer can carry (None: an ordinary HTTP answer).
FAULTS = frozenset({"reset", "reset_mid_body", "stall"})
#: How long `Answer(fault="stall")` without a delay stalls (until `stop()`, which ends it at once).
STALL_FOREVER = 3600.0


@dataclass(frozen=True)
class Answer:
    """One staged response.

    `body=None` with status 200 means "the default behaviour" (after `delay`); with any
    other status it means a realistic error body for that status. A dict is sent as JSON;
    str and bytes are sent as they are (Content-Type application/json unless `headers`
    says otherwise), which is how tests stage malformed responses.

    `fault` makes the transport misbehave:

    - `"reset"`: read the request, then abort the TCP connection (RST) without a byte of
      response. `requests` raises `ConnectionError`; the request is recorded with status 0.
    - `"reset_mid_body"`: send the status line and headers with a Content-Length larger
      than what follows, the first half of the body (the default or staged one), then
      abort the connection. `requests` raises `ChunkedEncodingError`; recorded status 0.
    - `"stall"`: wait `delay` seconds before answering, like `delay` alone; without a
      delay, wait until the emulator stops (`STALL_FOREVER` at most). `stop()` ends every
      stall at once, so a stalled handler never holds up `stop()`.

    `delay` applies before any fault: `Answer(fault="reset", delay=1)` resets after 1 s.
    """

    status: int = 200
    body: dict | list | str | bytes | None = None
    headers: dict[str, str] | None = field(default=None)
    delay: float = 0.0
    fault: str | None = None

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"fault must be one of {sorted(FAULTS)} or None, not {self.fault!r}")
        if not self.delay >= 0:
            raise ValueError("delay must be >= 0")

    @property
    def is_default(self) -> bool:
        """True when the answer keeps the default status and body (it may delay or break them)."""
        return self.status == 200 and self.body is None

    @property
    def wait(self) -> float:
        """Seconds to wait before answering (a stall without a delay waits `STALL_FOREVER`)."""
        if self.fault == "stall" and self.delay == 0:
            return STALL_FOREVER
        return self.delay


class Scripts:
    """Thread-safe FIFOs of answers and "forever" answers per key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[Hashable, deque[Answer]] = {}
        self._forever: dict[Hashable, Answer] = {}

    def add(self, key: Hashable, answers: Iterable[Answer]) -> None:
        """Append answers to the key's queue."""
        staged = list(answers)
        if not all(isinstance(a, Answer) for a in staged):
            raise TypeError("answers must be Answer instances")
        with self._lock:
            self._queues.setdefault(key, deque()).extend(staged)

    def set_forever(self, key: Hashable, answer: Answer | None) -> None:
        """Use `answer` for every request on the key until cleared (None clears it)."""
        if answer is not None and not isinstance(answer, Answer):
            raise TypeError("answer must be an Answer instance or None")
        with self._lock:
            if answer is None:
                self._forever.pop(key, None)
            else:
                self._forever[key] = answer

    def take(self, *keys: Hashable, accept: Callable[[Answer], bool] | None = None) -> Answer | None:
        """The next answer of the first key that has one (its FIFO first, then its forever answer).

        With `accept`, the answer found is used (and popped) only if `accept(answer)` is true;
        otherwise nothing is taken and None is returned (later keys are not looked at).
        """
        with self._lock:
            for key in dict.fromkeys(keys):  # a key named twice (raw == decoded) is looked at once
                queue = self._queues.get(key)
                if queue:
                    if accept is not None and not accept(queue[0]):
                        return None
                    return queue.popleft()
                forever = self._forever.get(key)
                if forever is not None:
                    return forever if accept is None or accept(forever) else None
        return None

    def pending(self, key: Hashable) -> int:
        """How many answers are still staged for the key (a forever answer not counted)."""
        with self._lock:
            return len(self._queues.get(key, ()))

    def clear(self) -> None:
        """Drop every staged answer, forever answers included."""
        with self._lock:
            self._queues.clear()
            self._forever.clear()

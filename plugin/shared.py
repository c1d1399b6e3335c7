"""Per-process registry of shared objects (sessions, quotas, caches), so calls of one app share them."""

from __future__ import annotations

import threading
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")

_lock = threading.RLock()  # re-entrant: a factory may ask for another shared object
_objects: dict[Hashable, object] = {}


def shared(key: Hashable, factory: Callable[[], T]) -> T:
    """The object registered under `key`, made by `factory` on first use."""
    with _lock:
        if key not in _objects:
            _objects[key] = factory()
        return _objects[key]  # type: ignore[return-value]


def forget_all() -> None:
    """Close and drop every shared object (a fresh process, for tests)."""
    with _lock:
        for obj in _objects.values():
            close = getattr(obj, "close", None)
            if close is not None:
                close()
        _objects.clear()

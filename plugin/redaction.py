"""Keeps secrets and tokens out of every message and log line the plugin writes."""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"

# Shapes that are secret whatever their value: bearer headers, token fields, JWT-like blobs.
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*"),
    re.compile(r"(?i)(\"?(?:access_token|refresh_token|client_secret|client_assertion|passphrase)\"?\s*[:=]\s*\"?)[^\"&\s,}]+"),
    re.compile(r"()eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
)

_lock = threading.Lock()
_known: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value (client secret, passphrase, access token) so it is masked everywhere."""
    # Very short values would mask ordinary words; a real secret or token is never that short.
    if value and len(value) >= 6:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    """Mask every known secret and every secret-shaped fragment in text."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter that renders each record once and masks secrets in the result."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the record's message by its redacted rendering; never drops a record."""
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg = redact(message)
        record.args = None
        return True

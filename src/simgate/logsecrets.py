"""Keep the partner key and the tokens out of every log line.

A filter on the root handlers rewrites each record before any formatter (plain or JSON)
sees it: the message, its arguments and a traceback that quotes a secret. A leaked partner
key lets anyone sell (or steal) the farm's numbers, so this does not rely on every call site
remembering not to log one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from simgate.config import Settings

MASK = "[redacted]"
MIN_SECRET = 4
"""Shorter values would mask ordinary words and digits; no real key is that short."""


class SecretRedactor(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return True
        clean = self.redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        trace = self.redact(record.exc_text) if record.exc_text else None
        if clean != message or trace != record.exc_text:
            record.msg, record.args = clean, None
            if trace is not None and trace != record.exc_text:
                # Some formatters format exc_info again themselves: fold the cleaned trace
                # into the message and drop the raw exception.
                record.msg = f"{clean}\n{trace}"
                record.exc_info, record.exc_text = None, None
        return True


def secrets_of(settings: Settings) -> list[str]:
    tokens = (settings.intake_token, settings.admin_token, settings.alert_telegram_token)
    found = [value.get_secret_value() for value in tokens if value is not None]
    for table in settings.marketplaces.values():
        found.extend(table.secrets())
    return found


def install(secrets: Iterable[str], logger: logging.Logger | None = None) -> SecretRedactor:
    """Put one redactor on every handler of `logger` (the root by default), replacing ours."""
    target = logger or logging.getLogger()
    redactor = SecretRedactor(secrets)
    for handler in target.handlers:
        for old in [f for f in handler.filters if isinstance(f, SecretRedactor)]:
            handler.removeFilter(old)
        handler.addFilter(redactor)
    return redactor

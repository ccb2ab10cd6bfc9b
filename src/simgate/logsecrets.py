"""Keep the partner key and the tokens out of every log line.

A filter on the root handlers rewrites each record before any formatter (plain or JSON)
sees it: the message, its arguments and a traceback that quotes a secret. A leaked partner
key lets anyone sell (or steal) the farm's numbers, so this does not rely on every call site
remembering not to log one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from simgate.config import Settings

MASK = "[redacted]"
SHORT_SECRET = 8
"""Below this length a secret is masked only where it stands as a whole word: masking "ab"
inside every word would garble the log, and a secret that short is also a guessable one
(`short_secret_warning`)."""

log = logging.getLogger("simgate.secrets")


class SecretRedactor(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
        self.secrets = [s for s in ordered if len(s) >= SHORT_SECRET]
        words = [s for s in ordered if len(s) < SHORT_SECRET]
        # A whole word: not inside a longer run of letters, digits, '-' or '_' (a key's alphabet).
        self.words = (
            re.compile("(?<![\\w-])(?:" + "|".join(map(re.escape, words)) + ")(?![\\w-])") if words else None
        )

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if self.words is not None:
            text = self.words.sub(MASK, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets and self.words is None:
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
    tokens = (
        settings.intake_token,
        settings.admin_token,
        settings.alert_telegram_token,
        settings.metrics_token,
    )
    found = [value.get_secret_value() for value in tokens if value is not None]
    return found + [secret for _, secret in issued_secrets(settings)]


def issued_secrets(settings: Settings) -> list[tuple[str, str]]:
    """(name, value) of the secrets someone else issues: marketplace keys, device passwords.

    The owner's own tokens are held to MIN_OWNER_SECRET by config.py; these are taken as given.
    """
    found = [
        (f"[marketplaces.{name}] key", secret)
        for name, table in settings.marketplaces.items()
        for secret in table.secrets()
    ]
    return found + hardware_secrets(settings.hardware, "hardware")


def warn_short_secrets(settings: Settings) -> None:
    """Once per process, at start (bootstrap.protect_logs)."""
    for name, secret in issued_secrets(settings):
        short_secret_warning(name, secret)


HARDWARE_SECRET_KEYS = frozenset({"password", "token", "signing_key"})


def hardware_secrets(table: object, path: str) -> list[tuple[str, str]]:
    """(name, value) of the devices' passwords and tokens in [hardware.*], at any depth.

    An Ejoin token travels in the query string and a GoIP password in clear-text UDP: a log
    line quoting either must not hand it on.
    """
    if not isinstance(table, dict):
        return []
    found: list[tuple[str, str]] = []
    for key, value in table.items():
        where = f"{path}.{key}"
        if key in HARDWARE_SECRET_KEYS and isinstance(value, str) and value:
            found.append((where, value))
        else:
            found.extend(hardware_secrets(value, where))
    return found


def short_secret_warning(name: str, value: str) -> None:
    """For secrets someone else issues (CONTRACT.md): taken as given, but said at start."""
    if len(value) < SHORT_SECRET:
        log.warning(
            "%s is only %d characters: it is easy to guess and is masked in the logs only where"
            " it stands as a whole word; ask its issuer for a longer one",
            name,
            len(value),
        )


def install(secrets: Iterable[str], logger: logging.Logger | None = None) -> SecretRedactor:
    """Put one redactor on every handler of `logger` (the root by default), replacing ours."""
    target = logger or logging.getLogger()
    redactor = SecretRedactor(secrets)
    for handler in target.handlers:
        for old in [f for f in handler.filters if isinstance(f, SecretRedactor)]:
            handler.removeFilter(old)
        handler.addFilter(redactor)
    return redactor

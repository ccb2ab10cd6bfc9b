# ruff: noqa: RUF001 - the Cyrillic in these texts is the point: it must survive intake and push.
"""What SIMs receive: verification codes (Latin, Cyrillic, emoji), long texts, operator
notices, personal messages; and how the marketplace tells a service's SMS from another's.
"""

from __future__ import annotations

import random

SENDERS: dict[str, str] = {
    "telegram": "Telegram",
    "whatsapp": "WhatsApp",
    "vkcom": "VK",
    "ok": "OK.ru",
    "google": "Google",
    "gmail": "Google",
    "facebook": "Facebook",
    "instagram": "Instagram",
    "tiktok": "TikTok",
    "avito": "Avito",
    "uber": "Uber",
    "openai": "OpenAI",
    "yandex": "Yandex",
    "mailru": "Mail.ru",
    "ozon": "OZON",
    "wildberries": "WB",
    "discord": "Discord",
    "twitter": "X",
    "microsoft": "Microsoft",
    "amazon": "Amazon",
    "viber": "Viber",
    "tinder": "Tinder",
}

CYRILLIC_SERVICES = frozenset({"vkcom", "ok", "avito", "yandex", "mailru", "ozon", "wildberries"})

BLOCKED_SENDERS = frozenset({"900", "sberbank", "tinkoff", "alfa-bank", "qiwi wallet", "paypal"})
"""Banks and payment systems: Onlinesim blocks their SMS on rents (spec 6.2, BAD_SERVICE)."""

_CODE_TEMPLATES = (
    "{name} code: {code}. Do not give this code to anyone, even if they say they are from {name}!",
    "Your {name} verification code is {code}",
    "<#> {code} is your {name} code. Don't share it. Xy3kQ9fz2Lm",
    "🔐 {name}: {code} is your login code. Never share it 🙅",
    "✅ {code} — your {name} code 🚀",
)
_CYRILLIC_TEMPLATES = (
    "Код подтверждения {name}: {code}. Никому не сообщайте его!",
    "{name}: {code} — ваш код для входа. Не сообщайте его никому.",
    "Ваш код {code} 🔑 Никому его не говорите, даже сотрудникам {name} 😉",
)
_LONG_TEMPLATE = (
    "Hello! We received a request to sign in to your {name} account from a new device. "
    "If this was you, enter the code {code} in the app within 10 minutes. If this was not "
    "you, ignore this message and consider changing your password: somebody may know it. "
    "Здравствуйте! Мы получили запрос на вход в ваш аккаунт {name} с нового устройства. "
    "Если это были вы, введите код {code}. Если нет — просто проигнорируйте это сообщение. "
    "Thank you for using {name} 💙 — the {name} team."
)
_PERSONAL = (
    ("+79001234567", "Привет! Перезвони, когда сможешь 🙂 ({n})"),
    ("+4915199990000", "Hi, are we still on for tomorrow at 10? ({n})"),
    ("Mama", "Ты где? Ужин на столе 🍲 ({n})"),
)
_OPERATOR_NOTICES = (
    "Баланс: {n},30 р. Пополните счёт, чтобы оставаться на связи.",
    "Your balance is low: {n}.00. Top up now and get 5 GB bonus!",
    "Услуга «Кто звонил» подключена. Стоимость 2 р./сутки. Код {n}.",
)
_BANKS = (
    ("900", "Сбербанк: вход в СберБанк Онлайн, код {code}. Никому его не сообщайте."),
    ("Tinkoff", "Код для входа в Тинькофф: {code}. Никому не говорите код!"),
    ("PayPal", "PayPal: Your security code is {code}. It expires in 10 minutes."),
)


def sender_for(service: str) -> str:
    return SENDERS.get(service, service.capitalize())


def belongs_to(service: str, sender: str, text: str) -> bool:
    """Onlinesim's filter, simplified: the service's name shows in the sender or the text."""
    name = sender_for(service).lower()
    return name in sender.lower() or name in text.lower() or service.lower() in text.lower()


def code(rng: random.Random) -> str:
    return str(rng.randint(100000, 999999)) if rng.random() < 0.6 else str(rng.randint(1000, 9999))


def verification(rng: random.Random, service: str, *, long_text: float = 0.08) -> tuple[str, str]:
    """(sender, text) of a code SMS from `service`."""
    name = sender_for(service)
    value = code(rng)
    if rng.random() < long_text:
        return name, _LONG_TEMPLATE.format(name=name, code=value)
    if service in CYRILLIC_SERVICES or rng.random() < 0.2:
        return name, rng.choice(_CYRILLIC_TEMPLATES).format(name=name, code=value)
    return name, rng.choice(_CODE_TEMPLATES).format(name=name, code=value)


def rent_message(rng: random.Random, services: list[str], serial: int) -> tuple[str, str]:
    """Anything a rented number receives: codes of any service, a bank, a person."""
    roll = rng.random()
    if roll < 0.08:
        sender, template = rng.choice(_BANKS)
        return sender, template.format(code=code(rng))
    if roll < 0.2:
        sender, template = rng.choice(_PERSONAL)
        return sender, template.format(n=serial)
    return verification(rng, rng.choice(services))


def stray_message(rng: random.Random, operator: str, serial: int) -> tuple[str, str]:
    """An SMS for a number nobody bought: the operator's notices and advertising."""
    sender = operator.capitalize() if operator else "Operator"
    return sender, rng.choice(_OPERATOR_NOTICES).format(n=serial)

"""Bank card numbers collected for manual payouts (S11, S24): checked, encrypted, masked.

The full number exists in clear only in the request that records it and in the bank transfer
that pays it. Everywhere else (pages, admin, API, logs, repr) it is the mask: the first six
digits (the issuer) and the last four, which is what an agent reads back to the customer.
"""

import re

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

MIN_DIGITS, MAX_DIGITS = 12, 19  # China UnionPay debit cards are 16-19 digits; some old ones 12+
_SEPARATORS = re.compile(r"[\s-]+")


class CardNumberError(ValueError):
    """Not a card number: wrong length, not digits, or the check digit is wrong."""


def normalize(number: str) -> str:
    """The digits of a card number typed with spaces or dashes in groups."""
    return _SEPARATORS.sub("", number or "")


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def validate(number: str) -> str:
    """The normalized digits, or CardNumberError saying what is wrong."""
    digits = normalize(number)
    if not digits.isdigit():
        raise CardNumberError("a card number has digits only")
    if not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        raise CardNumberError(f"a card number has {MIN_DIGITS} to {MAX_DIGITS} digits")
    if not luhn_valid(digits):
        raise CardNumberError("the check digit is wrong: please read the number again")
    return digits


def mask(first6: str, last4: str, length: int) -> str:
    hidden = max(length - len(first6) - len(last4), 0)
    return f"{first6}{'*' * hidden}{last4}"


def mask_number(digits: str) -> str:
    return mask(digits[:6], digits[-4:], len(digits))


def _fernet() -> Fernet:
    return Fernet(settings.CARD_ENCRYPTION_KEY)


def encrypt(digits: str) -> str:
    return _fernet().encrypt(digits.encode()).decode()


def decrypt(token: str, *, ttl: int | None = None) -> str:
    """Raises CardNumberError for a token this key did not make (or older than `ttl` seconds)."""
    try:
        return _fernet().decrypt(token.encode(), ttl=ttl).decode()
    except (InvalidToken, ValueError):
        raise CardNumberError("the kept card number could not be read: type it again") from None

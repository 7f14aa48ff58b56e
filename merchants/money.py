"""Money at the edges: integers in minor units inside, major units only when shown or parsed."""

from decimal import ROUND_HALF_UP, Decimal

# ISO 4217 minor-unit exponents for the currencies we settle in; anything else is 2.
_EXPONENTS = {"JPY": 0, "KRW": 0, "VND": 0, "BHD": 3, "KWD": 3, "JOD": 3}


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def to_minor(major: Decimal, currency: str) -> int:
    """Major units (e.g. yuan as a Decimal) to an integer of minor units, rounding half up."""
    scaled = Decimal(major) * (Decimal(10) ** exponent(currency))
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def to_major(minor: int, currency: str) -> Decimal:
    return Decimal(minor) / (Decimal(10) ** exponent(currency))


def convert(minor: int, *, rate: Decimal, source: str, target: str) -> int:
    """Convert minor units of `source` to minor units of `target` at `rate` (target per source, major units)."""
    major = to_major(minor, source) * rate
    return to_minor(major, target)


def format_money(minor: int | None, currency: str) -> str:
    if minor is None:
        return ""
    places = exponent(currency)
    major = to_major(minor, currency)
    return f"{currency} {major:,.{places}f}"


def split_proportionally(total: int, weights: list[int]) -> list[int]:
    """Split `total` in proportion to `weights` (largest remainder, ties to the earlier weight).

    The shares always add up to `total`, and a share never exceeds its weight when
    total <= sum(weights).
    """
    weight_sum = sum(weights)
    if weight_sum <= 0:
        return [0 for _ in weights]
    floors = [total * w // weight_sum for w in weights]
    remainders = [(total * w % weight_sum, -i) for i, w in enumerate(weights)]
    left = total - sum(floors)
    for _, neg_i in sorted(remainders, reverse=True)[:left]:
        floors[-neg_i] += 1
    return floors

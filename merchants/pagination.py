"""Keyset pagination for the screens' big tables ("next 50"): no COUNT(*), no OFFSET.

A page is the rows after a cursor (the last id shown), read from an index in the key's order,
so page 1,000 costs what page 1 costs. Kept here because every app may import merchants.
"""

from dataclasses import dataclass, field

PAGE_SIZE = 50


@dataclass
class Page:
    rows: list
    next_after: int | None = None  # the cursor for the next page; None: this is the last page
    after: int | None = None  # the cursor this page started from; None: the first page
    size: int = PAGE_SIZE
    extra: dict = field(default_factory=dict)

    @property
    def is_first(self) -> bool:
        return self.after is None


def parse_cursor(value) -> int | None:
    try:
        cursor = int(value)
    except (TypeError, ValueError):
        return None
    return cursor if cursor >= 0 else None


def keyset_page(queryset, *, after=None, size: int = PAGE_SIZE, key: str = "id", descending: bool = True) -> Page:
    """The page of `queryset` after the cursor `after`, ordered by the unique integer `key`."""
    cursor = parse_cursor(after)
    ordered = queryset.order_by(f"-{key}" if descending else key)
    if cursor is not None:
        ordered = ordered.filter(**{f"{key}__{'lt' if descending else 'gt'}": cursor})
    rows = list(ordered[: size + 1])  # one more than shown: is there a next page?
    next_after = None
    if len(rows) > size:
        rows = rows[:size]
        next_after = _value(rows[-1], key)
    return Page(rows=rows, next_after=next_after, after=cursor, size=size)


def _value(row, key: str):
    return row[key] if isinstance(row, dict) else getattr(row, key)

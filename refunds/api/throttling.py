"""Per-key rate limit: a fixed-window counter in the database, shared by every web process.

Why not the Django cache: LocMemCache counts per process (each gunicorn worker would allow
the full limit), and DatabaseCache's `incr` is a read then a write, so concurrent requests
lose counts. A conditional UPDATE on one row per key is atomic on SQLite and PostgreSQL:
a request is let through only when its UPDATE found the count below the limit.
"""

import math
import time

from django.conf import settings
from django.db import IntegrityError, transaction
from rest_framework.throttling import BaseThrottle

from merchants import sql
from merchants.models import ApiKey

from .models import RateLimitWindow

# Every request runs it: plain SQL (merchants/sql.py says why).
_COUNT_ONE = (
    f'UPDATE {sql.table(RateLimitWindow)} SET "count" = "count" + 1 '
    f'WHERE api_key_id = %s AND "window" = %s AND "count" < %s'
)


def rate_limit_hit(*, api_key: ApiKey, limit: int, period: int, now: float | None = None) -> tuple[bool, int]:
    """Count one request of the key. Returns (allowed, seconds until the window ends)."""
    now = time.time() if now is None else now
    window = int(now // period)
    retry_after = max(1, math.ceil((window + 1) * period - now))

    def take() -> bool:
        # Conditional: a refused request does not count, and the count never passes the limit.
        return bool(sql.execute(_COUNT_ONE, [api_key.pk, window, limit]))

    if take():
        return True, retry_after
    try:
        with transaction.atomic():
            RateLimitWindow.objects.create(api_key=api_key, window=window, count=1)
    except IntegrityError:
        # The window's row exists: either full, or created by a concurrent request just now.
        return take(), retry_after
    RateLimitWindow.objects.filter(api_key=api_key, window__lt=window).delete()
    return True, retry_after


class ApiKeyRateThrottle(BaseThrottle):
    """API_RATE_LIMIT requests per key per minute; beyond it 429 RATE_LIMITED with Retry-After."""

    def __init__(self):
        self.retry_after: int | None = None

    def allow_request(self, request, view) -> bool:
        limit = settings.API_RATE_LIMIT
        if not limit or not isinstance(request.auth, ApiKey):
            return True
        allowed, self.retry_after = rate_limit_hit(
            api_key=request.auth, limit=limit, period=settings.API_RATE_WINDOW_SECONDS
        )
        return allowed

    def wait(self) -> int | None:
        return self.retry_after

import datetime

from celery import shared_task
from django.utils import timezone

from . import settlement


def _yesterday() -> datetime.date:
    return timezone.localdate() - datetime.timedelta(days=1)


@shared_task(time_limit=1800)
def settle_t1(day: str | None = None) -> int:
    """T+1: settle yesterday's collections (or the given ISO day)."""
    target = datetime.date.fromisoformat(day) if day else _yesterday()
    return len(settlement.settle_day(day=target))


@shared_task(time_limit=600)
def shortfall_daily_list(day: str | None = None) -> int:
    target = datetime.date.fromisoformat(day) if day else _yesterday()
    return len(settlement.shortfall_digest(day=target))

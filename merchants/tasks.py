import datetime

from celery import shared_task
from django.utils import timezone

from . import settlement, webhooks


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


# A hard limit below webhooks.CLAIM_LEASE: the claim of a killed attempt lapses only once the
# worker is gone. Retries are the sweep's job (backoff up to hours is too long for a broker ETA).
@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def deliver_webhook(delivery_id: int) -> str:
    return webhooks.webhook_deliver(delivery_id=delivery_id)


@shared_task(time_limit=120)
def webhook_sweep() -> int:
    return webhooks.webhook_sweep()

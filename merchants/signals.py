"""Merchant notices written in the same transaction as what they report."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from . import webhooks
from .models import BalanceShortfall


@receiver(post_save, sender=BalanceShortfall)
def notify_shortfall(sender, instance: BalanceShortfall, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        webhooks.shortfall_notify(instance)

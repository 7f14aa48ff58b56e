"""Channel configuration: the routes money takes back (S10, S12, S16)."""

import datetime

from django.db import models
from django.db.models import Q


class Channel(models.Model):
    code = models.CharField(max_length=32, unique=True, help_text="e.g. wechat, alipay, bank")
    name = models.CharField(max_length=100)
    adapter = models.CharField(max_length=32, help_text="Adapter module in channels/adapters/, e.g. sandbox")
    enabled = models.BooleanField(default=True)
    refund_window_days = models.PositiveIntegerField(
        default=365, help_text="How long after payment the channel still accepts a refund."
    )
    max_refunds_per_payment = models.PositiveIntegerField(
        null=True, blank=True, help_text="Partial refunds the channel accepts per payment. Empty: no limit."
    )
    dedupes_by_refund_no = models.BooleanField(
        default=True,
        help_text="Whether the channel recognises a resubmitted refund serial number. If not, a "
        "second submission pays twice.",
    )
    processing_start = models.TimeField(null=True, blank=True, help_text="Channel accepts refunds from (local time).")
    processing_end = models.TimeField(null=True, blank=True, help_text="…until (local time). Empty: all day.")
    rate_limit_per_minute = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no limit.")
    typical_days_to_arrive = models.PositiveIntegerField(default=3, help_text="For the estimated arrival (S7, S9).")
    note = models.CharField(max_length=255, blank=True, default="", help_text="Why the last change was made.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(processing_start__isnull=True) & Q(processing_end__isnull=True))
                | (Q(processing_start__isnull=False) & Q(processing_end__isnull=False)),
                name="channel_processing_hours_both_or_neither",
            )
        ]

    def __str__(self):
        return self.code

    def window_closes_at(self, paid_at: datetime.datetime) -> datetime.datetime:
        return paid_at + datetime.timedelta(days=self.refund_window_days)

    def accepts_refund_of(self, paid_at: datetime.datetime, now: datetime.datetime) -> bool:
        return now < self.window_closes_at(paid_at)

    def is_open_at(self, local_time: datetime.time) -> bool:
        if self.processing_start is None:
            return True
        start, end = self.processing_start, self.processing_end
        if start <= end:
            return start <= local_time < end
        return local_time >= start or local_time < end  # a window across midnight


class SandboxPayout(models.Model):
    """What a sandbox channel paid out: the channel's own books, which reconciliation reads as
    its statement. A channel that does not de-duplicate gets one row per submission."""

    channel_code = models.CharField(max_length=32)
    refund_no = models.CharField(max_length=100, db_index=True)
    attempt_id = models.CharField(max_length=64, blank=True, default="")
    channel_refund_id = models.CharField(max_length=64, unique=True)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    succeeded = models.BooleanField()
    code = models.CharField(max_length=32, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.channel_code} {self.refund_no} {self.amount} {'paid' if self.succeeded else self.code}"


class ChannelNotification(models.Model):
    """An inbound notification from a channel, kept as received with what we made of it."""

    class Status(models.TextChoices):
        APPLIED = "applied", "Applied"
        DUPLICATE = "duplicate", "Duplicate (changed nothing)"
        IGNORED = "ignored", "Ignored (out of order)"
        CONFLICT = "conflict", "Contradicts an earlier result: alert raised"
        UNKNOWN_REFUND = "unknown_refund", "No such refund"
        REJECTED = "rejected", "Refused: bad signature or malformed"
        ERROR = "error", "Error while handling"

    channel_code = models.CharField(max_length=32)
    refund_no = models.CharField(max_length=100, blank=True, default="", db_index=True)
    body = models.TextField()
    signature = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices)
    error = models.TextField(blank=True, default="")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.channel_code} {self.refund_no} {self.status}"

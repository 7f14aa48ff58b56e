"""Merchants, their accounts and the double-entry ledger.

Money is an integer of minor units (fen, cents) plus an ISO 4217 currency code, never a float.
"""

import hashlib
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(24)


class Merchant(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    class RefundSource(models.TextChoices):
        """Which account a refund is held from (S19): today's collections or settled cash."""

        PENDING_SETTLEMENT = "pending_settlement", "Pending settlement"
        CASH = "cash", "Cash account"

    class FallbackRoute(models.TextChoices):
        """Where a part goes when it cannot go back the original way (S10, S11, S16)."""

        MANUAL = "manual", "Manual payout by finance"
        BALANCE = "balance", "User's platform balance"

    class Allocation(models.TextChoices):
        """How a partial refund of a discounted payment splits across its parts (S22)."""

        PROPORTIONAL = "proportional", "Proportional"
        COUPON_FIRST = "coupon_first", "Coupon first"

    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    refund_source = models.CharField(
        max_length=32, choices=RefundSource.choices, default=RefundSource.PENDING_SETTLEMENT
    )
    fallback_route = models.CharField(max_length=16, choices=FallbackRoute.choices, default=FallbackRoute.MANUAL)
    allocation_strategy = models.CharField(
        max_length=16, choices=Allocation.choices, default=Allocation.PROPORTIONAL
    )
    review_threshold = models.BigIntegerField(
        null=True, blank=True, help_text="Refunds above this amount (minor units) wait for review. Empty: none."
    )
    webhook_url = models.URLField(blank=True, max_length=500)
    webhook_secret = models.CharField(max_length=100, default=new_webhook_secret)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(review_threshold__isnull=True) | Q(review_threshold__gte=0),
                name="merchant_review_threshold_non_negative",
            )
        ]

    def __str__(self):
        return f"{self.code} {self.name}"


class Account(models.Model):
    """One balance in the ledger. `balance` always equals the sum of the account's entries.

    Merchant accounts can never go below zero (a database constraint); platform accounts
    that mirror the outside world (money in transit to channels, collections, top-ups) may.
    """

    class Kind(models.TextChoices):
        PENDING_SETTLEMENT = "pending_settlement", "Pending settlement"
        CASH = "cash", "Cash"
        REFUND_HOLD = "refund_hold", "Refund holds"
        USER_BALANCE = "user_balance", "User platform balance"
        # Platform side: counterparts of money entering or leaving the platform.
        COLLECTIONS = "collections", "Payment collections (platform)"
        TOP_UPS = "top_ups", "Merchant top-ups (platform)"
        CHANNEL_REFUNDS = "channel_refunds", "Refunds paid through channels (platform)"
        MANUAL_PAYOUTS = "manual_payouts", "Manual payouts (platform)"
        FX = "fx", "Currency exchange (platform)"

    MERCHANT_KINDS = (Kind.PENDING_SETTLEMENT, Kind.CASH, Kind.REFUND_HOLD)

    merchant = models.ForeignKey(Merchant, null=True, blank=True, on_delete=models.PROTECT, related_name="accounts")
    user_id = models.CharField(max_length=64, blank=True, default="")
    # For platform accounts: which channel (route) or other sub-ledger.
    sub_ledger = models.CharField(max_length=32, blank=True, default="")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    currency = models.CharField(max_length=3, default="CNY")
    balance = models.BigIntegerField(default=0)
    may_go_negative = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(balance__gte=0) | Q(may_go_negative=True), name="account_balance_never_negative"
            ),
            models.UniqueConstraint(
                fields=["merchant", "kind", "currency"],
                condition=Q(merchant__isnull=False),
                name="account_unique_per_merchant",
            ),
            models.UniqueConstraint(
                fields=["kind", "currency", "user_id", "sub_ledger"],
                condition=Q(merchant__isnull=True),
                name="account_unique_platform",
            ),
        ]

    def __str__(self):
        owner = self.merchant.code if self.merchant_id else (self.user_id or self.sub_ledger or "platform")
        return f"{owner} {self.kind} {self.currency}"


class LedgerTransaction(models.Model):
    """A balanced set of entries: for every currency, the amounts add up to zero."""

    class Kind(models.TextChoices):
        PAYMENT = "payment", "Payment collected"
        TOP_UP = "top_up", "Top-up"
        REFUND_HOLD = "refund_hold", "Refund hold"
        HOLD_RELEASE = "hold_release", "Hold released"
        REFUND_PAID = "refund_paid", "Refund paid"
        SETTLEMENT = "settlement", "T+1 settlement"

    kind = models.CharField(max_length=24, choices=Kind.choices)
    # What the movement is about, e.g. "refund:<uuid>" or "payment:<id>", so that apps this
    # one must not import can find their movements.
    reference = models.CharField(max_length=80, db_index=True, blank=True, default="")
    description = models.CharField(max_length=255, blank=True, default="")
    created_by = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["kind", "-id"], name="ledgertx_kind_recent")]  # the admin's filter

    def __str__(self):
        return f"#{self.pk} {self.kind} {self.reference}"


class LedgerEntry(models.Model):
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries")
    amount = models.BigIntegerField(help_text="Minor units; positive adds to the account's balance.")
    currency = models.CharField(max_length=3)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["account", "-id"], name="entry_account_recent")]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="entry_amount_non_zero")]

    def __str__(self):
        return f"{self.account} {self.amount:+d} {self.currency}"


class ApiKey(models.Model):
    """A merchant's API key. Only its SHA-256 is stored; the key itself is shown once."""

    class Scope(models.TextChoices):
        REFUNDS = "refunds", "Refunds (the merchant's own refunds and payments)"
        PAYMENTS = "payments", "Payments (the payment core reports payments)"

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="api_keys")
    scope = models.CharField(max_length=16, choices=Scope.choices)
    prefix = models.CharField(max_length=16, help_text="The key's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.prefix}… ({self.merchant.code}, {self.scope})"

    @staticmethod
    def hash_key(raw_key: str) -> str:
        return hashlib.sha256(raw_key.encode()).hexdigest()


class BalanceShortfall(models.Model):
    """A refund refused for insufficient balance (S21): operations chase these merchants."""

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="shortfalls")
    account_kind = models.CharField(max_length=24)
    currency = models.CharField(max_length=3)
    amount = models.BigIntegerField()
    available = models.BigIntegerField()
    out_refund_no = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self):
        return f"{self.merchant_id}: {self.account_kind} short of {self.amount} {self.currency} ({self.out_refund_no})"


class FxRate(models.Model):
    """The day's rate: 1 unit of `base` buys `rate` units of `quote` (S23). Kept in the admin."""

    day = models.DateField()
    base = models.CharField(max_length=3)
    quote = models.CharField(max_length=3)
    rate = models.DecimalField(max_digits=18, decimal_places=8)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-day", "base", "quote"]
        constraints = [
            models.UniqueConstraint(fields=["day", "base", "quote"], name="fxrate_unique_per_day"),
            models.CheckConstraint(condition=Q(rate__gt=0), name="fxrate_positive"),
        ]

    def __str__(self):
        return f"{self.day} 1 {self.base} = {self.rate} {self.quote}"


class Settlement(models.Model):
    """One T+1 settlement run for a merchant and day: yesterday's collections move from the
    pending-settlement account to the cash account (S19, S20). Unique, so a rerun pays nothing twice."""

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="settlements")
    currency = models.CharField(max_length=3)
    day = models.DateField(help_text="The business day whose collections were settled.")
    collected = models.BigIntegerField()
    settled = models.BigIntegerField(help_text="Moved to cash: the collections, less what refunds already took.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-day", "merchant"]
        constraints = [models.UniqueConstraint(fields=["merchant", "currency", "day"], name="settlement_once_per_day")]

    def __str__(self):
        return f"{self.day} merchant {self.merchant_id}: {self.settled} {self.currency} settled"


class ShortfallDigest(models.Model):
    """The daily list of merchants whose refunds were refused for insufficient balance (S21)."""

    day = models.DateField()
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="shortfall_digests")
    refusals = models.PositiveIntegerField()
    amount_refused = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-day", "-amount_refused"]
        constraints = [
            models.UniqueConstraint(fields=["day", "merchant", "currency"], name="shortfall_digest_once_per_day")
        ]

    def __str__(self):
        return f"{self.day} merchant {self.merchant_id}: {self.refusals} refusals, {self.amount_refused} {self.currency}"


class WebhookDelivery(models.Model):
    """One outbound notification (the outbox): written in the same transaction as the change it
    reports, sent afterwards by a task, retried with backoff, and kept with every attempt.

    `merchants` must not import `refunds`, so the refund is a `reference` ("refund:<uuid>"), as
    in the ledger, and the body is rendered by the caller.
    """

    class Status(models.TextChoices):
        """PENDING and FAILED rows are due at `next_attempt_at`; a worker claims one by moving it
        to SENDING with a conditional UPDATE. DEAD: retries exhausted, only a person redelivers."""

        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        FAILED = "failed", "Failed, will retry"
        DELIVERED = "delivered", "Delivered"
        DEAD = "dead", "Dead (retries exhausted)"

    class Audience(models.TextChoices):
        """Who receives it, and so which secret signs it (read when sending, so a rotated secret applies)."""

        MERCHANT = "merchant", "Merchant (its webhook secret)"
        MARKETING = "marketing", "Marketing system (MARKETING_WEBHOOK_SECRET)"

    DUE = (Status.PENDING, Status.FAILED)

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, help_text="Sent as the body's `id`.")
    event = models.CharField(max_length=64)
    audience = models.CharField(max_length=16, choices=Audience.choices, default=Audience.MERCHANT)
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="webhook_deliveries")
    reference = models.CharField(max_length=80, blank=True, default="", db_index=True,
                                 help_text='What it is about, e.g. "refund:<uuid>".')
    url = models.URLField(max_length=500)
    payload = models.JSONField(help_text="The body, sent as compact JSON.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts since queued or last redelivered.")
    next_attempt_at = models.DateTimeField(
        default=timezone.now, help_text="When due (pending, failed); when a claim lapses (sending)."
    )
    last_error = models.CharField(max_length=500, blank=True, default="")
    # Idempotency for events that must go at most once (a merchant's daily shortfall notice).
    dedupe_key = models.CharField(max_length=120, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["dedupe_key"], condition=~Q(dedupe_key=""), name="delivery_dedupe_once"),
        ]
        indexes = [
            # The sweep's scan: only rows still in flight, by due time.
            models.Index(fields=["next_attempt_at"], name="delivery_due",
                         condition=Q(status__in=["pending", "failed", "sending"])),
            models.Index(fields=["merchant", "-id"], name="delivery_merchant_recent"),
            # The admin's status filter (dead, failed) without walking every delivered row.
            models.Index(fields=["status", "-id"], name="delivery_status_recent"),
            # The admin's other filters: the event, and the rare audience.
            models.Index(fields=["event", "-id"], name="delivery_event_recent"),
            models.Index(fields=["-id"], name="delivery_marketing_recent", condition=Q(audience="marketing")),
        ]

    def __str__(self):
        return f"{self.event} #{self.pk} {self.status}"


class WebhookAttempt(models.Model):
    """One HTTP POST of a delivery and what came back (operators see these, API.md)."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Empty: no HTTP answer.")
    latency_ms = models.PositiveIntegerField()
    response_excerpt = models.CharField(max_length=500, blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"attempt {self.pk}: {self.status_code or self.error[:40]}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

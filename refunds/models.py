"""Original payments, refunds, their legs and the refund state machine."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from channels.models import Channel
from merchants.models import Merchant


class Payment(models.Model):
    """The original collection a refund reverses (原支付单), with its parts (S1, S17)."""

    class RecordVersion(models.IntegerChoices):
        # v1: the old payment system's rows, amounts in yuan as decimals and no parts. They
        # are imported as one channel part and refund just like current ones (S12).
        LEGACY_V1 = 1, "v1 (legacy, yuan decimals)"
        CURRENT = 2, "v2"

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="payments")
    out_trade_no = models.CharField(max_length=64)
    amount = models.BigIntegerField(help_text="Minor units paid, all parts together.")
    currency = models.CharField(max_length=3, default="CNY")
    user_id = models.CharField(max_length=64, db_index=True)
    paid_at = models.DateTimeField()
    settlement_currency = models.CharField(max_length=3, default="CNY")
    settlement_amount = models.BigIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Voucher expiry (S6).")
    auto_refund_on_expiry = models.BooleanField(default=False)
    record_version = models.PositiveSmallIntegerField(choices=RecordVersion.choices, default=RecordVersion.CURRENT)
    legacy_amount_yuan = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    # Sum of the refunds that still count (all but rejected and cancelled), kept under the
    # payment's row lock so that refunds never sum past what was paid.
    refunded_amount = models.BigIntegerField(default=0)
    request_hash = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-paid_at"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "out_trade_no"], name="payment_unique_out_trade_no"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(condition=Q(settlement_amount__gte=0), name="payment_settlement_non_negative"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("amount")),
                name="payment_never_refunded_past_paid",
            ),
        ]
        indexes = [models.Index(fields=["expires_at"], name="payment_expiry", condition=Q(auto_refund_on_expiry=True))]

    def __str__(self):
        return f"{self.merchant.code}/{self.out_trade_no}"

    @property
    def refundable_amount(self) -> int:
        return self.amount - self.refunded_amount


class PaymentPart(models.Model):
    class Kind(models.TextChoices):
        CHANNEL = "channel", "Channel (card, wallet)"
        BALANCE = "balance", "Platform balance"
        COUPON = "coupon", "Coupon"

    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="parts")
    position = models.PositiveSmallIntegerField(default=0)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount = models.BigIntegerField()
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.PROTECT)
    channel_txn_id = models.CharField(max_length=64, blank=True, default="")
    coupon_id = models.CharField(max_length=64, blank=True, default="")
    refunded_amount = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["payment", "position"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="part_amount_positive"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("amount")),
                name="part_never_refunded_past_paid",
            ),
            models.CheckConstraint(
                condition=~Q(kind="channel") | Q(channel__isnull=False), name="part_channel_has_channel"
            ),
        ]

    def __str__(self):
        return f"{self.kind} {self.amount}"

    @property
    def remaining(self) -> int:
        return self.amount - self.refunded_amount


class Refund(ConcurrentTransitionMixin, models.Model):
    class Status(models.TextChoices):
        """What merchants see (API.md). Only transitions change it."""

        PENDING_REVIEW = "PENDING_REVIEW", "Pending review"
        APPROVED = "APPROVED", "Approved"
        PROCESSING = "PROCESSING", "Processing"
        SUCCEEDED = "SUCCEEDED", "Succeeded"
        FAILED = "FAILED", "Failed"
        MANUAL_PAYOUT = "MANUAL_PAYOUT", "Manual payout"
        REJECTED = "REJECTED", "Rejected"
        CANCELLED = "CANCELLED", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.REJECTED, Status.CANCELLED)
    # Statuses whose amount no longer counts against the payment: the money stays with the merchant.
    RELEASED = (Status.REJECTED, Status.CANCELLED)

    class Direction(models.TextChoices):
        ORIGINAL = "original", "Original route"
        BALANCE = "balance", "Platform balance"

    class Source(models.TextChoices):
        USER = "user", "User"
        MERCHANT = "merchant", "Merchant"
        CUSTOMER_SERVICE = "customer_service", "Customer service"
        AUTO = "auto", "Automatic"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="refunds")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    out_refund_no = models.CharField(max_length=64)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    direction = models.CharField(max_length=16, choices=Direction.choices, default=Direction.ORIGINAL)
    source = models.CharField(max_length=24, choices=Source.choices, default=Source.MERCHANT)
    reason = models.CharField(max_length=255, blank=True, default="")
    notify_url = models.URLField(max_length=500, blank=True, default="")
    status = FSMField(max_length=16, choices=Status.choices, protected=True)
    failure_reason = models.CharField(max_length=32, blank=True, default="")
    estimated_arrival = models.DateField(null=True, blank=True)
    coupon_not_returned = models.BigIntegerField(default=0)
    # Each payment part's share of this refund, {part id: minor units}: released on rejection.
    allocation = models.JSONField(default=dict, blank=True)
    # What the merchant's refund source gives up for this refund, in the settlement currency.
    hold_amount = models.BigIntegerField(default=0)
    hold_currency = models.CharField(max_length=3)
    hold_account_kind = models.CharField(max_length=24, help_text="The refund source the hold came from.")
    risk_outcome = models.CharField(max_length=16, default="approve")
    risk_reasons = models.JSONField(default=list, blank=True)
    request_hash = models.CharField(max_length=64)
    created_by = models.CharField(max_length=100, help_text="Who asked: api:<merchant>, user:<name>, task:<name>.")
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "out_refund_no"], name="refund_unique_out_refund_no"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
            models.CheckConstraint(condition=Q(hold_amount__gte=0), name="refund_hold_non_negative"),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="refund_status_created"),
            models.Index(fields=["payment", "created_at"], name="refund_payment"),
        ]

    def __str__(self):
        return f"{self.merchant.code}/{self.out_refund_no}"

    # Transitions change fields only; services do the I/O, the ledger and the locking. Each
    # takes `by` (who or what) and `reason`; refunds/signals.py records every one of them.
    @transition(field=status, source=Status.PENDING_REVIEW, target=Status.APPROVED)
    def approve(self, *, by: str, reason: str = ""):
        pass

    @transition(field=status, source=[Status.PENDING_REVIEW], target=Status.REJECTED)
    def reject(self, *, by: str, reason: str):
        self.failure_reason = "REJECTED"

    @transition(field=status, source=[Status.APPROVED], target=Status.CANCELLED)
    def cancel(self, *, by: str, reason: str):
        pass

    @transition(field=status, source=[Status.APPROVED, Status.MANUAL_PAYOUT], target=Status.PROCESSING)
    def mark_processing(self, *, by: str, reason: str = ""):
        pass

    @transition(
        field=status, source=[Status.APPROVED, Status.PROCESSING, Status.MANUAL_PAYOUT], target=Status.SUCCEEDED
    )
    def mark_succeeded(self, *, by: str, reason: str = "", at=None):
        self.completed_at = at
        self.failure_reason = ""

    @transition(field=status, source=[Status.APPROVED, Status.PROCESSING, Status.MANUAL_PAYOUT], target=Status.FAILED)
    def mark_failed(self, *, by: str, reason: str = "", failure_reason: str = ""):
        self.failure_reason = failure_reason

    @transition(
        field=status, source=[Status.APPROVED, Status.PROCESSING, Status.FAILED], target=Status.MANUAL_PAYOUT
    )
    def mark_manual_payout(self, *, by: str, reason: str = ""):
        pass


class RefundLeg(ConcurrentTransitionMixin, models.Model):
    """One route a part of the refund takes back: a channel, the user's balance, or manual payout."""

    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending (refund awaiting review)"
        QUEUED = "QUEUED", "Queued for dispatch"
        PROCESSING = "PROCESSING", "Submitted, awaiting the channel"
        SUCCEEDED = "SUCCEEDED", "Succeeded"
        FAILED = "FAILED", "Failed"
        MANUAL_PAYOUT = "MANUAL_PAYOUT", "Awaiting manual payout"
        CANCELLED = "CANCELLED", "Cancelled"

    class Route(models.TextChoices):
        BALANCE = "balance", "User's platform balance"
        MANUAL = "manual", "Manual payout"
        # otherwise: a channel code

    INTERNAL_ROUTES = (Route.BALANCE, Route.MANUAL)

    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="legs")
    payment_part = models.ForeignKey(PaymentPart, null=True, blank=True, on_delete=models.PROTECT)
    route = models.CharField(max_length=32)
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.PROTECT)
    amount = models.BigIntegerField(help_text="Minor units in the payment currency, to the user.")
    currency = models.CharField(max_length=3)
    hold_amount = models.BigIntegerField(help_text="This leg's share of the hold, in the hold currency.")
    status = FSMField(max_length=16, choices=Status.choices, protected=True)
    channel_refund_id = models.CharField(max_length=64, blank=True, default="")
    failure_reason = models.CharField(max_length=32, blank=True, default="")
    fallback_reason = models.CharField(
        max_length=32, blank=True, default="", help_text="Why the part does not go back the original way."
    )
    # When the dispatcher or the janitor should look at this leg next (dispatch when queued,
    # query the channel when processing); empty: now.
    next_action_at = models.DateTimeField(null=True, blank=True)
    check_count = models.PositiveIntegerField(default=0)
    submitted_at = models.DateTimeField(null=True, blank=True)
    # Set when the channel contradicted itself: a person decides, no automatic step touches it.
    needs_attention = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    SUBMISSION_PREFIX = "RL"

    @property
    def submission_no(self) -> str:
        """Our serial number for this leg at the channel, the same for every attempt."""
        return f"{self.SUBMISSION_PREFIX}{self.pk:012d}"

    @classmethod
    def pk_from_submission_no(cls, submission_no: str) -> int | None:
        if submission_no.startswith(cls.SUBMISSION_PREFIX) and submission_no[len(cls.SUBMISSION_PREFIX):].isdigit():
            return int(submission_no[len(cls.SUBMISSION_PREFIX):])
        return None

    class Meta:
        ordering = ["refund", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="leg_amount_positive"),
            models.CheckConstraint(condition=Q(hold_amount__gte=0), name="leg_hold_non_negative"),
        ]
        indexes = [
            models.Index(fields=["status", "updated_at"], name="leg_status_updated"),
            models.Index(
                fields=["status", "next_action_at"], name="leg_due",
                condition=Q(status__in=["QUEUED", "PROCESSING"], needs_attention=False),
            ),
        ]

    def __str__(self):
        return f"{self.route} {self.amount} {self.status}"

    @property
    def is_channel(self) -> bool:
        return self.route not in self.INTERNAL_ROUTES

    @transition(field=status, source=Status.PENDING, target=Status.QUEUED)
    def queue(self, *, by: str, reason: str = ""):
        pass

    @transition(field=status, source=Status.QUEUED, target=Status.PROCESSING)
    def mark_submitted(self, *, by: str, reason: str = ""):
        pass

    @transition(field=status, source=Status.PROCESSING, target=Status.QUEUED)
    def requeue(self, *, by: str, reason: str):
        """Only when the channel said it has no such refund: submitting again cannot pay twice."""

    @transition(field=status, source=[Status.QUEUED, Status.PROCESSING, Status.MANUAL_PAYOUT], target=Status.SUCCEEDED)
    def mark_succeeded(self, *, by: str, reason: str = "", at=None):
        self.completed_at = at
        self.failure_reason = ""

    @transition(field=status, source=[Status.QUEUED, Status.PROCESSING], target=Status.FAILED)
    def mark_failed(self, *, by: str, reason: str = "", failure_reason: str = "UNKNOWN"):
        self.failure_reason = failure_reason

    @transition(field=status, source=[Status.PENDING, Status.QUEUED, Status.FAILED], target=Status.MANUAL_PAYOUT)
    def route_to_manual_payout(self, *, by: str, reason: str = ""):
        pass

    @transition(field=status, source=[Status.PENDING, Status.QUEUED], target=Status.CANCELLED)
    def cancel(self, *, by: str, reason: str = ""):
        pass


class RefundEvent(models.Model):
    """The refund's timeline: every transition and decision, with who and why."""

    class Kind(models.TextChoices):
        CREATED = "created", "Requested"
        RISK = "risk", "Risk decision"
        TRANSITION = "transition", "Status change"
        NOTE = "note", "Note"

    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="events")
    leg = models.ForeignKey(RefundLeg, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    actor = models.CharField(max_length=100)
    from_status = models.CharField(max_length=16, blank=True, default="")
    to_status = models.CharField(max_length=16, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["refund", "created_at"], name="event_refund_time")]

    def __str__(self):
        subject = f"leg {self.leg_id}" if self.leg_id else "refund"
        return f"{subject}: {self.from_status or '-'} -> {self.to_status} by {self.actor}"


class SubmissionAttempt(models.Model):
    """One submission of a leg to its channel, recorded before the call is made."""

    class Status(models.TextChoices):
        SENDING = "SENDING", "Sending (no answer recorded yet)"
        ACCEPTED = "ACCEPTED", "Accepted by the channel"
        SUCCEEDED = "SUCCEEDED", "Succeeded"
        FAILED = "FAILED", "Refused by the channel"
        UNKNOWN = "UNKNOWN", "No answer"
        NOT_FOUND = "NOT_FOUND", "Channel has no such refund"

    leg = models.ForeignKey(RefundLeg, on_delete=models.CASCADE, related_name="attempts")
    attempt_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    channel_code = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SENDING)
    raw_code = models.CharField(max_length=64, blank=True, default="")
    raw_message = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["channel_code", "created_at"], name="attempt_channel_time")]

    def __str__(self):
        return f"attempt {self.attempt_id} {self.status}"


class Alert(models.Model):
    """Something a person must look at, e.g. a channel that reported success after failure."""

    kind = models.CharField(max_length=32)
    refund = models.ForeignKey(Refund, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    leg = models.ForeignKey(RefundLeg, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.kind}: {self.message[:60]}"

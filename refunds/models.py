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
        indexes = [
            models.Index(fields=["expires_at"], name="payment_expiry", condition=Q(auto_refund_on_expiry=True)),
            # The admin's list: newest paid first (paid_at, id), also under each of its filters.
            models.Index(fields=["paid_at", "id"], name="payment_paid"),
            models.Index(fields=["currency", "paid_at", "id"], name="payment_currency_paid"),
            models.Index(fields=["paid_at", "id"], name="payment_legacy_paid", condition=Q(record_version=1)),
            models.Index(fields=["paid_at", "id"], name="payment_auto_refund_paid", condition=Q(auto_refund_on_expiry=True)),
        ]

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
    # No index of its own: refund_merchant_created (and the unique constraint) lead with it.
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="refunds", db_index=False)
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
        # The lists page newest (or oldest) first by (created_at, id) under their filters: each
        # filter a screen or the admin offers has an index that leads with it, so a page reads
        # about its 50 rows whatever the filter matches (partial ones for the rare values).
        indexes = [
            models.Index(fields=["status", "created_at"], name="refund_status_created"),
            models.Index(fields=["payment", "created_at"], name="refund_payment"),
            models.Index(fields=["merchant", "created_at"], name="refund_merchant_created"),
            models.Index(fields=["merchant", "status", "created_at"], name="refund_merchant_status"),
            models.Index(fields=["source", "created_at"], name="refund_source_created", condition=~Q(source="merchant")),
            models.Index(
                fields=["merchant", "source", "created_at"], name="refund_merchant_source", condition=~Q(source="merchant")
            ),
            models.Index(fields=["created_at"], name="refund_to_balance", condition=Q(direction="balance")),
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

    # From FAILED too: a confirmed failure goes to manual payout while another leg is still
    # with its channel, and the refund is then processing again.
    @transition(
        field=status, source=[Status.APPROVED, Status.MANUAL_PAYOUT, Status.FAILED], target=Status.PROCESSING
    )
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
            # The payouts screen's tabs (failure to confirm, waiting for a card): by id.
            models.Index(fields=["status", "id"], name="leg_payout_work", condition=Q(status__in=["FAILED", "MANUAL_PAYOUT"])),
        ]

    def __str__(self):
        return f"{self.route} {self.amount} {self.status}"

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


# ---------------------------------------------------------------------------------------------
# Complaints (客诉): customer service handles a customer's complaint about a payment or refund.


class Complaint(models.Model):
    class Status(models.TextChoices):
        """Open (nobody has it), assigned (an agent works on it), resolved (outcome given, the
        customer may still call back), closed (final). Only transitions change it."""

        OPEN = "open", "Open"
        ASSIGNED = "assigned", "Assigned"
        RESOLVED = "resolved", "Resolved"
        CLOSED = "closed", "Closed"

    class Category(models.TextChoices):
        NOT_RECEIVED = "not_received", "Refund not received"
        SLOW = "slow", "Refund too slow"
        WRONG_AMOUNT = "wrong_amount", "Wrong amount"
        WANTS_REFUND = "wants_refund", "Wants a refund"
        MERCHANT_REFUSED = "merchant_refused", "Merchant refused a refund"
        OTHER = "other", "Other"

    WORKING = (Status.OPEN, Status.ASSIGNED)

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="complaints")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="complaints")
    refund = models.ForeignKey(
        Refund, null=True, blank=True, on_delete=models.PROTECT, related_name="complaints",
        help_text="The refund complained about, when the complaint is about one.",
    )
    customer_contact = models.CharField(max_length=200, help_text="How to reach the customer (phone, email).")
    category = models.CharField(max_length=24, choices=Category.choices)
    description = models.TextField()
    status = FSMField(max_length=16, choices=Status.choices, default=Status.OPEN, protected=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    due_at = models.DateTimeField(null=True, blank=True)
    outcome = models.TextField(blank=True, default="")
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When it was resolved or closed.")

    class Meta:
        ordering = ["-id"]
        # Lists page by id (keyset), newest first, under the filters agents use.
        indexes = [
            models.Index(fields=["status", "-id"], name="complaint_status"),
            models.Index(fields=["assignee", "status", "-id"], name="complaint_assignee"),
            models.Index(fields=["merchant", "-id"], name="complaint_merchant"),
            models.Index(fields=["status", "due_at"], name="complaint_due"),
        ]

    def __str__(self):
        return f"complaint #{self.pk} ({self.status})"

    @property
    def is_overdue(self) -> bool:
        from django.utils import timezone

        return bool(self.due_at and self.status in self.WORKING and self.due_at < timezone.now())

    @transition(field=status, source=[Status.OPEN, Status.ASSIGNED], target=Status.ASSIGNED)
    def assign(self, *, assignee):
        self.assignee = assignee

    @transition(field=status, source=[Status.OPEN, Status.ASSIGNED], target=Status.RESOLVED)
    def resolve(self, *, outcome: str, at):
        self.outcome = outcome
        self.finished_at = at

    @transition(field=status, source=[Status.OPEN, Status.ASSIGNED, Status.RESOLVED], target=Status.CLOSED)
    def close(self, *, outcome: str, at):
        self.outcome = outcome
        self.finished_at = at


class ComplaintEvent(models.Model):
    """The complaint's own log: every action and every note, with who did it."""

    class Kind(models.TextChoices):
        OPENED = "opened", "Opened"
        ASSIGNED = "assigned", "Assigned"
        NOTE = "note", "Note"
        DUE_SET = "due_set", "Due time set"
        REFUND_STARTED = "refund_started", "Refund started"
        RESOLVED = "resolved", "Resolved"
        CLOSED = "closed", "Closed"

    complaint = models.ForeignKey(Complaint, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    actor = models.CharField(max_length=100)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    body = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["complaint", "-id"], name="complaint_event_recent")]

    def __str__(self):
        return f"complaint #{self.complaint_id} {self.kind} by {self.actor}"


class ComplaintRefund(models.Model):
    """A customer-service refund started from a complaint (source `customer_service`)."""

    complaint = models.ForeignKey(Complaint, on_delete=models.PROTECT, related_name="started_refunds")
    refund = models.OneToOneField(Refund, on_delete=models.PROTECT, related_name="origin_complaint")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"complaint #{self.complaint_id} -> refund {self.refund_id}"


# ---------------------------------------------------------------------------------------------
# Manual payouts (财务打款, S11, S24, S25)


class ManualPayout(models.Model):
    """Finance pays a leg that cannot go back the original way to a bank card collected from the
    user. One per leg: recording the card again (a typo, or finance sent it back) replaces it.

    The card number is stored encrypted (Fernet, settings.CARD_ENCRYPTION_KEY); only its first
    six and last four digits are kept in clear, for the mask every screen shows.
    """

    class Status(models.TextChoices):
        """Awaiting approval: card recorded, finance has not paid. Returned: finance sent it back
        (the card details look wrong): an agent records the card again. Paid: final."""

        AWAITING_APPROVAL = "awaiting_approval", "Awaiting finance approval"
        RETURNED = "returned", "Returned to customer service"
        PAID = "paid", "Paid"

    class AccountType(models.TextChoices):
        """Asked of the user, never guessed from the holder's name (S25)."""

        PERSONAL = "personal", "Personal"
        CORPORATE = "corporate", "Corporate"

    leg = models.OneToOneField(RefundLeg, on_delete=models.PROTECT, related_name="manual_payout")
    refund = models.ForeignKey(Refund, on_delete=models.PROTECT, related_name="manual_payouts")
    amount = models.BigIntegerField(help_text="Minor units, the leg's amount.")
    currency = models.CharField(max_length=3)
    holder_name = models.CharField(max_length=100)
    card_number_encrypted = models.TextField(editable=False)
    card_first6 = models.CharField(max_length=6, editable=False)
    card_last4 = models.CharField(max_length=4, editable=False)
    card_length = models.PositiveSmallIntegerField(editable=False)
    bank_name = models.CharField(max_length=100)
    account_type = models.CharField(max_length=16, choices=AccountType.choices)
    phone = models.CharField(max_length=32)
    status = FSMField(max_length=24, choices=Status.choices, default=Status.AWAITING_APPROVAL, protected=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField()
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    transfer_reference = models.CharField(max_length=64, blank=True, default="")
    returned_reason = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # Four eyes in the database too: whoever recorded the card never approves its payout.
            models.CheckConstraint(
                condition=Q(approved_by__isnull=True) | ~Q(approved_by=F("recorded_by")),
                name="payout_four_eyes",
            ),
            models.CheckConstraint(
                condition=~Q(status="paid") | (Q(approved_by__isnull=False) & ~Q(transfer_reference="")),
                name="payout_paid_has_approver_and_reference",
            ),
            # One bank transfer pays one payout: a reference recorded twice is a mistake, or a double payment.
            models.UniqueConstraint(
                fields=["transfer_reference"], condition=~Q(transfer_reference=""), name="payout_unique_transfer",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payout_amount_positive"),
        ]
        indexes = [models.Index(fields=["status", "-id"], name="payout_status")]

    def __str__(self):
        return f"payout of leg {self.leg_id} to {self.card_mask}"

    def __repr__(self):
        return f"<ManualPayout {self.pk} leg={self.leg_id} card={self.card_mask} {self.status}>"

    @property
    def card_mask(self) -> str:
        from .cards import mask

        return mask(self.card_first6, self.card_last4, self.card_length or 0)

    def set_card_number(self, digits: str) -> None:
        from .cards import encrypt

        self.card_number_encrypted = encrypt(digits)
        self.card_first6, self.card_last4, self.card_length = digits[:6], digits[-4:], len(digits)

    def card_number_for_transfer(self) -> str:
        """The full number, for the bank transfer only: never render, log or serialize it."""
        from .cards import decrypt

        return decrypt(self.card_number_encrypted)

    @transition(field=status, source=[Status.AWAITING_APPROVAL, Status.RETURNED], target=Status.AWAITING_APPROVAL)
    def record_again(self):
        self.returned_reason = ""

    @transition(field=status, source=Status.AWAITING_APPROVAL, target=Status.RETURNED)
    def send_back(self, *, reason: str):
        self.returned_reason = reason

    @transition(field=status, source=Status.AWAITING_APPROVAL, target=Status.PAID)
    def approve(self, *, by_user, transfer_reference: str, at):
        self.approved_by = by_user
        self.transfer_reference = transfer_reference
        self.approved_at = at


# ---------------------------------------------------------------------------------------------
# Configuration history


class ConfigChange(models.Model):
    """One change to configuration (a merchant's settings, a channel, an FX rate): who, when,
    the fields before and after, and why. Written by refunds/config_audit.py's receivers in the
    transaction that saves the change, whichever screen (or the admin) made it."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        DELETED = "deleted", "Deleted"

    model = models.CharField(max_length=64, help_text='"app_label.model", e.g. merchants.merchant')
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    action = models.CharField(max_length=16, choices=Action.choices)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    note = models.TextField(blank=True, default="")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor = models.CharField(max_length=100, help_text="user:<name>, or what changed it without a user.")
    changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["model", "-id"], name="configchange_model"),
            models.Index(fields=["model", "object_id", "-id"], name="configchange_object"),
        ]

    def __str__(self):
        return f"{self.model} {self.object_repr} {self.action} by {self.actor}"

    @property
    def changed_fields(self) -> list[str]:
        keys = list(dict.fromkeys([*self.before, *self.after]))
        return [k for k in keys if self.before.get(k) != self.after.get(k)]

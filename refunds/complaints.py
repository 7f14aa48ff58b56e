"""Use cases of complaints (客诉): open, assign, note, due time, resolve, close, start a refund.

Each runs in one transaction, locks the complaint row, and writes the complaint's own event
(the audit row). When the complaint concerns a refund (the one complained about, or one started
from it), the action is also written as a note on that refund's timeline, so an agent reading the
refund sees the customer's complaint beside the money.
"""

import datetime
import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import errors, services
from .models import Complaint, ComplaintEvent, ComplaintRefund, Payment, Refund, RefundEvent

log = logging.getLogger(__name__)


def _actor(user) -> str:
    return f"user:{user.get_username()}"


def _locked(complaint_id) -> Complaint:
    complaint = Complaint.objects.select_for_update(of=("self",)).select_related("payment", "merchant").filter(
        pk=complaint_id
    ).first()
    if complaint is None:
        raise errors.InvalidRequest(f"no complaint {complaint_id}")
    return complaint


def _refund_ids(complaint: Complaint) -> list:
    ids = list(complaint.started_refunds.values_list("refund_id", flat=True))
    if complaint.refund_id and complaint.refund_id not in ids:
        ids.insert(0, complaint.refund_id)
    return ids


def _log(complaint: Complaint, *, kind: str, user, body: str = "", data: dict | None = None, timeline: str = "") -> ComplaintEvent:
    """The complaint's event, and the same action as a note on each refund it concerns."""
    actor = _actor(user)
    event = ComplaintEvent.objects.create(
        complaint=complaint, kind=kind, actor=actor, user=user, body=body, data=data or {}
    )
    refund_ids = _refund_ids(complaint)
    if refund_ids:
        RefundEvent.objects.bulk_create(
            [
                RefundEvent(
                    refund_id=refund_id, kind=RefundEvent.Kind.NOTE, actor=actor,
                    reason=f"complaint #{complaint.pk}: {timeline or kind}" + (f": {body}" if body else ""),
                    data={"complaint": complaint.pk, "action": kind, **(data or {})},
                )
                for refund_id in refund_ids
            ]
        )
    return event


def _require_text(value: str, what: str) -> str:
    value = (value or "").strip()
    if not value:
        raise errors.InvalidRequest(f"{what} is required")
    return value


@transaction.atomic
def complaint_open(
    *, user, customer_contact: str, category: str, description: str, payment: Payment | None = None,
    refund: Refund | None = None, due_at: datetime.datetime | None = None,
) -> Complaint:
    """A customer's complaint about a payment, or about one of its refunds."""
    if refund is not None:
        payment = refund.payment
    if payment is None:
        raise errors.InvalidRequest("a complaint is about a payment or a refund")
    if category not in Complaint.Category.values:
        raise errors.InvalidRequest(f"category must be one of {', '.join(Complaint.Category.values)}")
    complaint = Complaint.objects.create(
        merchant_id=payment.merchant_id, payment=payment, refund=refund,
        customer_contact=_require_text(customer_contact, "the customer's contact"), category=category,
        description=_require_text(description, "a description"), due_at=due_at, opened_by=user,
    )
    _log(
        complaint, kind=ComplaintEvent.Kind.OPENED, user=user, body=complaint.get_category_display(),
        timeline="opened", data={"category": category},
    )
    return complaint


@transaction.atomic
def complaint_assign(*, complaint_id, assignee, user) -> Complaint:
    complaint = _locked(complaint_id)
    if complaint.status not in Complaint.WORKING:
        raise errors.InvalidState(f"the complaint is {complaint.status}: it can no longer be assigned")
    complaint.assign(assignee=assignee)
    complaint.save()
    _log(
        complaint, kind=ComplaintEvent.Kind.ASSIGNED, user=user, body=assignee.get_username(),
        timeline="assigned to", data={"assignee": assignee.get_username()},
    )
    return complaint


@transaction.atomic
def complaint_add_note(*, complaint_id, body: str, user) -> ComplaintEvent:
    complaint = _locked(complaint_id)
    if complaint.status == Complaint.Status.CLOSED:
        raise errors.InvalidState("the complaint is closed")
    body = _require_text(body, "a note")
    complaint.save(update_fields=["updated_at"])
    return _log(complaint, kind=ComplaintEvent.Kind.NOTE, user=user, body=body, timeline="note")


@transaction.atomic
def complaint_set_due(*, complaint_id, due_at: datetime.datetime | None, user) -> Complaint:
    complaint = _locked(complaint_id)
    if complaint.status not in Complaint.WORKING:
        raise errors.InvalidState(f"the complaint is {complaint.status}: no due time to keep")
    complaint.due_at = due_at
    complaint.save(update_fields=["due_at", "updated_at"])
    shown = timezone.localtime(due_at).isoformat() if due_at else "none"
    _log(complaint, kind=ComplaintEvent.Kind.DUE_SET, user=user, body=shown, timeline="due", data={"due_at": shown})
    return complaint


@transaction.atomic
def complaint_resolve(*, complaint_id, outcome: str, user, now=None) -> Complaint:
    """The outcome is given to the customer; the complaint can still be closed later."""
    complaint = _locked(complaint_id)
    if complaint.status not in Complaint.WORKING:
        raise errors.InvalidState(f"the complaint is {complaint.status}: only an open or assigned one can be resolved")
    complaint.resolve(outcome=_require_text(outcome, "an outcome"), at=now or timezone.now())
    complaint.save()
    _log(complaint, kind=ComplaintEvent.Kind.RESOLVED, user=user, body=complaint.outcome, timeline="resolved")
    return complaint


@transaction.atomic
def complaint_close(*, complaint_id, outcome: str, user, now=None) -> Complaint:
    """Final: nothing more is done on the complaint."""
    complaint = _locked(complaint_id)
    if complaint.status == Complaint.Status.CLOSED:
        raise errors.InvalidState("the complaint is already closed")
    complaint.close(outcome=_require_text(outcome, "an outcome"), at=now or timezone.now())
    complaint.save()
    _log(complaint, kind=ComplaintEvent.Kind.CLOSED, user=user, body=complaint.outcome, timeline="closed")
    return complaint


def complaint_start_refund(
    *, complaint_id, amount: int, reason: str, user, direction: str = Refund.Direction.ORIGINAL,
    request_key: str = "", now=None,
) -> tuple[Refund, bool]:
    """A customer-service refund of the complaint's payment, through refund_create: the same
    validation, allocation, routing, risk decision and hold as any refund (a flagged one waits
    for review by someone other than this agent).

    Two transactions, on purpose: refund_create owns its own (it records an insufficient-balance
    refusal outside the refused one), then the link and the notes are written in a second.

    The out_refund_no (the idempotency key) is the complaint's id and `request_key`, a random
    key the form carries: submitting the same form twice is answered as a replay, not a second
    refund. Without a key, the number of refunds the complaint already started stands in.
    """
    reason = _require_text(reason, "a reason")
    complaint = Complaint.objects.select_related("payment", "merchant").filter(pk=complaint_id).first()
    if complaint is None:
        raise errors.InvalidRequest(f"no complaint {complaint_id}")
    if complaint.status not in Complaint.WORKING:
        raise errors.InvalidState(f"the complaint is {complaint.status}: reopen work on a new complaint")
    if request_key and not (request_key.isalnum() and len(request_key) <= 32):
        raise errors.InvalidRequest("request_key: up to 32 letters or digits")
    suffix = request_key or str(complaint.started_refunds.count() + 1)
    refund, created = services.refund_create(
        merchant=complaint.merchant, out_trade_no=complaint.payment.out_trade_no,
        out_refund_no=f"CS{complaint.pk}-{suffix}", amount=amount, actor=_actor(user),
        reason=f"complaint #{complaint.pk}: {reason}", direction=direction, source=Refund.Source.CUSTOMER_SERVICE,
        user=user, now=now,
    )
    with transaction.atomic():
        complaint = _locked(complaint_id)
        _, linked = ComplaintRefund.objects.get_or_create(refund=refund, defaults={"complaint": complaint})
        if linked:
            complaint.save(update_fields=["updated_at"])
            _log(
                complaint, kind=ComplaintEvent.Kind.REFUND_STARTED, user=user,
                body=f"{refund.out_refund_no} ({refund.status})", timeline="refund started",
                data={"refund": str(refund.pk), "out_refund_no": refund.out_refund_no, "amount": refund.amount,
                      "status": refund.status},
            )
    log.info("complaint %s started refund %s (%s)", complaint.pk, refund.out_refund_no, refund.status)
    return refund, created


def complaints_for_refund(refund: Refund):
    """The complaints about a refund and the one it was started from (for the refund page)."""
    return (
        Complaint.objects.filter(Q(refund=refund) | Q(started_refunds__refund=refund))
        .select_related("assignee").distinct().order_by("-id")
    )

"""Reads for the customer-service screens: filters kept in the URL, keyset pages, search by any id.

Big tables are never counted: a page fetches one row more than it shows to know whether a
"next 50" exists, and continues after the last row's (created_at, id).
"""

import datetime
import functools
import re
import uuid
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.apps import apps
from django.db.models import Prefetch, Q, TextField
from django.db.models.functions import Cast
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from merchants.models import LedgerTransaction
from merchants.money import to_minor

from . import services
from .models import Payment, Refund, RefundEvent, RefundLeg

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

COMMON_ZONES = [
    "Asia/Shanghai", "Asia/Hong_Kong", "Asia/Taipei", "Asia/Singapore", "Asia/Tokyo", "Asia/Kolkata",
    "Europe/London", "Europe/Berlin", "America/New_York", "America/Los_Angeles", "UTC",
]

# "Older than" choices of the review queue, in hours.
AGE_CHOICES = [("1", "1 h"), ("4", "4 h"), ("24", "24 h"), ("72", "3 d"), ("168", "7 d")]


@functools.cache
def time_zones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


# ---------------------------------------------------------------------------------------------
# Keyset cursors: "<microseconds since epoch>.<refund id>"


def encode_cursor(refund: Refund) -> str:
    delta = refund.created_at - EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"{micros}.{refund.pk.hex}"


def decode_cursor(value: str) -> tuple[datetime.datetime, uuid.UUID] | None:
    try:
        micros, pk = value.split(".", 1)
        return EPOCH + datetime.timedelta(microseconds=int(micros)), uuid.UUID(pk)
    except (ValueError, OverflowError):
        return None


def _page(queryset, *, cursor: str, limit: int, descending: bool) -> tuple[list, str]:
    """The page after `cursor` of `queryset` (refunds, filtered, unordered).

    Two queries: the page's keys from the refund table alone, where the filter's index gives
    them in order, then those rows with their merchant, payment and legs. Joined in one query,
    a filter the planner misjudges (the flag's text match) could join every candidate row.
    """
    decoded = decode_cursor(cursor) if cursor else None
    if decoded:
        at, pk = decoded
        # The first condition is what an index range can use; the OR only breaks the tie.
        if descending:
            queryset = queryset.filter(Q(created_at__lte=at), Q(created_at__lt=at) | Q(pk__lt=pk))
        else:
            queryset = queryset.filter(Q(created_at__gte=at), Q(created_at__gt=at) | Q(pk__gt=pk))
    order = ("-created_at", "-pk") if descending else ("created_at", "pk")
    keys = list(queryset.order_by(*order).values_list("pk", flat=True)[: limit + 1])
    by_pk = {r.pk: r for r in _base_rows().filter(pk__in=keys[:limit])}
    rows = [by_pk[pk] for pk in keys[:limit] if pk in by_pk]
    next_cursor = encode_cursor(rows[-1]) if len(keys) > limit and rows else ""
    return rows, next_cursor


def merchant_id(code: str) -> int | None:
    """The merchant's id for a code filter (-1 when there is none: the filter matches nothing).

    Filtering by id lets the (merchant, ...) indexes give the page in order; a join on the
    code would read the merchant's rows and sort them."""
    from merchants.models import Merchant

    return Merchant.objects.filter(code=code).values_list("pk", flat=True).first() or -1


def _legs_prefetch():
    return Prefetch("legs", queryset=RefundLeg.objects.select_related("channel").order_by("id"))


def _base_rows():
    return Refund.objects.select_related("merchant", "payment", "created_by_user").prefetch_related(_legs_prefetch())


def _major_to_minor(value: str) -> int | None:
    try:
        return to_minor(Decimal(value.replace(",", "")), "CNY") if value else None
    except (InvalidOperation, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# Review queue


@dataclass
class QueueFilters:
    merchant: str = ""
    source: str = ""
    amount_min: str = ""
    amount_max: str = ""
    flag: str = ""
    age: str = ""
    after: str = ""

    @classmethod
    def from_query(cls, query) -> "QueueFilters":
        return cls(**{name: query.get(name, "").strip() for name in cls.__dataclass_fields__})

    @property
    def active(self) -> bool:
        return any([self.merchant, self.source, self.amount_min, self.amount_max, self.flag, self.age])


def review_queue(filters: QueueFilters, *, limit: int) -> tuple[list[Refund], str]:
    """Refunds waiting for review, oldest first (the status+created_at index)."""
    qs = Refund.objects.filter(status=Refund.Status.PENDING_REVIEW)
    if filters.merchant:
        qs = qs.filter(merchant_id=merchant_id(filters.merchant))
    if filters.source in Refund.Source.values:
        qs = qs.filter(source=filters.source)
    low, high = _major_to_minor(filters.amount_min), _major_to_minor(filters.amount_max)
    if low is not None:
        qs = qs.filter(amount__gte=low)
    if high is not None:
        qs = qs.filter(amount__lte=high)
    if filters.flag:
        # Every word of the flag must appear among the reasons ("review threshold").
        qs = qs.annotate(risk_text=Cast("risk_reasons", TextField()))
        for word in filters.flag.split():
            qs = qs.filter(risk_text__icontains=word)
    if filters.age.isdigit():
        qs = qs.filter(created_at__lte=timezone.now() - datetime.timedelta(hours=int(filters.age)))
    return _page(qs, cursor=filters.after, limit=limit, descending=False)


def flag_kinds(reasons: list[str]) -> list[str]:
    """Reasons with their figures taken out, to offer as filters ("amount above ... threshold")."""
    return sorted({re.sub(r"\s+", " ", re.sub(r"[\d.,]+", " ", r)).strip() for r in reasons})


def queue_rows_by_pk(pks: list[uuid.UUID]) -> list[Refund]:
    by_pk = {r.pk: r for r in _base_rows().filter(pk__in=pks)}
    return [by_pk[pk] for pk in pks if pk in by_pk]


def _money(minor: int, currency: str) -> str:
    from .templatetags.backoffice import money

    return money(minor, currency)


def _destination(leg: RefundLeg, *, short: bool = False) -> str:
    if leg.route == RefundLeg.Route.BALANCE:
        return _("Platform balance") if short else _("the user's platform balance")
    if leg.route == RefundLeg.Route.MANUAL:
        return _("Manual payout") if short else _("a manual payout by finance")
    return leg.channel.name if leg.channel_id else leg.route


def live_legs(refund: Refund) -> list[RefundLeg]:
    legs = list(refund.legs.all())
    if refund.status in Refund.RELEASED:
        return legs
    return [leg for leg in legs if leg.status != RefundLeg.Status.CANCELLED]


def what_approval_does(refund: Refund) -> str:
    """"refund CNY 30.00 to WeChat Pay, arrives by 27 Nov" (UI.md: show what will happen)."""
    legs = live_legs(refund)
    parts = [_("%(amount)s to %(where)s") % {"amount": _money(leg.amount, leg.currency), "where": _destination(leg)}
             for leg in legs]
    eta = services.estimate_arrival(legs, today=timezone.localdate())
    return _("Refund %(parts)s, arrives by %(date)s") % {"parts": " + ".join(parts) or _money(refund.amount, refund.currency),
                                                         "date": date_format(eta, "j M")}


def what_rejection_does(refund: Refund) -> str:
    return _("Refuse the refund: %(amount)s held from %(merchant)s goes back, and the payment can be refunded again") % {
        "amount": _money(refund.hold_amount, refund.hold_currency), "merchant": refund.merchant.name}


@dataclass
class ReviewRow:
    refund: Refund
    can_review: bool
    approve_blocked: str  # why approval is disabled for this viewer, or ""
    will_approve: str
    will_reject: str
    routes: list[str]
    error: str = ""

    @classmethod
    def build(cls, refund: Refund, user, *, error: str = "") -> "ReviewRow":
        pending = refund.status == Refund.Status.PENDING_REVIEW
        blocked = ""
        if pending and refund.created_by_user_id and refund.created_by_user_id == user.pk:
            blocked = _("You created this refund: another supervisor must approve it.")
        legs = live_legs(refund)
        return cls(
            refund=refund,
            can_review=pending and user.has_perm("refunds.review_refund"),
            approve_blocked=blocked,
            will_approve=what_approval_does(refund) if pending else "",
            will_reject=what_rejection_does(refund) if pending else "",
            routes=[_destination(leg, short=True) for leg in legs],
            error=error,
        )


def decision_summary(action: str, done: int, failed: int) -> str:
    if action == "approve":
        text = ngettext("Approved %(n)d refund.", "Approved %(n)d refunds.", done) % {"n": done}
    else:
        text = ngettext("Rejected %(n)d refund.", "Rejected %(n)d refunds.", done) % {"n": done}
    if failed:
        text += " " + ngettext("%(n)d could not be changed.", "%(n)d could not be changed.", failed) % {"n": failed}
    return text


# ---------------------------------------------------------------------------------------------
# Refund list


@dataclass
class ListFilters:
    status: str = ""
    merchant: str = ""
    source: str = ""
    before: str = ""

    @classmethod
    def from_query(cls, query) -> "ListFilters":
        return cls(**{name: query.get(name, "").strip() for name in cls.__dataclass_fields__})


def refund_list(filters: ListFilters, *, limit: int) -> tuple[list[Refund], str]:
    """Newest first. Each filter has an index that serves the page in order: status+created_at,
    merchant+created_at, merchant+status+created_at, source+created_at (the rare sources)."""
    qs = Refund.objects.all()
    if filters.status in Refund.Status.values:
        qs = qs.filter(status=filters.status)
    if filters.merchant:
        qs = qs.filter(merchant_id=merchant_id(filters.merchant))
    if filters.source in Refund.Source.values:
        qs = qs.filter(source=filters.source)
    return _page(qs, cursor=filters.before, limit=limit, descending=True)


# ---------------------------------------------------------------------------------------------
# Search: any id a customer reads out

SEARCH_LIMIT = 100


@dataclass
class Found:
    refunds: list[Refund] = field(default_factory=list)
    payments_without_refunds: list[Payment] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)  # which kinds of id matched


def search(query: str) -> Found:
    found = Found()
    seen: set = set()

    def add(refunds, kind: str):
        new = [r for r in refunds if r.pk not in seen]
        if new:
            found.matched.append(kind)
        for r in new:
            seen.add(r.pk)
            found.refunds.append(r)

    try:
        refund_pk = uuid.UUID(query)
    except ValueError:
        refund_pk = None
    if refund_pk:
        add(_base_rows().filter(pk=refund_pk), _("refund id"))
    add(_base_rows().filter(out_refund_no=query)[:SEARCH_LIMIT], "out_refund_no")
    payments = list(Payment.objects.filter(out_trade_no=query).select_related("merchant")[:SEARCH_LIMIT])
    if payments:
        add(_base_rows().filter(payment__in=payments).order_by("-created_at")[:SEARCH_LIMIT], "out_trade_no")
        with_refunds = {r.payment_id for r in found.refunds}
        found.payments_without_refunds = [p for p in payments if p.pk not in with_refunds]
        if found.payments_without_refunds and "out_trade_no" not in found.matched:
            found.matched.append("out_trade_no")
    leg_refund_ids = list(
        RefundLeg.objects.filter(channel_refund_id=query).values_list("refund_id", flat=True)[:SEARCH_LIMIT]
    )
    leg_pk = RefundLeg.pk_from_submission_no(query)  # our serial number at the channel, RL000000000123
    if leg_pk:
        leg_refund_ids += RefundLeg.objects.filter(pk=leg_pk).values_list("refund_id", flat=True)
    if leg_refund_ids:
        add(_base_rows().filter(pk__in=leg_refund_ids), _("channel refund id"))
    add(_base_rows().filter(payment__user_id=query).order_by("-created_at")[:SEARCH_LIMIT], _("user id"))
    return found


# ---------------------------------------------------------------------------------------------
# The refund page


def _complaints_of(refund: Refund) -> list:
    """Complaints about this refund, if the complaints screen is installed."""
    try:
        Complaint = apps.get_model("refunds", "Complaint")
    except LookupError:
        return []
    links = [f.name for f in Complaint._meta.get_fields()
             if getattr(f, "many_to_one", False) and f.related_model is Refund]
    if not links:
        return []
    query = Q()
    for name in links:
        query |= Q(**{name: refund})
    items = []
    for complaint in Complaint.objects.filter(query).order_by("-pk")[:50]:
        try:
            url = reverse("complaint-detail", args=[complaint.pk])
        except NoReverseMatch:
            url = ""
        items.append({"obj": complaint, "url": url})
    return items


@dataclass
class RefundPage:
    legs: list[RefundLeg]
    events: list[RefundEvent]
    parts: list
    payment_refunds: list[Refund]
    ledger: list[LedgerTransaction] | None  # None: the viewer may not see the ledger
    complaints: list
    alerts: list
    eta_passed: bool


def refund_page(refund: Refund, user) -> RefundPage:
    legs = list(refund.legs.select_related("channel", "payment_part").order_by("id"))
    events = list(refund.events.select_related("leg").order_by("-created_at", "-id"))
    parts = list(refund.payment.parts.select_related("channel").order_by("position", "id"))
    payment_refunds = list(refund.payment.refunds.order_by("created_at", "pk"))
    ledger = None
    if user.has_perm("merchants.view_ledgertransaction"):
        ledger = list(
            LedgerTransaction.objects.filter(reference=f"refund:{refund.pk}")
            .prefetch_related("entries__account__merchant").order_by("id")
        )
    eta_passed = bool(refund.estimated_arrival and refund.status not in Refund.FINISHED
                      and refund.estimated_arrival < timezone.localdate())
    return RefundPage(legs=legs, events=events, parts=parts, payment_refunds=payment_refunds, ledger=ledger,
                      complaints=_complaints_of(refund), alerts=list(refund.alerts.order_by("-created_at")[:20]),
                      eta_passed=eta_passed)

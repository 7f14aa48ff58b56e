"""The dashboard (S14, "core monitoring reports"): what the back office should look at now.

Cheap on a million refunds: every figure reads an index range, never a whole big table.

- the chart counts refunds created in the last 14 days, per status: one range of
  refund_status_created per status (created_at >= 14 days ago);
- work waiting is counted with a cap (LIMIT inside the count, like the navigation's badges):
  review (refund_status_created), legs overdue at their channel (leg_due), failed legs and legs
  waiting for a card (leg_payout_work), payouts waiting for finance (payout_status), webhooks
  failing or dead (delivery_status_recent). A count at the cap shows as "999+";
- legs needing attention are found through the alerts that flagged them (a small table) rather
  than by scanning legs for the flag, which has no index;
- the per-channel table reads the legs of refunds created in the last 7 days (the refunds'
  created_at index, then each refund's legs by their foreign key);
- holds per currency sum the refund-hold accounts (one per merchant and currency);
- yesterday's shortfalls read ShortfallDigest for the business day, or, before the digest has
  run, BalanceShortfall's created_at range for that day.

The heavy part is computed once a minute per process and time zone (Django's cache) and
shown with its "as of" time.
"""

import datetime
import statistics
import zoneinfo
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Aggregate, Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from channels.models import Channel
from merchants.models import Account, BalanceShortfall, ShortfallDigest, WebhookDelivery

from .models import Alert, ManualPayout, Refund, RefundLeg

CACHE_TTL = 60  # seconds the figures may lag behind
CACHE_VERSION = 2
COUNT_CAP = 999
CHART_DAYS = 14
CHANNEL_DAYS = 7
# The janitor runs every minute: a leg due for longer than this is its backlog, not its next round.
JANITOR_GRACE = datetime.timedelta(minutes=2)
DISPATCH_LAG = datetime.timedelta(minutes=2)  # the relay runs every second: a leg should not wait this long
SHORTFALL_ROWS = 8
ALERT_ROWS = 5
LEG_ID_MARGIN = 1000


@dataclass(frozen=True)
class Outcome:
    key: str
    label: str
    statuses: tuple[str, ...]
    tone: str  # the chip colour of the same meaning (backoffice.css)


S = Refund.Status
# Bottom of each bar to top.
OUTCOMES = [
    Outcome("succeeded", _("Succeeded"), (S.SUCCEEDED,), "succeeded"),
    Outcome("failed", _("Failed or manual payout"), (S.FAILED, S.MANUAL_PAYOUT), "failed"),
    Outcome("closed", _("Rejected or cancelled"), (S.REJECTED, S.CANCELLED), "closed"),
    Outcome("inflight", _("In flight"), (S.PENDING_REVIEW, S.APPROVED, S.PROCESSING), "processing"),
]
_OUTCOME_OF = {status: o.key for o in OUTCOMES for status in o.statuses}


def capped(queryset) -> int:
    """Rows of `queryset`, counting no further than COUNT_CAP + 1 (the database stops there)."""
    # No ORDER BY: the legs' default ordering would join their refunds for nothing.
    return queryset.order_by().values("pk")[: COUNT_CAP + 1].count()


def _first(queryset, field: str):
    return queryset.order_by(field).values_list(field, flat=True).first()


# ---------------------------------------------------------------------------------------------
# The figures


def _local_midnight(day: datetime.date, tz) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=tz)


def refunds_per_day(*, now: datetime.datetime, tz, days: int = CHART_DAYS) -> list[dict]:
    """[{"day": date, "succeeded": n, "failed": n, "closed": n, "inflight": n, "total": n}], oldest first,
    days in the viewer's zone, today included."""
    today = timezone.localdate(now, timezone=tz)
    first = today - datetime.timedelta(days=days - 1)
    start, end = _local_midnight(first, tz), _local_midnight(today + datetime.timedelta(days=1), tz)
    rows = (
        # status IN (every status): each one a range of refund_status_created.
        Refund.objects.filter(status__in=list(_OUTCOME_OF), created_at__gte=start, created_at__lt=end)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day", "status").annotate(n=Count("pk")).order_by()
    )
    by_day = {first + datetime.timedelta(days=i): {o.key: 0 for o in OUTCOMES} for i in range(days)}
    for row in rows:
        day = row["day"]
        if isinstance(day, datetime.datetime):  # some backends hand back a datetime
            day = day.date()
        if day in by_day:
            by_day[day][_OUTCOME_OF[row["status"]]] += row["n"]
    return [{"day": day, **counts, "total": sum(counts.values())} for day, counts in by_day.items()]


def _review(now) -> dict:
    waiting = Refund.objects.filter(status=S.PENDING_REVIEW)
    return {"count": capped(waiting), "oldest": _first(waiting, "created_at")}


def _overdue_legs(now) -> dict:
    # The janitor's own filter (refunds.dispatch.janitor), less the grace: leg_due serves it.
    overdue = RefundLeg.objects.filter(status=RefundLeg.Status.PROCESSING, needs_attention=False).filter(
        Q(next_action_at__isnull=True) | Q(next_action_at__lte=now - JANITOR_GRACE)
    )
    return {"count": capped(overdue), "oldest": _first(overdue.filter(next_action_at__isnull=False), "next_action_at")}


def _undispatched_legs(now) -> dict:
    # Approved channel legs still QUEUED a while after their last change: the dispatch relay's
    # backlog (beat or the workers not keeping up, or stopped), plus legs the channel's hours or
    # rate limit hold back. leg_due serves it.
    waiting = RefundLeg.objects.filter(
        status=RefundLeg.Status.QUEUED, needs_attention=False, channel__isnull=False, updated_at__lte=now - DISPATCH_LAG
    )
    return {"count": capped(waiting), "oldest": _first(waiting, "updated_at")}


def _attention() -> dict:
    open_alerts = Alert.objects.filter(resolved_at__isnull=True)
    flagged_leg_ids = Alert.objects.filter(leg__isnull=False).values("leg_id")
    legs = RefundLeg.objects.filter(pk__in=flagged_leg_ids, needs_attention=True)
    newest = [
        {"kind": a.kind, "message": a.message, "refund_id": a.refund_id, "created_at": a.created_at}
        for a in open_alerts.order_by("-created_at")[:ALERT_ROWS]
    ]
    return {"alerts": capped(open_alerts), "legs": capped(legs), "newest": newest}


def _payouts() -> dict:
    failed = RefundLeg.objects.filter(status=RefundLeg.Status.FAILED)
    waiting_card = RefundLeg.objects.filter(status=RefundLeg.Status.MANUAL_PAYOUT).filter(
        Q(manual_payout__isnull=True) | Q(manual_payout__status=ManualPayout.Status.RETURNED)
    )
    waiting_finance = ManualPayout.objects.filter(status=ManualPayout.Status.AWAITING_APPROVAL)
    return {
        "failed": capped(failed),
        "card": capped(waiting_card),
        "finance": capped(waiting_finance),
        "finance_oldest": _first(waiting_finance, "recorded_at"),
    }


def _webhooks() -> dict:
    status = WebhookDelivery.Status
    return {
        "failing": capped(WebhookDelivery.objects.filter(status=status.FAILED)),
        "dead": capped(WebhookDelivery.objects.filter(status=status.DEAD)),
    }


def _holds() -> list[dict]:
    rows = (
        Account.objects.filter(kind=Account.Kind.REFUND_HOLD, merchant__isnull=False)
        .values("currency").annotate(total=Sum("balance"))
        .order_by("currency")
    )
    return [r for r in rows if r["total"]]


class Median(Aggregate):
    """PostgreSQL's median (of an interval, here): one pass in the database, no rows shipped."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = DurationField()


def per_channel(*, now: datetime.datetime, days: int = CHANNEL_DAYS) -> list[dict]:
    """Legs sent to each channel, of the refunds created in the last `days` days.

    Submitted: the leg reached its channel. Succeeded: the channel paid it. Failed: the channel
    refused it (still failed, or paid another way since). Time to result: the channel's success,
    from submitted_at to completed_at (a leg paid by hand after a failure is not the channel's).
    """
    since = now - datetime.timedelta(days=days)
    # Legs are created with their refund, so their ids follow the refunds' creation: the window's
    # legs start near the first leg of its first refund (less a margin for refunds created at the
    # same moment in other transactions). The id range keeps the planner on the primary key.
    first_refund = Refund.objects.filter(created_at__gte=since).order_by("created_at").values("pk")[:1]
    first_leg = RefundLeg.objects.filter(refund_id__in=first_refund).order_by("pk").values_list("pk", flat=True).first()
    if first_leg is None:
        return []
    legs = RefundLeg.objects.filter(
        pk__gte=first_leg - LEG_ID_MARGIN, refund__created_at__gte=since, refund__created_at__lte=now,
        channel__isnull=False, submitted_at__isnull=False,
    )
    by_hand = Q(manual_payout__isnull=False)
    channel_paid = Q(status=RefundLeg.Status.SUCCEEDED) & ~by_hand
    failed = Q(status__in=[RefundLeg.Status.FAILED, RefundLeg.Status.MANUAL_PAYOUT]) | (
        Q(status=RefundLeg.Status.SUCCEEDED) & by_hand
    )
    rows = {
        r["channel_id"]: r for r in legs.values("channel_id").annotate(
            submitted=Count("pk"), succeeded=Count("pk", filter=channel_paid), failed=Count("pk", filter=failed),
        ).order_by()
    }
    paid = legs.filter(channel_paid, completed_at__isnull=False)
    duration = ExpressionWrapper(F("completed_at") - F("submitted_at"), output_field=DurationField())
    medians: dict[int, datetime.timedelta | None] = {}
    if connection.vendor == "postgresql":
        for r in paid.values("channel_id").annotate(median=Median(duration)).order_by():
            medians[r["channel_id"]] = r["median"]
    else:  # the embedded database has no percentile: the (week's) durations, in Python
        spans: dict[int, list[float]] = {}
        for channel_id, submitted_at, completed_at in paid.values_list("channel_id", "submitted_at", "completed_at"):
            spans.setdefault(channel_id, []).append((completed_at - submitted_at).total_seconds())
        medians = {cid: datetime.timedelta(seconds=statistics.median(v)) for cid, v in spans.items()}
    channels = {pk: (code, name) for pk, code, name in Channel.objects.filter(pk__in=list(rows)).values_list("pk", "code", "name")}
    out = []
    for channel_id, r in rows.items():
        answered = r["succeeded"] + r["failed"]
        out.append({
            "code": channels.get(channel_id, ("", ""))[0], "name": channels.get(channel_id, ("", ""))[1],
            "submitted": r["submitted"], "succeeded": r["succeeded"], "failed": r["failed"],
            "waiting": r["submitted"] - answered,
            "success_rate": (r["succeeded"] / answered) if answered else None,
            "median": medians.get(channel_id),
        })
    out.sort(key=lambda c: (-c["submitted"], c["code"]))
    return out


def business_zone():
    """The zone the daily jobs (settlement, the shortfall digest) count days in."""
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def shortfalls_yesterday(*, now: datetime.datetime) -> dict:
    tz = business_zone()
    day = timezone.localdate(now, timezone=tz) - datetime.timedelta(days=1)
    digests = ShortfallDigest.objects.filter(day=day)
    rows = [
        {"code": d.merchant.code, "name": d.merchant.name, "refusals": d.refusals, "amount": d.amount_refused,
         "currency": d.currency}
        for d in digests.select_related("merchant").order_by("-amount_refused", "merchant__code")[:SHORTFALL_ROWS]
    ]
    if rows:
        merchants = digests.values("merchant_id").distinct().count()
        return {"day": day, "rows": rows, "merchants": merchants, "from_digest": True}
    # The digest has not run yet (it runs in the morning): the day's refusals themselves.
    start = _local_midnight(day, tz)
    live = (
        BalanceShortfall.objects.filter(created_at__gte=start, created_at__lt=start + datetime.timedelta(days=1))
        .values("merchant_id", "merchant__code", "merchant__name", "currency")
        .annotate(refusals=Count("pk"), amount=Sum("amount")).order_by("-amount", "merchant__code")
    )
    live = list(live)
    rows = [
        {"code": r["merchant__code"], "name": r["merchant__name"], "refusals": r["refusals"], "amount": r["amount"],
         "currency": r["currency"]}
        for r in live[:SHORTFALL_ROWS]
    ]
    return {"day": day, "rows": rows, "merchants": len({r["merchant_id"] for r in live}), "from_digest": False}


def compute(*, now: datetime.datetime | None = None, tz=None) -> dict:
    now = now or timezone.now()
    tz = tz or timezone.get_current_timezone()
    return {
        "as_of": now,
        "days": refunds_per_day(now=now, tz=tz),
        "review": _review(now),
        "overdue": _overdue_legs(now),
        "undispatched": _undispatched_legs(now),
        "attention": _attention(),
        "payouts": _payouts(),
        "webhooks": _webhooks(),
        "holds": _holds(),
        "channels": per_channel(now=now),
        "shortfalls": shortfalls_yesterday(now=now),
    }


def snapshot() -> dict:
    """The figures, at most CACHE_TTL seconds old. The chart's days are the viewer's, so one per zone."""
    tz = timezone.get_current_timezone()
    key = f"dashboard:v{CACHE_VERSION}:{timezone.get_current_timezone_name()}"
    data = cache.get(key)
    if data is None:
        data = compute(tz=tz)
        cache.set(key, data, CACHE_TTL)
    return data


# ---------------------------------------------------------------------------------------------
# The chart, drawn on the server (inline SVG)

CHART_W, CHART_H = 720, 230
PAD_L, PAD_R, PAD_T, PAD_B = 44, 8, 12, 34


def nice_top(value: int) -> tuple[int, int]:
    """(axis top, step): 1, 2 or 5 x 10^k steps, at most 5 of them, the top at or above `value`."""
    if value <= 0:
        return 4, 1
    magnitude = 1
    while True:
        for mult in (1, 2, 5):
            step = mult * magnitude
            if step * 5 >= value:
                top = -(-value // step) * step
                return top, step
        magnitude *= 10


def chart(days: list[dict]) -> dict:
    """Geometry of the stacked bars: plain numbers the template writes into the SVG."""
    top, step = nice_top(max((d["total"] for d in days), default=0))
    plot_w, plot_h = CHART_W - PAD_L - PAD_R, CHART_H - PAD_T - PAD_B
    slot = plot_w / max(len(days), 1)
    bar_w = round(slot * 0.64, 1)
    base = PAD_T + plot_h

    def y(v: float) -> float:
        return round(base - v / top * plot_h, 1)

    grid = [{"value": v, "y": y(v)} for v in range(0, top + 1, step)]
    bars = []
    for i, d in enumerate(days):
        x = round(PAD_L + i * slot + (slot - bar_w) / 2, 1)
        acc, segments = 0, []
        for o in OUTCOMES:
            n = d[o.key]
            if n:
                segments.append({"key": o.key, "tone": o.tone, "label": o.label, "n": n,
                                 "y": y(acc + n), "h": round(y(acc) - y(acc + n), 1)})
            acc += n
        bars.append({"day": d["day"], "x": x, "cx": round(x + bar_w / 2, 1), "w": bar_w, "total": d["total"],
                     "top_y": y(d["total"]) - 4, "segments": segments})
    return {"w": CHART_W, "h": CHART_H, "left": PAD_L, "right": CHART_W - PAD_R, "base": base,
            "label_y": base + 16, "weekday_y": base + 28, "grid": grid, "bars": bars}

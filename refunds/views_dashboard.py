"""The dashboard screen: the core monitoring report (S14), figures from refunds.dashboard."""

import datetime

from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from . import dashboard, navigation, roles
from .templatetags.backoffice import ago
from .views import screen_required


def _shown(n: int) -> str:
    return f"{dashboard.COUNT_CAP}+" if n > dashboard.COUNT_CAP else str(n)


def duration(td: datetime.timedelta | None) -> str:
    """A median time to result at a glance: "42 s", "7 min", "3.5 h", "2.1 days"."""
    if td is None:
        return ""
    seconds = td.total_seconds()
    if seconds < 90:
        return _("%(n)d s") % {"n": round(seconds)}
    if seconds < 90 * 60:
        return _("%(n)d min") % {"n": round(seconds / 60)}
    if seconds < 36 * 3600:
        return _("%(n)s h") % {"n": f"{seconds / 3600:.1f}"}
    return _("%(n)s days") % {"n": f"{seconds / 86400:.1f}"}


def _url(user, screen: str, query: str = "") -> str:
    if not roles.may_open(user, screen):
        return ""
    url = navigation.safe_reverse(screen)
    return f"{url}{query}" if url else ""


def _admin_url(user, perm: str, name: str, query: str = "") -> str:
    if not (user.is_staff and user.has_perm(perm)):
        return ""
    return navigation.safe_reverse(name) + query if navigation.safe_reverse(name) else ""


def tiles(data: dict, user) -> list[dict]:
    """The work waiting, one tile each: the figure, what it is, the detail an operator asks next, where to act."""
    now = data["as_of"]
    review, overdue, attention = data["review"], data["overdue"], data["attention"]
    undispatched = data["undispatched"]
    payouts, webhooks = data["payouts"], data["webhooks"]
    out = [
        {
            "key": "review", "label": _("Waiting for review"), "value": review["count"],
            "detail": _("oldest %(age)s") % {"age": ago(review["oldest"], now)} if review["oldest"] else "",
            "url": _url(user, "review-queue"), "tone": "warn" if review["count"] else "",
        },
        {
            "key": "undispatched", "label": _("Approved, not yet sent to a channel"), "value": undispatched["count"],
            "detail": (_("oldest approved %(age)s") % {"age": ago(undispatched["oldest"], now)})
            if undispatched["oldest"] else _("the dispatch relay keeps up"),
            "url": "", "tone": "warn" if undispatched["count"] else "",
        },
        {
            "key": "overdue", "label": _("No channel answer, past next check"), "value": overdue["count"],
            "detail": (_("due since %(age)s") % {"age": ago(overdue["oldest"], now)}) if overdue["oldest"]
            else _("the janitor's backlog"),
            "url": "", "tone": "bad" if overdue["count"] else "",
        },
        {
            "key": "attention", "label": _("Legs needing attention"), "value": attention["legs"],
            "detail": ngettext("%(n)s alert unresolved", "%(n)s alerts unresolved", attention["alerts"])
            % {"n": _shown(attention["alerts"])},
            "url": "", "tone": "bad" if attention["legs"] or attention["alerts"] else "",
        },
        {
            "key": "failed", "label": _("Failed legs awaiting confirmation"), "value": payouts["failed"],
            "detail": _("confirm against the channel's statement"),
            "url": _url(user, "payouts", "?state=failed"), "tone": "warn" if payouts["failed"] else "",
        },
        {
            "key": "card", "label": _("Manual payouts waiting for a card"), "value": payouts["card"],
            "detail": _("customer service asks the user"),
            "url": _url(user, "payouts", "?state=card"), "tone": "warn" if payouts["card"] else "",
        },
        {
            "key": "finance", "label": _("Manual payouts waiting for finance"), "value": payouts["finance"],
            "detail": (_("oldest card recorded %(age)s") % {"age": ago(payouts["finance_oldest"], now)})
            if payouts["finance_oldest"] else "",
            "url": _url(user, "payouts", "?state=approval"), "tone": "warn" if payouts["finance"] else "",
        },
        {
            "key": "webhooks", "label": _("Webhooks failing or dead"), "value": webhooks["failing"] + webhooks["dead"],
            "detail": _("%(failing)s retrying, %(dead)s dead") % {
                "failing": _shown(webhooks["failing"]), "dead": _shown(webhooks["dead"])},
            "url": _admin_url(user, "merchants.view_webhookdelivery", "admin:merchants_webhookdelivery_changelist",
                              "?status__exact=dead" if webhooks["dead"] else "?status__exact=failed"),
            "tone": "bad" if webhooks["dead"] else ("warn" if webhooks["failing"] else ""),
        },
    ]
    for tile in out:
        tile["shown"] = _shown(tile["value"])
    return out


@screen_required("dashboard")
def dashboard_view(request):
    data = dashboard.snapshot()
    days = data["days"]
    channels = []
    for c in data["channels"]:
        submitted = c["submitted"] or 1
        channels.append({
            **c, "median_text": duration(c["median"]),
            "rate_pct": None if c["success_rate"] is None else round(c["success_rate"] * 100, 1),
            "bar": [("succeeded", round(c["succeeded"] * 100 / submitted, 1)),
                    ("failed", round(c["failed"] * 100 / submitted, 1)),
                    ("processing", round(c["waiting"] * 100 / submitted, 1))],
        })
    return render(request, "refunds/dashboard.html", {
        "data": data,
        "tiles": tiles(data, request.user),
        "chart": dashboard.chart(days),
        "outcomes": dashboard.OUTCOMES,
        "days": days,
        "totals": {o.key: sum(d[o.key] for d in days) for o in dashboard.OUTCOMES} | {
            "total": sum(d["total"] for d in days)},
        "total_cells": [sum(d[o.key] for d in days) for o in dashboard.OUTCOMES],
        "channels": channels,
        "channel_days": dashboard.CHANNEL_DAYS,
        "chart_days": dashboard.CHART_DAYS,
        "next_refresh": data["as_of"] + datetime.timedelta(seconds=dashboard.CACHE_TTL),
        "may_open_merchants": roles.may_open(request.user, "merchant-list"),
        "may_open_refunds": roles.may_open(request.user, "refund-list"),
    })

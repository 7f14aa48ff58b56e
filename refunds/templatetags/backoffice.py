"""Template helpers of the back office: money, status chips, times in the viewer's zone."""

import datetime
import re

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import get_language, gettext_noop, ngettext
from django.utils.translation import gettext_lazy as _

from merchants.money import exponent, format_money, to_major

register = template.Library()

# Shown instead of the code in the Chinese locale (UI.md: `¥1,234.56`).
_SYMBOLS_ZH = {"CNY": "¥"}

STATUS_LABELS = {
    # refunds
    "PENDING_REVIEW": _("Pending review"),
    "APPROVED": _("Approved"),
    "PROCESSING": _("Processing"),
    "SUCCEEDED": _("Succeeded"),
    "FAILED": _("Failed"),
    "MANUAL_PAYOUT": _("Manual payout"),
    "REJECTED": _("Rejected"),
    "CANCELLED": _("Cancelled"),
    # legs
    "PENDING": _("Pending"),
    "QUEUED": _("Queued"),
}
# One colour per meaning, the same on every screen (UI.md).
STATUS_TONES = {
    "PENDING_REVIEW": "pending",
    "PENDING": "pending",
    "QUEUED": "pending",
    "APPROVED": "approved",
    "PROCESSING": "processing",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "MANUAL_PAYOUT": "manual",
    "REJECTED": "closed",
    "CANCELLED": "closed",
}


@register.filter
def money(minor, currency="CNY"):
    """Minor units as major units with the currency: `CNY 1,234.56` (`¥1,234.56` in Chinese)."""
    if minor is None or minor == "":
        return ""
    currency = (currency or "CNY").upper()
    lang = (get_language() or "").lower()
    if lang.startswith("zh") and currency in _SYMBOLS_ZH:
        places = exponent(currency)
        sign = "-" if int(minor) < 0 else ""
        return f"{sign}{_SYMBOLS_ZH[currency]}{abs(to_major(int(minor), currency)):,.{places}f}"
    return format_money(int(minor), currency)


@register.simple_tag
def status_chip(status, label=None):
    tone = STATUS_TONES.get(status, "pending")
    text = label or STATUS_LABELS.get(status, status)
    return format_html('<span class="chip chip-{}" data-status="{}">{}</span>', tone, status, text)


@register.filter
def status_label(status):
    return STATUS_LABELS.get(status, status)


def _offset(dt: datetime.datetime) -> str:
    offset = dt.utcoffset() or datetime.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{mins:02d}" if mins else "")


@register.filter
def ago(dt, now=None):
    """"3 h ago": the age an agent reads at a glance."""
    if not dt:
        return ""
    now = now or timezone.now()
    seconds = int((now - dt).total_seconds())
    if seconds < 0:
        return _("in the future")
    if seconds < 60:
        return _("just now")
    if seconds < 3600:
        n = seconds // 60
        return ngettext("%(n)d min ago", "%(n)d min ago", n) % {"n": n}
    if seconds < 86400 * 2:
        n = seconds // 3600
        return ngettext("%(n)d h ago", "%(n)d h ago", n) % {"n": n}
    n = seconds // 86400
    return ngettext("%(n)d day ago", "%(n)d days ago", n) % {"n": n}


@register.simple_tag
def when(dt, relative=False):
    """An absolute time in the viewer's zone with the zone shown, optionally with its age."""
    if not dt:
        return ""
    local = timezone.localtime(dt)
    text = f"{local:%Y-%m-%d %H:%M} {_offset(local)}"
    title = f"{local.isoformat()} ({timezone.get_current_timezone_name()})"
    if relative:
        return format_html(
            '<time datetime="{}" title="{}">{}</time> <span class="age">{}</span>', local.isoformat(), title, text, ago(dt)
        )
    return format_html('<time datetime="{}" title="{}">{}</time>', local.isoformat(), title, text)


@register.simple_tag
def url_or_blank(name, *args):
    """reverse() that gives "" for a screen that is not built (yet) instead of failing the page."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


@register.simple_tag(takes_context=True)
def query_with(context, **changes):
    """The current query string with some parameters changed (filters stay in the URL)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value in (None, ""):
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


# Choice labels of models this app shows but does not own (or owns without translation):
# marked here so that makemessages finds them; templates use {% translate obj.get_x_display %}.
CHOICE_LABELS = [
    gettext_noop("User"), gettext_noop("Merchant"), gettext_noop("Customer service"), gettext_noop("Automatic"),
    gettext_noop("Payment collected"), gettext_noop("Top-up"), gettext_noop("Refund hold"),
    gettext_noop("Hold released"), gettext_noop("Refund paid"), gettext_noop("T+1 settlement"),
    gettext_noop("Requested"), gettext_noop("Risk decision"), gettext_noop("Status change"), gettext_noop("Note"),
]


_THRESHOLD = re.compile(r"^amount (\d+) above the merchant's review threshold (\d+)$")


@register.filter
def risk_reason(reason, currency="CNY"):
    """A risk rule's reason, readable: its figures (minor units) as money, in the viewer's language."""
    match = _THRESHOLD.match(str(reason))
    if match:
        return _("%(amount)s is above the merchant's review threshold of %(threshold)s") % {
            "amount": money(int(match[1]), currency), "threshold": money(int(match[2]), currency)}
    return reason

"""The frame every screen shares: the left navigation (only what the role may open, with the
work waiting) and the viewer's name, role and time zone. A context processor."""

from collections.abc import Callable
from dataclasses import dataclass

from django.apps import apps
from django.core.cache import cache
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import roles

# Counts stop here: the badge says "999+" rather than count a big table to the end.
COUNT_CAP = 999
COUNT_TTL = 15  # seconds a badge may lag behind


def _capped(queryset) -> int:
    # LIMIT inside the count: the database stops after COUNT_CAP + 1 rows of the index.
    return queryset.values("pk")[: COUNT_CAP + 1].count()


def _refunds_in(status: str) -> Callable[[], int]:
    def count() -> int:
        from .models import Refund

        return _capped(Refund.objects.filter(status=status))

    return count


def _open_complaints() -> int:
    try:
        Complaint = apps.get_model("refunds", "Complaint")
    except LookupError:
        return 0
    field_names = {f.name for f in Complaint._meta.get_fields()}
    qs = Complaint.objects.all()
    if "closed_at" in field_names:
        qs = qs.filter(closed_at__isnull=True)
    elif "resolved_at" in field_names:
        qs = qs.filter(resolved_at__isnull=True)
    elif "status" in field_names:
        qs = qs.exclude(status__in=["closed", "resolved", "CLOSED", "RESOLVED"])
    return _capped(qs)


def _open_alerts() -> int:
    from .models import Alert

    return _capped(Alert.objects.filter(resolved_at__isnull=True))


@dataclass(frozen=True)
class Item:
    url_name: str  # also the key of roles.SCREENS
    label: str
    count: Callable[[], int] | None = None


ITEMS = [
    Item("review-queue", _("Review queue"), _refunds_in("PENDING_REVIEW")),
    Item("refund-list", _("Refunds")),
    Item("complaints", _("Complaints"), _open_complaints),
    Item("payouts", _("Payouts"), _refunds_in("MANUAL_PAYOUT")),
    # A failed refund waits for reconciliation to confirm the failure before any other path (S14).
    Item("reconciliation", _("Reconciliation"), _refunds_in("FAILED")),
    Item("merchant-list", _("Merchants")),
    Item("channel-list", _("Channels")),
    Item("dashboard", _("Dashboard"), _open_alerts),
    Item("admin:index", _("Admin")),
]


def safe_reverse(name: str, *args) -> str:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


def _count(item: Item) -> int:
    key = f"nav-count:{item.url_name}"
    value = cache.get(key)
    if value is None:
        value = item.count()
        cache.set(key, value, COUNT_TTL)
    return value


def forget_counts(*names: str) -> None:
    """After a change the viewer made, their badges show it at once."""
    cache.delete_many([f"nav-count:{name}" for name in names])


def nav_items(request) -> list[dict]:
    user = request.user
    current = getattr(getattr(request, "resolver_match", None), "view_name", "") or ""
    out = []
    for item in ITEMS:
        if not roles.may_open(user, item.url_name):
            continue
        url = safe_reverse(item.url_name)
        if not url:  # a screen not built yet
            continue
        count = _count(item) if item.count else None
        out.append({
            "name": item.url_name, "label": item.label, "url": url, "count": count,
            "count_label": f"{COUNT_CAP}+" if count and count > COUNT_CAP else (str(count) if count else ""),
            "active": current == item.url_name or request.path.startswith(url),
        })
    return out


def role_names(user) -> list[str]:
    if not user.is_authenticated:
        return []
    cached = getattr(user, "_role_names", None)
    if cached is None:
        known = list(roles.ROLE_PERMISSIONS)
        names = set(user.groups.filter(name__in=known).values_list("name", flat=True))
        cached = [n for n in known if n in names]
        if not cached and user.is_superuser:
            cached = [roles.ADMIN]
        user._role_names = cached
    return cached


def frame(request) -> dict:
    """Context processor: what base.html draws around every screen."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {"nav": [], "viewer_roles": [], "viewer_tz": timezone.get_current_timezone_name()}
    return {
        "nav": nav_items(request),
        "viewer_roles": role_names(request.user),
        "viewer_tz": timezone.get_current_timezone_name(),
    }

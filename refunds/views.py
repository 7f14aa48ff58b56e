"""Customer-service screens: the review queue, the refund list and the refund page, search.

Views are thin: they read through refunds.screens (queries for screens), change state only
through refunds.services, and render.
"""

import uuid
import zoneinfo
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from merchants.models import Merchant

from . import errors, navigation, roles, screens, services
from .middleware import SESSION_KEY as TZ_SESSION_KEY
from .models import Refund

PAGE_SIZE = 50


def screen_required(screen: str):
    """Anonymous: to the login page. Signed in without the role's permission: 403."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(request, *args, **kwargs):
            if not roles.may_open(request.user, screen):
                raise PermissionDenied(_("Your role does not open this screen."))
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def _actor(request) -> str:
    return f"user:{request.user.get_username()}"


@login_required
def home(request):
    for name in ("review-queue", "refund-list", "payouts", "reconciliation", "merchant-list", "channel-list",
                 "dashboard", "admin:index"):
        if roles.may_open(request.user, name):
            url = navigation.safe_reverse(name)
            if url:  # else a screen not built yet: try the next one
                return redirect(url)
    raise PermissionDenied(_("Your account has no role yet: ask an administrator."))


@login_required
def preferences(request):
    if request.method == "POST":
        name = request.POST.get("timezone", "")
        if name not in screens.time_zones():
            messages.error(request, _("Unknown time zone."))
        else:
            request.session[TZ_SESSION_KEY] = name
            timezone.activate(zoneinfo.ZoneInfo(name))
            messages.success(request, _("Times are now shown in %(zone)s.") % {"zone": name})
        return redirect(request.POST.get("next") or "preferences")
    return render(request, "refunds/preferences.html", {
        "zones": screens.time_zones(), "common_zones": screens.COMMON_ZONES,
        "current": timezone.get_current_timezone_name(), "next": request.GET.get("next", ""),
    })


@screen_required("refund-list")
def search(request):
    query = request.GET.get("q", "").strip()
    if not query:
        return redirect("refund-list")
    found = screens.search(query)
    if len(found.refunds) == 1 and not found.payments_without_refunds:
        return redirect("refund-detail", pk=found.refunds[0].pk)
    return render(request, "refunds/search.html", {"search_query": query, "found": found})


# ---------------------------------------------------------------------------------------------
# Review queue


@screen_required("review-queue")
def review_queue(request):
    filters = screens.QueueFilters.from_query(request.GET)
    rows, next_cursor = screens.review_queue(filters, limit=PAGE_SIZE)
    return render(request, "refunds/review_queue.html", {
        "filters": filters,
        "rows": [screens.ReviewRow.build(r, request.user) for r in rows],
        "next_cursor": next_cursor,
        "sources": Refund.Source.choices,
        "merchant_codes": list(Merchant.objects.values_list("code", flat=True)[:200]),
        "ages": screens.AGE_CHOICES,
    })


@require_POST
@screen_required("review-queue")
def review_decide(request):
    """Approve or reject one or many refunds with a reason; htmx gets the changed rows back."""
    action = request.POST.get("action")
    reason = request.POST.get("reason", "").strip()
    ids = request.POST.getlist("ids")
    if action not in ("approve", "reject"):
        return HttpResponseBadRequest("action must be approve or reject")
    try:
        pks = [uuid.UUID(i) for i in ids]
    except ValueError:
        return HttpResponseBadRequest("ids must be refund ids")
    outcomes: dict[uuid.UUID, str] = {}
    done = 0
    if not pks:
        problem = _("Choose at least one refund.")
    elif not reason:
        problem = _("A reason is required.")
    else:
        problem = ""
        for pk in pks:
            try:
                if action == "approve":
                    services.refund_approve(refund_id=pk, by=_actor(request), user=request.user, reason=reason)
                else:
                    services.refund_reject(refund_id=pk, by=_actor(request), user=request.user, reason=reason)
                done += 1
            except errors.RefundError as exc:
                outcomes[pk] = exc.message
    summary = problem or screens.decision_summary(action, done, len(outcomes))
    if done:
        navigation.forget_counts("review-queue", "payouts", "dashboard")
    if request.htmx:
        refunds = screens.queue_rows_by_pk(pks)
        rows = [screens.ReviewRow.build(r, request.user, error=outcomes.get(r.pk, "")) for r in refunds]
        return render(request, "refunds/_review_decided.html", {
            "rows": rows, "summary": summary, "failed": bool(problem or outcomes),
            "badge": next((i for i in navigation.nav_items(request) if i["name"] == "review-queue"), None),
        })
    if problem or outcomes:
        messages.error(request, summary)
        for pk, message in outcomes.items():
            messages.error(request, f"{pk}: {message}")
    else:
        messages.success(request, summary)
    return redirect(request.POST.get("next") or reverse("review-queue"))


# ---------------------------------------------------------------------------------------------
# Refunds


@screen_required("refund-list")
def refund_list(request):
    filters = screens.ListFilters.from_query(request.GET)
    rows, next_cursor = screens.refund_list(filters, limit=PAGE_SIZE)
    return render(request, "refunds/refund_list.html", {
        "filters": filters, "rows": rows, "next_cursor": next_cursor,
        "statuses": Refund.Status.choices, "sources": Refund.Source.choices,
        "merchant_codes": list(Merchant.objects.values_list("code", flat=True)[:200]),
    })


@screen_required("refund-list")
def refund_detail(request, pk):
    refund = get_object_or_404(Refund.objects.select_related("merchant", "payment", "created_by_user"), pk=pk)
    page = screens.refund_page(refund, request.user)
    return render(request, "refunds/refund_detail.html", {"refund": refund, "page": page,
                                                          "row": screens.ReviewRow.build(refund, request.user)})

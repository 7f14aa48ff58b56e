"""The configuration history screen: who changed which merchant setting, channel or FX rate, when,
from what to what, and why. For auditors (and operations and finance, who make the changes)."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from merchants.pagination import keyset_page

from .models import ConfigChange

# Auditors read it; those who make configuration changes see their history too.
VIEWERS = ("refunds.view_configchange", "merchants.operate_merchant", "payment_channels.configure_channel")

MODELS = [
    ("merchants.merchant", gettext_lazy("Merchants")),
    ("payment_channels.channel", gettext_lazy("Channels")),
    ("merchants.fxrate", gettext_lazy("FX rates")),
]


@login_required
def config_changes(request):
    if not any(request.user.has_perm(p) for p in VIEWERS):
        raise PermissionDenied(_("Your role does not open this screen."))
    params = request.GET
    qs = ConfigChange.objects.select_related("changed_by")
    if params.get("model") in dict(MODELS):
        qs = qs.filter(model=params["model"])
        if params.get("object"):
            qs = qs.filter(object_id=params["object"].strip())
    if params.get("actor"):
        qs = qs.filter(actor=params["actor"].strip())
    page = keyset_page(qs, after=params.get("after"))
    rows = [
        {"change": c, "fields": [(name, c.before.get(name), c.after.get(name)) for name in c.changed_fields]}
        for c in page.rows
    ]
    active = any(params.get(k) for k in ("model", "object", "actor"))
    return render(request, "refunds/config_changes.html", {
        "page": page, "rows": rows, "models": MODELS, "f": params, "filters_active": active,
    })

"""Merchant operations screens: the merchant list, and a merchant's page with its accounts,
balances, refund holds, recent ledger entries (keyset pages), its refund settings (changed by
merchant operations with a required note, kept in the configuration history) and top-ups."""

from decimal import Decimal
from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import operations
from .models import Account, LedgerEntry, Merchant
from .money import format_money, to_minor
from .pagination import keyset_page

OPERATE = "merchants.operate_merchant"
VIEWERS = (OPERATE, "merchants.view_merchant")


def merchants_screen(view):
    @wraps(view)
    @login_required
    def wrapped(request, *args, **kwargs):
        if not any(request.user.has_perm(p) for p in VIEWERS):
            raise PermissionDenied(_("Your role does not open this screen."))
        return view(request, *args, **kwargs)

    return wrapped


def _require_operate(request):
    if not request.user.has_perm(OPERATE):
        raise PermissionDenied(_("Only merchant operations change merchants."))


class SettingsForm(forms.Form):
    status = forms.ChoiceField(label=gettext_lazy("Status"), choices=Merchant.Status.choices)
    refund_source = forms.ChoiceField(label=gettext_lazy("Refund source"), choices=Merchant.RefundSource.choices)
    fallback_route = forms.ChoiceField(label=gettext_lazy("Fallback route"), choices=Merchant.FallbackRoute.choices)
    allocation_strategy = forms.ChoiceField(label=gettext_lazy("Allocation"), choices=Merchant.Allocation.choices)
    review_threshold = forms.DecimalField(
        label=gettext_lazy("Review above (CNY, empty: none)"), required=False, min_value=Decimal("0"),
        decimal_places=2, max_digits=14,
    )
    note = forms.CharField(label=gettext_lazy("Why (required, kept in the history)"), max_length=500)

    @classmethod
    def for_merchant(cls, merchant: Merchant):
        threshold = None if merchant.review_threshold is None else Decimal(merchant.review_threshold) / 100
        return cls(initial={
            "status": merchant.status, "refund_source": merchant.refund_source, "fallback_route": merchant.fallback_route,
            "allocation_strategy": merchant.allocation_strategy, "review_threshold": threshold,
        })

    def changes(self) -> dict:
        data = dict(self.cleaned_data)
        data.pop("note")
        threshold = data.pop("review_threshold")
        data["review_threshold"] = None if threshold is None else to_minor(threshold, "CNY")
        return data


class TopUpForm(forms.Form):
    account_kind = forms.ChoiceField(
        label=gettext_lazy("Account"),
        choices=[(Account.Kind.CASH, Account.Kind.CASH.label), (Account.Kind.PENDING_SETTLEMENT, Account.Kind.PENDING_SETTLEMENT.label)],
    )
    amount = forms.DecimalField(label=gettext_lazy("Amount"), min_value=Decimal("0.01"), decimal_places=2, max_digits=14)
    currency = forms.CharField(label=gettext_lazy("Currency"), max_length=3, initial="CNY")
    reason = forms.CharField(label=gettext_lazy("Reason (required, written on the ledger entry)"), max_length=200)

    def clean_currency(self):
        value = self.cleaned_data["currency"].strip().upper()
        if len(value) != 3 or not value.isalpha():
            raise ValidationError(_("An ISO 4217 code, e.g. CNY."))
        return value


@merchants_screen
def merchant_list(request):
    params = request.GET
    qs = Merchant.objects.all()
    q = (params.get("q") or "").strip()
    if q:
        qs = qs.filter(Q(code=q) | Q(name__istartswith=q))
    if params.get("status") in Merchant.Status.values:
        qs = qs.filter(status=params["status"])
    if params.get("refund_source") in Merchant.RefundSource.values:
        qs = qs.filter(refund_source=params["refund_source"])
    page = keyset_page(qs, after=params.get("after"), descending=False)
    # Balances of the shown page only: one query, not one per merchant.
    balances: dict[int, list[str]] = {}
    for account in Account.objects.filter(merchant__in=[m.pk for m in page.rows]).order_by("currency", "kind"):
        balances.setdefault(account.merchant_id, []).append(
            f"{account.get_kind_display()}: {format_money(account.balance, account.currency)}"
        )
    rows = [{"merchant": m, "balances": balances.get(m.pk, [])} for m in page.rows]
    return render(request, "merchants/list.html", {
        "page": page, "rows": rows, "f": params, "statuses": Merchant.Status.choices,
        "sources": Merchant.RefundSource.choices, "filters_active": any(params.get(k) for k in ("q", "status", "refund_source")),
    })


def _detail(request, merchant: Merchant, *, settings_form=None, top_up_form=None, status=200):
    accounts = list(Account.objects.filter(merchant=merchant).order_by("currency", "kind"))
    holds = [a for a in accounts if a.kind == Account.Kind.REFUND_HOLD]
    entries = keyset_page(
        LedgerEntry.objects.filter(account__merchant=merchant).select_related("transaction", "account"),
        after=request.GET.get("after"),
    )
    return render(request, "merchants/detail.html", {
        "merchant": merchant, "accounts": accounts, "holds": holds, "entries": entries,
        "may_operate": request.user.has_perm(OPERATE),
        "settings_form": settings_form or SettingsForm.for_merchant(merchant),
        "top_up_form": top_up_form or TopUpForm(initial={"currency": "CNY", "account_kind": merchant.refund_source}),
    }, status=status)


@merchants_screen
def merchant_detail(request, code):
    return _detail(request, get_object_or_404(Merchant, code=code))


@merchants_screen
def merchant_settings(request, code):
    if request.method != "POST":
        return redirect("merchant-detail", code=code)
    _require_operate(request)
    merchant = get_object_or_404(Merchant, code=code)
    form = SettingsForm(request.POST)
    if not form.is_valid():
        return _detail(request, merchant, settings_form=form, status=400)
    try:
        operations.merchant_settings_update(
            merchant_id=merchant.pk, changes=form.changes(), note=form.cleaned_data["note"], user=request.user
        )
    except (operations.OperationRefused, ValidationError) as exc:
        form.add_error(None, "; ".join(getattr(exc, "messages", [str(exc)])))
        return _detail(request, merchant, settings_form=form, status=400)
    messages.success(request, _("Settings of %(code)s saved.") % {"code": merchant.code})
    return redirect("merchant-detail", code=code)


@merchants_screen
def merchant_top_up(request, code):
    if request.method != "POST":
        return redirect("merchant-detail", code=code)
    _require_operate(request)
    merchant = get_object_or_404(Merchant, code=code)
    form = TopUpForm(request.POST)
    if not form.is_valid():
        return _detail(request, merchant, top_up_form=form, status=400)
    data = form.cleaned_data
    amount = to_minor(data["amount"], data["currency"])
    try:
        operations.merchant_top_up(
            merchant_id=merchant.pk, account_kind=data["account_kind"], amount=amount, currency=data["currency"],
            reason=data["reason"], user=request.user,
        )
    except (operations.OperationRefused, ValueError) as exc:
        form.add_error(None, str(exc))
        return _detail(request, merchant, top_up_form=form, status=400)
    messages.success(request, _("%(amount)s credited to the %(account)s account of %(code)s.") % {
        "amount": format_money(amount, data["currency"]), "account": dict(form.fields["account_kind"].choices)[data["account_kind"]],
        "code": merchant.code,
    })
    return redirect("merchant-detail", code=code)

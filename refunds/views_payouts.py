"""Manual payout screens (S11, S14, S24, S25): the payouts list (failure to confirm, waiting for a
card, waiting for finance, paid; keyset pages) and a leg's payout page, where finance confirms
a channel failure, an agent records the user's bank card, and another person from finance
approves and records the transfer. State changes only through refunds.payouts.

The card number never leaves in a response: pages show the mask. When the server refuses a
form whose card number was valid (another field was wrong), the number is kept as an encrypted
token in the form, not echoed back in clear.
"""

from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from merchants.pagination import keyset_page

from . import cards, errors, payouts, roles, screens
from .models import ManualPayout, Refund, RefundLeg

RECORD = "refunds.record_payout_card"
APPROVE = "refunds.approve_payout"
CONFIRM = "refunds.confirm_failure"
CARD_TOKEN_TTL = 3600  # seconds a kept (encrypted) card number stays usable in a refused form


def payouts_screen(view):
    @wraps(view)
    @login_required
    def wrapped(request, *args, **kwargs):
        if not roles.may_open(request.user, "payouts"):
            raise PermissionDenied(_("Your role does not open this screen."))
        return view(request, *args, **kwargs)

    return wrapped


def _require(request, perm: str, why: str):
    if not request.user.has_perm(perm):
        raise PermissionDenied(why)


class CardForm(forms.Form):
    holder_name = forms.CharField(label=gettext_lazy("Card holder's name"), max_length=100)
    card_number = forms.CharField(label=gettext_lazy("Card number"), max_length=40, required=False)
    card_token = forms.CharField(required=False, widget=forms.HiddenInput)
    bank_name = forms.CharField(label=gettext_lazy("Bank"), max_length=100)
    # Required and never pre-selected: the agent asks the user (S25).
    account_type = forms.ChoiceField(
        label=gettext_lazy("Account type"), choices=ManualPayout.AccountType.choices, widget=forms.RadioSelect,
        error_messages={"required": gettext_lazy("Ask the user: is the account personal or corporate?")},
    )
    phone = forms.RegexField(
        label=gettext_lazy("Phone (reserved with the bank)"), regex=r"^\+?[0-9][0-9 -]{5,30}$", max_length=32,
        error_messages={"invalid": gettext_lazy("Enter a phone number (digits, spaces, dashes, optional +).")},
    )

    def clean(self):
        data = super().clean()
        typed = (data.get("card_number") or "").strip()
        token = data.get("card_token") or ""
        try:
            if typed:
                data["digits"] = cards.validate(typed)
            elif token:
                data["digits"] = cards.decrypt(token, ttl=CARD_TOKEN_TTL)
            else:
                self.add_error("card_number", _("Enter the card number."))
        except cards.CardNumberError as exc:
            self.add_error("card_number", str(exc))
        return data

    def kept_card(self) -> tuple[str, str]:
        """After a refusal: (token, mask) of a valid card number to keep without echoing it."""
        digits = getattr(self, "cleaned_data", {}).get("digits")
        if not digits:
            return "", ""
        return cards.encrypt(digits), cards.mask_number(digits)

    def typed_card_value(self) -> str:
        """What goes back into the card field: what was typed only when it is not a valid number."""
        if getattr(self, "cleaned_data", {}).get("digits"):
            return ""
        return self.data.get("card_number", "") if self.is_bound else ""


class ConfirmFailureForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Why the failure is confirmed (e.g. the channel's statement shows no payment)"),
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class ApproveForm(forms.Form):
    transfer_reference = forms.CharField(label=gettext_lazy("Bank transfer reference"), max_length=64)


class SendBackForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("Why it is sent back"), max_length=255)


# ---------------------------------------------------------------------------------------------
# List

TABS = [
    ("failed", gettext_lazy("Failure to confirm")),
    ("card", gettext_lazy("Waiting for card")),
    ("approval", gettext_lazy("Waiting for finance approval")),
    ("paid", gettext_lazy("Paid")),
]


REFUND_STATUSES_WITH_LEGS_IN = {
    "failed": [Refund.Status.FAILED],
    "card": [Refund.Status.FAILED, Refund.Status.PROCESSING, Refund.Status.MANUAL_PAYOUT],
}


@payouts_screen
def payout_list(request):
    tab = request.GET.get("state") or "card"
    if tab not in dict(TABS):
        tab = "card"
    after = request.GET.get("after")
    if tab in ("approval", "paid"):
        status = ManualPayout.Status.AWAITING_APPROVAL if tab == "approval" else ManualPayout.Status.PAID
        qs = ManualPayout.objects.filter(status=status).select_related(
            "refund__merchant", "refund__payment", "leg", "recorded_by", "approved_by"
        )
        # Waiting work oldest first; paid newest first.
        page = keyset_page(qs, after=after, descending=tab == "paid")
        kind = "payout"
    else:
        if tab == "failed":
            legs = RefundLeg.objects.filter(status=RefundLeg.Status.FAILED)
        else:
            legs = RefundLeg.objects.filter(status=RefundLeg.Status.MANUAL_PAYOUT).filter(
                Q(manual_payout__isnull=True) | Q(manual_payout__status=ManualPayout.Status.RETURNED)
            )
        if request.GET.get("merchant"):
            # A refund's status follows its legs (services._derive_status): a FAILED leg makes it
            # FAILED, a MANUAL_PAYOUT leg leaves it FAILED, PROCESSING or MANUAL_PAYOUT. So the
            # merchant's legs are found from its refunds in those states (the merchant+status
            # index), not by looking up the refund of every leg in the tab.
            refunds = Refund.objects.filter(
                merchant_id=screens.merchant_id(request.GET["merchant"].strip()),
                status__in=REFUND_STATUSES_WITH_LEGS_IN[tab],
            )
            legs = legs.filter(refund__in=refunds.values("pk"))
        page = keyset_page(
            legs.select_related("refund__merchant", "refund__payment", "channel", "manual_payout"),
            after=after, descending=False,
        )
        kind = "leg"
    return render(request, "refunds/payouts/list.html", {
        "tabs": TABS, "tab": tab, "page": page, "kind": kind, "f": request.GET,
    })


# ---------------------------------------------------------------------------------------------
# A leg's payout page


def _leg(leg_id) -> RefundLeg:
    return get_object_or_404(
        RefundLeg.objects.select_related("refund__merchant", "refund__payment", "channel"), pk=leg_id
    )


def _page(request, leg: RefundLeg, *, card_form=None, confirm_form=None, approve_form=None, send_back_form=None,
          status=200):
    payout = ManualPayout.objects.select_related("recorded_by", "approved_by").filter(leg=leg).first()
    startable, why_not = payouts.payout_startable(leg)
    user = request.user
    card_form = card_form or CardForm()
    token, kept_mask = card_form.kept_card() if card_form.is_bound else ("", "")
    approve_blocked = ""
    if payout and payout.status == ManualPayout.Status.AWAITING_APPROVAL:
        if not user.has_perm(APPROVE):
            approve_blocked = _("Only finance approves payouts.")
        elif payout.recorded_by_id == user.pk:
            approve_blocked = _("You recorded this card: another person from finance must approve the payout.")
    events = leg.refund.events.filter(Q(leg=leg) | Q(leg__isnull=True)).order_by("-created_at", "-id")[:30]
    response = render(request, "refunds/payouts/leg.html", {
        "leg": leg, "refund": leg.refund, "payout": payout, "startable": startable, "why_not": why_not,
        "card_form": card_form, "card_token": token, "kept_mask": kept_mask,
        "card_value": card_form.typed_card_value(),
        "confirm_form": confirm_form or ConfirmFailureForm(), "approve_form": approve_form or ApproveForm(),
        "send_back_form": send_back_form or SendBackForm(), "approve_blocked": approve_blocked,
        "may_record": user.has_perm(RECORD), "may_approve": user.has_perm(APPROVE), "may_confirm": user.has_perm(CONFIRM),
        "events": events, "recard": bool(request.GET.get("recard")),
    }, status=status)
    return response


@never_cache
@payouts_screen
def payout_leg(request, leg_id):
    return _page(request, _leg(leg_id))


@sensitive_post_parameters("card_number", "card_token")
@require_POST
@never_cache
@payouts_screen
def payout_record_card(request, leg_id):
    _require(request, RECORD, _("Only customer service records bank cards."))
    leg = _leg(leg_id)
    form = CardForm(request.POST)
    if not form.is_valid():
        return _page(request, leg, card_form=form, status=400)
    data = form.cleaned_data
    try:
        payout = payouts.payout_record_card(
            leg_id=leg.pk, user=request.user, holder_name=data["holder_name"], card_number=data["digits"],
            bank_name=data["bank_name"], account_type=data["account_type"], phone=data["phone"],
        )
    except (errors.RefundError, cards.CardNumberError) as exc:
        form.add_error(None, getattr(exc, "message", str(exc)))
        return _page(request, _leg(leg_id), card_form=form, status=409)
    messages.success(request, _("Card %(card)s recorded: finance will approve the payout.") % {"card": payout.card_mask})
    return redirect("payout-leg", leg_id=leg.pk)


@require_POST
@payouts_screen
def payout_confirm_failure(request, leg_id):
    _require(request, CONFIRM, _("Only finance confirms a channel failure."))
    leg = _leg(leg_id)
    form = ConfirmFailureForm(request.POST)
    if not form.is_valid():
        return _page(request, leg, confirm_form=form, status=400)
    try:
        payouts.payout_confirm_failure(leg_id=leg.pk, reason=form.cleaned_data["reason"], user=request.user)
    except errors.RefundError as exc:
        form.add_error(None, exc.message)
        return _page(request, _leg(leg_id), confirm_form=form, status=409)
    messages.success(request, _("Failure confirmed: the leg now waits for a manual payout."))
    return redirect("payout-leg", leg_id=leg.pk)


@require_POST
@payouts_screen
def payout_approve(request, payout_id):
    _require(request, APPROVE, _("Only finance approves payouts."))
    payout = get_object_or_404(ManualPayout, pk=payout_id)
    form = ApproveForm(request.POST)
    if not form.is_valid():
        return _page(request, _leg(payout.leg_id), approve_form=form, status=400)
    try:
        payouts.payout_approve(
            payout_id=payout.pk, transfer_reference=form.cleaned_data["transfer_reference"], user=request.user
        )
    except errors.RefundError as exc:
        form.add_error(None, exc.message)
        return _page(request, _leg(payout.leg_id), approve_form=form, status=exc.http_status)
    messages.success(request, _("Payout approved: the refund leg is paid."))
    return redirect("payout-leg", leg_id=payout.leg_id)


@require_POST
@payouts_screen
def payout_send_back(request, payout_id):
    _require(request, APPROVE, _("Only finance sends payouts back."))
    payout = get_object_or_404(ManualPayout, pk=payout_id)
    form = SendBackForm(request.POST)
    if not form.is_valid():
        return _page(request, _leg(payout.leg_id), send_back_form=form, status=400)
    try:
        payouts.payout_send_back(payout_id=payout.pk, reason=form.cleaned_data["reason"], user=request.user)
    except errors.RefundError as exc:
        form.add_error(None, exc.message)
        return _page(request, _leg(payout.leg_id), send_back_form=form, status=409)
    messages.success(request, _("Sent back to customer service to record the card again."))
    return redirect("payout-leg", leg_id=payout.leg_id)

"""Complaint screens (客诉): the list (filters in the URL, keyset pages), opening one from a payment
or a refund, and working it: assign, notes (in place with htmx), due time, resolve, close, and
a customer-service refund started from it. State changes only through refunds.complaints."""

import secrets
from decimal import Decimal, InvalidOperation
from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from merchants.money import format_money, to_minor
from merchants.pagination import keyset_page

from . import complaints, errors, roles, screens
from .models import Complaint, Payment, Refund

HANDLE = "refunds.handle_complaint"
DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


def complaints_screen(view):
    """Signed in and the role opens the complaints screen (agents handle, auditors read)."""

    @wraps(view)
    @login_required
    def wrapped(request, *args, **kwargs):
        if not roles.may_open(request.user, "complaints"):
            raise PermissionDenied(_("Your role does not open this screen."))
        return view(request, *args, **kwargs)

    return wrapped


def _require_handle(request):
    if not request.user.has_perm(HANDLE):
        raise PermissionDenied(_("Only customer service handles complaints."))


def _agents():
    """Whom a complaint can be assigned to: the users who may handle complaints."""
    perm = Permission.objects.filter(content_type__app_label="refunds", codename="handle_complaint").first()
    users = get_user_model().objects.filter(is_active=True)
    condition = Q(is_superuser=True)
    if perm is not None:
        condition |= Q(groups__permissions=perm) | Q(user_permissions=perm)
    return users.filter(condition).distinct().order_by("username")


class DueField(forms.DateTimeField):
    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL)

    def __init__(self, **kwargs):
        super().__init__(input_formats=[DATETIME_LOCAL, "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"], **kwargs)


class OpenForm(forms.Form):
    customer_contact = forms.CharField(label=gettext_lazy("Customer contact"), max_length=200)
    category = forms.ChoiceField(
        label=gettext_lazy("Category"), choices=[("", gettext_lazy("— choose —")), *Complaint.Category.choices]
    )
    description = forms.CharField(label=gettext_lazy("What the customer says"), widget=forms.Textarea(attrs={"rows": 4}))
    due_at = DueField(label=gettext_lazy("Due"), required=False)


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(queryset=get_user_model().objects.none(), label=gettext_lazy("Assign to"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = _agents()


class NoteForm(forms.Form):
    body = forms.CharField(label=gettext_lazy("Note"), widget=forms.Textarea(attrs={"rows": 2}))


class DueForm(forms.Form):
    due_at = DueField(label=gettext_lazy("Due"), required=False)


class OutcomeForm(forms.Form):
    outcome = forms.CharField(label=gettext_lazy("Outcome (told to the customer)"), widget=forms.Textarea(attrs={"rows": 2}))


class StartRefundForm(forms.Form):
    amount = forms.DecimalField(label=gettext_lazy("Amount"), min_value=Decimal("0.01"), decimal_places=2, max_digits=14)
    direction = forms.ChoiceField(label=gettext_lazy("Direction"), choices=Refund.Direction.choices)
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=200)
    # Makes a double submit of this form a replay of the same refund (the out_refund_no).
    request_key = forms.RegexField(regex=r"^[0-9a-f]{8,32}$", widget=forms.HiddenInput)


# ---------------------------------------------------------------------------------------------
# List


STATUS_FILTERS = [
    ("working", gettext_lazy("Open or assigned")),
    ("open", gettext_lazy("Open")),
    ("assigned", gettext_lazy("Assigned")),
    ("resolved", gettext_lazy("Resolved")),
    ("closed", gettext_lazy("Closed")),
    ("all", gettext_lazy("All")),
]


@complaints_screen
def complaint_list(request):
    params = request.GET
    status = params.get("status") or "working"
    qs = Complaint.objects.select_related("merchant", "payment", "refund", "assignee")
    if status == "working":
        qs = qs.filter(status__in=Complaint.WORKING)
    elif status in Complaint.Status.values:
        qs = qs.filter(status=status)
    if params.get("category") in Complaint.Category.values:
        qs = qs.filter(category=params["category"])
    assignee = params.get("assignee", "")
    if assignee == "me":
        qs = qs.filter(assignee=request.user)
    elif assignee == "none":
        qs = qs.filter(assignee__isnull=True)
    elif assignee:
        qs = qs.filter(assignee__username=assignee)
    if params.get("merchant"):
        qs = qs.filter(merchant_id=screens.merchant_id(params["merchant"].strip()))  # the (merchant, -id) index
    if params.get("trade"):
        qs = qs.filter(payment__out_trade_no=params["trade"].strip())
    if params.get("overdue"):
        qs = qs.filter(status__in=Complaint.WORKING, due_at__lt=timezone.now())
    page = keyset_page(qs, after=params.get("after"))
    active = any(params.get(k) for k in ("category", "assignee", "merchant", "trade", "overdue")) or status != "working"
    return render(request, "refunds/complaints/list.html", {
        "page": page, "status": status, "status_filters": STATUS_FILTERS, "categories": Complaint.Category.choices,
        "f": params, "filters_active": active, "agents": _agents(), "may_handle": request.user.has_perm(HANDLE),
    })


# ---------------------------------------------------------------------------------------------
# Open


@complaints_screen
def complaint_new(request):
    _require_handle(request)
    refund = payment = None
    source = request.POST if request.method == "POST" else request.GET
    if source.get("refund"):
        refund = get_object_or_404(Refund.objects.select_related("payment", "merchant"), pk=source["refund"])
        payment = refund.payment
    elif source.get("payment"):
        payment = get_object_or_404(Payment.objects.select_related("merchant"), pk=source["payment"])
    elif source.get("trade") and source.get("merchant"):
        payment = Payment.objects.select_related("merchant").filter(
            merchant__code=source["merchant"].strip(), out_trade_no=source["trade"].strip()
        ).first()
        if payment is None:
            messages.error(request, _("No such payment for this merchant."))
    form = OpenForm(request.POST or None)
    if request.method == "POST" and payment is not None and form.is_valid():
        try:
            complaint = complaints.complaint_open(
                user=request.user, payment=payment, refund=refund, **form.cleaned_data
            )
        except errors.RefundError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Complaint #%(id)s opened.") % {"id": complaint.pk})
            return redirect("complaint-detail", pk=complaint.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "refunds/complaints/new.html", {
        "form": form, "payment": payment, "refund": refund, "source": source,
    }, status=status)


# ---------------------------------------------------------------------------------------------
# Detail and actions


def _detail_context(request, complaint: Complaint, **forms_):
    started = list(complaint.started_refunds.select_related("refund").order_by("id"))
    may_handle = request.user.has_perm(HANDLE)
    working = complaint.status in Complaint.WORKING
    due_local = timezone.localtime(complaint.due_at).strftime(DATETIME_LOCAL) if complaint.due_at else ""
    payment = complaint.payment
    return {
        "complaint": complaint,
        "payment": payment,
        "started": started,
        "events": complaint.events.select_related("user")[:200],
        "may_handle": may_handle,
        "working": working,
        "notes_open": complaint.status != Complaint.Status.CLOSED,
        "why_not": "" if may_handle else _("Only customer service handles complaints: you can read this one."),
        "assign_form": forms_.get("assign_form") or AssignForm(initial={"assignee": complaint.assignee_id}),
        "note_form": forms_.get("note_form") or NoteForm(),
        "due_form": forms_.get("due_form") or DueForm(initial={"due_at": due_local}),
        "outcome_form": forms_.get("outcome_form") or OutcomeForm(),
        "refund_form": forms_.get("refund_form") or StartRefundForm(
            initial={"direction": Refund.Direction.ORIGINAL, "request_key": secrets.token_hex(6)}
        ),
        "refundable": format_money(payment.refundable_amount, payment.currency),
    }


def _complaint(pk) -> Complaint:
    return get_object_or_404(
        Complaint.objects.select_related("merchant", "payment", "refund", "assignee", "opened_by"), pk=pk
    )


@complaints_screen
def complaint_detail(request, pk):
    complaint = _complaint(pk)
    return render(request, "refunds/complaints/detail.html", _detail_context(request, complaint))


def _refused(request, pk, form_name, form, message=None, status=400):
    complaint = _complaint(pk)
    if message:
        form.add_error(None, message)
    context = _detail_context(request, complaint, **{form_name: form})
    return render(request, "refunds/complaints/detail.html", context, status=status)


@require_POST
@complaints_screen
def complaint_assign(request, pk):
    _require_handle(request)
    data = request.POST.copy()
    if data.get("to_me"):
        data["assignee"] = str(request.user.pk)
    form = AssignForm(data)
    if not form.is_valid():
        return _refused(request, pk, "assign_form", form)
    try:
        complaints.complaint_assign(complaint_id=pk, assignee=form.cleaned_data["assignee"], user=request.user)
    except errors.RefundError as exc:
        return _refused(request, pk, "assign_form", form, exc.message, status=409)
    messages.success(request, _("Assigned to %(name)s.") % {"name": form.cleaned_data["assignee"].get_username()})
    return redirect("complaint-detail", pk=pk)


@require_POST
@complaints_screen
def complaint_note(request, pk):
    """Adds a note; with htmx, answers with the refreshed event list only (no page reload)."""
    _require_handle(request)
    form = NoteForm(request.POST)
    error = ""
    if form.is_valid():
        try:
            complaints.complaint_add_note(complaint_id=pk, body=form.cleaned_data["body"], user=request.user)
        except errors.RefundError as exc:
            error = exc.message
    else:
        error = _("Write the note first.")
    if request.htmx:
        complaint = _complaint(pk)
        return render(request, "refunds/complaints/_events.html", {
            "complaint": complaint, "events": complaint.events.select_related("user")[:200],
            "note_form": form if error else NoteForm(), "note_error": error, "may_handle": True,
            "notes_open": complaint.status != Complaint.Status.CLOSED,
        }, status=200)
    if error:
        return _refused(request, pk, "note_form", form, error)
    return redirect("complaint-detail", pk=pk)


@require_POST
@complaints_screen
def complaint_due(request, pk):
    _require_handle(request)
    form = DueForm(request.POST)
    if not form.is_valid():
        return _refused(request, pk, "due_form", form)
    try:
        complaints.complaint_set_due(complaint_id=pk, due_at=form.cleaned_data["due_at"], user=request.user)
    except errors.RefundError as exc:
        return _refused(request, pk, "due_form", form, exc.message, status=409)
    messages.success(request, _("Due time saved."))
    return redirect("complaint-detail", pk=pk)


@require_POST
@complaints_screen
def complaint_finish(request, pk, action):
    """Resolve or close, with the outcome told to the customer."""
    _require_handle(request)
    form = OutcomeForm(request.POST)
    if not form.is_valid():
        return _refused(request, pk, "outcome_form", form)
    service = complaints.complaint_resolve if action == "resolve" else complaints.complaint_close
    try:
        service(complaint_id=pk, outcome=form.cleaned_data["outcome"], user=request.user)
    except errors.RefundError as exc:
        return _refused(request, pk, "outcome_form", form, exc.message, status=409)
    messages.success(request, _("Complaint resolved.") if action == "resolve" else _("Complaint closed."))
    return redirect("complaint-detail", pk=pk)


@require_POST
@complaints_screen
def complaint_start_refund(request, pk):
    """A customer_service refund of the complaint's payment, through the same rules as any refund."""
    _require_handle(request)
    complaint = _complaint(pk)
    form = StartRefundForm(request.POST)
    if not form.is_valid():
        return _refused(request, pk, "refund_form", form)
    try:
        amount = to_minor(form.cleaned_data["amount"], complaint.payment.currency)
    except (InvalidOperation, ValueError):
        return _refused(request, pk, "refund_form", form, _("Enter an amount."))
    try:
        refund, created = complaints.complaint_start_refund(
            complaint_id=pk, amount=amount, reason=form.cleaned_data["reason"],
            direction=form.cleaned_data["direction"], request_key=form.cleaned_data["request_key"], user=request.user,
        )
    except errors.RefundError as exc:
        return _refused(request, pk, "refund_form", form, f"{exc.code}: {exc.message}", status=422)
    shown = format_money(refund.amount, refund.currency)
    if refund.status == Refund.Status.PENDING_REVIEW:
        text = _("Refund %(no)s of %(amount)s created: it waits for review by another person.")
    elif refund.status == Refund.Status.REJECTED:
        text = _("Refund %(no)s of %(amount)s was rejected by risk control.")
    else:
        text = _("Refund %(no)s of %(amount)s created: %(status)s.")
    messages.success(request, text % {"no": refund.out_refund_no, "amount": shown, "status": refund.get_status_display()})
    return redirect("complaint-detail", pk=pk)

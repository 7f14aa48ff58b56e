"""Channel configuration screens: the list with enable/disable, and a channel's edit form. Every
change needs a note; the configuration history keeps who, when, before and after."""

from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import services
from .models import Channel

CONFIGURE = "payment_channels.configure_channel"
VIEWERS = (CONFIGURE, "payment_channels.view_channel")


def channels_screen(view):
    @wraps(view)
    @login_required
    def wrapped(request, *args, **kwargs):
        if not any(request.user.has_perm(p) for p in VIEWERS):
            raise PermissionDenied(_("Your role does not open this screen."))
        return view(request, *args, **kwargs)

    return wrapped


def _require_configure(request):
    if not request.user.has_perm(CONFIGURE):
        raise PermissionDenied(_("Only operations configure channels."))


class ChannelForm(forms.ModelForm):
    change_note = forms.CharField(label=gettext_lazy("Why (required, kept in the history)"), max_length=255)

    class Meta:
        model = Channel
        fields = services.EDITABLE_FIELDS
        widgets = {
            "processing_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "processing_end": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        }

    def clean(self):
        data = super().clean()
        if (data.get("processing_start") is None) != (data.get("processing_end") is None):
            raise forms.ValidationError(_("Set both processing hours, or neither for a channel open all day."))
        return data


class ToggleForm(forms.Form):
    enabled = forms.TypedChoiceField(choices=[("1", "on"), ("0", "off")], coerce=lambda v: v == "1")
    note = forms.CharField(max_length=255)


@channels_screen
def channel_list(request):
    return render(request, "channels/list.html", {
        "channels": Channel.objects.order_by("code"), "may_configure": request.user.has_perm(CONFIGURE),
        "error_code": request.GET.get("error", ""),
    })


@channels_screen
def channel_edit(request, code):
    channel = get_object_or_404(Channel, code=code)
    may_configure = request.user.has_perm(CONFIGURE)
    if request.method == "POST":
        _require_configure(request)
        form = ChannelForm(request.POST, instance=Channel.objects.get(pk=channel.pk))
        if form.is_valid():
            changes = {name: form.cleaned_data[name] for name in services.EDITABLE_FIELDS}
            try:
                services.channel_update(
                    channel_id=channel.pk, changes=changes, note=form.cleaned_data["change_note"], user=request.user
                )
            except services.ChannelChangeRefused as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("Channel %(code)s saved.") % {"code": channel.code})
                return redirect("channel-list")
        status = 400
    else:
        form = ChannelForm(instance=channel)
        status = 200
    return render(request, "channels/edit.html", {
        "channel": channel, "form": form, "may_configure": may_configure,
    }, status=status)


@channels_screen
def channel_toggle(request, code):
    if request.method != "POST":
        return redirect("channel-list")
    _require_configure(request)
    channel = get_object_or_404(Channel, code=code)
    form = ToggleForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("A note saying why is required to enable or disable %(code)s.") % {"code": code})
        return render(request, "channels/list.html", {
            "channels": Channel.objects.order_by("code"), "may_configure": True, "error_code": code,
        }, status=400)
    services.channel_set_enabled(
        channel_id=channel.pk, enabled=form.cleaned_data["enabled"], note=form.cleaned_data["note"], user=request.user
    )
    state = _("enabled") if form.cleaned_data["enabled"] else _("disabled")
    messages.success(request, _("Channel %(code)s %(state)s.") % {"code": code, "state": state})
    return redirect("channel-list")

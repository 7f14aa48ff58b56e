"""Channel configuration changes: each with a required note, kept with who, when, before and after
(refunds/config_audit.py records the Channel save; this app sets the author and the reason on
the instance, as it may not import refunds)."""

from django.core.exceptions import ValidationError
from django.db import transaction

from .models import Channel

EDITABLE_FIELDS = (
    "name", "enabled", "refund_window_days", "max_refunds_per_payment", "dedupes_by_refund_no", "processing_start",
    "processing_end", "rate_limit_per_minute", "typical_days_to_arrive",
)


class ChannelChangeRefused(ValueError):
    """The change is not allowed as asked; the message says why."""


@transaction.atomic
def channel_update(*, channel_id, changes: dict, note: str, user) -> Channel:
    """Change a channel's configuration. The note becomes the channel's `note` and the history's reason."""
    note = (note or "").strip()
    if not note:
        raise ChannelChangeRefused("a note saying why is required for every channel change")
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ChannelChangeRefused(f"not changeable here: {', '.join(sorted(unknown))}")
    channel = Channel.objects.select_for_update().get(pk=channel_id)
    for name, value in changes.items():
        setattr(channel, name, value)
    channel.note = note[:255]
    try:
        channel.full_clean()
    except ValidationError as exc:
        raise ChannelChangeRefused("; ".join(exc.messages)) from None
    channel._config_user, channel._config_note = user, note
    channel.save()
    return channel


def channel_set_enabled(*, channel_id, enabled: bool, note: str, user) -> Channel:
    """Enable or disable a channel: a disabled channel gets no submissions, its queued legs wait."""
    return channel_update(channel_id=channel_id, changes={"enabled": enabled}, note=note, user=user)
